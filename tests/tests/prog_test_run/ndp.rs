//! Neighbor solicitations answered (multicast, unicast, DAD, all-nodes) and
//! advertisements claiming our VIPs.
use super::*;

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
