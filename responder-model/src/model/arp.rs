//! ARP requests and replies for IPv4 over Ethernet (RFC 826, RFC 5227).

use responder_common::VipKey;

use super::{answering_mac, array, be16, Expected, Layer3, Nics, VipTable};

const ARP_LEN: usize = 28;

pub(super) fn respond(
    vips: &VipTable,
    nics: &Nics,
    ingress: u32,
    frame: &[u8],
    l3: &Layer3,
) -> Expected {
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
    let ifindex = nics.vip_ifindex(ingress);
    match op {
        1 => {
            let key = VipKey::v4(ifindex, outer, inner, tpa);
            let Some(mac) = answering_mac(vips, &key, &eth_dst) else {
                return Expected::pass();
            };
            if spa == tpa {
                return if nics.foreign(sha, mac) {
                    Expected::conflict(key)
                } else {
                    Expected::pass()
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
                Some(mac) if nics.foreign(sha, mac) => Expected::conflict(key),
                _ => Expected::pass(),
            }
        }
        _ => Expected::pass(),
    }
}
