//! ARP (RFC 826) for IPv4 over Ethernet: answer requests for our VIPs, and
//! notice other hosts claiming them.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use responder_common::{
    wire::{
        ArpEthIpv4, EthHdr, ARPHRD_ETHER_BE, ARPOP_REPLY_BE, ARPOP_REQUEST_BE, ETH_ALEN,
        ETH_P_IP_BE,
    },
    VipKey,
};

use crate::{
    nic::{claimed_by_another, vip_ifindex},
    packet::{bytes_eq, ptr_at, Pass},
    program::{conflict, count_reply, lookup_vip, may_answer},
    vlan::Layer3,
};

const IPV4_ALEN: u8 = 4;

#[inline(always)]
pub fn respond(ctx: &XdpContext, l3: &Layer3) -> Result<u32, Pass> {
    // Both pointers are taken before anything is checked, so no write can
    // fail halfway through a reply. Fields are read and rewritten in place:
    // copying whole headers out would cost registers and stack for nothing.
    let eth_at = ptr_at::<EthHdr>(ctx, 0)?;
    let arp_at = ptr_at::<ArpEthIpv4>(ctx, l3.offset)?;
    // SAFETY: `ptr_at` checked both headers are inside the frame; nothing
    // else accesses the frame while the program runs.
    let (eth, arp) = unsafe { (&mut *eth_at, &mut *arp_at) };
    if arp.htype != ARPHRD_ETHER_BE
        || arp.ptype != ETH_P_IP_BE
        || arp.hlen != ETH_ALEN as u8
        || arp.plen != IPV4_ALEN
    {
        return Err(Pass);
    }
    let ifindex = vip_ifindex(ctx);
    match arp.oper {
        ARPOP_REQUEST_BE => {
            let vip = arp.tpa;
            let key = VipKey::v4(ifindex, l3.vlan_outer, l3.vlan_inner, vip);
            let owned = lookup_vip(&key, &eth.dst)?;
            let mac = owned.mac;
            if bytes_eq(&arp.spa, &vip) {
                // A gratuitous ARP announces, it does not ask: the kernel may
                // want to see it, and only a MAC not of this node is a conflict.
                if claimed_by_another(&arp.sha, &mac) {
                    conflict(&key, &owned);
                }
                return Ok(xdp_action::XDP_PASS);
            }
            may_answer(&key, &owned)?;
            eth.dst = arp.sha;
            eth.src = mac;
            arp.oper = ARPOP_REPLY_BE;
            arp.tha = arp.sha;
            arp.sha = mac;
            arp.tpa = arp.spa;
            arp.spa = vip;
            count_reply(&key);
            Ok(xdp_action::XDP_TX)
        }
        ARPOP_REPLY_BE => {
            let key = VipKey::v4(ifindex, l3.vlan_outer, l3.vlan_inner, arp.spa);
            let owned = lookup_vip(&key, &eth.dst)?;
            if claimed_by_another(&arp.sha, &owned.mac) {
                conflict(&key, &owned);
            }
            Ok(xdp_action::XDP_PASS)
        }
        _ => Err(Pass),
    }
}
