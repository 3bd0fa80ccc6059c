//! Gratuitous ARP / unsolicited NA announcements for newly installed VIPs,
//! so neighbors and switches learn the VIP's MAC without waiting for a
//! request. Frames are built by pure functions and sent from userspace on
//! AF_PACKET sockets; the XDP program only answers requests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use responder_common::{
    csum,
    wire::{
        ICMPV6_NA, IPPROTO_ICMPV6, IPV6_ALL_NODES, MAC_ALL_NODES, MAC_BROADCAST, NA_FLAG_OVERRIDE,
        ND_HOP_LIMIT, ND_OPT_TARGET_LL_ADDR,
    },
    VipKey,
};

use crate::{
    netif::Interface,
    vip::{key_addr, key_vlan, Vlan},
};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;

/// Ethernet header plus the VIP's tag stack: one tag is 802.1Q, two are an
/// 802.1ad S-tag over an 802.1Q C-tag, matching what the data plane parses.
fn ethernet_header(frame: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], vlan: Vlan, ether_type: u16) {
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    match (vlan.outer, vlan.inner) {
        (0, _) => {}
        (vid, 0) => push_tag(frame, ETH_P_8021Q, vid),
        (outer, inner) => {
            push_tag(frame, ETH_P_8021AD, outer);
            push_tag(frame, ETH_P_8021Q, inner);
        }
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
}

fn push_tag(frame: &mut Vec<u8>, tpid: u16, vid: u16) {
    frame.extend_from_slice(&tpid.to_be_bytes());
    frame.extend_from_slice(&vid.to_be_bytes());
}

fn gratuitous_arp(op: u16, mac: [u8; 6], vlan: Vlan, addr: Ipv4Addr, tha: [u8; 6]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(50);
    ethernet_header(&mut frame, MAC_BROADCAST, mac, vlan, ETH_P_ARP);
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    frame.extend_from_slice(&op.to_be_bytes());
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&addr.octets());
    frame.extend_from_slice(&tha);
    frame.extend_from_slice(&addr.octets());
    frame
}

/// ARP request with spa = tpa = VIP and tha zero: updates every neighbor
/// cache that already has the VIP (RFC 5227 §3 "ARP Announcement").
pub(crate) fn gratuitous_arp_request(mac: [u8; 6], vlan: Vlan, addr: Ipv4Addr) -> Vec<u8> {
    gratuitous_arp(ARPOP_REQUEST, mac, vlan, addr, [0; 6])
}

/// Broadcast ARP reply for the VIP, for stacks that only learn from replies.
pub(crate) fn gratuitous_arp_reply(mac: [u8; 6], vlan: Vlan, addr: Ipv4Addr) -> Vec<u8> {
    gratuitous_arp(ARPOP_REPLY, mac, vlan, addr, mac)
}

/// Unsolicited Neighbor Advertisement to all-nodes (RFC 4861 §7.2.6):
/// S=0, O=1 so existing cache entries are overridden, with a TLLA option.
pub(crate) fn unsolicited_na(mac: [u8; 6], vlan: Vlan, addr: Ipv6Addr) -> Vec<u8> {
    let src = addr.octets();
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[ICMPV6_NA, 0, 0, 0, NA_FLAG_OVERRIDE, 0, 0, 0]);
    icmp.extend_from_slice(&src);
    icmp.extend_from_slice(&[ND_OPT_TARGET_LL_ADDR, 1]);
    icmp.extend_from_slice(&mac);
    let checksum = csum::icmpv6(&src, &IPV6_ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_ne_bytes());

    let mut frame = Vec::with_capacity(94);
    ethernet_header(&mut frame, MAC_ALL_NODES, mac, vlan, ETH_P_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[IPPROTO_ICMPV6, ND_HOP_LIMIT]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&IPV6_ALL_NODES);
    frame.extend_from_slice(&icmp);
    frame
}

/// The frames of one announcement round for a VIP key.
pub(crate) fn announcement_frames(key: &VipKey, mac: [u8; 6]) -> Vec<Vec<u8>> {
    let vlan = key_vlan(key);
    match key_addr(key) {
        IpAddr::V4(a) => vec![
            gratuitous_arp_request(mac, vlan, a),
            gratuitous_arp_reply(mac, vlan, a),
        ],
        IpAddr::V6(a) => vec![unsolicited_na(mac, vlan, a)],
    }
}

/// The one frame of a periodic re-announcement: for IPv4 the ARP request
/// with spa = tpa = VIP (RFC 5227's ARP Announcement, which every stack and
/// switch learns from), for IPv6 the unsolicited NA.
pub(crate) fn periodic_frame(key: &VipKey, mac: [u8; 6]) -> Vec<u8> {
    let vlan = key_vlan(key);
    match key_addr(key) {
        IpAddr::V4(a) => gratuitous_arp_request(mac, vlan, a),
        IpAddr::V6(a) => unsolicited_na(mac, vlan, a),
    }
}

/// How many rounds of an announcement to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rounds {
    /// `--announce-count` rounds, for a VIP this node (re)gains: neighbours
    /// that miss one round still learn the new MAC.
    Burst,
    /// One round, defending a VIP another MAC claimed (RFC 5227 §2.4 (b));
    /// nothing is sent while a burst for the key is still going.
    Once,
}

/// What the data plane needs from an announcer; a trait so reconciliation
/// can be tested without sockets.
pub(crate) trait Announce {
    /// Starts announcing `key` (answered with `mac`) in the background.
    fn announce(&mut self, key: VipKey, mac: [u8; 6], rounds: Rounds);
    /// Stops any announcement still in progress for `key`.
    fn withdraw(&mut self, key: &VipKey);
    /// Follows the attached interfaces: announcements go out on these only.
    fn set_interfaces(&mut self, interfaces: &[Interface]);
}

mod announcer;
mod periodic;
mod socket;

pub(crate) use announcer::{Announcer, SentCounts};

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
    const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    fn vip6() -> Ipv6Addr {
        "2001:db8::10".parse().expect("test address")
    }

    #[rustfmt::skip]
    const ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x06,
        0, 1, 0x08, 0, 6, 4, 0, 1,
        0x02, 0, 0, 0, 0, 0x0a, 192, 0, 2, 10,
        0, 0, 0, 0, 0, 0, 192, 0, 2, 10,
    ];

    #[test]
    fn gratuitous_arp_request_bytes() {
        assert_eq!(
            gratuitous_arp_request(MAC, Vlan::UNTAGGED, VIP4),
            ARP_REQUEST
        );
    }

    #[test]
    fn gratuitous_arp_reply_bytes() {
        #[rustfmt::skip]
        let expected = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x06,
            0, 1, 0x08, 0, 6, 4, 0, 2,
            0x02, 0, 0, 0, 0, 0x0a, 192, 0, 2, 10,
            0x02, 0, 0, 0, 0, 0x0a, 192, 0, 2, 10,
        ];
        assert_eq!(gratuitous_arp_reply(MAC, Vlan::UNTAGGED, VIP4), expected);
    }

    #[test]
    fn single_tag_is_8021q() {
        let frame = gratuitous_arp_request(
            MAC,
            Vlan {
                outer: 100,
                inner: 0,
            },
            VIP4,
        );
        assert_eq!(&frame[..12], &ARP_REQUEST[..12]);
        assert_eq!(&frame[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x06]);
        assert_eq!(&frame[18..], &ARP_REQUEST[14..]);
    }

    #[test]
    fn two_tags_are_8021ad_over_8021q() {
        let frame = gratuitous_arp_reply(
            MAC,
            Vlan {
                outer: 4094,
                inner: 300,
            },
            VIP4,
        );
        assert_eq!(
            &frame[12..22],
            &[0x88, 0xa8, 0x0f, 0xfe, 0x81, 0x00, 0x01, 0x2c, 0x08, 0x06]
        );
        assert_eq!(frame.len(), 42 + 8);
        assert_eq!(
            &frame[22..],
            &gratuitous_arp_reply(MAC, Vlan::UNTAGGED, VIP4)[14..]
        );
    }

    fn expected_na_without_checksum() -> Vec<u8> {
        #[rustfmt::skip]
        let frame = vec![
            0x33, 0x33, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 0x0a, 0x86, 0xdd,
            0x60, 0, 0, 0, 0, 32, 58, 255,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            136, 0, 0, 0, 0x20, 0, 0, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            2, 1, 0x02, 0, 0, 0, 0, 0x0a,
        ];
        frame
    }

    fn assert_na_checksum_verifies(frame: &[u8], l2_len: usize) {
        let ip = &frame[l2_len..];
        let src: [u8; 16] = ip[8..24].try_into().expect("src");
        let dst: [u8; 16] = ip[24..40].try_into().expect("dst");
        let acc = csum::ipv6_pseudo_header(&src, &dst, 32, IPPROTO_ICMPV6);
        assert!(
            csum::verifies(csum::add_bytes(acc, &ip[40..])),
            "NA checksum must verify"
        );
    }

    #[test]
    fn unsolicited_na_bytes_and_checksum() {
        let mut frame = unsolicited_na(MAC, Vlan::UNTAGGED, vip6());
        assert_eq!(frame.len(), 86);
        assert_na_checksum_verifies(&frame, 14);
        assert_ne!(&frame[56..58], &[0, 0], "checksum must be filled in");
        frame[56..58].copy_from_slice(&[0, 0]);
        assert_eq!(frame, expected_na_without_checksum());
    }

    #[test]
    fn tagged_na_keeps_the_checksum() {
        let untagged = unsolicited_na(MAC, Vlan::UNTAGGED, vip6());
        let frame = unsolicited_na(
            MAC,
            Vlan {
                outer: 10,
                inner: 20,
            },
            vip6(),
        );
        assert_eq!(
            &frame[12..22],
            &[0x88, 0xa8, 0, 10, 0x81, 0, 0, 20, 0x86, 0xdd]
        );
        assert_eq!(&frame[22..], &untagged[14..]);
        assert_na_checksum_verifies(&frame, 22);
        let frame = unsolicited_na(
            MAC,
            Vlan {
                outer: 10,
                inner: 0,
            },
            vip6(),
        );
        assert_eq!(&frame[12..18], &[0x81, 0, 0, 10, 0x86, 0xdd]);
        assert_na_checksum_verifies(&frame, 18);
    }

    #[test]
    fn a_periodic_announcement_is_one_frame() {
        let v4 = VipKey::v4(2, 7, 0, VIP4.octets());
        assert_eq!(
            periodic_frame(&v4, MAC),
            gratuitous_arp_request(MAC, Vlan { outer: 7, inner: 0 }, VIP4)
        );
        let v6 = VipKey::v6(2, 0, 0, vip6().octets());
        assert_eq!(
            periodic_frame(&v6, MAC),
            unsolicited_na(MAC, Vlan::UNTAGGED, vip6())
        );
    }

    #[test]
    fn rounds_contain_both_arp_kinds_or_one_na() {
        let v4 = announcement_frames(&VipKey::v4(2, 0, 0, VIP4.octets()), MAC);
        assert_eq!(
            v4,
            vec![
                gratuitous_arp_request(MAC, Vlan::UNTAGGED, VIP4),
                gratuitous_arp_reply(MAC, Vlan::UNTAGGED, VIP4)
            ]
        );
        let v6 = announcement_frames(&VipKey::v6(2, 5, 0, vip6().octets()), MAC);
        assert_eq!(
            v6,
            vec![unsolicited_na(MAC, Vlan { outer: 5, inner: 0 }, vip6())]
        );
    }
}
