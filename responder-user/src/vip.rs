//! VIP specifications (`IP[@SCOPE]`), `--vip-file` parsing, validation against
//! the attached interfaces and expansion into data-plane keys.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use responder_common::{VipKey, VipValue};

use crate::{error::VipError, netif::Interface};

/// The VLAN tag stack a VIP is answered on; 0 means "no tag" at that level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vlan {
    pub outer: u16,
    pub inner: u16,
}

impl Vlan {
    pub const UNTAGGED: Vlan = Vlan { outer: 0, inner: 0 };

    pub fn is_tagged(&self) -> bool {
        self.outer != 0
    }
}

impl fmt::Display for Vlan {
    /// `-` when untagged, else `OUTER` or `OUTER.INNER`, as in the VIP syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.outer, self.inner) {
            (0, _) => f.write_str("-"),
            (outer, 0) => write!(f, "{outer}"),
            (outer, inner) => write!(f, "{outer}.{inner}"),
        }
    }
}

/// Which attached interfaces a VIP is answered on.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placement {
    /// Every attached interface (no `@`, or `@*`).
    #[default]
    Everywhere,
    /// One interface, by name (`@IFACE`).
    Interface(String),
    /// The attached interfaces with an address whose subnet contains the VIP,
    /// or every attached interface when none has (the VIP range need not be
    /// a node subnet). How Kubernetes VIPs are placed.
    OnLink,
}

/// Where a VIP is answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    pub placement: Placement,
    pub vlan: Vlan,
}

/// One VIP as the user (or a future dynamic source) writes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VipSpec {
    pub addr: IpAddr,
    pub scope: Scope,
}

impl VipSpec {
    pub fn unscoped(addr: IpAddr) -> Self {
        VipSpec {
            addr,
            scope: Scope::default(),
        }
    }
}

/// A VIP answered on its subnet's attached interfaces, untagged, as the Kubernetes
/// source publishes them; refused unless it is a usable unicast address (a
/// mistaken Service status must not become a loopback or multicast VIP).
impl TryFrom<IpAddr> for VipSpec {
    type Error = VipError;

    fn try_from(addr: IpAddr) -> Result<Self, VipError> {
        check_unicast(&addr.to_string(), addr)?;
        Ok(VipSpec {
            addr,
            scope: Scope {
                placement: Placement::OnLink,
                vlan: Vlan::UNTAGGED,
            },
        })
    }
}

impl fmt::Display for VipSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        let Scope { placement, vlan } = &self.scope;
        match (placement, vlan.is_tagged()) {
            (Placement::Everywhere, false) => Ok(()),
            (placement, tagged) => {
                match placement {
                    Placement::Everywhere => f.write_str("@*")?,
                    Placement::Interface(name) => write!(f, "@{name}")?,
                    Placement::OnLink => f.write_str("@(on-link)")?,
                }
                if tagged {
                    write!(f, ".{vlan}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for VipSpec {
    type Err = VipError;

    fn from_str(spec: &str) -> Result<Self, VipError> {
        let spec = spec.trim();
        let (addr_text, scope_text) = match spec.split_once('@') {
            Some((addr, scope)) => (addr, Some(scope)),
            None => (spec, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| VipError::Address {
            spec: spec.to_owned(),
            addr: addr_text.to_owned(),
        })?;
        check_unicast(spec, addr)?;
        let scope = match scope_text {
            None => Scope::default(),
            Some(text) => parse_scope(spec, text)?,
        };
        Ok(VipSpec { addr, scope })
    }
}

fn check_unicast(spec: &str, addr: IpAddr) -> Result<(), VipError> {
    let kind = match addr {
        IpAddr::V4(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V4(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V6(a) if a.is_multicast() => Some("a multicast address"),
        _ => None,
    };
    match kind {
        Some(kind) => Err(VipError::NotUnicast {
            spec: spec.to_owned(),
            addr,
            kind,
        }),
        None => Ok(()),
    }
}

/// `IFACE`, `IFACE.VID`, `IFACE.OUTER.INNER`, `*`, `*.VID`, `*.OUTER.INNER`:
/// up to two trailing all-digit components are VLAN ids, the rest is the
/// interface name (which may itself contain dots).
fn parse_scope(spec: &str, text: &str) -> Result<Scope, VipError> {
    let mut parts: Vec<&str> = text.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(VipError::EmptyComponent {
            spec: spec.to_owned(),
        });
    }
    let mut vids = Vec::new();
    while vids.len() < 2 && parts.len() > 1 {
        let last = parts[parts.len() - 1];
        if !last.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        let vid = last
            .parse::<u16>()
            .ok()
            .filter(|v| (1..=4094).contains(v))
            .ok_or_else(|| VipError::VlanRange {
                spec: spec.to_owned(),
                vid: last.to_owned(),
            })?;
        vids.insert(0, vid);
        parts.pop();
    }
    let name = parts.join(".");
    let vlan = Vlan {
        outer: vids.first().copied().unwrap_or(0),
        inner: vids.get(1).copied().unwrap_or(0),
    };
    let placement = match name.as_str() {
        "*" => Placement::Everywhere,
        _ => Placement::Interface(name),
    };
    Ok(Scope { placement, vlan })
}

/// Parses a `--vip-file`: one spec per line, `#` starts a comment.
pub fn parse_vip_file(path: &Path, text: &str) -> Result<BTreeSet<VipSpec>, VipError> {
    let mut specs = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let content = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if content.is_empty() {
            continue;
        }
        let spec = content.parse().map_err(|source| VipError::File {
            path: path.to_owned(),
            line: index + 1,
            source: Box::new(source),
        })?;
        specs.insert(spec);
    }
    Ok(specs)
}

/// Reads and parses a `--vip-file`.
pub fn read_vip_file(path: &Path) -> Result<BTreeSet<VipSpec>, VipError> {
    let text = std::fs::read_to_string(path).map_err(|source| VipError::ReadFile {
        path: PathBuf::from(path),
        source,
    })?;
    parse_vip_file(path, &text)
}

/// Checks what parsing cannot: the scope names an attached interface and the
/// VIP is not an address the host already owns on an interface it lands on
/// (answering for it would fight the kernel's own neighbor replies).
pub fn validate(spec: &VipSpec, interfaces: &[Interface]) -> Result<(), VipError> {
    if let Placement::Interface(name) = &spec.scope.placement {
        if !interfaces.iter().any(|i| &i.name == name) {
            return Err(VipError::ScopeInterface {
                spec: spec.to_string(),
                interface: name.clone(),
                attached: interfaces
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    if let Some(owner) = targets(spec, interfaces)
        .into_iter()
        .find(|i| i.owns(spec.addr))
    {
        return Err(VipError::OwnAddress {
            spec: spec.to_string(),
            interface: owner.name.clone(),
        });
    }
    Ok(())
}

fn targets<'a>(spec: &'a VipSpec, interfaces: &'a [Interface]) -> Vec<&'a Interface> {
    match &spec.scope.placement {
        Placement::Everywhere => interfaces.iter().collect(),
        Placement::Interface(name) => interfaces.iter().filter(|i| &i.name == name).collect(),
        Placement::OnLink => {
            let on_link: Vec<&Interface> =
                interfaces.iter().filter(|i| i.on_link(spec.addr)).collect();
            match on_link.is_empty() {
                true => interfaces.iter().collect(),
                false => on_link,
            }
        }
    }
}

/// An on-link VIP that no attached interface has a subnet for, so it is
/// answered everywhere.
pub fn placed_off_link(spec: &VipSpec, interfaces: &[Interface]) -> bool {
    spec.scope.placement == Placement::OnLink
        && !interfaces.is_empty()
        && !interfaces.iter().any(|i| i.on_link(spec.addr))
}

/// Whether the kernel would accept traffic for `addr` arriving on `interface`.
fn family_enabled(addr: IpAddr, interface: &Interface) -> bool {
    addr.is_ipv4() || interface.ipv6
}

/// Interfaces `spec` would land on but whose kernel has its IP family
/// disabled: answering there would draw traffic the node drops.
pub fn family_disabled_on<'a>(
    spec: &'a VipSpec,
    interfaces: &'a [Interface],
) -> impl Iterator<Item = &'a Interface> {
    targets(spec, interfaces)
        .into_iter()
        .filter(|i| !family_enabled(spec.addr, i))
}

/// The data-plane entries for `spec`: one key per interface it lands on
/// whose kernel handles the VIP's family, answered with that interface's MAC.
pub fn expand(spec: &VipSpec, interfaces: &[Interface]) -> BTreeMap<VipKey, VipValue> {
    let Vlan { outer, inner } = spec.scope.vlan;
    targets(spec, interfaces)
        .into_iter()
        .filter(|i| family_enabled(spec.addr, i))
        .map(|i| {
            let key = match spec.addr {
                IpAddr::V4(a) => VipKey::v4(i.ifindex, outer, inner, a.octets()),
                IpAddr::V6(a) => VipKey::v6(i.ifindex, outer, inner, a.octets()),
            };
            (
                key,
                VipValue {
                    mac: i.mac,
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// The address a key answers for.
pub fn key_addr(key: &VipKey) -> IpAddr {
    key.ip()
}

pub fn key_vlan(key: &VipKey) -> Vlan {
    Vlan {
        outer: key.vlan_outer,
        inner: key.vlan_inner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> VipSpec {
        text.parse()
            .unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
    }

    fn parse_error(text: &str) -> String {
        match text.parse::<VipSpec>() {
            Ok(s) => panic!("`{text}` should be rejected, parsed as {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn scoped(addr: &str, interface: Option<&str>, outer: u16, inner: u16) -> VipSpec {
        VipSpec {
            addr: addr.parse().expect("test address"),
            scope: Scope {
                placement: interface.map_or(Placement::Everywhere, |name| {
                    Placement::Interface(name.to_owned())
                }),
                vlan: Vlan { outer, inner },
            },
        }
    }

    fn interfaces() -> Vec<Interface> {
        vec![
            Interface {
                name: "eth0".into(),
                ifindex: 2,
                mac: [2, 0, 0, 0, 0, 0xa],
                carrier: true,
                addresses: vec![
                    "198.51.100.1/24".parse().expect("addr"),
                    "2001:db8::1/64".parse().expect("addr"),
                ],
                ipv6: true,
            },
            Interface {
                name: "eth1".into(),
                ifindex: 3,
                mac: [2, 0, 0, 0, 0, 0xb],
                carrier: true,
                addresses: vec![],
                ipv6: true,
            },
        ]
    }

    #[test]
    fn parses_every_valid_form() {
        assert_eq!(spec("192.0.2.10"), scoped("192.0.2.10", None, 0, 0));
        assert_eq!(spec("2001:db8::10"), scoped("2001:db8::10", None, 0, 0));
        assert_eq!(
            spec("192.0.2.10@eth0"),
            scoped("192.0.2.10", Some("eth0"), 0, 0)
        );
        assert_eq!(
            spec("192.0.2.10@eth0.100"),
            scoped("192.0.2.10", Some("eth0"), 100, 0)
        );
        assert_eq!(
            spec("192.0.2.10@eth0.100.200"),
            scoped("192.0.2.10", Some("eth0"), 100, 200)
        );
        assert_eq!(
            spec("2001:db8::10@*.4094"),
            scoped("2001:db8::10", None, 4094, 0)
        );
        assert_eq!(spec("192.0.2.10@*.1.2"), scoped("192.0.2.10", None, 1, 2));
        assert_eq!(spec("192.0.2.10@*"), scoped("192.0.2.10", None, 0, 0));
        assert_eq!(
            spec("  fe80::1@eth1  "),
            scoped("fe80::1", Some("eth1"), 0, 0)
        );
    }

    #[test]
    fn only_two_trailing_numeric_components_are_vlans() {
        assert_eq!(
            spec("192.0.2.10@bond0.1.2.3"),
            scoped("192.0.2.10", Some("bond0.1"), 2, 3)
        );
        assert_eq!(
            spec("192.0.2.10@br.lan.7"),
            scoped("192.0.2.10", Some("br.lan"), 7, 0)
        );
        // A name that is all digits is still a name when nothing precedes it.
        assert_eq!(
            spec("192.0.2.10@42"),
            scoped("192.0.2.10", Some("42"), 0, 0)
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "192.0.2.10",
            "192.0.2.10@eth0",
            "192.0.2.10@eth0.100",
            "192.0.2.10@eth0.100.200",
            "2001:db8::10@*.100",
        ] {
            assert_eq!(spec(text).to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "192.0.2",
            "192.0.2.300",
            "2001:db8:::1",
            "eth0",
            "@eth0",
            "192.0.2.10/24",
        ] {
            assert!(
                parse_error(bad).contains("not an IP address"),
                "{bad}: {}",
                parse_error(bad)
            );
        }
    }

    #[test]
    fn rejects_non_unicast_addresses() {
        for (bad, what) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("ff02::1", "multicast"),
        ] {
            let e = parse_error(bad);
            assert!(e.contains(what) && e.contains("unicast"), "{bad}: {e}");
        }
    }

    #[test]
    fn rejects_bad_scopes() {
        for (bad, what) in [
            ("192.0.2.10@", "empty"),
            ("192.0.2.10@.100", "empty"),
            ("192.0.2.10@eth0.", "empty"),
            ("192.0.2.10@eth0..100", "empty"),
            ("192.0.2.10@eth0.0", "1..=4094"),
            ("192.0.2.10@eth0.4095", "1..=4094"),
            ("192.0.2.10@eth0.100.0", "1..=4094"),
            ("192.0.2.10@eth0.99999999", "1..=4094"),
            ("192.0.2.10@*.5000", "1..=4094"),
        ] {
            let e = parse_error(bad);
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn validation_checks_scope_interface_and_own_addresses() {
        let ifs = interfaces();
        validate(&spec("192.0.2.10"), &ifs).expect("unscoped VIP is valid");
        validate(&spec("192.0.2.10@eth1.5"), &ifs).expect("scoped VIP is valid");
        validate(&spec("198.51.100.1@eth1"), &ifs).expect("address of another interface is fine");

        let e = validate(&spec("192.0.2.10@eth9"), &ifs)
            .expect_err("eth9 is not attached")
            .to_string();
        assert!(e.contains("eth9") && e.contains("eth0, eth1"), "{e}");
        let e = validate(&spec("198.51.100.1"), &ifs)
            .expect_err("own address")
            .to_string();
        assert!(e.contains("eth0") && e.contains("already"), "{e}");
        let e = validate(&spec("2001:db8::1@*.10"), &ifs)
            .expect_err("own address")
            .to_string();
        assert!(e.contains("eth0"), "{e}");
    }

    #[test]
    fn unscoped_vip_expands_to_one_untagged_key_per_interface() {
        let keys = expand(&spec("192.0.2.10"), &interfaces());
        let expected: BTreeMap<VipKey, VipValue> = [
            (
                VipKey::v4(2, 0, 0, [192, 0, 2, 10]),
                VipValue {
                    mac: [2, 0, 0, 0, 0, 0xa],
                    ..Default::default()
                },
            ),
            (
                VipKey::v4(3, 0, 0, [192, 0, 2, 10]),
                VipValue {
                    mac: [2, 0, 0, 0, 0, 0xb],
                    ..Default::default()
                },
            ),
        ]
        .into();
        assert_eq!(keys, expected);
    }

    #[test]
    fn ipv6_vips_skip_interfaces_without_ipv6_and_ipv4_ones_do_not() {
        let mut interfaces = interfaces();
        interfaces[1].ipv6 = false;
        let v6 = spec("2001:db8::10");
        let keys: Vec<u32> = expand(&v6, &interfaces)
            .into_keys()
            .map(|k| k.ifindex)
            .collect();
        assert_eq!(keys, vec![2], "only eth0 handles IPv6");
        let disabled: Vec<&str> = family_disabled_on(&v6, &interfaces)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(disabled, vec!["eth1"]);
        assert_eq!(expand(&spec("192.0.2.10"), &interfaces).len(), 2);
        assert_eq!(
            family_disabled_on(&spec("192.0.2.10"), &interfaces).count(),
            0
        );
        // Scoped to eth0, eth1's state does not matter.
        assert_eq!(
            family_disabled_on(&spec("2001:db8::10@eth0"), &interfaces).count(),
            0
        );
    }

    #[test]
    fn wildcard_vlan_and_qinq_expand_with_tags() {
        let keys: Vec<VipKey> = expand(&spec("2001:db8::10@*.100"), &interfaces())
            .into_keys()
            .collect();
        let addr: [u8; 16] = "2001:db8::10"
            .parse::<std::net::Ipv6Addr>()
            .expect("addr")
            .octets();
        assert_eq!(
            keys,
            vec![VipKey::v6(2, 100, 0, addr), VipKey::v6(3, 100, 0, addr)]
        );

        let keys: Vec<VipKey> = expand(&spec("192.0.2.10@eth1.100.200"), &interfaces())
            .into_keys()
            .collect();
        assert_eq!(keys, vec![VipKey::v4(3, 100, 200, [192, 0, 2, 10])]);
    }

    #[test]
    fn keys_map_back_to_address_and_vlan() {
        let key = VipKey::v4(3, 100, 200, [192, 0, 2, 10]);
        assert_eq!(
            key_addr(&key),
            "192.0.2.10".parse::<IpAddr>().expect("addr")
        );
        assert_eq!(key_vlan(&key).to_string(), "100.200");
        assert_eq!(Vlan::UNTAGGED.to_string(), "-");
        let key = VipKey::v6(
            3,
            7,
            0,
            "2001:db8::10"
                .parse::<std::net::Ipv6Addr>()
                .expect("addr")
                .octets(),
        );
        assert_eq!(key_addr(&key).to_string(), "2001:db8::10");
        assert_eq!(key_vlan(&key).to_string(), "7");
    }

    #[test]
    fn vip_file_allows_comments_and_blank_lines() {
        let text = "# VIPs\n\n192.0.2.10\n  2001:db8::10@eth0.100   # tagged\n\t\n192.0.2.10\n";
        let specs = parse_vip_file(Path::new("vips.txt"), text).expect("valid file");
        assert_eq!(
            specs,
            [spec("192.0.2.10"), spec("2001:db8::10@eth0.100")].into()
        );
        assert!(parse_vip_file(Path::new("empty"), "")
            .expect("empty file")
            .is_empty());
    }

    #[test]
    fn vip_file_errors_name_the_line() {
        let text = "192.0.2.10\n# fine\n192.0.2.300 # bad\n";
        let e = parse_vip_file(Path::new("/etc/vips"), text)
            .expect_err("bad line")
            .to_string();
        assert!(
            e.contains("/etc/vips:3") && e.contains("192.0.2.300"),
            "{e}"
        );
        let e = parse_vip_file(Path::new("f"), "\n\n192.0.2.1@eth0.4095")
            .expect_err("bad vlan")
            .to_string();
        assert!(e.contains("f:3") && e.contains("4095"), "{e}");
    }

    #[test]
    fn unreadable_vip_file_names_the_path() {
        let e = read_vip_file(Path::new("/nonexistent/rsp-vips"))
            .expect_err("missing file")
            .to_string();
        assert!(e.contains("/nonexistent/rsp-vips"), "{e}");
    }

    #[test]
    fn on_link_vips_land_on_their_subnet_or_everywhere() {
        let ifs = interfaces();
        let on_link = |ip: &str| VipSpec::try_from(ip.parse::<IpAddr>().expect("ip")).expect("vip");
        let ifindexes = |spec: &VipSpec| -> Vec<u32> {
            expand(spec, &ifs).keys().map(|key| key.ifindex).collect()
        };
        let inside = on_link("198.51.100.10");
        assert_eq!(ifindexes(&inside), vec![2], "eth0 has 198.51.100.0/24");
        assert!(!placed_off_link(&inside, &ifs));
        let elsewhere = on_link("192.0.2.10");
        assert_eq!(ifindexes(&elsewhere), vec![2, 3], "no subnet: everywhere");
        assert!(placed_off_link(&elsewhere, &ifs));
        assert!(
            !placed_off_link(&elsewhere, &[]),
            "nothing attached: nowhere to warn about"
        );
        assert!(
            validate(&on_link("198.51.100.1"), &ifs).is_err(),
            "eth0's own"
        );
        assert_eq!(inside.to_string(), "198.51.100.10@(on-link)");
    }
}
