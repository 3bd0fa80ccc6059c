//! ARP requests and replies for IPv4 over Ethernet (RFC 826, RFC 5227).

use responder_common::VipKey;

use super::{answering_mac, array, be16, Expected, Layer3, Nics, VipTable};

const ARP_LEN: usize = 28;
const HTYPE_ETHERNET: u16 = 1;
/// IEEE 802 (RFC 1042): accepted on Ethernet like Linux does, and answered
/// as Ethernet (the program's choice, after the kernel oracle).
const HTYPE_IEEE802: u16 = 6;

/// No host has a group or the zero hardware address: a "reply" to one
/// would reach every host or none (issue 12).
fn is_group_or_zero(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1 || *mac == [0; 6]
}

/// Senders Linux treats as martians and never answers: multicast
/// (224.0.0.0/4), the limited broadcast, loopback (127.0.0.0/8).
fn is_martian_sender(ip: &[u8; 4]) -> bool {
    ip[0] >> 4 == 0xe || ip[0] == 127 || *ip == [255; 4]
}

pub(super) fn respond(
    vips: &VipTable,
    nics: &Nics,
    ingress: u32,
    frame: &[u8],
    l3: &Layer3,
) -> Expected {
    let at = l3.offset;
    if frame.len() < at + ARP_LEN
        || !matches!(be16(frame, at), HTYPE_ETHERNET | HTYPE_IEEE802)
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
    let ifindex = nics.vip_ifindex(ingress);
    match op {
        1 => {
            if is_group_or_zero(&sha) || is_martian_sender(&spa) {
                return Expected::pass();
            }
            // RFC 5227 §2.4: a packet whose sender address is ours and
            // whose sender MAC is none of this node's is a conflict,
            // whatever it asks for (gratuitous ARP included); a probe has no
            // sender address.
            if spa != [0; 4] {
                let claimed = VipKey::v4(ifindex, outer, inner, spa);
                if let Some(mac) = answering_mac(vips, &claimed, &eth_dst) {
                    return if nics.foreign(sha, mac) {
                        Expected::conflict(claimed)
                    } else {
                        Expected::pass()
                    };
                }
            }
            let key = VipKey::v4(ifindex, outer, inner, tpa);
            let Some(mac) = answering_mac(vips, &key, &eth_dst) else {
                return Expected::pass();
            };
            let mut reply = frame.to_vec();
            reply[0..6].copy_from_slice(&sha);
            reply[6..12].copy_from_slice(&mac);
            reply[at..at + 2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
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
                Some(mac) if nics.foreign(sha, mac) => Expected::conflict(key),
                _ => Expected::pass(),
            }
        }
        _ => Expected::pass(),
    }
}
