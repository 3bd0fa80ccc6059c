//! The oldest kernel the responder runs on, checked at start so an old one
//! is refused with a message naming the minimum, not with a verifier log or
//! an attach error half-way through.
//!
//! What the program needs, and since when: BTF-described maps (5.2, with
//! BPF_F_NO_PREALLOC hash and per-CPU maps long before), growing a frame
//! with `bpf_xdp_adjust_tail` (5.8: the Neighbor Advertisement can be
//! longer than the solicitation), and XDP attached through a bpf_link
//! (5.9: pinned links and BPF_LINK_UPDATE are how a restarted agent swaps
//! the program without a moment unattached). No kfunc is used. So the floor
//! is Linux 5.9. One feature is newer and optional: walking a Hop-by-Hop
//! header before a Neighbor Solicitation reads it with `bpf_xdp_load_bytes`
//! (5.18); on older kernels the loader turns that walk off (see
//! [`has_xdp_load_bytes`]) and such solicitations pass to the kernel.
//!
//! Distribution kernels backport BPF features under older version numbers,
//! so where the kernel's BTF (`/sys/kernel/btf/vmlinux`) is readable it
//! decides: XDP links bring `struct bpf_xdp_link`, and every feature above
//! predates them. Without BTF the version number decides.

/// The minimum, for messages and docs/operating.md.
pub const MINIMUM_KERNEL: &str = "5.9";
const MINIMUM: (u32, u32) = (5, 9);
/// Defined by the kernel since XDP bpf_links exist (5.9).
const XDP_LINK_STRUCT: &str = "bpf_xdp_link";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelFloorError {
    #[error(
        "kernel {release} has no XDP bpf_link (its BTF lacks struct bpf_xdp_link): the responder \
         needs Linux {MINIMUM_KERNEL} or newer (XDP bpf_links, bpf_xdp_adjust_tail growth, BTF maps)"
    )]
    NoXdpLink { release: String },
    #[error(
        "kernel {release} is older than Linux {MINIMUM_KERNEL}, which the responder needs (XDP \
         bpf_links, bpf_xdp_adjust_tail growth, BTF maps), and it has no readable BTF \
         (/sys/kernel/btf/vmlinux) showing the features backported"
    )]
    TooOld { release: String },
    #[error(
        "cannot tell whether kernel {release} is Linux {MINIMUM_KERNEL} or newer: no readable BTF \
         (/sys/kernel/btf/vmlinux) and an unparsable release"
    )]
    Unknown { release: String },
}

impl From<KernelFloorError> for crate::error::Error {
    fn from(error: KernelFloorError) -> Self {
        Self::KernelFloor(Box::new(error))
    }
}

/// What the check looks at, gathered by [`kernel_facts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// Whether the kernel's BTF defines `struct bpf_xdp_link`; None when
    /// there is no readable kernel BTF.
    pub btf_has_xdp_link: Option<bool>,
}

/// (major, minor) from a release string such as `6.1.0-18-amd64`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+', '_']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The verdict on `facts`: Ok when the program will load and attach.
pub fn judge(facts: &KernelFacts) -> Result<(), KernelFloorError> {
    let release = facts.release.clone();
    match facts.btf_has_xdp_link {
        Some(true) => Ok(()),
        Some(false) => Err(KernelFloorError::NoXdpLink { release }),
        None => match parse_release(&facts.release) {
            Some(version) if version >= MINIMUM => Ok(()),
            Some(_) => Err(KernelFloorError::TooOld { release }),
            None => Err(KernelFloorError::Unknown { release }),
        },
    }
}

/// The running kernel's facts. Needs no privilege: its release and its
/// BTF file (mode 0444).
pub fn kernel_facts() -> KernelFacts {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_owned())
        .unwrap_or_default();
    let btf_has_xdp_link = aya::Btf::from_sys_fs().ok().map(|btf| {
        btf.id_by_type_name_kind(XDP_LINK_STRUCT, aya_obj::btf::BtfKind::Struct)
            .is_ok()
    });
    KernelFacts {
        release,
        btf_has_xdp_link,
    }
}

/// Whether the running kernel has the `bpf_xdp_load_bytes` helper (Linux
/// 5.18, or backported): its BTF lists the helper's id among `enum
/// bpf_func_id`. aya exposes no enum members, so the name is looked up in
/// the BTF's string section, where every member name is (a name there
/// belongs to some type; this one only to that enum). Without readable BTF
/// the version number decides.
pub fn has_xdp_load_bytes() -> bool {
    const HELPER_ID_NAME: &[u8] = b"\0BPF_FUNC_xdp_load_bytes\0";
    match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(btf) => btf
            .windows(HELPER_ID_NAME.len())
            .any(|window| window == HELPER_ID_NAME),
        Err(_) => {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            parse_release(release.trim()).is_some_and(|version| version >= (5, 18))
        }
    }
}

/// Refuses a kernel below the floor (see the module docs).
pub fn check_kernel_floor() -> Result<(), KernelFloorError> {
    judge(&kernel_facts())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(release: &str, btf: Option<bool>) -> KernelFacts {
        KernelFacts {
            release: release.to_owned(),
            btf_has_xdp_link: btf,
        }
    }

    #[test]
    fn releases_parse_with_distribution_suffixes() {
        assert_eq!(parse_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_release("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(parse_release("6.18.44-fc-v857"), Some((6, 18)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn btf_decides_over_the_version_number() {
        // RHEL 8 backports XDP links to 4.18.
        assert_eq!(
            judge(&facts("4.18.0-553.el8_10.x86_64", Some(true))),
            Ok(())
        );
        let error = judge(&facts("5.10.0", Some(false))).expect_err("no XDP link");
        assert!(error.to_string().contains("Linux 5.9"), "{error}");
    }

    #[test]
    fn without_btf_the_version_number_decides() {
        assert_eq!(judge(&facts("5.9.0", None)), Ok(()));
        assert_eq!(judge(&facts("6.1.0-18-amd64", None)), Ok(()));
        let error = judge(&facts("5.8.18", None)).expect_err("too old");
        assert_eq!(
            error,
            KernelFloorError::TooOld {
                release: "5.8.18".into()
            }
        );
        assert!(
            error.to_string().contains("older than Linux 5.9"),
            "{error}"
        );
        assert!(matches!(
            judge(&facts("", None)),
            Err(KernelFloorError::Unknown { .. })
        ));
    }

    #[test]
    fn this_kernel_passes() {
        // The tests run on kernels the responder supports; this also reads
        // the real BTF through aya.
        let facts = kernel_facts();
        assert_eq!(judge(&facts), Ok(()), "{facts:?}");
    }
}
