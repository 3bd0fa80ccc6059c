//! A reference model of the data plane in plain Rust, written from the rules
//! (RFC 826, RFC 4861 §7.1.1/§7.1.2 and the project's data-plane rules)
//! rather than from the eBPF code, so the fuzzer can hold the two against
//! each other. Where the rules leave a choice open, the model makes the one
//! the program documents; each such place says so.
//!
//! The agent-liveness gate is out of scope: the model is the program with no
//! heartbeat ever written (as BPF_PROG_TEST_RUN loads it), where every valid
//! request is answered and no VIP is ever yielded.

use std::collections::BTreeMap;

use responder_common::{VipKey, VipStats, VipValue};

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

const ETH_HLEN: usize = 14;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const MAX_TAGS: usize = 2;

const ARP_LEN: usize = 28;
const IPV6_HLEN: usize = 40;
const ND_BODY_LEN: usize = 24;
const NA_LEN: usize = ND_BODY_LEN + 8;
const NEXT_HEADER_ICMPV6: u8 = 58;
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
pub const MAX_ND_MESSAGE_LEN: usize = 1024;
/// Implementation choice of the program: it walks at most this many options.
pub const MAX_ND_OPTIONS: usize = 16;

/// Where the network header starts and the VLAN stack it came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer3 {
    pub offset: usize,
    pub ether_type: u16,
    /// VLAN ids by tag position, outermost first, 0 where there is no tag.
    /// A priority tag (VID 0) therefore keys like no tag at its position,
    /// as the program does.
    pub vlan_ids: [u16; MAX_TAGS],
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("slice of N bytes")
}

/// Ethernet plus up to two tags. Either TPID is accepted at either position
/// (the program's choice); a third tag or a cut-off tag is `None`.
pub fn layer3(frame: &[u8]) -> Option<Layer3> {
    if frame.len() < ETH_HLEN {
        return None;
    }
    let mut l3 = Layer3 {
        offset: ETH_HLEN,
        ether_type: be16(frame, 12),
        vlan_ids: [0; MAX_TAGS],
    };
    let mut tags = 0;
    while l3.ether_type == TPID_8021Q || l3.ether_type == TPID_8021AD {
        if tags == MAX_TAGS || frame.len() < l3.offset + 4 {
            return None;
        }
        l3.vlan_ids[tags] = be16(frame, l3.offset) & 0x0fff;
        l3.ether_type = be16(frame, l3.offset + 2);
        l3.offset += 4;
        tags += 1;
    }
    Some(l3)
}

/// The VIP's MAC if `key` is owned and the frame was sent to us at L2
/// (group address, or our unicast MAC).
fn answering_mac(vips: &VipTable, key: &VipKey, eth_dst: &[u8; 6]) -> Option<[u8; 6]> {
    let mac = vips.get(key)?.mac;
    (eth_dst[0] & 1 == 1 || *eth_dst == mac).then_some(mac)
}

/// What the data plane must do with `frame` arriving on `ingress_ifindex`.
pub fn respond(vips: &VipTable, ingress_ifindex: u32, frame: &[u8]) -> Expected {
    let Some(l3) = layer3(frame) else {
        return Expected::pass();
    };
    match l3.ether_type {
        ETHERTYPE_ARP => arp(vips, ingress_ifindex, frame, &l3),
        ETHERTYPE_IPV6 => neighbor_discovery(vips, ingress_ifindex, frame, &l3),
        _ => Expected::pass(),
    }
}

fn arp(vips: &VipTable, ifindex: u32, frame: &[u8], l3: &Layer3) -> Expected {
    let at = l3.offset;
    if frame.len() < at + ARP_LEN
        || be16(frame, at) != 1
        || be16(frame, at + 2) != 0x0800
        || frame[at + 4] != 6
        || frame[at + 5] != 4
    {
        return Expected::pass();
    }
    let op = be16(frame, at + 6);
    let sha: [u8; 6] = array(frame, at + 8);
    let spa: [u8; 4] = array(frame, at + 14);
    let tpa: [u8; 4] = array(frame, at + 24);
    let eth_dst: [u8; 6] = array(frame, 0);
    let [outer, inner] = l3.vlan_ids;
    match op {
        1 => {
            let key = VipKey::v4(ifindex, outer, inner, tpa);
            let Some(mac) = answering_mac(vips, &key, &eth_dst) else {
                return Expected::pass();
            };
            if spa == tpa {
                return if sha == mac {
                    Expected::pass()
                } else {
                    Expected::conflict(key)
                };
            }
            let mut reply = frame.to_vec();
            reply[0..6].copy_from_slice(&sha);
            reply[6..12].copy_from_slice(&mac);
            reply[at + 6..at + 8].copy_from_slice(&2u16.to_be_bytes());
            reply[at + 8..at + 14].copy_from_slice(&mac);
            reply[at + 14..at + 18].copy_from_slice(&tpa);
            reply[at + 18..at + 24].copy_from_slice(&sha);
            reply[at + 24..at + 28].copy_from_slice(&spa);
            Expected::reply(key, reply)
        }
        2 => {
            let key = VipKey::v4(ifindex, outer, inner, spa);
            match answering_mac(vips, &key, &eth_dst) {
                Some(mac) if mac != sha => Expected::conflict(key),
                _ => Expected::pass(),
            }
        }
        _ => Expected::pass(),
    }
}

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

/// The checksum field for `message`, whose own field must be zero.
pub fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], message: &[u8]) -> [u8; 2] {
    (!icmpv6_sum(src, dst, message)).to_be_bytes()
}

/// The options of an ND message break RFC 4861 §7.1.1 (or exceed the walk cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed Neighbor Discovery options")]
pub struct MalformedOptions;

/// The link-layer address carried by the options, if they are well formed
/// (RFC 4861 §7.1.1: every length > 0, and they fill the message exactly).
/// `Err` means the message is invalid. The first option of `kind` wins (the
/// program's choice, as Linux) and it must be one 8-byte unit (Ethernet).
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
        if options[at] == kind {
            if units != 1 {
                return Err(MalformedOptions);
            }
            found = found.or(Some(array(options, at + 2)));
        }
        at += units * 8;
    }
    Ok(found)
}

fn neighbor_discovery(vips: &VipTable, ifindex: u32, frame: &[u8], l3: &Layer3) -> Expected {
    let ip = l3.offset;
    if frame.len() < ip + IPV6_HLEN {
        return Expected::pass();
    }
    let payload_len = be16(frame, ip + 4) as usize;
    let icmp = ip + IPV6_HLEN;
    if frame[ip] >> 4 != 6
        || frame[ip + 6] != NEXT_HEADER_ICMPV6
        || frame[ip + 7] != 255
        || !(ND_BODY_LEN..=MAX_ND_MESSAGE_LEN).contains(&payload_len)
        || frame.len() < icmp + payload_len
    {
        return Expected::pass();
    }
    let message = &frame[icmp..icmp + payload_len];
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
    if solicitation {
        let solicited_node = {
            let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
            group[13..].copy_from_slice(&target[13..]);
            group
        };
        if src[0] == 0xff || (dad && (link_addr.is_some() || dst != solicited_node)) {
            return Expected::pass();
        }
    }
    let eth_dst: [u8; 6] = array(frame, 0);
    let eth_src: [u8; 6] = array(frame, 6);
    let [outer, inner] = l3.vlan_ids;
    let key = VipKey::v6(ifindex, outer, inner, target);
    let Some(mac) = answering_mac(vips, &key, &eth_dst) else {
        return Expected::pass();
    };
    if !solicitation {
        // The RFC's "S must be 0 for a multicast destination" is not enforced
        // (the program's choice): a conflicting claim is one either way.
        return if link_addr.unwrap_or(eth_src) == mac {
            Expected::pass()
        } else {
            Expected::conflict(key)
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
    let mut reply = Vec::with_capacity(icmp + NA_LEN);
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
