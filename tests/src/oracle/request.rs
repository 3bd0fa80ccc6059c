//! What the oracle needs to know about a generated frame, read without the
//! reference model: its Ethernet addresses and, for ARP or a Neighbor
//! Discovery message, the fields the matching and the table of intended
//! differences look at.

use super::{
    be16, ALL_NODES6, ETHERTYPE_ARP, ETHERTYPE_IPV6, ICMPV6, ICMPV6_NA, ICMPV6_NS, IPV6_HLEN,
};

pub const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const DESTINATION_OPTIONS: u8 = 60;
const ARP_LEN: usize = 28;
const ND_BODY_LEN: usize = 24;
const OPTION_SOURCE_LINK_ADDR: u8 = 1;

pub struct Request<'a> {
    pub bytes: &'a [u8],
    pub eth_src: [u8; 6],
    pub body: Body,
}

pub enum Body {
    Arp(Arp),
    Nd(Nd),
    Other,
}

/// An ARP packet for IPv4 over Ethernet, untagged.
pub struct Arp {
    pub op: u16,
    pub sha: [u8; 6],
    /// Bytes after the ARP packet: Ethernet padding or any trailer.
    pub trailer_len: usize,
}

/// An ICMPv6 message with at least an ND body, untagged.
pub struct Nd {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub icmp_type: u8,
    pub target: [u8; 16],
    /// Extension headers before ICMPv6, in order, with their lengths.
    pub extension_headers: Vec<(u8, usize)>,
    /// The ICMPv6 message length the IPv6 payload length implies.
    pub message_len: usize,
    /// Options in the message (as far as their lengths can be followed).
    pub options: usize,
    /// The first Source Link-Layer Address option, if any.
    pub source_link_addr: Option<[u8; 6]>,
}

impl Nd {
    pub fn is_solicitation(&self) -> bool {
        self.icmp_type == ICMPV6_NS
    }

    pub fn is_advertisement(&self) -> bool {
        self.icmp_type == ICMPV6_NA
    }

    /// Duplicate Address Detection: a solicitation from `::`.
    pub fn is_dad(&self) -> bool {
        self.is_solicitation() && self.src == [0; 16]
    }

    pub fn to_multicast(&self) -> bool {
        self.dst[0] == 0xff
    }

    /// Sent where RFC 4861 §7.2.2 sends solicitations: the target's
    /// solicited-node group, the target itself (NUD), or all nodes.
    pub fn to_the_target(&self) -> bool {
        self.dst == self.target
            || self.dst == solicited_node(&self.target)
            || (!self.is_dad() && self.dst == ALL_NODES6)
    }
}

/// The solicited-node multicast group of `address` (RFC 4291 §2.7.1).
pub fn solicited_node(address: &[u8; 16]) -> [u8; 16] {
    let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&address[13..]);
    group
}

pub fn parse(bytes: &[u8]) -> Request<'_> {
    let mac = |at: usize| -> [u8; 6] {
        let mut mac = [0; 6];
        let end = bytes.len().min(at + 6);
        if at < end {
            mac[..end - at].copy_from_slice(&bytes[at..end]);
        }
        mac
    };
    let body = if bytes.len() < 14 {
        Body::Other
    } else {
        match be16(bytes, 12) {
            ETHERTYPE_ARP => arp(bytes).map_or(Body::Other, Body::Arp),
            ETHERTYPE_IPV6 => nd(bytes).map_or(Body::Other, Body::Nd),
            _ => Body::Other,
        }
    };
    Request {
        bytes,
        eth_src: mac(6),
        body,
    }
}

fn arp(bytes: &[u8]) -> Option<Arp> {
    let at = 14;
    let packet = bytes.get(at..at + ARP_LEN)?;
    Some(Arp {
        op: be16(packet, 6),
        sha: packet[8..14].try_into().ok()?,
        trailer_len: bytes.len() - at - ARP_LEN,
    })
}

fn nd(bytes: &[u8]) -> Option<Nd> {
    let ip = bytes.get(14..14 + IPV6_HLEN)?;
    let payload_len = be16(ip, 4) as usize;
    let mut next = ip[6];
    let mut at = 14 + IPV6_HLEN;
    let mut extension_headers = Vec::new();
    while matches!(next, HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS) {
        let header = bytes.get(at..at + 2)?;
        let len = (header[1] as usize + 1) * 8;
        extension_headers.push((next, len));
        next = header[0];
        at += len;
        if extension_headers.len() > 8 {
            return None;
        }
    }
    if next != ICMPV6 {
        return None;
    }
    let message = bytes.get(at..)?;
    if message.len() < ND_BODY_LEN {
        return None;
    }
    let message_len = (14 + IPV6_HLEN + payload_len).saturating_sub(at);
    let options_end = message_len.min(message.len());
    let (options, source_link_addr) = walk_options(message.get(ND_BODY_LEN..options_end)?);
    Some(Nd {
        src: ip[8..24].try_into().ok()?,
        dst: ip[24..40].try_into().ok()?,
        icmp_type: message[0],
        target: message[8..24].try_into().ok()?,
        extension_headers,
        message_len,
        options,
        source_link_addr,
    })
}

/// How many options there are and the first SLLAO, following the length
/// fields as far as they lead.
fn walk_options(options: &[u8]) -> (usize, Option<[u8; 6]>) {
    let (mut at, mut count, mut first) = (0, 0, None);
    while at + 2 <= options.len() && options[at + 1] != 0 {
        count += 1;
        let len = options[at + 1] as usize * 8;
        if options[at] == OPTION_SOURCE_LINK_ADDR && first.is_none() && at + 8 <= options.len() {
            first = options[at + 2..at + 8].try_into().ok();
        }
        at += len;
    }
    (count, first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use responder_model::frames::{
        link_addr_option, nonce_option, solicited_node_group, Ethernet, Vlan, BROADCAST_MAC,
        HOP_BY_HOP_PADDING, ND_OPT_SOURCE_LL_ADDR, OTHER_MAC, PEER4, PEER6, PEER_MAC, VIP4, VIP6,
    };

    #[test]
    fn reads_an_ns_behind_a_hop_by_hop_header() {
        let eth = Ethernet {
            dst: BROADCAST_MAC,
            src: PEER_MAC,
            vlan: Vlan::Untagged,
        };
        let mut ns = responder_model::frames::Nd::solicitation(
            PEER6,
            solicited_node_group(VIP6).0,
            VIP6,
            vec![
                nonce_option([1; 6]),
                link_addr_option(ND_OPT_SOURCE_LL_ADDR, OTHER_MAC),
            ],
        );
        ns.hop_by_hop = Some(HOP_BY_HOP_PADDING.to_vec());
        let frame = ns.frame(&eth);
        let request = parse(&frame);
        let Body::Nd(nd) = request.body else {
            panic!("not read as ND");
        };
        assert!(nd.is_solicitation() && !nd.is_dad() && nd.to_multicast());
        assert!(nd.to_the_target());
        assert_eq!(nd.extension_headers, vec![(HOP_BY_HOP, 8)]);
        assert_eq!(nd.message_len, 24 + 16);
        assert_eq!(nd.options, 2);
        assert_eq!(nd.source_link_addr, Some(OTHER_MAC));
        assert_eq!(request.eth_src, PEER_MAC);
    }

    #[test]
    fn reads_arp_and_its_trailer() {
        let eth = Ethernet {
            dst: BROADCAST_MAC,
            src: PEER_MAC,
            vlan: Vlan::Untagged,
        };
        let mut frame = responder_model::frames::Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth);
        frame.extend_from_slice(&[0; 18]);
        let Body::Arp(arp) = parse(&frame).body else {
            panic!("not read as ARP");
        };
        assert_eq!((arp.op, arp.sha), (1, PEER_MAC));
        assert_eq!(arp.trailer_len, 18);
        assert!(matches!(parse(&frame[..41]).body, Body::Other));
    }
}
