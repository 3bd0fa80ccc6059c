//! The capabilities the agent needs, and which of them this process lacks,
//! read from `/proc/self/status` (CapEff) so a permission error can name the
//! missing one instead of listing them all, and the [`Error::Privileges`]
//! made with that note.

use crate::error::{is_permission_denied, Error};

/// A capability the agent uses, with what it is needed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    /// Bit in the capability sets (linux/capability.h).
    pub bit: u32,
    pub needed_for: &'static str,
}

pub const CAP_NET_ADMIN: Capability = Capability {
    name: "CAP_NET_ADMIN",
    bit: 12,
    needed_for: "loading and attaching XDP programs, changing NIC offloads",
};
pub const CAP_NET_RAW: Capability = Capability {
    name: "CAP_NET_RAW",
    bit: 13,
    needed_for: "sending gratuitous ARP / unsolicited NA on a packet socket",
};
pub const CAP_SYS_ADMIN: Capability = Capability {
    name: "CAP_SYS_ADMIN",
    bit: 21,
    needed_for: "everything the others grant (root)",
};
pub const CAP_PERFMON: Capability = Capability {
    name: "CAP_PERFMON",
    bit: 38,
    needed_for: "the verifier's unrestricted mode, without which it refuses packet pointer arithmetic with a variable offset (Spectre v1 hardening)",
};
pub const CAP_BPF: Capability = Capability {
    name: "CAP_BPF",
    bit: 39,
    needed_for: "creating maps and loading the program",
};

/// Everything the agent needs, in the order the DaemonSet lists them.
pub const REQUIRED: [Capability; 4] = [CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW, CAP_PERFMON];

/// The effective capability set from the text of `/proc/<pid>/status`.
pub fn parse_effective(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// This process's effective capabilities; None if unreadable.
pub fn effective() -> Option<u64> {
    parse_effective(&std::fs::read_to_string("/proc/self/status").ok()?)
}

pub fn has(effective: u64, capability: Capability) -> bool {
    effective & (1 << capability.bit) != 0
}

/// The required capabilities missing from `effective`. CAP_SYS_ADMIN
/// stands in for CAP_BPF and CAP_PERFMON, as the kernel lets it.
pub fn missing(effective: u64) -> Vec<Capability> {
    let sys_admin = has(effective, CAP_SYS_ADMIN);
    REQUIRED
        .into_iter()
        .filter(|cap| {
            let covered = sys_admin && (*cap == CAP_BPF || *cap == CAP_PERFMON);
            !has(effective, *cap) && !covered
        })
        .collect()
}

/// " (this process lacks CAP_X: needed for …)" for a permission error, or
/// "" when nothing required is missing or the set cannot be read.
pub fn lacking_note() -> String {
    let Some(effective) = effective() else {
        return String::new();
    };
    let missing = missing(effective);
    if missing.is_empty() {
        return String::new();
    }
    let names: Vec<String> = missing
        .iter()
        .map(|cap| format!("{}: {}", cap.name, cap.needed_for))
        .collect();
    format!(" (this process lacks {})", names.join("; "))
}

/// A permission failure while doing `action`, naming the capabilities
/// this process lacks.
pub fn privileges(
    action: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Privileges {
        action: action.into(),
        lacking: lacking_note(),
        source: Box::new(source),
    }
}

/// Turns a permission failure into [`Error::Privileges`], anything else via `other`.
pub fn privileges_or<E>(action: &str, error: E, other: impl FnOnce(E) -> Error) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if is_permission_denied(&error) {
        privileges(action, error)
    } else {
        other(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tresponder\nCapInh:\t0000000000000000\nCapPrm:\t000000c000003000\nCapEff:\t000000c000003000\nCapBnd:\t000000c000003000\n";

    #[test]
    fn the_effective_set_is_read_from_status() {
        let effective = parse_effective(STATUS).expect("CapEff present");
        assert_eq!(effective, 0xc0_0000_3000);
        assert!(missing(effective).is_empty(), "the DaemonSet's four");
        assert_eq!(parse_effective("Name:\tx\n"), None);
    }

    #[test]
    fn each_dropped_capability_is_named() {
        let all = 0xc0_0000_3000u64;
        for cap in REQUIRED {
            assert_eq!(missing(all & !(1 << cap.bit)), vec![cap], "{}", cap.name);
        }
    }

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon_only() {
        let sys_admin = 1u64 << CAP_SYS_ADMIN.bit;
        assert_eq!(missing(sys_admin), vec![CAP_NET_ADMIN, CAP_NET_RAW]);
        let root = u64::MAX >> 23;
        assert!(missing(root).is_empty());
    }

    #[test]
    fn permission_errors_are_found_down_the_chain() {
        let eperm = Error::PacketSocket {
            interface: "eth0".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(is_permission_denied(&eperm));
        let enodev = Error::PacketSocket {
            interface: "eth0".into(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert!(!is_permission_denied(&enodev));
        let e = privileges_or("loading", eperm, |e| e);
        assert!(e.to_string().contains("CAP_BPF"), "{e}");
    }
}
