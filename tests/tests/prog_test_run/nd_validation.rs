//! Solicitations the program must not answer: every RFC 4861 §7.1.1 rule
//! broken, and extension headers it walks or does not.
use super::*;

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
