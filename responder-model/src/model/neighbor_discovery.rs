//! Neighbor Solicitations and Advertisements (RFC 4861 §7.1.1/§7.1.2) and
//! the ICMPv6 checksum they carry.

use responder_common::VipKey;

use super::{answering_mac, array, be16, hop_by_hop, Expected, Layer3, Nics, VipTable};

const IPV6_HLEN: usize = 40;
const ND_BODY_LEN: usize = 24;
const NA_LEN: usize = ND_BODY_LEN + 8;
const NEXT_HEADER_ICMPV6: u8 = 58;
const NEXT_HEADER_HOP_BY_HOP: u8 = 0;
const LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const TYPE_NS: u8 = 135;
const TYPE_NA: u8 = 136;
const OPTION_SLLAO: u8 = 1;
const OPTION_TLLA: u8 = 2;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Implementation choice of the program: ICMPv6 messages longer than this
/// are not checksummed but passed (its checksum loop needs a bound).
pub(crate) const MAX_ND_MESSAGE_LEN: usize = 1024;
/// Implementation choice of the program: it walks at most this many options.
pub(crate) const MAX_ND_OPTIONS: usize = 16;

/// RFC 1071 over the IPv6 pseudo-header and `message`, summing big-endian
/// words, folded but not inverted.
fn icmpv6_sum(src: &[u8; 16], dst: &[u8; 16], message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u64::from(pair[0]) << 8 | u64::from(*pair.get(1).unwrap_or(&0));
        }
    };
    add(src);
    add(dst);
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The solicited-node multicast group of `target` (RFC 4291 §2.7.1).
pub(crate) fn solicited_node_multicast(target: &[u8; 16]) -> [u8; 16] {
    let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&target[13..]);
    group
}

/// The checksum field for `message`, whose own field must be zero.
pub(crate) fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], message: &[u8]) -> [u8; 2] {
    (!icmpv6_sum(src, dst, message)).to_be_bytes()
}

/// The options of an ND message break RFC 4861 §7.1.1 (or exceed the walk cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed Neighbor Discovery options")]
pub struct MalformedOptions;

/// The link-layer address carried by the options, if they are well formed
/// (RFC 4861 §7.1.1: every length > 0, and they fill the message exactly).
/// `Err` means the message is invalid. The first option of `kind` wins and
/// must be one 8-byte unit (Ethernet); later ones are ignored whatever their
/// length (the program's choice, as Linux).
pub fn link_layer_option(options: &[u8], kind: u8) -> Result<Option<[u8; 6]>, MalformedOptions> {
    let mut found = None;
    let mut at = 0;
    let mut count = 0;
    while at < options.len() {
        count += 1;
        if count > MAX_ND_OPTIONS || options.len() < at + 2 {
            return Err(MalformedOptions);
        }
        let units = options[at + 1] as usize;
        if units == 0 || options.len() < at + units * 8 {
            return Err(MalformedOptions);
        }
        if options[at] == kind && found.is_none() {
            if units != 1 {
                return Err(MalformedOptions);
            }
            found = Some(array(options, at + 2));
        }
        at += units * 8;
    }
    Ok(found)
}

pub(super) fn respond(
    vips: &VipTable,
    nics: &Nics,
    ingress: u32,
    frame: &[u8],
    l3: &Layer3,
) -> Expected {
    let ip = l3.offset;
    if frame.len() < ip + IPV6_HLEN {
        return Expected::pass();
    }
    // ND follows the IPv6 header directly or behind one acceptable
    // Hop-by-Hop header (RFC 4861 allows it and Linux answers through it);
    // other extension headers are the program's choice: passed.
    let extension_len = match frame[ip + 6] {
        NEXT_HEADER_ICMPV6 => 0,
        NEXT_HEADER_HOP_BY_HOP => match hop_by_hop::accept(frame, ip, NEXT_HEADER_ICMPV6) {
            Some(len) => len,
            None => return Expected::pass(),
        },
        _ => return Expected::pass(),
    };
    let icmp = ip + IPV6_HLEN + extension_len;
    let Some(message_len) = (be16(frame, ip + 4) as usize).checked_sub(extension_len) else {
        return Expected::pass();
    };
    if frame[ip] >> 4 != 6
        || frame[ip + 7] != 255
        || !(ND_BODY_LEN..=MAX_ND_MESSAGE_LEN).contains(&message_len)
        || frame.len() < icmp + message_len
    {
        return Expected::pass();
    }
    let message = &frame[icmp..icmp + message_len];
    let solicitation = match (message[0], message[1]) {
        (TYPE_NS, 0) => true,
        (TYPE_NA, 0) => false,
        _ => return Expected::pass(),
    };
    let src: [u8; 16] = array(frame, ip + 8);
    let dst: [u8; 16] = array(frame, ip + 24);
    let target: [u8; 16] = array(message, 8);
    if target[0] == 0xff || icmpv6_sum(&src, &dst, message) != 0xffff {
        return Expected::pass();
    }
    let wanted = if solicitation {
        OPTION_SLLAO
    } else {
        OPTION_TLLA
    };
    let Ok(link_addr) = link_layer_option(&message[ND_BODY_LEN..], wanted) else {
        return Expected::pass();
    };
    let dad = src == [0; 16];
    if solicitation && !acceptable_solicitation(&src, &dst, &target, link_addr.is_some()) {
        return Expected::pass();
    }
    let eth_dst: [u8; 6] = array(frame, 0);
    let eth_src: [u8; 6] = array(frame, 6);
    let [outer, inner] = l3.vlan_ids;
    let key = VipKey::v6(nics.vip_ifindex(ingress), outer, inner, target);
    let Some(mac) = answering_mac(vips, &key, &eth_dst) else {
        return Expected::pass();
    };
    // A solicitation from one of our own VIPs without a link-layer address
    // would be answered to our own address: Linux resolves it and never
    // sends (the program's choice, after the kernel oracle).
    let own_source = VipKey::v6(key.ifindex, outer, inner, src);
    if solicitation
        && !dad
        && link_addr.is_none()
        && answering_mac(vips, &own_source, &eth_dst).is_some()
    {
        return Expected::pass();
    }
    if !solicitation {
        // The RFC's "S must be 0 for a multicast destination" is not enforced
        // (the program's choice): a conflicting claim is one either way.
        return if nics.foreign(link_addr.unwrap_or(eth_src), mac) {
            Expected::conflict(key)
        } else {
            Expected::pass()
        };
    }
    let (reply_eth_dst, reply_ip_dst, flags) = if dad {
        (ALL_NODES_MAC, ALL_NODES, FLAG_OVERRIDE)
    } else {
        (
            link_addr.unwrap_or(eth_src),
            src,
            FLAG_SOLICITED | FLAG_OVERRIDE,
        )
    };
    let mut reply = Vec::with_capacity(ip + IPV6_HLEN + NA_LEN);
    reply.extend_from_slice(&reply_eth_dst);
    reply.extend_from_slice(&mac);
    reply.extend_from_slice(&frame[12..ip]);
    reply.extend_from_slice(&[0x60, 0, 0, 0]);
    reply.extend_from_slice(&(NA_LEN as u16).to_be_bytes());
    reply.extend_from_slice(&[NEXT_HEADER_ICMPV6, 255]);
    reply.extend_from_slice(&target);
    reply.extend_from_slice(&reply_ip_dst);
    let mut na = vec![TYPE_NA, 0, 0, 0, flags, 0, 0, 0];
    na.extend_from_slice(&target);
    na.extend_from_slice(&[OPTION_TLLA, 1]);
    na.extend_from_slice(&mac);
    let checksum = icmpv6_checksum(&target, &reply_ip_dst, &na);
    na[2..4].copy_from_slice(&checksum);
    reply.extend_from_slice(&na);
    Expected::reply(key, reply)
}

/// RFC 4861 §7.1.1 and where §7.2.2 sends solicitations, as Linux reads
/// them: the source is neither multicast nor loopback (Linux drops both
/// before ND); DAD (from `::`) carries no SLLAO and goes to the target's
/// solicited-node group; any other solicitation goes to the target's group,
/// the target itself or all nodes, and a multicast one carries an SLLAO
/// (§4.3: Linux has nowhere to send the answer otherwise).
fn acceptable_solicitation(
    src: &[u8; 16],
    dst: &[u8; 16],
    target: &[u8; 16],
    has_sllao: bool,
) -> bool {
    if src[0] == 0xff || *src == LOOPBACK {
        return false;
    }
    let group = solicited_node_multicast(target);
    if *src == [0; 16] {
        return !has_sllao && *dst == group;
    }
    let to_the_target = *dst == *target || *dst == group || *dst == ALL_NODES;
    to_the_target && (dst[0] != 0xff || has_sllao)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::nonce_option;

    #[test]
    fn options_beyond_the_walk_cap_are_invalid() {
        let nonce = nonce_option([1; 6]);
        let sixteen: Vec<u8> = nonce.repeat(MAX_ND_OPTIONS);
        assert_eq!(link_layer_option(&sixteen, OPTION_SLLAO), Ok(None));
        let seventeen: Vec<u8> = nonce.repeat(MAX_ND_OPTIONS + 1);
        assert_eq!(
            link_layer_option(&seventeen, OPTION_SLLAO),
            Err(MalformedOptions)
        );
        assert_eq!(
            link_layer_option(&[1, 0, 0, 0, 0, 0, 0, 0], 1),
            Err(MalformedOptions)
        );
    }
}
