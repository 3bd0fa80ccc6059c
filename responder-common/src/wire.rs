//! On-the-wire headers. Multi-byte fields hold the raw big-endian bytes as
//! read from the packet; compare them with the `*_BE` constants, which are
//! swapped at compile time, so the data plane never byte-swaps on the hot path.
//! Every struct has alignment <= 2 and no padding, because headers sit at
//! offsets 14, 18 and 22 in a frame.

pub const ETH_ALEN: usize = 6;
pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
/// Tags the data plane looks through (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

pub const ETH_P_IP_BE: u16 = 0x0800u16.to_be();
pub const ETH_P_ARP_BE: u16 = 0x0806u16.to_be();
pub const ETH_P_IPV6_BE: u16 = 0x86DDu16.to_be();
pub const ETH_P_8021Q_BE: u16 = 0x8100u16.to_be();
pub const ETH_P_8021AD_BE: u16 = 0x88A8u16.to_be();
/// Mask of the VLAN id in a TCI, big-endian.
pub const VLAN_VID_MASK_BE: u16 = 0x0FFFu16.to_be();

pub const ARPHRD_ETHER_BE: u16 = 1u16.to_be();
pub const ARPOP_REQUEST_BE: u16 = 1u16.to_be();
pub const ARPOP_REPLY_BE: u16 = 2u16.to_be();

pub const IPPROTO_ICMPV6: u8 = 58;
pub const ND_HOP_LIMIT: u8 = 255;
pub const ICMPV6_NS: u8 = 135;
pub const ICMPV6_NA: u8 = 136;
pub const ND_OPT_SOURCE_LL_ADDR: u8 = 1;
pub const ND_OPT_TARGET_LL_ADDR: u8 = 2;
/// First byte of the NA flags word.
pub const NA_FLAG_ROUTER: u8 = 0x80;
pub const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

pub const IPV6_ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const MAC_ALL_NODES: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
pub const MAC_BROADCAST: [u8; 6] = [0xff; 6];
/// ff02::1:ff00:0/104: the first 13 bytes of every solicited-node address.
pub const SOLICITED_NODE_PREFIX: [u8; 13] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];

/// The solicited-node multicast group of `addr` (RFC 4291 §2.7.1).
pub const fn solicited_node(addr: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 13 {
        out[i] = SOLICITED_NODE_PREFIX[i];
        i += 1;
    }
    out[13] = addr[13];
    out[14] = addr[14];
    out[15] = addr[15];
    out
}

/// The Ethernet multicast address for an IPv6 multicast group (RFC 2464 §7).
pub const fn ipv6_multicast_mac(group: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: u16,
}

/// The 4 bytes after a TPID: tag control and the next ethertype.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanHdr {
    pub tci: u16,
    pub ether_type: u16,
}

/// ARP for IPv4 over Ethernet (RFC 826).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpEthIpv4 {
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub oper: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Hdr {
    /// Version (4 bits), traffic class (8), flow label (20).
    pub ver_tc_flow: [u8; 4],
    pub payload_len: u16,
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// Neighbor Solicitation / Advertisement body before options (RFC 4861 §4.3, §4.4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdMsg {
    pub icmp_type: u8,
    pub code: u8,
    pub checksum: u16,
    /// NS: reserved. NA: R|S|O flags in the first byte, then reserved.
    pub flags: [u8; 4],
    pub target: [u8; 16],
}

/// Source/Target Link-Layer Address option for Ethernet (RFC 4861 §4.6.1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdOptLinkAddr {
    pub kind: u8,
    /// In units of 8 bytes: 1 for Ethernet.
    pub len: u8,
    pub mac: [u8; 6],
}

/// Length of an NA with one TLLA option, the only reply the data plane builds.
pub const NA_WITH_TLLA_LEN: usize =
    core::mem::size_of::<NdMsg>() + core::mem::size_of::<NdOptLinkAddr>();

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn header_sizes_match_the_wire() {
        assert_eq!(size_of::<EthHdr>(), ETH_HLEN);
        assert_eq!(size_of::<VlanHdr>(), VLAN_HLEN);
        assert_eq!(size_of::<ArpEthIpv4>(), 28);
        assert_eq!(size_of::<Ipv6Hdr>(), 40);
        assert_eq!(size_of::<NdMsg>(), 24);
        assert_eq!(size_of::<NdOptLinkAddr>(), 8);
        assert_eq!(NA_WITH_TLLA_LEN, 32);
    }

    #[test]
    fn header_offsets_match_the_wire() {
        assert_eq!(offset_of!(EthHdr, ether_type), 12);
        assert_eq!(offset_of!(ArpEthIpv4, oper), 6);
        assert_eq!(offset_of!(ArpEthIpv4, sha), 8);
        assert_eq!(offset_of!(ArpEthIpv4, spa), 14);
        assert_eq!(offset_of!(ArpEthIpv4, tha), 18);
        assert_eq!(offset_of!(ArpEthIpv4, tpa), 24);
        assert_eq!(offset_of!(Ipv6Hdr, payload_len), 4);
        assert_eq!(offset_of!(Ipv6Hdr, next_hdr), 6);
        assert_eq!(offset_of!(Ipv6Hdr, hop_limit), 7);
        assert_eq!(offset_of!(Ipv6Hdr, src), 8);
        assert_eq!(offset_of!(Ipv6Hdr, dst), 24);
        assert_eq!(offset_of!(NdMsg, checksum), 2);
        assert_eq!(offset_of!(NdMsg, target), 8);
    }

    #[test]
    fn headers_tolerate_two_byte_aligned_offsets() {
        for a in [
            align_of::<EthHdr>(),
            align_of::<VlanHdr>(),
            align_of::<ArpEthIpv4>(),
            align_of::<Ipv6Hdr>(),
            align_of::<NdMsg>(),
            align_of::<NdOptLinkAddr>(),
        ] {
            assert!(a <= 2, "alignment {a} would make packet reads misaligned");
        }
    }

    #[test]
    fn big_endian_constants_are_wire_order() {
        assert_eq!(ETH_P_ARP_BE.to_ne_bytes(), [0x08, 0x06]);
        assert_eq!(ETH_P_IPV6_BE.to_ne_bytes(), [0x86, 0xdd]);
        assert_eq!(ETH_P_8021AD_BE.to_ne_bytes(), [0x88, 0xa8]);
        assert_eq!(ARPOP_REPLY_BE.to_ne_bytes(), [0, 2]);
        assert_eq!(
            (0x1234u16.to_be() & VLAN_VID_MASK_BE).to_ne_bytes(),
            [0x02, 0x34]
        );
    }

    #[test]
    fn solicited_node_group_and_mac() {
        let addr = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef,
        ];
        let g = solicited_node(&addr);
        assert_eq!(
            g,
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xab, 0xcd, 0xef]
        );
        assert_eq!(ipv6_multicast_mac(&g), [0x33, 0x33, 0xff, 0xab, 0xcd, 0xef]);
        assert_eq!(ipv6_multicast_mac(&IPV6_ALL_NODES), MAC_ALL_NODES);
    }
}
