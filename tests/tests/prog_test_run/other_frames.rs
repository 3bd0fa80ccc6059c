//! Frames that are not requests for a VIP: every truncation of a valid
//! request, unrelated traffic, a removed VIP.
use super::*;

fn valid_requests() -> Vec<(&'static str, Vec<u8>)> {
    let (ns_eth, ns) = multicast_ns(Vlan::Untagged);
    let (unicast_eth, unicast) = unicast_ns();
    let (dad_eth, dad) = dad_ns(vec![nonce_option([1, 2, 3, 4, 5, 6])]);
    vec![
        ("ARP", arp_request_and_reply(Vlan::Untagged).0),
        ("ARP in QinQ", arp_request_and_reply(QINQ).0),
        ("ARP in 802.1Q", arp_request_and_reply(DOT1Q).0),
        ("NS with SLLAO", ns.frame(&ns_eth)),
        ("NS without options", unicast.frame(&unicast_eth)),
        ("DAD NS", dad.frame(&dad_eth)),
    ]
}

#[test]
fn every_truncation_of_a_valid_request_passes_untouched() {
    let responder = responder();
    for (what, request) in valid_requests() {
        for len in 0..14 {
            let error = responder
                .try_run(&request[..len], LOOPBACK_IFINDEX)
                .expect_err("the kernel should refuse frames shorter than Ethernet");
            assert_eq!(
                error.errno(),
                Some(libc::EINVAL),
                "{what} cut to {len}: {error}"
            );
        }
        for len in 14..request.len() {
            let cut = &request[..len];
            let (action, output) = responder.run(cut, LOOPBACK_IFINDEX);
            assert_eq!(action, XDP_PASS, "{what} cut to {len} bytes should pass");
            assert_eq!(output, cut, "{what} cut to {len} bytes must be untouched");
        }
        let (action, _) = responder.run(&request, LOOPBACK_IFINDEX);
        assert_eq!(action, XDP_TX, "{what} in full should be answered");
    }
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(1, 1, 0)
    );
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        counted(3, 3, 0)
    );
}

#[test]
fn unrelated_traffic_passes_untouched() {
    let responder = responder();
    let eth = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let tagged = Ethernet { vlan: DOT1Q, ..eth };
    let (_, ns) = multicast_ns(Vlan::Untagged);
    let echo_request = with_icmpv6_checksum(PEER6, VIP6, vec![128, 0, 0, 0, 0, 1, 0, 1]);
    let mut three_tags = arp_request_and_reply(QINQ).0;
    three_tags.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    let frames = [
        (
            "IPv4 TCP",
            eth.frame(
                ETH_P_IP,
                &ipv4_l4_packet(PEER4, VIP4, IPPROTO_TCP, tcp_syn(40000, 80)),
            ),
        ),
        (
            "IPv4 UDP",
            tagged.frame(
                ETH_P_IP,
                &ipv4_l4_packet(PEER4, VIP4, IPPROTO_UDP, udp_datagram(40000, 53, b"q")),
            ),
        ),
        (
            "IPv6 TCP",
            eth.frame(
                ETH_P_IPV6,
                &ipv6_l4_packet(PEER6, VIP6, IPPROTO_TCP, tcp_syn(40000, 443)),
            ),
        ),
        (
            "IPv6 UDP",
            tagged.frame(
                ETH_P_IPV6,
                &ipv6_l4_packet(PEER6, VIP6, IPPROTO_UDP, udp_datagram(40000, 53, b"q")),
            ),
        ),
        (
            "ICMPv6 echo",
            eth.frame(ETH_P_IPV6, &ipv6_packet(PEER6, VIP6, 64, 58, &echo_request)),
        ),
        (
            "NS under an unknown ethertype",
            eth.frame(0x88b5, &ns.packet()),
        ),
        ("ARP under three VLAN tags", three_tags),
    ];
    for (what, frame) in frames {
        let (action, output) = responder.run(&frame, LOOPBACK_IFINDEX);
        assert_eq!(action, XDP_PASS, "{what} should pass");
        assert_eq!(output, frame, "{what} must be untouched");
    }
    for vlan in [Vlan::Untagged, DOT1Q, QINQ] {
        assert_eq!(stats(&responder, key4(vlan, VIP4)), VipStats::default());
        assert_eq!(stats(&responder, key6(vlan, VIP6)), VipStats::default());
    }
}

#[test]
fn removed_vip_is_no_longer_answered() {
    let mut responder = responder();
    let (request, reply) = arp_request_and_reply(Vlan::Untagged);
    assert_answers(&responder, &request, &reply);
    responder
        .remove_vip(&key4(Vlan::Untagged, VIP4))
        .expect("remove VIP");
    assert_passes(&responder, &request, LOOPBACK_IFINDEX);
}
