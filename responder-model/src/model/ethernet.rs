//! Ethernet and up to two VLAN tags (IEEE 802.1Q / 802.1ad).

use super::be16;

const ETH_HLEN: usize = 14;
pub(super) const ETHERTYPE_ARP: u16 = 0x0806;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86dd;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const MAX_TAGS: usize = 2;

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
