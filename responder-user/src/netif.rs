//! What the agent needs to know about a network interface, read once at
//! startup with getifaddrs(3).

use std::{ffi::CString, net::IpAddr};

use nix::net::if_::InterfaceFlags;

use crate::error::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub up: bool,
    /// The interface's own IPv4/IPv6 addresses, which must never be VIPs.
    pub addrs: Vec<IpAddr>,
    /// The kernel handles IPv6 on it (not `disable_ipv6`, nor booted with
    /// `ipv6.disable=1`): answering NS for a VIP where it does not would draw
    /// traffic the node drops.
    pub ipv6: bool,
}

/// Looks up an interface by name in the current network namespace.
pub fn lookup(name: &str) -> Result<Interface, Error> {
    let mut found = None;
    let mut addrs = Vec::new();
    let mut is_loopback = false;
    for entry in nix::ifaddrs::getifaddrs().map_err(Error::ListInterfaces)? {
        if entry.interface_name != name {
            continue;
        }
        is_loopback |= entry.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let Some(address) = entry.address else {
            continue;
        };
        if let Some(link) = address.as_link_addr() {
            found = Some((link.ifindex() as u32, link.addr(), entry.flags));
        } else if let Some(v4) = address.as_sockaddr_in() {
            addrs.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            addrs.push(IpAddr::V6(v6.ip()));
        }
    }
    let (ifindex, mac, flags) = found.ok_or_else(|| Error::UnknownInterface(name.to_owned()))?;
    let mac = mac
        .filter(|_| !is_loopback)
        .ok_or_else(|| Error::NotEthernet(name.to_owned()))?;
    Ok(Interface {
        name: name.to_owned(),
        ifindex,
        mac,
        up: flags.contains(InterfaceFlags::IFF_UP),
        addrs,
        ipv6: ipv6_enabled(name),
    })
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

/// The name of interface `ifindex` in the current network namespace.
pub fn name_of(ifindex: u32) -> Option<String> {
    nix::net::if_::if_indextoname(ifindex)
        .ok()
        .map(CString::into_string)
        .and_then(Result::ok)
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

    #[test]
    fn loopback_is_not_ethernet() {
        let e = lookup("lo").expect_err("lo has no MAC").to_string();
        assert!(e.contains("not an Ethernet interface"), "{e}");
    }

    #[test]
    fn unknown_interface_is_named() {
        let e = lookup("rsp-no-such0")
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
