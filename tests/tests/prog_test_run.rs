//! The XDP program run on single frames with BPF_PROG_TEST_RUN: every reply
//! is compared byte for byte with one built independently in `frames`.
//! Needs root (CAP_BPF + CAP_NET_ADMIN), as CI has.

use responder_common::{
    AgentState, VipKey, VipStats, VipValue, COUNTER_SLOTS, NO_COUNTER_SLOT, VIP_FLAG_YIELDED,
};
use responder_model::frames::*;
use responder_tests::testrun::{
    monotonic_now_ns, LoadedResponder, LOOPBACK_IFINDEX, XDP_PASS, XDP_TX,
};

/// Another interface. BPF_PROG_TEST_RUN needs the ingress interface to
/// exist, so frames always arrive on loopback and VIPs are scoped here.
const OTHER_IFINDEX: u32 = 4242;
/// An address that is a VIP only on OTHER_IFINDEX.
const ELSEWHERE4: [u8; 4] = [192, 0, 2, 20];
const ELSEWHERE6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];

const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

const DOT1Q: Vlan = Vlan::Dot1Q(100);
const QINQ: Vlan = Vlan::QinQ {
    outer: 200,
    inner: 300,
};

fn key4(vlan: Vlan, addr: [u8; 4]) -> VipKey {
    let (outer, inner) = vlan.key_ids();
    VipKey::v4(LOOPBACK_IFINDEX, outer, inner, addr)
}

fn key6(vlan: Vlan, addr: [u8; 16]) -> VipKey {
    let (outer, inner) = vlan.key_ids();
    VipKey::v6(LOOPBACK_IFINDEX, outer, inner, addr)
}

fn ours() -> VipValue {
    VipValue {
        mac: OUR_MAC,
        ..VipValue::default()
    }
}

/// The program with VIP4 and VIP6 on loopback, untagged and on the DOT1Q and
/// QINQ stacks, and ELSEWHERE4/6 on OTHER_IFINDEX.
fn responder() -> LoadedResponder {
    let mut responder = LoadedResponder::load().expect("load the XDP program");
    insert_owned_vips(&mut responder);
    responder
}

/// The VIPs every case starts from: ours on the test interface in every
/// VLAN arrangement, and one of each family on another interface.
fn insert_owned_vips(responder: &mut LoadedResponder) {
    let elsewhere4 = VipKey::v4(OTHER_IFINDEX, 0, 0, ELSEWHERE4);
    let elsewhere6 = VipKey::v6(OTHER_IFINDEX, 0, 0, ELSEWHERE6);
    responder
        .insert_vip(elsewhere4, ours())
        .expect("insert IPv4 VIP elsewhere");
    responder
        .insert_vip(elsewhere6, ours())
        .expect("insert IPv6 VIP elsewhere");
    for vlan in [Vlan::Untagged, DOT1Q, QINQ] {
        responder
            .insert_vip(key4(vlan, VIP4), ours())
            .expect("insert IPv4 VIP");
        responder
            .insert_vip(key6(vlan, VIP6), ours())
            .expect("insert IPv6 VIP");
    }
}

fn stats(responder: &LoadedResponder, key: VipKey) -> VipStats {
    responder.stats(&key).expect("read VIP counters")
}

fn counted(requests: u64, replies: u64, conflicts: u64) -> VipStats {
    VipStats {
        requests,
        replies,
        conflicts,
        stale: 0,
    }
}

fn assert_answers(responder: &LoadedResponder, request: &[u8], expected: &[u8]) {
    let (action, output) = responder.run(request, LOOPBACK_IFINDEX);
    assert_eq!(action, XDP_TX, "request should be answered with XDP_TX");
    assert_eq!(output, expected, "reply bytes differ");
}

fn assert_passes(responder: &LoadedResponder, frame: &[u8], ifindex: u32) {
    let (action, output) = responder.run(frame, ifindex);
    assert_eq!(action, XDP_PASS, "frame should be passed");
    assert_eq!(output, frame, "passed frame must be untouched");
}

fn broadcast(vlan: Vlan) -> Ethernet {
    Ethernet {
        dst: BROADCAST_MAC,
        src: PEER_MAC,
        vlan,
    }
}

fn arp_request_and_reply(vlan: Vlan) -> (Vec<u8>, Vec<u8>) {
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&broadcast(vlan));
    let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4)
        .frame(&broadcast(vlan).with_addrs(PEER_MAC, OUR_MAC));
    (request, reply)
}

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

fn multicast_ns(vlan: Vlan) -> (Ethernet, Nd) {
    let (group, group_mac) = solicited_node_group(VIP6);
    // The SLLAO deliberately differs from the Ethernet source: the NA must
    // go to the SLLAO.
    let sllao = link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC);
    let eth = Ethernet {
        dst: group_mac,
        src: OTHER_MAC,
        vlan,
    };
    (eth, Nd::solicitation(PEER6, group, VIP6, vec![sllao]))
}

fn unicast_ns() -> (Ethernet, Nd) {
    let eth = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    (eth, Nd::solicitation(LINK_LOCAL6, VIP6, VIP6, vec![]))
}

fn dad_ns(options: Vec<Vec<u8>>) -> (Ethernet, Nd) {
    let (group, group_mac) = solicited_node_group(VIP6);
    let eth = Ethernet {
        dst: group_mac,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    (eth, Nd::solicitation(UNSPECIFIED6, group, VIP6, options))
}

#[test]
fn multicast_ns_is_answered_to_the_sllao() {
    let responder = responder();
    for vlan in [Vlan::Untagged, DOT1Q, QINQ] {
        let (eth, ns) = multicast_ns(vlan);
        let request = ns.frame(&eth);
        let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
        assert_eq!(reply.len(), request.len(), "same size: no resize needed");
        assert_answers(&responder, &request, &reply);
        assert_eq!(
            stats(&responder, key6(vlan, VIP6)),
            counted(1, 1, 0),
            "{vlan:?}"
        );
    }
}

#[test]
fn unicast_ns_without_options_grows_by_the_tlla() {
    let responder = responder();
    let (eth, ns) = unicast_ns();
    let request = ns.frame(&eth);
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, LINK_LOCAL6, true);
    assert_eq!(reply.len(), request.len() + 8);
    assert_answers(&responder, &request, &reply);
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        counted(1, 1, 0)
    );
}

#[test]
fn dad_ns_is_answered_to_all_nodes_without_s() {
    let responder = responder();
    for options in [vec![], vec![nonce_option([1, 2, 3, 4, 5, 6])]] {
        let (eth, ns) = dad_ns(options);
        let reply = expected_na(&eth, ALL_NODES_MAC, OUR_MAC, VIP6, ALL_NODES6, false);
        assert_answers(&responder, &ns.frame(&eth), &reply);
    }
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        counted(2, 2, 0)
    );
}

#[test]
fn ns_with_more_options_or_padding_shrinks_to_the_na() {
    let responder = responder();
    let (eth, mut ns) = multicast_ns(QINQ);
    ns.options.insert(0, nonce_option([9; 6]));
    ns.options
        .push(vec![200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    let request = ns.frame(&eth);
    assert_eq!(request.len(), reply.len() + 24);
    assert_answers(&responder, &request, &reply);

    let (eth, ns) = unicast_ns();
    let mut padded = ns.frame(&eth);
    padded.extend_from_slice(&[0; 30]);
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, LINK_LOCAL6, true);
    assert!(padded.len() > reply.len());
    assert_answers(&responder, &padded, &reply);
}

#[test]
fn ns_unicast_to_another_host_or_not_owned_passes() {
    let responder = responder();
    let (mut eth, ns) = unicast_ns();
    eth.dst = OTHER_MAC;
    assert_passes(&responder, &ns.frame(&eth), LOOPBACK_IFINDEX);
    let (eth, mut ns) = multicast_ns(Vlan::Untagged);
    ns.target = ELSEWHERE6;
    assert_passes(&responder, &ns.frame(&eth), LOOPBACK_IFINDEX);
    ns.target = OTHER6;
    assert_passes(&responder, &ns.frame(&eth), LOOPBACK_IFINDEX);
    let (eth, ns) = multicast_ns(Vlan::Dot1Q(101));
    assert_passes(&responder, &ns.frame(&eth), LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        VipStats::default()
    );
}

#[test]
fn na_claiming_our_vip_passes_and_counts_a_conflict() {
    let responder = responder();
    let eth = Ethernet {
        dst: ALL_NODES_MAC,
        src: OTHER_MAC,
        vlan: DOT1Q,
    };
    let tlla = |mac| link_addr_option(ND_OPT_TARGET_LL_ADDR, mac);
    let with_tlla = Nd::advertisement(
        OTHER6,
        ALL_NODES6,
        VIP6,
        NA_FLAG_OVERRIDE,
        vec![tlla(OTHER_MAC)],
    );
    assert_passes(&responder, &with_tlla.frame(&eth), LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), counted(0, 0, 1));
    // Without a TLLA the Ethernet source is what is advertised.
    let without_tlla = Nd::advertisement(OTHER6, ALL_NODES6, VIP6, NA_FLAG_OVERRIDE, vec![]);
    assert_passes(&responder, &without_tlla.frame(&eth), LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), counted(0, 0, 2));
    // Our own announcements are no conflict.
    let own = Nd::advertisement(
        VIP6,
        ALL_NODES6,
        VIP6,
        NA_FLAG_OVERRIDE,
        vec![tlla(OUR_MAC)],
    );
    assert_passes(
        &responder,
        &own.frame(&eth.with_addrs(ALL_NODES_MAC, OUR_MAC)),
        LOOPBACK_IFINDEX,
    );
    // An invalid NA proves nothing.
    let mut bad_hop_limit = with_tlla.clone();
    bad_hop_limit.hop_limit = 64;
    assert_passes(&responder, &bad_hop_limit.frame(&eth), LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), counted(0, 0, 2));
}

/// Valid solicitations for VIP6 broken in exactly one RFC 4861 §7.1.1 rule.
fn invalid_solicitations() -> Vec<(&'static str, Vec<u8>)> {
    let (eth, ns) = multicast_ns(Vlan::Untagged);
    let mut cases = Vec::new();

    let mut hop_limit = ns.clone();
    hop_limit.hop_limit = 254;
    cases.push(("hop limit 254", hop_limit.frame(&eth)));

    let mut bad_checksum = ns.frame(&eth);
    let checksum_at = eth.header_len() + 40 + 2;
    bad_checksum[checksum_at] ^= 0x01;
    cases.push(("bad checksum", bad_checksum));

    let mut code = ns.clone();
    code.code = 1;
    cases.push(("code 1", code.frame(&eth)));

    let short = with_icmpv6_checksum(ns.src, ns.dst, ns.icmpv6()[..16].to_vec());
    cases.push((
        "ICMPv6 length 16",
        eth.frame(ETH_P_IPV6, &ipv6_packet(ns.src, ns.dst, 255, 58, &short)),
    ));

    let mut multicast_target = ns.clone();
    multicast_target.target = ALL_NODES6;
    cases.push(("multicast target", multicast_target.frame(&eth)));

    let mut zero_length_option = ns.clone();
    zero_length_option
        .options
        .push(vec![ND_OPT_NONCE, 0, 0, 0, 0, 0, 0, 0]);
    cases.push(("zero-length option", zero_length_option.frame(&eth)));

    let mut long_sllao = ns.clone();
    long_sllao.options = vec![vec![
        ND_OPT_SOURCE_LL_ADDR,
        2,
        2,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]];
    cases.push(("SLLAO length 2", long_sllao.frame(&eth)));

    let mut multicast_source = ns.clone();
    multicast_source.src = ALL_NODES6;
    cases.push(("multicast source", multicast_source.frame(&eth)));

    let (dad_eth, dad) = dad_ns(vec![]);
    let mut dad_with_sllao = dad.clone();
    dad_with_sllao.options = vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC)];
    cases.push(("SLLAO from ::", dad_with_sllao.frame(&dad_eth)));
    let mut dad_to_all_nodes = dad.clone();
    dad_to_all_nodes.dst = ALL_NODES6;
    cases.push((
        "DAD to ff02::1",
        dad_to_all_nodes.frame(&dad_eth.with_addrs(ALL_NODES_MAC, PEER_MAC)),
    ));
    let mut dad_unicast = dad;
    dad_unicast.dst = VIP6;
    cases.push((
        "DAD to the target itself",
        dad_unicast.frame(&dad_eth.with_addrs(OUR_MAC, PEER_MAC)),
    ));

    let mut without_sllao = ns.clone();
    without_sllao.options.clear();
    cases.push(("multicast NS without SLLAO", without_sllao.frame(&eth)));

    let mut loopback_source = ns.clone();
    loopback_source.src = LOOPBACK6;
    cases.push(("source ::1", loopback_source.frame(&eth)));

    let mut elsewhere = ns.clone();
    elsewhere.dst = PEER6;
    cases.push((
        "NS to an address that is not the target",
        elsewhere.frame(&eth.with_addrs(OUR_MAC, OTHER_MAC)),
    ));
    let mut other_group = ns.clone();
    other_group.dst = solicited_node_group(OTHER6).0;
    cases.push((
        "NS to another solicited-node group",
        other_group.frame(&eth),
    ));

    for (what, options) in [
        ("Hop-by-Hop option to discard", vec![0x5e, 0, 1, 2, 0, 0]),
        ("Hop-by-Hop option to report", vec![0x9e, 0, 1, 2, 0, 0]),
        ("Hop-by-Hop PadN carrying data", vec![1, 4, 0, 0, 1, 0]),
        ("Hop-by-Hop padding run of 8", {
            let mut pad = vec![1, 4, 0, 0, 0, 0];
            pad.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            pad
        }),
        (
            "Hop-by-Hop Router Alert of length 4",
            vec![5, 4, 0, 0, 0, 0],
        ),
        (
            "Hop-by-Hop IOAM off its alignment",
            vec![0x31, 4, 0, 0, 0, 0],
        ),
        ("Hop-by-Hop Jumbo Payload", vec![0xc2, 4, 0, 1, 0, 0]),
        (
            "Hop-by-Hop option overrunning it",
            vec![0x1e, 5, 0, 0, 0, 0],
        ),
    ] {
        let mut with_header = ns.clone();
        with_header.hop_by_hop = Some(options);
        cases.push((what, with_header.frame(&eth)));
    }

    let mut option_overruns = ns.frame(&eth);
    let sllao_len_at = eth.header_len() + 40 + 24 + 1;
    option_overruns[sllao_len_at] = 3;
    cases.push(("option longer than the message", option_overruns));

    let mut not_version_6 = ns.frame(&eth);
    not_version_6[eth.header_len()] = 0x40;
    cases.push(("IP version 4 in an IPv6 ethertype", not_version_6));

    let mut payload_beyond_frame = ns.frame(&eth);
    let payload_len_at = eth.header_len() + 4;
    payload_beyond_frame[payload_len_at + 1] += 8;
    cases.push(("payload length beyond the frame", payload_beyond_frame));
    cases
}

#[test]
fn invalid_solicitations_pass_untouched_and_uncounted() {
    let mut responder = responder();
    // Owned, so that only the validity rule can be what rejects it.
    responder
        .insert_vip(key6(Vlan::Untagged, ALL_NODES6), ours())
        .expect("insert multicast VIP");
    for (what, frame) in invalid_solicitations() {
        let (action, output) = responder.run(&frame, LOOPBACK_IFINDEX);
        assert_eq!(action, XDP_PASS, "{what}: should pass");
        assert_eq!(output, frame, "{what}: must be untouched");
    }
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        VipStats::default()
    );
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, ALL_NODES6)),
        VipStats::default()
    );
}

#[test]
fn ns_behind_a_hop_by_hop_header_is_answered_without_it() {
    let responder = responder();
    for options in [
        HOP_BY_HOP_PADDING.to_vec(),
        HOP_BY_HOP_ROUTER_ALERT.to_vec(),
        // Unknown options to skip, IOAM where it is aligned, Pad1s.
        vec![0x1e, 0, 0x3f, 0, 0, 0],
        vec![0, 0, 0x31, 2, 0, 0, 0x1e, 4, 9, 9, 9, 9, 0, 0],
    ] {
        let (eth, mut ns) = multicast_ns(Vlan::Untagged);
        ns.hop_by_hop = Some(options.clone());
        let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
        let (action, output) = responder.run(&ns.frame(&eth), LOOPBACK_IFINDEX);
        assert_eq!(action, XDP_TX, "{options:?}: answered");
        assert_eq!(output, reply, "{options:?}: the NA carries no header");
    }
    let (dad_eth, mut dad) = dad_ns(vec![]);
    dad.hop_by_hop = Some(HOP_BY_HOP_PADDING.to_vec());
    let reply = expected_na(&dad_eth, ALL_NODES_MAC, OUR_MAC, VIP6, ALL_NODES6, false);
    assert_answers(&responder, &dad.frame(&dad_eth), &reply);
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        counted(5, 5, 0)
    );
}

/// On a kernel without `bpf_xdp_load_bytes` (before 5.18) the agent turns
/// the Hop-by-Hop walk off: the verifier drops it as dead code (so its
/// helper call never stops the program from loading there), solicitations
/// behind such a header pass to the kernel, and plain ones are answered.
#[test]
fn without_the_hop_by_hop_walk_such_solicitations_pass_and_the_walk_is_dead_code() {
    let walking = responder();
    let mut responder = LoadedResponder::load_without_hop_by_hop_walk().expect("load the program");
    insert_owned_vips(&mut responder);
    assert!(
        responder.translated_size().expect("size") < walking.translated_size().expect("size"),
        "the verifier kept the walk"
    );
    let (eth, mut ns) = multicast_ns(Vlan::Untagged);
    let plain = ns.frame(&eth);
    ns.hop_by_hop = Some(HOP_BY_HOP_PADDING.to_vec());
    assert_passes(&responder, &ns.frame(&eth), LOOPBACK_IFINDEX);
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    assert_answers(&responder, &plain, &reply);
}

/// Valid solicitations behind headers Linux walks and the program does not
/// (its verifier budget): passed, one of the kernel oracle's intended
/// differences.
#[test]
fn ns_behind_headers_the_program_does_not_walk_passes() {
    let responder = responder();
    let (eth, ns) = multicast_ns(Vlan::Untagged);
    let mut long = ns.clone();
    let mut options = vec![0x1e, 20];
    options.extend_from_slice(&[0; 20]);
    long.hop_by_hop = Some(options);
    let mut destination_options = ns.frame(&eth);
    destination_options[eth.header_len() + 6] = 60;
    let icmpv6_at = eth.header_len() + 40;
    destination_options.splice(icmpv6_at..icmpv6_at, [58, 0, 1, 4, 0, 0, 0, 0]);
    destination_options[eth.header_len() + 5] += 8;
    for frame in [long.frame(&eth), destination_options] {
        assert_passes(&responder, &frame, LOOPBACK_IFINDEX);
    }
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        VipStats::default()
    );
}

#[test]
fn ns_to_all_nodes_or_the_target_is_answered() {
    let responder = responder();
    let (eth, mut ns) = multicast_ns(DOT1Q);
    ns.dst = ALL_NODES6;
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    assert_answers(
        &responder,
        &ns.frame(&eth.with_addrs(ALL_NODES_MAC, OTHER_MAC)),
        &reply,
    );
    ns.dst = VIP6;
    assert_answers(
        &responder,
        &ns.frame(&eth.with_addrs(OUR_MAC, OTHER_MAC)),
        &reply,
    );
}

#[test]
fn ns_from_our_own_vip_is_answered_only_to_its_sllao() {
    let mut responder = responder();
    responder
        .insert_vip(key6(Vlan::Untagged, OTHER6), ours())
        .expect("insert a second IPv6 VIP");
    let eth = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    // Without a link-layer address the answer would go to our own address.
    let bare = Nd::solicitation(OTHER6, VIP6, VIP6, vec![]);
    assert_passes(&responder, &bare.frame(&eth), LOOPBACK_IFINDEX);
    let sllao = link_addr_option(ND_OPT_SOURCE_LL_ADDR, OTHER_MAC);
    let with_sllao = Nd::solicitation(OTHER6, VIP6, VIP6, vec![sllao]);
    let reply = expected_na(&eth, OTHER_MAC, OUR_MAC, VIP6, OTHER6, true);
    assert_answers(&responder, &with_sllao.frame(&eth), &reply);
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        counted(1, 1, 0)
    );
}

#[test]
fn only_the_first_sllao_counts() {
    let responder = responder();
    let (eth, mut ns) = multicast_ns(Vlan::Untagged);
    let mut long_sllao = vec![ND_OPT_SOURCE_LL_ADDR, 2];
    long_sllao.extend_from_slice(&[0; 14]);
    ns.options.push(long_sllao);
    ns.options
        .push(link_addr_option(ND_OPT_SOURCE_LL_ADDR, OTHER_MAC));
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    assert_answers(&responder, &ns.frame(&eth), &reply);
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

const SECOND_NS: u64 = 1_000_000_000;
const STALE_AFTER_NS: u64 = 10 * SECOND_NS;
const YIELD_AFTER_NS: u64 = 2 * SECOND_NS;
/// An 802.1Q-tagged Ethernet header.
const DOT1Q_HEADER_LEN: usize = 18;

/// Tells the program the agent last beat `age_ns` ago. The ages used are
/// whole seconds away from both limits, so the time a test takes cannot
/// move them across one.
fn heartbeat(responder: &mut LoadedResponder, age_ns: u64) {
    let now = monotonic_now_ns();
    assert!(
        now > age_ns,
        "the monotonic clock must be past {age_ns} ns since boot"
    );
    responder
        .set_agent_state(AgentState {
            heartbeat_ns: now - age_ns,
            stale_after_ns: STALE_AFTER_NS,
            yield_after_ns: YIELD_AFTER_NS,
        })
        .expect("write the agent heartbeat");
}

/// `requests` valid requests seen and not answered, and `conflicts`.
fn unanswered(requests: u64, conflicts: u64) -> VipStats {
    VipStats {
        requests,
        replies: 0,
        conflicts,
        stale: requests,
    }
}

fn flags(responder: &LoadedResponder, key: VipKey) -> u32 {
    responder.vip(&key).expect("read the VIP entry").flags
}

fn ns_and_na(vlan: Vlan) -> (Vec<u8>, Vec<u8>) {
    let (eth, ns) = multicast_ns(vlan);
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    (ns.frame(&eth), reply)
}

fn foreign_na(vlan: Vlan) -> Vec<u8> {
    let eth = Ethernet {
        dst: ALL_NODES_MAC,
        src: OTHER_MAC,
        vlan,
    };
    Nd::advertisement(
        OTHER6,
        ALL_NODES6,
        VIP6,
        NA_FLAG_OVERRIDE,
        vec![link_addr_option(ND_OPT_TARGET_LL_ADDR, OTHER_MAC)],
    )
    .frame(&eth)
}

#[test]
fn fresh_heartbeat_answers_as_before() {
    let mut responder = responder();
    heartbeat(&mut responder, 0);
    let (arp_request, arp_reply) = arp_request_and_reply(Vlan::Untagged);
    assert_answers(&responder, &arp_request, &arp_reply);
    let (ns, na) = ns_and_na(QINQ);
    assert_answers(&responder, &ns, &na);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(1, 1, 0)
    );
    assert_eq!(stats(&responder, key6(QINQ, VIP6)), counted(1, 1, 0));
}

#[test]
fn heartbeat_written_after_the_program_read_the_clock_is_fresh() {
    let mut responder = responder();
    let now = monotonic_now_ns();
    responder
        .set_agent_state(AgentState {
            heartbeat_ns: now + 60 * SECOND_NS,
            stale_after_ns: STALE_AFTER_NS,
            yield_after_ns: YIELD_AFTER_NS,
        })
        .expect("write the agent heartbeat");
    let (request, reply) = arp_request_and_reply(DOT1Q);
    assert_answers(&responder, &request, &reply);
    let conflict = Arp::gratuitous(OTHER_MAC, VIP4).frame(&broadcast(DOT1Q));
    assert_passes(&responder, &conflict, LOOPBACK_IFINDEX);
    assert_eq!(flags(&responder, key4(DOT1Q, VIP4)), 0, "not yielded");
}

#[test]
fn stale_heartbeat_passes_requests_untouched_until_the_agent_is_back() {
    let mut responder = responder();
    heartbeat(&mut responder, 3 * STALE_AFTER_NS);
    let (arp_request, arp_reply) = arp_request_and_reply(Vlan::Untagged);
    assert_passes(&responder, &arp_request, LOOPBACK_IFINDEX);
    let (ns, na) = ns_and_na(DOT1Q);
    assert_passes(&responder, &ns, LOOPBACK_IFINDEX);
    let (dad_eth, dad) = dad_ns(vec![]);
    assert_passes(&responder, &dad.frame(&dad_eth), LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        unanswered(1, 0)
    );
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), unanswered(1, 0));
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        unanswered(1, 0)
    );
    // Traffic that is no valid request for a VIP is none of the gate's
    // business: not counted as stale.
    let not_owned = Arp::request(PEER_MAC, PEER4, OTHER4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &not_owned, LOOPBACK_IFINDEX);
    let mut bad_checksum = ns.clone();
    let checksum_at = DOT1Q_HEADER_LEN + 40 + 2;
    bad_checksum[checksum_at] ^= 0x01;
    assert_passes(&responder, &bad_checksum, LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), unanswered(1, 0));

    // An agent restarted in time resumes where it left off.
    heartbeat(&mut responder, 0);
    assert_answers(&responder, &arp_request, &arp_reply);
    assert_answers(&responder, &ns, &na);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        VipStats {
            requests: 2,
            replies: 1,
            conflicts: 0,
            stale: 1,
        }
    );
}

#[test]
fn yielded_vip_passes_while_other_vips_are_answered() {
    let mut responder = responder();
    heartbeat(&mut responder, 0);
    let yielded = VipValue {
        flags: VIP_FLAG_YIELDED,
        ..ours()
    };
    responder
        .insert_vip(key4(Vlan::Untagged, VIP4), yielded)
        .expect("insert yielded IPv4 VIP");
    responder
        .insert_vip(key6(Vlan::Untagged, VIP6), yielded)
        .expect("insert yielded IPv6 VIP");
    let (arp_request, _) = arp_request_and_reply(Vlan::Untagged);
    assert_passes(&responder, &arp_request, LOOPBACK_IFINDEX);
    let (ns, _) = ns_and_na(Vlan::Untagged);
    assert_passes(&responder, &ns, LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        unanswered(1, 0)
    );
    assert_eq!(
        stats(&responder, key6(Vlan::Untagged, VIP6)),
        unanswered(1, 0)
    );
    let (tagged_request, tagged_reply) = arp_request_and_reply(DOT1Q);
    assert_answers(&responder, &tagged_request, &tagged_reply);
    let (tagged_ns, tagged_na) = ns_and_na(DOT1Q);
    assert_answers(&responder, &tagged_ns, &tagged_na);
}

#[test]
fn conflict_with_a_recent_heartbeat_is_counted_but_not_yielded() {
    let mut responder = responder();
    // No agent heartbeat at all: the gate is off, nothing yields.
    let gratuitous = Arp::gratuitous(OTHER_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &gratuitous, LOOPBACK_IFINDEX);
    assert_eq!(flags(&responder, key4(Vlan::Untagged, VIP4)), 0);

    heartbeat(&mut responder, YIELD_AFTER_NS / 2);
    assert_passes(&responder, &gratuitous, LOOPBACK_IFINDEX);
    let claim = Arp::reply(OTHER_MAC, VIP4, BROADCAST_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &claim, LOOPBACK_IFINDEX);
    let na = foreign_na(DOT1Q);
    assert_passes(&responder, &na, LOOPBACK_IFINDEX);
    assert_eq!(flags(&responder, key4(Vlan::Untagged, VIP4)), 0);
    assert_eq!(flags(&responder, key6(DOT1Q, VIP6)), 0);

    let (arp_request, arp_reply) = arp_request_and_reply(Vlan::Untagged);
    assert_answers(&responder, &arp_request, &arp_reply);
    let (ns, na_reply) = ns_and_na(DOT1Q);
    assert_answers(&responder, &ns, &na_reply);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        counted(1, 1, 3)
    );
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), counted(1, 1, 1));
}

#[test]
fn conflict_after_the_yield_delay_yields_that_vip_at_once() {
    let mut responder = responder();
    heartbeat(&mut responder, (YIELD_AFTER_NS + STALE_AFTER_NS) / 2);
    // Our own announcement is no conflict and yields nothing.
    let own = Arp::gratuitous(OUR_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &own, LOOPBACK_IFINDEX);
    assert_eq!(flags(&responder, key4(Vlan::Untagged, VIP4)), 0);
    let (arp_request, arp_reply) = arp_request_and_reply(Vlan::Untagged);
    assert_answers(&responder, &arp_request, &arp_reply);

    let before = responder
        .vip(&key4(Vlan::Untagged, VIP4))
        .expect("read the VIP entry");
    let gratuitous = Arp::gratuitous(OTHER_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
    assert_passes(&responder, &gratuitous, LOOPBACK_IFINDEX);
    assert_eq!(
        responder
            .vip(&key4(Vlan::Untagged, VIP4))
            .expect("read the VIP entry"),
        VipValue {
            flags: VIP_FLAG_YIELDED,
            ..before
        },
        "the yield flag is all the data plane changes"
    );
    assert_passes(&responder, &arp_request, LOOPBACK_IFINDEX);
    assert_eq!(
        stats(&responder, key4(Vlan::Untagged, VIP4)),
        VipStats {
            requests: 2,
            replies: 1,
            conflicts: 1,
            stale: 1,
        }
    );

    let claim = Arp::reply(OTHER_MAC, VIP4, BROADCAST_MAC, VIP4).frame(&broadcast(QINQ));
    assert_passes(&responder, &claim, LOOPBACK_IFINDEX);
    assert_eq!(flags(&responder, key4(QINQ, VIP4)), VIP_FLAG_YIELDED);
    let (qinq_request, _) = arp_request_and_reply(QINQ);
    assert_passes(&responder, &qinq_request, LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key4(QINQ, VIP4)), unanswered(1, 1));

    assert_passes(&responder, &foreign_na(DOT1Q), LOOPBACK_IFINDEX);
    assert_eq!(flags(&responder, key6(DOT1Q, VIP6)), VIP_FLAG_YIELDED);
    let (ns, _) = ns_and_na(DOT1Q);
    assert_passes(&responder, &ns, LOOPBACK_IFINDEX);
    assert_eq!(stats(&responder, key6(DOT1Q, VIP6)), unanswered(1, 1));

    // VIPs nobody else claimed are still answered.
    let (tagged_request, tagged_reply) = arp_request_and_reply(DOT1Q);
    assert_answers(&responder, &tagged_request, &tagged_reply);
    let (untagged_ns, untagged_na) = ns_and_na(Vlan::Untagged);
    assert_answers(&responder, &untagged_ns, &untagged_na);
    assert_eq!(flags(&responder, key4(DOT1Q, VIP4)), 0);
}

#[test]
fn each_vip_counts_in_its_own_slot() {
    let responder = responder();
    let (request, reply) = arp_request_and_reply(DOT1Q);
    assert_answers(&responder, &request, &reply);
    let (ns, na) = ns_and_na(QINQ);
    assert_answers(&responder, &ns, &na);
    assert_answers(&responder, &ns, &na);
    let counted_slots: Vec<(u32, VipStats)> = (0..8)
        .map(|slot| (slot, responder.slot_stats(slot).expect("read a slot")))
        .filter(|(_, counters)| *counters != VipStats::default())
        .collect();
    let slot_of = |key| {
        responder
            .vip(&key)
            .expect("read the VIP entry")
            .counter_slot
    };
    assert_eq!(
        counted_slots,
        vec![
            (slot_of(key4(DOT1Q, VIP4)), counted(1, 1, 0)),
            (slot_of(key6(QINQ, VIP6)), counted(2, 2, 0)),
        ],
        "only the slots of the two VIPs asked for moved"
    );
}

#[test]
fn a_vip_without_a_counter_slot_is_answered_and_counted_nowhere() {
    let mut responder = responder();
    for slot in [NO_COUNTER_SLOT, COUNTER_SLOTS as u32] {
        for key in [key4(Vlan::Untagged, VIP4), key6(Vlan::Untagged, VIP6)] {
            responder
                .insert_vip_as_is(
                    key,
                    VipValue {
                        counter_slot: slot,
                        ..ours()
                    },
                )
                .expect("insert a VIP without counters");
        }
        let (request, reply) = arp_request_and_reply(Vlan::Untagged);
        assert_answers(&responder, &request, &reply);
        let (ns, na) = ns_and_na(Vlan::Untagged);
        assert_answers(&responder, &ns, &na);
        let gratuitous = Arp::gratuitous(OTHER_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
        assert_passes(&responder, &gratuitous, LOOPBACK_IFINDEX);
        for counter_slot in 0..8 {
            assert_eq!(
                responder.slot_stats(counter_slot).expect("read a slot"),
                VipStats::default(),
                "slot {counter_slot} moved for a VIP in slot {slot}"
            );
        }
    }
}
