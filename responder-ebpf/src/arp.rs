//! ARP (RFC 826) for IPv4 over Ethernet: answer requests for our VIPs, and
//! notice other hosts claiming them (RFC 5227 §2.4).

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
/// IEEE 802 networks (RFC 1042): Linux accepts it on Ethernet as well, and
/// answers with hardware type Ethernet.
const ARPHRD_IEEE802_BE: u16 = 6u16.to_be();
const UNSPECIFIED: [u8; 4] = [0; 4];
const ZERO_MAC: [u8; 6] = [0; 6];

/// A sender no host can have: a group or the zero hardware address.
#[inline(always)]
fn is_group_or_zero(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0 || bytes_eq(mac, &ZERO_MAC)
}

/// A sender address Linux treats as martian and never answers: multicast,
/// the limited broadcast, loopback.
#[inline(always)]
fn is_martian_sender(ip: &[u8; 4]) -> bool {
    ip[0] & 0xf0 == 0xe0 || ip[0] == 127 || bytes_eq(ip, &[0xff; 4])
}

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
    if (arp.htype != ARPHRD_ETHER_BE && arp.htype != ARPHRD_IEEE802_BE)
        || arp.ptype != ETH_P_IP_BE
        || arp.hlen != ETH_ALEN as u8
        || arp.plen != IPV4_ALEN
    {
        return Err(Pass);
    }
    let ifindex = vip_ifindex(ctx);
    match arp.oper {
        ARPOP_REQUEST_BE => {
            // A reply to a group or zero address would reach every host or
            // none, and a martian sender is one Linux ignores too.
            if is_group_or_zero(&arp.sha) || is_martian_sender(&arp.spa) {
                return Err(Pass);
            }
            if !bytes_eq(&arp.spa, &UNSPECIFIED) {
                // Sent from one of our VIPs: it asks for nothing of ours to
                // answer, and from a MAC not of this node it is a conflict,
                // whatever it asks for (gratuitous ARP included).
                let key = VipKey::v4(ifindex, l3.vlan_outer, l3.vlan_inner, arp.spa);
                if let Ok(claimed) = lookup_vip(&key, &eth.dst) {
                    if claimed_by_another(&arp.sha, &claimed.mac) {
                        conflict(&key, &claimed, &arp.sha);
                    }
                    return Ok(xdp_action::XDP_PASS);
                }
            }
            let vip = arp.tpa;
            let key = VipKey::v4(ifindex, l3.vlan_outer, l3.vlan_inner, vip);
            let owned = lookup_vip(&key, &eth.dst)?;
            may_answer(&owned)?;
            let mac = owned.mac;
            eth.dst = arp.sha;
            eth.src = mac;
            arp.htype = ARPHRD_ETHER_BE;
            arp.oper = ARPOP_REPLY_BE;
            arp.tha = arp.sha;
            arp.sha = mac;
            arp.tpa = arp.spa;
            arp.spa = vip;
            count_reply(&owned);
            Ok(xdp_action::XDP_TX)
        }
        ARPOP_REPLY_BE => {
            let key = VipKey::v4(ifindex, l3.vlan_outer, l3.vlan_inner, arp.spa);
            let owned = lookup_vip(&key, &eth.dst)?;
            if claimed_by_another(&arp.sha, &owned.mac) {
                conflict(&key, &owned, &arp.sha);
            }
            Ok(xdp_action::XDP_PASS)
        }
        _ => Err(Pass),
    }
}
