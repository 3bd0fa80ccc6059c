//! A reference model of the data plane in plain Rust, written from the rules
//! (RFC 826, RFC 4861 §7.1.1/§7.1.2 and the project's data-plane rules)
//! rather than from the eBPF code, so the fuzzer can hold the two against
//! each other. Where the rules leave a choice open, the model makes the one
//! the program documents; each such place says so.
//!
//! The agent-liveness gate is out of scope: the model is the program with no
//! heartbeat ever written (as BPF_PROG_TEST_RUN loads it), where every valid
//! request is answered and no VIP is ever yielded.
//!
//! Besides its VIPs the node has [`Nics`]: a claim on a VIP from any MAC of
//! the node is this node talking through another NIC, not a conflict; and a
//! frame received by a bond member is the bond's (in native XDP mode the
//! kernel runs the bond's program on each member).

mod arp;
mod ethernet;
mod hop_by_hop;
mod neighbor_discovery;

use std::collections::{BTreeMap, BTreeSet};

use responder_common::{VipKey, VipStats, VipValue};

pub use ethernet::{layer3, Layer3};
use ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6};
pub(crate) use neighbor_discovery::{
    icmpv6_checksum, solicited_node_multicast, MAX_ND_MESSAGE_LEN, MAX_ND_OPTIONS,
};
pub use neighbor_discovery::{link_layer_option, MalformedOptions};

/// What the program must do with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// XDP_PASS with the frame untouched.
    Pass,
    /// XDP_TX of exactly these bytes.
    Tx(Vec<u8>),
}

/// The verdict and the counters it must move (at most one VIP's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub verdict: Verdict,
    pub counted: Option<(VipKey, VipStats)>,
}

impl Expected {
    fn pass() -> Self {
        Expected {
            verdict: Verdict::Pass,
            counted: None,
        }
    }

    fn conflict(key: VipKey) -> Self {
        Expected {
            verdict: Verdict::Pass,
            counted: Some((
                key,
                VipStats {
                    conflicts: 1,
                    ..VipStats::default()
                },
            )),
        }
    }

    fn reply(key: VipKey, frame: Vec<u8>) -> Self {
        Expected {
            verdict: Verdict::Tx(frame),
            counted: Some((
                key,
                VipStats {
                    requests: 1,
                    replies: 1,
                    ..VipStats::default()
                },
            )),
        }
    }
}

pub type VipTable = BTreeMap<VipKey, VipValue>;

/// The node's interfaces as far as answering is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nics {
    /// Every MAC of the node's interfaces.
    pub own_macs: BTreeSet<[u8; 6]>,
    /// Bond member ifindex → bond ifindex.
    pub bond_of: BTreeMap<u32, u32>,
}

impl Nics {
    /// The interface VIPs are looked up on for a frame received on `ingress`.
    fn vip_ifindex(&self, ingress: u32) -> u32 {
        self.bond_of.get(&ingress).copied().unwrap_or(ingress)
    }

    /// A claim by `claimant` on a VIP answered with `vip_mac` comes from
    /// another host.
    fn foreign(&self, claimant: [u8; 6], vip_mac: [u8; 6]) -> bool {
        claimant != vip_mac && !self.own_macs.contains(&claimant)
    }
}

/// The VIP's MAC if `key` is owned and the frame was sent to us at L2
/// (group address, or our unicast MAC).
fn answering_mac(vips: &VipTable, key: &VipKey, eth_dst: &[u8; 6]) -> Option<[u8; 6]> {
    let mac = vips.get(key)?.mac;
    (eth_dst[0] & 1 == 1 || *eth_dst == mac).then_some(mac)
}

/// What the data plane must do with `frame` arriving on `ingress_ifindex`,
/// on a node with no other NIC on the segment and no bond.
pub fn respond(vips: &VipTable, ingress_ifindex: u32, frame: &[u8]) -> Expected {
    respond_with_nics(vips, &Nics::default(), ingress_ifindex, frame)
}

/// What the data plane must do with `frame` arriving on `ingress_ifindex`
/// of a node with these `nics`.
pub fn respond_with_nics(
    vips: &VipTable,
    nics: &Nics,
    ingress_ifindex: u32,
    frame: &[u8],
) -> Expected {
    let Some(l3) = layer3(frame) else {
        return Expected::pass();
    };
    match l3.ether_type {
        ETHERTYPE_ARP => arp::respond(vips, nics, ingress_ifindex, frame, &l3),
        ETHERTYPE_IPV6 => neighbor_discovery::respond(vips, nics, ingress_ifindex, frame, &l3),
        _ => Expected::pass(),
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("slice of N bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::*;

    fn table() -> VipTable {
        let ours = VipValue {
            mac: OUR_MAC,
            ..VipValue::default()
        };
        [
            (VipKey::v4(1, 0, 0, VIP4), ours),
            (VipKey::v6(1, 0, 0, VIP6), ours),
            (VipKey::v6(1, 100, 0, VIP6), ours),
        ]
        .into_iter()
        .collect()
    }

    fn untagged(dst: [u8; 6]) -> Ethernet {
        Ethernet {
            dst,
            src: PEER_MAC,
            vlan: Vlan::Untagged,
        }
    }

    #[test]
    fn arp_request_is_answered_with_padding_kept() {
        let mut request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&untagged(BROADCAST_MAC));
        request.extend_from_slice(&[0; 18]);
        let mut reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4)
            .frame(&untagged(BROADCAST_MAC).with_addrs(PEER_MAC, OUR_MAC));
        reply.extend_from_slice(&[0; 18]);
        let expected = respond(&table(), 1, &request);
        assert_eq!(expected.verdict, Verdict::Tx(reply), "ARP reply");
        assert_eq!(expected.counted.expect("counted").1.replies, 1);
    }

    #[test]
    fn ns_is_answered_like_frames_expects() {
        let eth = Ethernet {
            dst: solicited_node_group(VIP6).1,
            src: PEER_MAC,
            vlan: Vlan::Dot1Q(100),
        };
        let ns = Nd::solicitation(
            LINK_LOCAL6,
            solicited_node_group(VIP6).0,
            VIP6,
            vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, OTHER_MAC)],
        )
        .frame(&eth);
        let na = expected_na(&eth, OTHER_MAC, OUR_MAC, VIP6, LINK_LOCAL6, true);
        assert_eq!(respond(&table(), 1, &ns).verdict, Verdict::Tx(na), "NA");
    }

    #[test]
    fn third_tag_and_unicast_elsewhere_pass() {
        let mut eth = untagged(OTHER_MAC);
        let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth);
        assert_eq!(respond(&table(), 1, &request), Expected::pass());
        eth.dst = BROADCAST_MAC;
        let mut tagged = Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth);
        for _ in 0..3 {
            tagged.splice(12..12, [0x81, 0, 0, 0]);
        }
        assert_eq!(respond(&table(), 1, &tagged), Expected::pass());
    }

    const SECOND_NIC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];

    #[test]
    fn claims_from_any_mac_of_the_node_are_no_conflict() {
        let nics = Nics {
            own_macs: [OUR_MAC, SECOND_NIC_MAC].into(),
            ..Nics::default()
        };
        let eth = untagged(BROADCAST_MAC);
        for claimant in [SECOND_NIC_MAC, OTHER_MAC] {
            let gratuitous = Arp::gratuitous(claimant, VIP4).frame(&eth);
            let reply = Arp::reply(claimant, VIP4, BROADCAST_MAC, VIP4).frame(&eth);
            let tlla = link_addr_option(ND_OPT_TARGET_LL_ADDR, claimant);
            let na =
                Nd::advertisement(VIP6, ALL_NODES6, VIP6, NA_FLAG_OVERRIDE, vec![tlla]).frame(&eth);
            for frame in [gratuitous, reply, na] {
                let expected = respond_with_nics(&table(), &nics, 1, &frame);
                assert_eq!(expected.verdict, Verdict::Pass);
                assert_eq!(
                    expected.counted.is_some(),
                    claimant == OTHER_MAC,
                    "only a foreign claimant is a conflict"
                );
            }
        }
    }

    #[test]
    fn a_bond_members_frames_are_keyed_on_the_bond() {
        let bond = 7;
        let nics = Nics {
            bond_of: [(1, bond)].into(),
            ..Nics::default()
        };
        let mut vips = table();
        vips.insert(
            VipKey::v4(bond, 0, 0, OTHER4),
            VipValue {
                mac: OUR_MAC,
                ..VipValue::default()
            },
        );
        let eth = untagged(BROADCAST_MAC);
        let for_bond = Arp::request(PEER_MAC, PEER4, OTHER4).frame(&eth);
        let expected = respond_with_nics(&vips, &nics, 1, &for_bond);
        assert!(matches!(expected.verdict, Verdict::Tx(_)));
        assert_eq!(
            expected.counted.expect("counted").0,
            VipKey::v4(bond, 0, 0, OTHER4)
        );
        let for_member = Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth);
        assert_eq!(
            respond_with_nics(&vips, &nics, 1, &for_member),
            Expected::pass()
        );
    }
}
