//! Test frames built byte by byte, independently of the XDP program, and the
//! exact replies it must answer them with. Only `responder_common`'s
//! checksum and solicited-node helpers are shared with the data plane.

use responder_common::{
    csum,
    wire::{ipv6_multicast_mac, solicited_node, ICMPV6_NA, ICMPV6_NS, IPPROTO_ICMPV6},
};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86DD;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88A8;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
const IPPROTO_HOPOPTS: u8 = 0;

const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

pub const ND_OPT_SOURCE_LL_ADDR: u8 = 1;
pub const ND_OPT_TARGET_LL_ADDR: u8 = 2;
pub const ND_OPT_NONCE: u8 = 14;
const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

/// The responder's interface (the MAC stored with the VIPs).
pub const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xaa];
/// The host asking.
pub const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// A third host, e.g. one claiming our VIP.
pub const OTHER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const ZERO_MAC: [u8; 6] = [0; 6];

pub const VIP4: [u8; 4] = [192, 0, 2, 10];
pub const PEER4: [u8; 4] = [192, 0, 2, 1];
pub const OTHER4: [u8; 4] = [192, 0, 2, 11];
pub const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
pub const PEER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
pub const OTHER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11,
];
pub const LINK_LOCAL6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
pub const UNSPECIFIED6: [u8; 16] = [0; 16];
pub const ALL_NODES6: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// The VLAN tags of a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Vlan {
    #[default]
    Untagged,
    /// One 802.1Q tag.
    Dot1Q(u16),
    /// An 802.1ad S-tag (TPID 0x88a8) outside an 802.1Q C-tag.
    QinQ { outer: u16, inner: u16 },
}

impl Vlan {
    /// `(vlan_outer, vlan_inner)` as a `VipKey` spells this stack.
    pub fn key_ids(self) -> (u16, u16) {
        match self {
            Vlan::Untagged => (0, 0),
            Vlan::Dot1Q(id) => (id, 0),
            Vlan::QinQ { outer, inner } => (outer, inner),
        }
    }

    /// `(TPID, VLAN id)` per tag, outermost first.
    pub fn tags(self) -> Vec<(u16, u16)> {
        match self {
            Vlan::Untagged => vec![],
            Vlan::Dot1Q(id) => vec![(TPID_8021Q, id)],
            Vlan::QinQ { outer, inner } => vec![(TPID_8021AD, outer), (TPID_8021Q, inner)],
        }
    }
}

/// Ethernet addressing of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ethernet {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub vlan: Vlan,
}

impl Ethernet {
    /// Bytes before the network header.
    pub fn header_len(&self) -> usize {
        14 + 4 * self.vlan.tags().len()
    }

    /// A frame carrying `payload` as `ether_type`. Tags carry priority 0
    /// except that PCP bits are set on the outer tag, which the VLAN id must
    /// not pick up.
    pub fn frame(&self, ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(self.header_len() + payload.len());
        frame.extend_from_slice(&self.dst);
        frame.extend_from_slice(&self.src);
        for (tag, (tpid, id)) in self.vlan.tags().into_iter().enumerate() {
            let pcp: u16 = if tag == 0 { 0xa000 } else { 0 };
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&(pcp | id).to_be_bytes());
        }
        frame.extend_from_slice(&ether_type.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// The same VLAN stack between other addresses.
    pub fn with_addrs(&self, dst: [u8; 6], src: [u8; 6]) -> Ethernet {
        Ethernet {
            dst,
            src,
            vlan: self.vlan,
        }
    }
}

/// An ARP packet for IPv4 over Ethernet (RFC 826).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub oper: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

impl Arp {
    pub fn request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Arp {
        Arp {
            oper: ARP_REQUEST,
            sha,
            spa,
            tha: ZERO_MAC,
            tpa,
        }
    }

    /// RFC 5227 probe: no sender address yet.
    pub fn probe(sha: [u8; 6], tpa: [u8; 4]) -> Arp {
        Arp::request(sha, [0; 4], tpa)
    }

    /// Announcement of `ip` by `sha`.
    pub fn gratuitous(sha: [u8; 6], ip: [u8; 4]) -> Arp {
        Arp::request(sha, ip, ip)
    }

    pub fn reply(sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Arp {
        Arp {
            oper: ARP_REPLY,
            sha,
            spa,
            tha,
            tpa,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut arp = vec![0, 1, 0x08, 0x00, 6, 4];
        arp.extend_from_slice(&self.oper.to_be_bytes());
        arp.extend_from_slice(&self.sha);
        arp.extend_from_slice(&self.spa);
        arp.extend_from_slice(&self.tha);
        arp.extend_from_slice(&self.tpa);
        arp
    }

    pub fn frame(&self, eth: &Ethernet) -> Vec<u8> {
        eth.frame(ETH_P_ARP, &self.bytes())
    }
}

/// An IPv6 header (RFC 8200) followed by `payload`.
pub fn ipv6_packet(
    src: [u8; 16],
    dst: [u8; 16],
    hop_limit: u8,
    next_header: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[next_header, hop_limit]);
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    packet.extend_from_slice(payload);
    packet
}

/// `message` (ICMPv6 with a zero checksum field) with its checksum filled in.
pub fn with_icmpv6_checksum(src: [u8; 16], dst: [u8; 16], mut message: Vec<u8>) -> Vec<u8> {
    message[2..4].fill(0);
    let checksum = csum::icmpv6(&src, &dst, &message);
    message[2..4].copy_from_slice(&checksum.to_ne_bytes());
    message
}

/// A link-layer address option (SLLAO or TLLA) for Ethernet.
pub fn link_addr_option(kind: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut option = vec![kind, 1];
    option.extend_from_slice(&mac);
    option
}

/// Hop-by-Hop options that only pad (one PadN of four zeros): the smallest
/// Hop-by-Hop header.
pub const HOP_BY_HOP_PADDING: [u8; 6] = [1, 4, 0, 0, 0, 0];
/// A Router Alert (RFC 2711, value 0) and a PadN of two zeros.
pub const HOP_BY_HOP_ROUTER_ALERT: [u8; 6] = [5, 2, 0, 0, 1, 0];

/// The RFC 7527 nonce option Linux adds to DAD probes.
pub fn nonce_option(nonce: [u8; 6]) -> Vec<u8> {
    let mut option = vec![ND_OPT_NONCE, 1];
    option.extend_from_slice(&nonce);
    option
}

/// The solicited-node group of `target` and its Ethernet address.
pub fn solicited_node_group(target: [u8; 16]) -> ([u8; 16], [u8; 6]) {
    let group = solicited_node(&target);
    (group, ipv6_multicast_mac(&group))
}

/// A Neighbor Solicitation or Advertisement in its IPv6 packet. Every field
/// is public so tests can break exactly one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nd {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop_limit: u8,
    pub icmp_type: u8,
    pub code: u8,
    /// First byte of the flags/reserved word (R|S|O for an NA).
    pub flags: u8,
    pub target: [u8; 16],
    /// Raw option bytes, in order.
    pub options: Vec<Vec<u8>>,
    /// The options of a Hop-by-Hop header between IPv6 and ICMPv6, if there
    /// is one; with the two header bytes they must fill 8-byte units.
    pub hop_by_hop: Option<Vec<u8>>,
}

impl Nd {
    pub fn solicitation(
        src: [u8; 16],
        dst: [u8; 16],
        target: [u8; 16],
        options: Vec<Vec<u8>>,
    ) -> Nd {
        Nd {
            src,
            dst,
            hop_limit: 255,
            icmp_type: ICMPV6_NS,
            code: 0,
            flags: 0,
            target,
            options,
            hop_by_hop: None,
        }
    }

    pub fn advertisement(
        src: [u8; 16],
        dst: [u8; 16],
        target: [u8; 16],
        flags: u8,
        options: Vec<Vec<u8>>,
    ) -> Nd {
        Nd {
            icmp_type: ICMPV6_NA,
            flags,
            ..Nd::solicitation(src, dst, target, options)
        }
    }

    /// The ICMPv6 message, checksum included.
    pub fn icmpv6(&self) -> Vec<u8> {
        let mut message = vec![self.icmp_type, self.code, 0, 0, self.flags, 0, 0, 0];
        message.extend_from_slice(&self.target);
        for option in &self.options {
            message.extend_from_slice(option);
        }
        with_icmpv6_checksum(self.src, self.dst, message)
    }

    pub fn packet(&self) -> Vec<u8> {
        let message = self.icmpv6();
        if let Some(options) = &self.hop_by_hop {
            let units = (2 + options.len()) / 8;
            assert_eq!((2 + options.len()) % 8, 0, "options fill 8-byte units");
            let mut payload = vec![IPPROTO_ICMPV6, units as u8 - 1];
            payload.extend_from_slice(options);
            payload.extend_from_slice(&message);
            ipv6_packet(
                self.src,
                self.dst,
                self.hop_limit,
                IPPROTO_HOPOPTS,
                &payload,
            )
        } else {
            ipv6_packet(self.src, self.dst, self.hop_limit, IPPROTO_ICMPV6, &message)
        }
    }

    pub fn frame(&self, eth: &Ethernet) -> Vec<u8> {
        eth.frame(ETH_P_IPV6, &self.packet())
    }
}

/// The NA the responder must send for `target` with `our_mac`: to `ip_dst`
/// at `eth_dst`, on the request's VLAN stack, S set unless it answers DAD.
pub fn expected_na(
    request_eth: &Ethernet,
    eth_dst: [u8; 6],
    our_mac: [u8; 6],
    target: [u8; 16],
    ip_dst: [u8; 16],
    solicited: bool,
) -> Vec<u8> {
    let flags = if solicited {
        NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE
    } else {
        NA_FLAG_OVERRIDE
    };
    let tlla = link_addr_option(ND_OPT_TARGET_LL_ADDR, our_mac);
    Nd::advertisement(target, ip_dst, target, flags, vec![tlla])
        .frame(&request_eth.with_addrs(eth_dst, our_mac))
}

/// An IPv4 header (RFC 791, no options) with its checksum, then `payload`.
fn ipv4_packet(src: [u8; 4], dst: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total_len = (20 + payload.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    let checksum = csum::finish(csum::add_bytes(0, &packet));
    packet[10..12].copy_from_slice(&checksum.to_ne_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// A TCP SYN header without options; checksum left to `with_l4_checksum_*`.
pub fn tcp_syn(src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut segment = Vec::with_capacity(20);
    segment.extend_from_slice(&src_port.to_be_bytes());
    segment.extend_from_slice(&dst_port.to_be_bytes());
    segment.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    segment
}

/// A UDP datagram; checksum left to `with_l4_checksum_*`.
pub fn udp_datagram(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&src_port.to_be_bytes());
    datagram.extend_from_slice(&dst_port.to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    datagram
}

/// Byte offset of the checksum in a TCP or UDP header.
fn l4_checksum_offset(protocol: u8) -> usize {
    if protocol == IPPROTO_TCP {
        16
    } else {
        6
    }
}

/// An IPv4 packet carrying `segment` (TCP or UDP) with its checksum set.
pub fn ipv4_l4_packet(src: [u8; 4], dst: [u8; 4], protocol: u8, mut segment: Vec<u8>) -> Vec<u8> {
    let mut acc = csum::add_bytes(0, &src);
    acc = csum::add_bytes(acc, &dst);
    acc = csum::add_bytes(acc, &[0, protocol]);
    acc = csum::add_bytes(acc, &(segment.len() as u16).to_be_bytes());
    let at = l4_checksum_offset(protocol);
    let checksum = csum::finish(csum::add_bytes(acc, &segment));
    segment[at..at + 2].copy_from_slice(&checksum.to_ne_bytes());
    ipv4_packet(src, dst, protocol, &segment)
}

/// An IPv6 packet carrying `segment` (TCP or UDP) with its checksum set.
pub fn ipv6_l4_packet(src: [u8; 16], dst: [u8; 16], protocol: u8, mut segment: Vec<u8>) -> Vec<u8> {
    let acc = csum::ipv6_pseudo_header(&src, &dst, segment.len() as u32, protocol);
    let at = l4_checksum_offset(protocol);
    let checksum = csum::finish(csum::add_bytes(acc, &segment));
    segment[at..at + 2].copy_from_slice(&checksum.to_ne_bytes());
    ipv6_packet(src, dst, 64, protocol, &segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot1q_frame_layout() {
        let eth = Ethernet {
            dst: BROADCAST_MAC,
            src: PEER_MAC,
            vlan: Vlan::Dot1Q(100),
        };
        let frame = eth.frame(ETH_P_ARP, &[0xab]);
        assert_eq!(&frame[12..19], &[0x81, 0x00, 0xa0, 100, 0x08, 0x06, 0xab]);
        assert_eq!(eth.header_len(), 18);
    }

    #[test]
    fn ns_checksum_verifies() {
        let ns = Nd::solicitation(
            LINK_LOCAL6,
            solicited_node_group(VIP6).0,
            VIP6,
            vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC)],
        );
        let message = ns.icmpv6();
        assert_eq!(message.len(), 32);
        let acc = csum::ipv6_pseudo_header(&ns.src, &ns.dst, 32, IPPROTO_ICMPV6);
        assert!(csum::verifies(csum::add_bytes(acc, &message)));
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let packet = ipv4_l4_packet(PEER4, VIP4, IPPROTO_UDP, udp_datagram(1, 2, b"x"));
        assert!(csum::verifies(csum::add_bytes(0, &packet[..20])));
    }
}
