//! Values for single fields: valid ones aimed at the VIP table, and the
//! wrong, odd or boundary ones mutations put in their place.

use super::{
    rng::Rng,
    table::{
        MAC_A, MAC_B, SCOPED_STACKS, V4_A, V4_B, V4_C, V4_DECOY, V4_PEER, V6_A, V6_B, V6_C,
        V6_DECOY, V6_LINK_LOCAL, V6_PEER, V6_SAME_GROUP,
    },
    Profile,
};
use crate::{
    frames::{ALL_NODES6, BROADCAST_MAC, OTHER_MAC, PEER_MAC},
    model::solicited_node_multicast,
};

const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V4_MAPPED6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1];
const INTERFACE_LOCAL_ALL_NODES6: [u8; 16] = [0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ALL_ROUTERS6: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

pub(super) fn any_mac(rng: &mut Rng) -> [u8; 6] {
    match rng.below(10) {
        0 => MAC_A,
        1 => MAC_B,
        2 => PEER_MAC,
        3 => OTHER_MAC,
        4 => BROADCAST_MAC,
        5 => [0; 6],
        6 => [0x33, 0x33, 0, 0, 0, 1],
        7 => [0x33, 0x33, 0xff, 0, 0, rng.pick(&[0x10, 0x11, 0x12])],
        8 => {
            let mut mac = rng.bytes::<6>();
            mac[0] |= 1;
            mac
        }
        _ => rng.bytes(),
    }
}

pub(super) fn claimant_mac(rng: &mut Rng) -> [u8; 6] {
    rng.pick(&[OTHER_MAC, PEER_MAC, MAC_A, MAC_B])
}

pub(super) fn vip4(rng: &mut Rng) -> [u8; 4] {
    rng.pick(&[V4_A, V4_A, V4_B, V4_C, V4_DECOY, [192, 0, 2, 99]])
}

pub(super) fn any4(rng: &mut Rng) -> [u8; 4] {
    match rng.below(7) {
        0 => [0; 4],
        1 => [255; 4],
        2 => V4_PEER,
        3 => rng.bytes(),
        // Loopback, multicast, "this network", class E: sources a host
        // refuses or accepts for reasons of its own.
        4 => rng.pick(&[
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [239, 255, 255, 250],
            [0, 1, 2, 3],
            [240, 0, 0, 1],
        ]),
        _ => vip4(rng),
    }
}

pub(super) fn vip6(rng: &mut Rng) -> [u8; 16] {
    rng.pick(&[
        V6_A,
        V6_A,
        V6_B,
        V6_C,
        V6_LINK_LOCAL,
        V6_DECOY,
        V6_SAME_GROUP,
    ])
}

pub(super) fn any6(rng: &mut Rng) -> [u8; 16] {
    match rng.below(9) {
        8 => rng.pick(&[
            LOOPBACK6,
            V4_MAPPED6,
            INTERFACE_LOCAL_ALL_NODES6,
            ALL_ROUTERS6,
        ]),
        0 => [0; 16],
        1 => ALL_NODES6,
        2 => solicited_node_multicast(&vip6(rng)),
        3 => V6_PEER,
        4 => {
            let mut multicast = rng.bytes::<16>();
            multicast[0] = 0xff;
            multicast
        }
        5 => rng.bytes(),
        _ => vip6(rng),
    }
}

pub(super) fn interesting_u8(rng: &mut Rng) -> u8 {
    match rng.below(4) {
        0 => 0,
        1 => 255,
        2 => rng.pick(&[1, 2, 6, 4, 58, 128, 135, 136]),
        _ => rng.bytes::<1>()[0],
    }
}

pub(super) fn interesting_u16(rng: &mut Rng) -> u16 {
    match rng.below(4) {
        0 => 0,
        1 => 0xffff,
        2 => rng.pick(&[1, 2, 3, 0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8]),
        _ => rng.below(0x1_0000) as u16,
    }
}

pub(super) fn multicast_mac(group: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// 0–3 tags: usually a stack some VIP is scoped to, with the usual TPIDs;
/// sometimes swapped TPIDs, random ids, priority bits, or a third tag.
pub(super) fn vlan_tags(rng: &mut Rng, profile: &Profile) -> Vec<(u16, u16)> {
    if !profile.vlan_tags {
        return Vec::new();
    }
    let ids: Vec<u16> = match rng.below(20) {
        0..8 => vec![],
        8..16 => {
            let (outer, inner) = rng.pick(&SCOPED_STACKS);
            match (outer, inner, rng.below(4)) {
                (0, 0, 0) => vec![0],
                (0, 0, _) => vec![],
                (_, 0, _) => vec![outer],
                _ => vec![outer, inner],
            }
        }
        16..18 => (0..rng.between(1, 2))
            .map(|_| rng.below(0x1000) as u16)
            .collect(),
        _ => (0..3).map(|_| rng.pick(&[0, 100, 200, 300])).collect(),
    };
    let count = ids.len();
    ids.into_iter()
        .enumerate()
        .map(|(position, id)| {
            let tpid = if rng.chance(25) {
                rng.pick(&[0x8100, 0x88a8])
            } else if position + 1 < count {
                0x88a8
            } else {
                0x8100
            };
            let priority = if rng.chance(30) {
                (rng.below(16) as u16) << 12
            } else {
                0
            };
            (tpid, priority | id)
        })
        .collect()
}

pub(super) fn ethernet(
    dst: [u8; 6],
    src: [u8; 6],
    tags: &[(u16, u16)],
    ether_type: u16,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1600);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    for (tpid, tci) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&tci.to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame
}
