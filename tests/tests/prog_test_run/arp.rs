//! ARP requests, replies, probes and gratuitous ARP, and which senders are
//! answered.
use super::*;

#[test]
fn arp_request_is_answered_on_every_vlan_stack() {
    let responder = responder();
    for vlan in [Vlan::Untagged, DOT1Q, QINQ] {
        let (request, reply) = arp_request_and_reply(vlan);
        assert_answers(&responder, &request, &reply);
        assert_eq!(
            stats(&responder, key4(vlan, VIP4)),
            counted(1, 1, 0),
            "{vlan:?}"
        );
    }
}

#[test]
fn arp_reply_keeps_ethernet_padding() {
    let responder = responder();
    let (mut request, mut reply) = arp_request_and_reply(Vlan::Untagged);
    let padding = [0x5a; 18];
    request.extend_from_slice(&padding);
    reply.extend_from_slice(&padding);
    assert_answers(&responder, &request, &reply);
}

#[test]
fn arp_request_unicast_to_our_mac_is_answered() {
    let responder = responder();
    let eth = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth);
    let reply =
        Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4).frame(&eth.with_addrs(PEER_MAC, OUR_MAC));
    assert_answers(&responder, &request, &reply);
}

#[test]
fn arp_probe_is_answered_to_the_unspecified_address() {
    let responder = responder();
    let probe = Arp::probe(PEER_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, [0; 4])
        .frame(&broadcast(Vlan::Untagged).with_addrs(PEER_MAC, OUR_MAC));
    assert_answers(&responder, &probe, &reply);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(1, 1, 0)
    );
}

#[test]
fn arp_for_vips_not_owned_in_this_scope_passes() {
    let responder = responder();
    let other_ip = Arp::request(PEER_MAC, PEER4, OTHER4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &other_ip, LOOPBACK_IFINDEX);
    let scoped_elsewhere =
        Arp::request(PEER_MAC, PEER4, ELSEWHERE4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &scoped_elsewhere, LOOPBACK_IFINDEX);
    let (other_vlan, _) = arp_request_and_reply(Vlan::Dot1Q(101));
    assert_passes(&responder, &other_vlan, LOOPBACK_IFINDEX);
    let (other_inner, _) = arp_request_and_reply(Vlan::QinQ {
        outer: 200,
        inner: 301,
    });
    assert_passes(&responder, &other_inner, LOOPBACK_IFINDEX);
    for vlan in [Vlan::Untagged, DOT1Q, QINQ] {
        assert_eq!(stats(&responder, key4(vlan, VIP4)), VipStats::default());
    }
}

#[test]
fn arp_unicast_to_another_host_passes_uncounted() {
    let responder = responder();
    let eth = Ethernet {
        dst: OTHER_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth);
    assert_passes(&responder, &request, LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        VipStats::default()
    );
}

#[test]
fn gratuitous_arp_passes_and_counts_a_conflict_from_another_mac() {
    let responder = responder();
    let theirs = Arp::gratuitous(OTHER_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &theirs, LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(0, 0, 1)
    );
    let own = Arp::gratuitous(OUR_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &own, LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(0, 0, 1)
    );
}

#[test]
fn arp_reply_claiming_our_vip_passes_and_counts_a_conflict() {
    let responder = responder();
    let claim = Arp::reply(OTHER_MAC, VIP4, BROADCAST_MAC, VIP4).frame(&broadcast(DOT1Q));
    assert_passes(&responder, &claim, LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key4(DOT1Q, VIP4)), counted(0, 0, 1));
    let own = Arp::reply(OUR_MAC, VIP4, BROADCAST_MAC, VIP4).frame(&broadcast(DOT1Q));
    assert_passes(&responder, &own, LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key4(DOT1Q, VIP4)), counted(0, 0, 1));
}

#[test]
fn arp_request_from_a_group_or_zero_hardware_address_passes_uncounted() {
    let responder = responder();
    for sha in [BROADCAST_MAC, [0x01, 0, 0x5e, 0, 0, 1], [0; 6]] {
        for request in [
            Arp::request(sha, PEER4, VIP4),
            Arp::probe(sha, VIP4),
            Arp::gratuitous(sha, VIP4),
        ] {
            assert_passes(
                &responder,
                &request.frame(&broadcast(Vlan::Untagged)),
                LOOPBACK_IFINDEX,
            );
        }
    }
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        VipStats::default()
    );
}

#[test]
fn arp_request_from_a_martian_sender_passes_uncounted() {
    let responder = responder();
    for spa in [[224, 0, 0, 1], [239, 1, 2, 3], [255; 4], [127, 0, 0, 1]] {
        let request = Arp::request(PEER_MAC, spa, VIP4).frame(&broadcast(QINQ));
        assert_passes(&responder, &request, LOOPBACK_IFINDEX);
    }
    assert_eq!(stats(&responder, key4(QINQ, VIP4)), VipStats::default());
    // Not martians: "this network" and class E senders are answered.
    for spa in [[0, 1, 2, 3], [240, 0, 0, 1]] {
        let request = Arp::request(PEER_MAC, spa, VIP4).frame(&broadcast(QINQ));
        let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, spa)
            .frame(&broadcast(QINQ).with_addrs(PEER_MAC, OUR_MAC));
        assert_answers(&responder, &request, &reply);
    }
}

#[test]
fn arp_request_from_our_vip_is_a_conflict_whatever_it_asks() {
    let mut responder = responder();
    responder
        .insert_vip(key4(Vlan::Untagged, OTHER4), ours())
        .expect("insert a second IPv4 VIP");
    // Another host asking, from our VIP, for our other VIP or for anyone.
    for tpa in [OTHER4, PEER4] {
        let request = Arp::request(OTHER_MAC, VIP4, tpa).frame(&broadcast(Vlan::Untagged));
        assert_passes(&responder, &request, LOOPBACK_IFINDEX);
    }
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(0, 0, 2)
    );
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, OTHER4)),
        VipStats::default()
    );
    // Our own MAC asking from our VIP (a looped-back request): no conflict.
    let own = Arp::request(OUR_MAC, VIP4, OTHER4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &own, LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(0, 0, 2)
    );
}

#[test]
fn arp_request_for_ieee802_hardware_is_answered_as_ethernet() {
    let responder = responder();
    let (mut request, reply) = arp_request_and_reply(DOT1Q);
    let htype_at = broadcast(DOT1Q).header_len();
    request[htype_at + 1] = 6;
    assert_answers(&responder, &request, &reply);
    request[htype_at + 1] = 2;
    assert_passes(&responder, &request, LOOPBACK_IFINDEX);
}
