//! The node's interfaces as the data plane's `OWN_MACS` and `BOND_OF` maps
//! describe them, computed from the links rtnetlink lists.

use std::collections::{BTreeMap, BTreeSet};

use crate::netif::LinkInfo;

/// Link kinds (IFLA_INFO_KIND) whose ports receive frames for them: in
/// native XDP mode the kernel runs a bond's program on each member, with
/// the member's ifindex as the ingress.
pub const AGGREGATE_KINDS: [&str; 2] = ["bond", "team"];

/// What the data plane must know of the node's links beyond the attached
/// ones: every MAC of the node, and which links are members of a bond.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    pub own_macs: BTreeSet<[u8; 6]>,
    pub bond_members: BTreeMap<u32, u32>,
}

impl Topology {
    /// From every link of the network namespace (not only the accepted ones:
    /// a second NIC on the segment, or a bond's members, are never attached).
    pub fn of(links: &[LinkInfo]) -> Self {
        Topology {
            own_macs: own_macs(links),
            bond_members: bond_members(links),
        }
    }
}

/// Member ifindex → bond (or team) ifindex, for every link whose master is
/// a bond or a team. Bridge and VRF ports are left out: a bridge's XDP
/// program does not run on its ports, and VRF ports are interfaces of
/// their own. A master missing from `links` (listed in between) is skipped;
/// the next listing has it.
pub fn bond_members(links: &[LinkInfo]) -> BTreeMap<u32, u32> {
    let aggregates: BTreeSet<u32> = links
        .iter()
        .filter(|link| {
            link.kind
                .as_deref()
                .is_some_and(|kind| AGGREGATE_KINDS.contains(&kind))
        })
        .map(|link| link.ifindex)
        .collect();
    links
        .iter()
        .filter_map(|link| {
            let master = link.master?;
            aggregates
                .contains(&master)
                .then_some((link.ifindex, master))
        })
        .collect()
}

/// Every MAC this node's interfaces carry (loopback and links without an
/// Ethernet address left out). An announcement from any of them is this
/// node talking, through another NIC on the same segment, not a second
/// owner. Bond members usually share the bond's MAC; where they do not
/// (`fail_over_mac`), their own MACs are listed too.
pub fn own_macs(links: &[LinkInfo]) -> BTreeSet<[u8; 6]> {
    links
        .iter()
        .filter(|link| !link.loopback && link.mac != [0; 6])
        .map(|link| link.mac)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, name: &str, kind: Option<&str>, master: Option<u32>) -> LinkInfo {
        LinkInfo {
            name: name.to_owned(),
            ifindex,
            mac: [2, 0, 0, 0, 0, ifindex as u8],
            admin_up: true,
            carrier: true,
            loopback: false,
            noarp: false,
            master,
            kind: kind.map(str::to_owned),
            addresses: Vec::new(),
            carries_default_route: false,
        }
    }

    #[test]
    fn members_of_bonds_and_teams_map_to_their_master() {
        let links = [
            link(2, "eth0", None, Some(10)),
            link(3, "eth1", None, Some(10)),
            link(4, "eth2", None, Some(11)),
            link(10, "bond0", Some("bond"), None),
            link(11, "team0", Some("team"), None),
        ];
        assert_eq!(
            bond_members(&links),
            BTreeMap::from([(2, 10), (3, 10), (4, 11)])
        );
    }

    #[test]
    fn bridge_and_vrf_ports_and_unlisted_masters_are_not_bond_members() {
        let links = [
            link(2, "eth0", None, Some(20)),
            link(3, "vethab", Some("veth"), Some(20)),
            link(4, "eth1", None, Some(21)),
            link(5, "eth2", None, Some(99)),
            link(20, "br0", Some("bridge"), None),
            link(21, "vrf-blue", Some("vrf"), None),
            // A bond that is itself a bridge port: its members still map to it.
            link(30, "bond1", Some("bond"), Some(20)),
            link(6, "eth3", None, Some(30)),
        ];
        assert_eq!(bond_members(&links), BTreeMap::from([(6, 30)]));
    }

    #[test]
    fn own_macs_are_every_ethernet_address_but_loopback() {
        let mut lo = link(1, "lo", None, None);
        lo.loopback = true;
        lo.mac = [0; 6];
        let mut tunnel = link(7, "wg0", Some("wireguard"), None);
        tunnel.mac = [0; 6];
        let mut member = link(2, "eth0", None, Some(10));
        let bond = link(10, "bond0", Some("bond"), None);
        // Members of an active-backup bond usually share its MAC.
        member.mac = bond.mac;
        let spare = link(3, "eth1", None, None);
        let macs = own_macs(&[lo, tunnel, member, bond.clone(), spare.clone()]);
        assert_eq!(macs, BTreeSet::from([bond.mac, spare.mac]));
    }
}
