//! Neighbor Solicitations (multicast, unicast, DAD) and Advertisements,
//! field by field, with option lists and the checksum they claim.

use super::{
    extension_headers::{self, Chain},
    fields::{
        any6, any_mac, claimant_mac, ethernet, interesting_u16, interesting_u8, multicast_mac,
        vip6, vlan_tags,
    },
    rng::Rng,
    table::{MAC_A, MAC_B},
    Class, Mutations, Profile,
};
use crate::{
    frames::{link_addr_option, ALL_NODES6, OTHER_MAC},
    model::{icmpv6_checksum, solicited_node_multicast, MAX_ND_MESSAGE_LEN, MAX_ND_OPTIONS},
};

fn nonce_option(rng: &mut Rng) -> Vec<u8> {
    let mut option = vec![14, 1];
    option.extend_from_slice(&rng.bytes::<6>());
    option
}

/// Option lists that are wrong, odd, or at the program's limits.
fn random_options(rng: &mut Rng) -> Vec<u8> {
    let mut options = Vec::new();
    match rng.below(7) {
        0 | 1 => {
            for _ in 0..rng.below(5) {
                let kind = rng.pick(&[1, 1, 2, 2, 3, 5, 14, 0, 255]);
                let units = rng.pick(&[1, 1, 1, 0, 2, 3, 255]);
                options.extend_from_slice(&[kind, units]);
                let body = (units as usize * 8).clamp(8, 64) - 2;
                let at = options.len();
                options.extend_from_slice(&rng.vec(body));
                if units == 1 && rng.chance(50) {
                    options[at..at + 6].copy_from_slice(&claimant_mac(rng));
                }
            }
        }
        2 => {
            for _ in 0..rng.between(MAX_ND_OPTIONS - 2, MAX_ND_OPTIONS + 2) {
                options.extend_from_slice(&nonce_option(rng));
            }
            if rng.chance(50) {
                let at = rng.below(options.len() as u64 / 8) as usize * 8;
                options[at] = rng.pick(&[1, 2]);
                options[at + 2..at + 8].copy_from_slice(&claimant_mac(rng));
            }
        }
        3 => {
            // Around the checksum cap: 24 + 8 * units bytes of message.
            let cap_units = (MAX_ND_MESSAGE_LEN - 24) / 8;
            let units = rng.between(cap_units - 2, cap_units + 2);
            options.extend_from_slice(&[rng.pick(&[3, 14, 200]), units as u8]);
            options.extend_from_slice(&rng.vec(units * 8 - 2));
        }
        4 => {
            let kind = rng.pick(&[1, 2]);
            options.extend(link_addr_option(kind, claimant_mac(rng)));
            options.extend(link_addr_option(kind, claimant_mac(rng)));
        }
        5 => {
            options.extend(link_addr_option(rng.pick(&[1, 2]), claimant_mac(rng)));
            let len = rng.between(1, 7);
            options.extend_from_slice(&rng.vec(len));
        }
        _ => {
            options.extend_from_slice(&[rng.pick(&[1, 2, 14]), rng.pick(&[2, 3, 4])]);
            options.extend_from_slice(&rng.vec(6));
        }
    }
    options
}

pub(super) fn neighbor_discovery(
    rng: &mut Rng,
    m: &mut Mutations,
    class: Class,
    profile: &Profile,
) -> Vec<u8> {
    let peer = profile.requester;
    let target = vip6(rng);
    let group = solicited_node_multicast(&target);
    let sender = rng.pick(&[peer.v6, peer.v6_link_local]);
    let sender_mac = peer.mac;
    let nonce = nonce_option(rng);
    let (src, dst, eth_dst, options, flags) = match class {
        Class::NsMulticast => {
            let mut options = link_addr_option(1, sender_mac);
            if rng.chance(20) {
                options.extend(&nonce);
            }
            (sender, group, multicast_mac(&group), options, 0)
        }
        Class::NsUnicast => {
            let options = if rng.chance(70) {
                link_addr_option(1, rng.pick(&[sender_mac, OTHER_MAC]))
            } else {
                Vec::new()
            };
            (sender, target, rng.pick(&[MAC_A, MAC_B]), options, 0)
        }
        Class::NsDad => {
            let options = if rng.chance(50) { nonce } else { Vec::new() };
            ([0; 16], group, multicast_mac(&group), options, 0)
        }
        _ => {
            let options = if rng.chance(70) {
                link_addr_option(2, claimant_mac(rng))
            } else {
                Vec::new()
            };
            let dst = rng.pick(&[ALL_NODES6, peer.v6]);
            let eth_dst = if dst == ALL_NODES6 {
                multicast_mac(&dst)
            } else {
                rng.pick(&[MAC_A, MAC_B, peer.mac])
            };
            let flags = rng.pick(&[0x20, 0x60, 0xa0, 0xe0, 0x00]);
            (target, dst, eth_dst, options, flags)
        }
    };
    let eth_dst = m.field(rng, eth_dst, any_mac);
    let eth_src = if class == Class::Na {
        claimant_mac(rng)
    } else {
        sender_mac
    };
    let eth_src = m.field(rng, eth_src, any_mac);
    let tags = vlan_tags(rng, profile);
    let ether_type = m.field(rng, 0x86dd, interesting_u16);
    let src = m.field(rng, src, any6);
    let dst = m.field(rng, dst, any6);
    let target = m.field(rng, target, any6);
    let options = m.field(rng, options, random_options);
    let icmp_type = if matches!(class, Class::Na) { 136 } else { 135 };
    let mut message = vec![
        m.field(rng, icmp_type, interesting_u8),
        m.field(rng, 0, interesting_u8),
        0,
        0,
    ];
    message.extend_from_slice(&m.field(rng, [flags, 0, 0, 0], |rng| rng.bytes()));
    message.extend_from_slice(&target);
    message.extend_from_slice(&options);
    let extensions = if rng.chance(8) {
        extension_headers::chain(rng)
    } else {
        Chain {
            first: 58,
            bytes: Vec::new(),
        }
    };
    let payload = extensions.bytes.len() + message.len();
    let payload_len = m.field(rng, payload, |rng| match rng.below(3) {
        0 => rng.below(0x1_0000) as usize,
        _ => payload.saturating_add_signed(rng.between(0, 32) as isize - 16),
    });
    // The checksum covers what payload_len claims, so a message cut short
    // by its own length field can still verify.
    let covered = payload_len
        .saturating_sub(extensions.bytes.len())
        .clamp(4, message.len());
    let checksum = icmpv6_checksum(&src, &dst, &message[..covered]);
    let checksum = m.field(rng, checksum, |rng| match rng.below(3) {
        0 => [0, 0],
        1 => [checksum[0], checksum[1] ^ 1],
        _ => rng.bytes(),
    });
    message[2..4].copy_from_slice(&checksum);

    let mut frame = ethernet(eth_dst, eth_src, &tags, ether_type);
    frame.extend_from_slice(&m.field(rng, [0x60, 0, 0, 0], |rng| {
        let mut first = rng.bytes::<4>();
        if rng.chance(50) {
            first[0] = 0x60 | (first[0] & 0x0f);
        }
        first
    }));
    frame.extend_from_slice(&(payload_len as u16).to_be_bytes());
    frame.push(m.field(rng, extensions.first, interesting_u8));
    frame.push(m.field(rng, 255, interesting_u8));
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&extensions.bytes);
    frame.extend_from_slice(&message);
    frame
}
