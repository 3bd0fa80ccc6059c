//! Network interfaces: what the agent knows of each (`LinkInfo`, and
//! `Interface` once attachable), which ones it attaches to (`filter`), and
//! following them through rtnetlink (`watch`): links, their addresses, and
//! which of them carry the network namespace's default route (the node's
//! uplink, which is a veth when the node is itself a container or a network
//! namespace: kind, k3d, containerlab).

mod filter;
mod messages;
pub(crate) mod multicast;
pub mod topology;
pub mod watch;

use std::net::IpAddr;

use ipnet::IpNet;

pub use filter::{InterfaceFilter, DEFAULT_EXCLUDED_KINDS, DEFAULT_EXCLUDED_PREFIXES, UPLINK_KIND};

use crate::error::Error;

/// An attached (or attachable) interface as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Operationally up: frames can arrive. An interface without carrier
    /// stays attached (some drivers reset the link on every attach, so
    /// detaching on carrier loss could loop) but does not count as serving.
    pub carrier: bool,
    /// The interface's own addresses with their prefixes: never VIPs
    /// themselves, and the subnets a VIP is on-link in.
    pub addresses: Vec<IpNet>,
    /// The kernel handles IPv6 on it (not `disable_ipv6`, nor booted with
    /// `ipv6.disable=1`): answering NS for a VIP where it does not would draw
    /// traffic the node drops.
    pub ipv6: bool,
}

impl Interface {
    /// `ip` is one of the interface's own addresses.
    pub fn owns(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|net| net.addr() == ip)
    }

    /// `ip` lies in a subnet the interface has an address in.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|net| net.contains(&ip))
    }
}

/// What the responder needs to know about one network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub ifindex: u32,
    /// All zeros when the link has no 6-byte hardware address.
    pub mac: [u8; 6],
    /// Administratively up (IFF_UP): the program is attached while it is.
    pub admin_up: bool,
    /// Operationally up (IFF_RUNNING): without carrier no request can arrive.
    pub carrier: bool,
    pub loopback: bool,
    pub noarp: bool,
    /// The bond, bridge or team this link is a port of. VRF membership does
    /// not count: VRF members still receive their own frames.
    pub master: Option<u32>,
    /// IFLA_INFO_KIND ("veth", "bridge", "bond", …); None for physical NICs.
    pub kind: Option<String>,
    /// The interface's own addresses (IFA_LOCAL, else IFA_ADDRESS) with their
    /// prefix lengths, sorted.
    pub addresses: Vec<IpNet>,
    /// An output interface (RTA_OIF, or a multipath nexthop's) of a default
    /// route (prefix length 0) of the main table, IPv4 or IPv6: the network
    /// namespace's uplink. Lifts the default exclusion of kind `veth` only
    /// (see [`InterfaceFilter::accepts`]).
    pub carries_default_route: bool,
}

/// The link as an attachable interface; `None` without an Ethernet address
/// (loopback, tunnels without a MAC).
pub fn interface_of(link: &LinkInfo) -> Option<Interface> {
    (link.mac != [0; 6] && !link.loopback).then(|| Interface {
        name: link.name.clone(),
        ifindex: link.ifindex,
        mac: link.mac,
        carrier: link.carrier,
        addresses: link.addresses.clone(),
        ipv6: ipv6_enabled(&link.name),
    })
}

/// Looks up `name` among `links` (a [`watch::list_links`] snapshot).
pub fn lookup(links: &[LinkInfo], name: &str) -> Result<Interface, Error> {
    let link = links
        .iter()
        .find(|link| link.name == name)
        .ok_or_else(|| Error::UnknownInterface(name.to_owned()))?;
    interface_of(link).ok_or_else(|| Error::NotEthernet(name.to_owned()))
}

/// Whether the kernel processes IPv6 on `name`, from
/// `/proc/sys/net/ipv6/conf/<name>/disable_ipv6` (absent when IPv6 is off for
/// the whole kernel). Cheap enough to re-read every tick: sysctl changes come
/// with no netlink event when the interface has no IPv6 address to lose.
pub fn ipv6_enabled(name: &str) -> bool {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return false;
    }
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"))
        .is_ok_and(|value| value.trim() == "0")
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter::tests::link;

    #[test]
    fn loopback_and_links_without_a_mac_are_not_ethernet() {
        let mut lo = link("lo");
        lo.loopback = true;
        let mut tunnel = link("tunl0");
        tunnel.mac = [0; 6];
        let links = [lo, tunnel, link("eth0")];
        for name in ["lo", "tunl0"] {
            let e = lookup(&links, name).expect_err("no MAC").to_string();
            assert!(e.contains("not an Ethernet interface"), "{e}");
        }
        let eth0 = lookup(&links, "eth0").expect("eth0");
        assert_eq!((eth0.ifindex, eth0.mac), (7, [0x02, 0, 0, 0, 0, 7]));
    }

    #[test]
    fn unknown_interface_is_named() {
        let e = lookup(&[link("eth0")], "rsp-no-such0")
            .expect_err("no such interface")
            .to_string();
        assert!(e.contains("unknown interface `rsp-no-such0`"), "{e}");
    }

    #[test]
    fn ipv6_state_is_read_from_the_sysctl_and_odd_names_are_not_paths() {
        // No sysctl file (IPv6 off in the kernel) must read as disabled.
        let lo_enabled = std::fs::read_to_string("/proc/sys/net/ipv6/conf/lo/disable_ipv6")
            .is_ok_and(|value| value.trim() == "0");
        assert_eq!(ipv6_enabled("lo"), lo_enabled);
        assert!(!ipv6_enabled("rsp-no-such0"));
        for odd in ["", ".", "..", "../all"] {
            assert!(!ipv6_enabled(odd), "{odd:?}");
        }
    }

    #[test]
    fn mac_is_colon_hex() {
        assert_eq!(
            format_mac(&[0x02, 0, 0xab, 0x10, 0xff, 1]),
            "02:00:ab:10:ff:01"
        );
    }
}
