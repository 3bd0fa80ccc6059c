//! Ethernet and up to two VLAN tags (802.1ad S-tag and/or 802.1Q C-tag).

use aya_ebpf::programs::XdpContext;
use responder_common::wire::{
    EthHdr, VlanHdr, ETH_HLEN, ETH_P_8021AD_BE, ETH_P_8021Q_BE, MAX_VLAN_TAGS, VLAN_HLEN,
    VLAN_VID_MASK_BE,
};

use crate::packet::{read, Pass};

/// Where the network header starts and which VLAN stack it arrived on.
pub struct Layer3 {
    pub offset: usize,
    /// Ethertype after the tags, big-endian as on the wire.
    pub ether_type_be: u16,
    /// VLAN ids in host order, 0 when absent (the `VipKey` convention).
    pub vlan_outer: u16,
    pub vlan_inner: u16,
}

#[inline(always)]
fn is_vlan(ether_type_be: u16) -> bool {
    ether_type_be == ETH_P_8021Q_BE || ether_type_be == ETH_P_8021AD_BE
}

/// Untagged frames (the hot path for ordinary traffic) cost one load and
/// two compares here. A third tag is more than any VIP scope names: pass.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Layer3, Pass> {
    let eth: EthHdr = read(ctx, 0)?;
    let mut l3 = Layer3 {
        offset: ETH_HLEN,
        ether_type_be: eth.ether_type,
        vlan_outer: 0,
        vlan_inner: 0,
    };
    let mut ids = [0u16; MAX_VLAN_TAGS];
    for id in ids.iter_mut() {
        if !is_vlan(l3.ether_type_be) {
            break;
        }
        let tag: VlanHdr = read(ctx, l3.offset)?;
        *id = u16::from_be(tag.tci & VLAN_VID_MASK_BE);
        l3.ether_type_be = tag.ether_type;
        l3.offset += VLAN_HLEN;
    }
    if is_vlan(l3.ether_type_be) {
        return Err(Pass);
    }
    [l3.vlan_outer, l3.vlan_inner] = ids;
    Ok(l3)
}
