//! Link-layer multicast memberships for IPv6 VIPs. A Neighbor Solicitation for
//! a VIP goes to its solicited-node group (`ff02::1:ffXX:XXXX`, MAC
//! `33:33:ff:XX:XX:XX`), and a NIC drops multicast for groups nobody joined
//! before XDP ever sees it. The agent adds each IPv6 VIP's group to the
//! device's address list the way `ip maddr add` does (SIOCADDMULTI), not as a
//! socket membership: the pinned program outlives the agent, and so must the
//! membership. The kernel keeps one such "static" use per group and device,
//! so the agent counts VIPs per group itself.

use std::{
    collections::BTreeSet,
    io,
    net::{IpAddr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use responder_common::VipKey;

/// A group on a device: (ifindex, multicast MAC).
pub(crate) type Group = (u32, [u8; 6]);

/// The MAC of `addr`'s solicited-node multicast group (RFC 4291 §2.7.1,
/// RFC 2464 §7): its low 24 bits behind `33:33:ff`.
pub(crate) fn solicited_node_mac(addr: Ipv6Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x33, 0x33, 0xff, o[13], o[14], o[15]]
}

/// Joins and leaves groups on devices; a trait so the bookkeeping is testable
/// without a kernel.
pub(crate) trait Memberships {
    fn join(&mut self, group: Group) -> io::Result<()>;
    fn leave(&mut self, group: Group) -> io::Result<()>;
}

/// The groups joined for the VIPs installed now, so that two VIPs sharing
/// their low 24 bits share one membership, and it is left only with the last.
#[derive(Debug, Default)]
pub(crate) struct GroupTable {
    joined: BTreeSet<Group>,
    /// Groups a previous agent joined for its VIPs: left unless still wanted.
    /// Those still wanted are joined again, which the kernel takes as a
    /// no-op, so a predecessor that died before joining leaves no gap.
    adopted: BTreeSet<Group>,
}

impl GroupTable {
    pub(crate) fn adopt(groups: impl IntoIterator<Item = Group>) -> Self {
        GroupTable {
            joined: BTreeSet::new(),
            adopted: groups.into_iter().collect(),
        }
    }

    /// Joins the groups of `wanted` not joined yet and leaves those no
    /// longer wanted. A failure is logged and retried at the next call.
    pub(crate) fn reconcile(
        &mut self,
        wanted: &BTreeSet<Group>,
        memberships: &mut impl Memberships,
    ) {
        let adopted = std::mem::take(&mut self.adopted);
        self.joined.extend(adopted.difference(wanted));
        for group in wanted.difference(&self.joined.clone()) {
            match memberships.join(*group) {
                Ok(()) => {
                    self.joined.insert(*group);
                }
                Err(e) => tracing::warn!(
                    ifindex = group.0,
                    group = %super::format_mac(&group.1),
                    "joining the solicited-node group of an IPv6 VIP: {e}; a NIC filtering multicast will drop its solicitations"
                ),
            }
        }
        for group in self.joined.clone().difference(wanted) {
            match memberships.leave(*group) {
                // Gone with its device: nothing left to leave.
                Err(e) if e.raw_os_error() != Some(libc::ENODEV) => tracing::warn!(
                    ifindex = group.0,
                    group = %super::format_mac(&group.1),
                    "leaving the solicited-node group of a withdrawn IPv6 VIP: {e}"
                ),
                _ => {
                    self.joined.remove(group);
                }
            }
        }
    }

    /// Leaves every group (the agent detaches for good).
    pub(crate) fn clear(&mut self, memberships: &mut impl Memberships) {
        self.reconcile(&BTreeSet::new(), memberships);
    }

    #[cfg(test)]
    pub(crate) fn joined(&self) -> &BTreeSet<Group> {
        &self.joined
    }
}

/// The groups the IPv6 VIP keys among `keys` need.
pub(crate) fn groups_of<'a>(keys: impl IntoIterator<Item = &'a VipKey>) -> BTreeSet<Group> {
    keys.into_iter()
        .filter_map(|key| match key.ip() {
            IpAddr::V6(addr) => Some((key.ifindex, solicited_node_mac(addr))),
            IpAddr::V4(_) => None,
        })
        .collect()
}

/// The device address lists, changed with SIOCADDMULTI / SIOCDELMULTI on
/// any socket (what `ip maddr add/del` does; no crate wraps these ioctls).
pub(crate) struct DeviceMulticast {
    socket: OwnedFd,
}

impl DeviceMulticast {
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        Ok(DeviceMulticast {
            socket: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    fn request(&self, request: libc::c_ulong, (ifindex, mac): Group) -> io::Result<()> {
        let name = nix::net::if_::if_indextoname(ifindex).map_err(io::Error::from)?;
        let name = name.as_bytes_with_nul();
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifreq: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() > ifreq.ifr_name.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        for (slot, byte) in ifreq.ifr_name.iter_mut().zip(name) {
            *slot = *byte as libc::c_char;
        }
        // SAFETY: the union's hardware-address member is the one these
        // requests read; sa_data holds the MAC.
        unsafe {
            ifreq.ifr_ifru.ifru_hwaddr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
            for (slot, byte) in ifreq.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(mac) {
                *slot = byte as libc::c_char;
            }
        }
        // SAFETY: a valid socket, request number and ifreq of the size the
        // kernel expects for it.
        let rc = unsafe {
            libc::ioctl(
                self.socket.as_raw_fd(),
                request as _,
                &mut ifreq as *mut libc::ifreq,
            )
        };
        match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

impl Memberships for DeviceMulticast {
    fn join(&mut self, group: Group) -> io::Result<()> {
        self.request(libc::SIOCADDMULTI, group)
    }

    fn leave(&mut self, group: Group) -> io::Result<()> {
        self.request(libc::SIOCDELMULTI, group)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Memberships as a set, with failures on demand.
    #[derive(Default)]
    pub(crate) struct FakeMemberships {
        pub(crate) joined: BTreeSet<Group>,
        pub(crate) fail: bool,
    }

    impl Memberships for FakeMemberships {
        fn join(&mut self, group: Group) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.joined.insert(group);
            Ok(())
        }

        fn leave(&mut self, group: Group) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.joined.remove(&group);
            Ok(())
        }
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("IPv6 address")
    }

    #[test]
    fn the_group_is_the_low_24_bits_behind_33_33_ff() {
        assert_eq!(
            solicited_node_mac(v6("2001:db8::12:3456")),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
    }

    #[test]
    fn vips_sharing_their_low_bits_share_one_membership_until_the_last_goes() {
        let mut table = GroupTable::default();
        let mut kernel = FakeMemberships::default();
        let a = v6("2001:db8:1::ab:cdef");
        let b = v6("2001:db8:2::ab:cdef");
        let c = v6("2001:db8::10");
        let wanted = |vips: &[Ipv6Addr]| -> BTreeSet<Group> {
            let keys: Vec<VipKey> = vips
                .iter()
                .map(|v| VipKey::v6(2, 0, 0, v.octets()))
                .collect();
            groups_of(&keys)
        };
        table.reconcile(&wanted(&[a, b, c]), &mut kernel);
        assert_eq!(kernel.joined.len(), 2, "a and b share a group");
        table.reconcile(&wanted(&[b, c]), &mut kernel);
        assert!(
            kernel.joined.contains(&(2, solicited_node_mac(a))),
            "b still needs the group a had"
        );
        table.reconcile(&wanted(&[c]), &mut kernel);
        assert_eq!(kernel.joined, BTreeSet::from([(2, solicited_node_mac(c))]));
        table.clear(&mut kernel);
        assert!(kernel.joined.is_empty());
        assert!(table.joined().is_empty());
    }

    #[test]
    fn failures_are_retried_and_adopted_groups_left_when_unwanted() {
        let old = (3, solicited_node_mac(v6("2001:db8::99")));
        let kept = (3, solicited_node_mac(v6("2001:db8::11")));
        let mut table = GroupTable::adopt([old, kept]);
        let mut kernel = FakeMemberships {
            joined: BTreeSet::from([old]),
            fail: true,
        };
        let new = (3, solicited_node_mac(v6("2001:db8::10")));
        table.reconcile(&BTreeSet::from([new, kept]), &mut kernel);
        assert_eq!(table.joined(), &BTreeSet::from([old]), "nothing changed");
        kernel.fail = false;
        table.reconcile(&BTreeSet::from([new, kept]), &mut kernel);
        assert_eq!(
            kernel.joined,
            BTreeSet::from([new, kept]),
            "the adopted group still wanted is joined again, the other left"
        );
        assert_eq!(table.joined(), &BTreeSet::from([new, kept]));
    }
}
