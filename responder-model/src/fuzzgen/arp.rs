//! ARP requests, probes, gratuitous ARP and replies, field by field.

use super::{
    fields::{
        any4, any_mac, claimant_mac, ethernet, interesting_u16, interesting_u8, vip4, vlan_tags,
    },
    rng::Rng,
    table::{MAC_A, MAC_B},
    Class, Mutations, Profile,
};
use crate::frames::{BROADCAST_MAC, OTHER_MAC};

pub(super) fn arp(rng: &mut Rng, m: &mut Mutations, class: Class, profile: &Profile) -> Vec<u8> {
    let vip = vip4(rng);
    let peer = profile.requester;
    let (oper, sha, spa, tpa, eth_dst) = match class {
        Class::ArpRequest => (1, peer.mac, peer.v4, vip, BROADCAST_MAC),
        Class::ArpProbe => (1, peer.mac, [0; 4], vip, BROADCAST_MAC),
        Class::ArpGratuitous => (1, claimant_mac(rng), vip, vip, BROADCAST_MAC),
        _ => (
            2,
            claimant_mac(rng),
            vip,
            peer.v4,
            rng.pick(&[BROADCAST_MAC, MAC_A, MAC_B, peer.mac]),
        ),
    };
    let eth_dst = if rng.chance(15) {
        rng.pick(&[MAC_A, MAC_B, OTHER_MAC])
    } else {
        eth_dst
    };
    let eth_dst = m.field(rng, eth_dst, any_mac);
    let eth_src = m.field(rng, sha, any_mac);
    let tags = vlan_tags(rng, profile);
    let ether_type = m.field(rng, 0x0806, interesting_u16);
    let mut frame = ethernet(eth_dst, eth_src, &tags, ether_type);
    // 6 is IEEE 802 (RFC 1042), which Ethernet hosts may accept as well.
    let htype = m.field(rng, 1u16, |rng| {
        if rng.chance(30) {
            6
        } else {
            interesting_u16(rng)
        }
    });
    frame.extend_from_slice(&htype.to_be_bytes());
    frame.extend_from_slice(&m.field(rng, 0x0800u16, interesting_u16).to_be_bytes());
    frame.push(m.field(rng, 6, interesting_u8));
    frame.push(m.field(rng, 4, interesting_u8));
    frame.extend_from_slice(&m.field(rng, oper, interesting_u16).to_be_bytes());
    frame.extend_from_slice(&m.field(rng, sha, any_mac));
    frame.extend_from_slice(&m.field(rng, spa, any4));
    let tha = if oper == 2 { peer.mac } else { [0; 6] };
    frame.extend_from_slice(&m.field(rng, tha, any_mac));
    frame.extend_from_slice(&m.field(rng, tpa, any4));
    frame
}
