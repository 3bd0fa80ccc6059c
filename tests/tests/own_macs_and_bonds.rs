//! BPF_PROG_TEST_RUN of the maps about the node's own interfaces, with
//! exact frames: claims from another of this node's MACs (`OWN_MACS`) are
//! neither conflicts nor yields, and frames a bond member receives answer
//! for VIPs keyed on the bond (`BOND_OF`). The bonding module is not
//! available here, so the member is loopback (a test run needs a real
//! ingress interface) and the bond an ifindex that only the maps know:
//! which is all the program sees of a bond in native mode, where the
//! kernel runs the bond's program on each member with the member's ifindex.

use responder_common::{AgentState, VipKey, VipStats, VipValue, VIP_FLAG_YIELDED};
use responder_model::frames::*;
use responder_tests::testrun::{
    monotonic_now_ns, LoadedResponder, LOOPBACK_IFINDEX, XDP_PASS, XDP_TX,
};

/// The MAC of another NIC of this node on the same segment.
const SECOND_NIC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xbb];
/// The bond loopback is a member of, as far as `BOND_OF` says.
const BOND_IFINDEX: u32 = 4343;
const SECOND: u64 = 1_000_000_000;
const STALE_AFTER: u64 = 30 * SECOND;
const YIELD_AFTER: u64 = 5 * SECOND;
const DOT1Q: Vlan = Vlan::Dot1Q(100);

fn ours() -> VipValue {
    VipValue {
        mac: OUR_MAC,
        ..VipValue::default()
    }
}

fn broadcast(vlan: Vlan) -> Ethernet {
    Ethernet {
        dst: BROADCAST_MAC,
        src: PEER_MAC,
        vlan,
    }
}

fn counted(requests: u64, replies: u64, conflicts: u64) -> VipStats {
    VipStats {
        requests,
        replies,
        conflicts,
        stale: 0,
    }
}

fn assert_passes_untouched(responder: &LoadedResponder, frame: &[u8], what: &str) {
    let (action, output) = responder.run(frame, LOOPBACK_IFINDEX);
    assert_eq!(action, XDP_PASS, "{what}: passed to the kernel");
    assert_eq!(output, frame, "{what}: untouched");
}

fn assert_answers(responder: &LoadedResponder, request: &[u8], expected: &[u8], what: &str) {
    let (action, output) = responder.run(request, LOOPBACK_IFINDEX);
    assert_eq!(action, XDP_TX, "{what}: answered with XDP_TX");
    assert_eq!(output, expected, "{what}: reply bytes");
}

/// The agent last beat between the yield delay and the stale bound: a
/// conflict now yields the VIP at once.
fn heartbeat_late_enough_to_yield(responder: &mut LoadedResponder) {
    responder
        .set_agent_state(AgentState {
            heartbeat_ns: monotonic_now_ns() - (YIELD_AFTER + STALE_AFTER) / 2,
            stale_after_ns: STALE_AFTER,
            yield_after_ns: YIELD_AFTER,
        })
        .expect("write the agent heartbeat");
}

/// Every kind of claim on VIP4 / VIP6 (untagged, on loopback) from `mac`.
fn claims_from(mac: [u8; 6]) -> Vec<(&'static str, Vec<u8>)> {
    let eth = Ethernet {
        dst: BROADCAST_MAC,
        src: mac,
        vlan: Vlan::Untagged,
    };
    let na_eth = Ethernet {
        dst: ALL_NODES_MAC,
        ..eth
    };
    let tlla = link_addr_option(ND_OPT_TARGET_LL_ADDR, mac);
    vec![
        ("gratuitous ARP", Arp::gratuitous(mac, VIP4).frame(&eth)),
        (
            "ARP reply",
            Arp::reply(mac, VIP4, BROADCAST_MAC, VIP4).frame(&eth),
        ),
        (
            "NA with a TLLA",
            Nd::advertisement(VIP6, ALL_NODES6, VIP6, NA_FLAG_OVERRIDE, vec![tlla]).frame(&na_eth),
        ),
        (
            "NA without a TLLA (the Ethernet source is advertised)",
            Nd::advertisement(VIP6, ALL_NODES6, VIP6, NA_FLAG_OVERRIDE, vec![]).frame(&na_eth),
        ),
    ]
}

fn own_mac_responder() -> (LoadedResponder, VipKey, VipKey) {
    let mut responder = LoadedResponder::load().expect("load the XDP program");
    let key4 = VipKey::v4(LOOPBACK_IFINDEX, 0, 0, VIP4);
    let key6 = VipKey::v6(LOOPBACK_IFINDEX, 0, 0, VIP6);
    responder.insert_vip(key4, ours()).expect("insert VIP4");
    responder.insert_vip(key6, ours()).expect("insert VIP6");
    responder
        .add_own_mac(SECOND_NIC_MAC)
        .expect("add the second NIC's MAC");
    heartbeat_late_enough_to_yield(&mut responder);
    (responder, key4, key6)
}

#[test]
fn claims_from_another_mac_of_this_node_are_no_conflict_and_yield_nothing() {
    let (responder, key4, key6) = own_mac_responder();
    for (what, claim) in claims_from(SECOND_NIC_MAC) {
        assert_passes_untouched(&responder, &claim, what);
    }
    for key in [key4, key6] {
        assert_eq!(
            responder.stats(&key).expect("counters"),
            VipStats::default()
        );
        assert_eq!(
            responder.vip(&key).expect("VIP entry").flags,
            ours().flags,
            "not yielded"
        );
    }
    // Still answered, by the VIP's own MAC.
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&broadcast(Vlan::Untagged));
    let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4)
        .frame(&broadcast(Vlan::Untagged).with_addrs(PEER_MAC, OUR_MAC));
    assert_answers(&responder, &request, &reply, "ARP request after the claims");
}

#[test]
fn claims_from_a_foreign_mac_still_conflict_and_yield() {
    let (responder, key4, key6) = own_mac_responder();
    for (what, claim) in claims_from(OTHER_MAC) {
        assert_passes_untouched(&responder, &claim, what);
    }
    assert_eq!(responder.stats(&key4).expect("counters"), counted(0, 0, 2));
    assert_eq!(responder.stats(&key6).expect("counters"), counted(0, 0, 2));
    for key in [key4, key6] {
        assert_eq!(
            responder.vip(&key).expect("VIP entry").flags,
            VIP_FLAG_YIELDED,
            "{key:?} yielded to the foreign claimant"
        );
    }
}

fn bond_responder() -> LoadedResponder {
    let mut responder = LoadedResponder::load().expect("load the XDP program");
    for key in [
        VipKey::v4(BOND_IFINDEX, 0, 0, VIP4),
        VipKey::v6(BOND_IFINDEX, 100, 0, VIP6),
        // Keyed on the member itself: a member's frames belong to its bond.
        VipKey::v4(LOOPBACK_IFINDEX, 0, 0, OTHER4),
    ] {
        responder.insert_vip(key, ours()).expect("insert VIP");
    }
    responder
        .add_bond_member(LOOPBACK_IFINDEX, BOND_IFINDEX)
        .expect("map the member to its bond");
    responder
}

#[test]
fn vips_keyed_on_a_bond_answer_frames_a_member_receives() {
    let responder = bond_responder();
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&broadcast(Vlan::Untagged));
    let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4)
        .frame(&broadcast(Vlan::Untagged).with_addrs(PEER_MAC, OUR_MAC));
    // XDP_TX sends the reply out of the interface the request came in on:
    // the member.
    assert_answers(&responder, &request, &reply, "ARP on a member");

    let (group, group_mac) = solicited_node_group(VIP6);
    let eth = Ethernet {
        dst: group_mac,
        src: PEER_MAC,
        vlan: DOT1Q,
    };
    let ns = Nd::solicitation(
        PEER6,
        group,
        VIP6,
        vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC)],
    );
    let na = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    assert_answers(&responder, &ns.frame(&eth), &na, "NS on a member, VLAN 100");

    let bond4 = VipKey::v4(BOND_IFINDEX, 0, 0, VIP4);
    let bond6 = VipKey::v6(BOND_IFINDEX, 100, 0, VIP6);
    assert_eq!(responder.stats(&bond4).expect("counters"), counted(1, 1, 0));
    assert_eq!(responder.stats(&bond6).expect("counters"), counted(1, 1, 0));
}

#[test]
fn conflicts_seen_on_a_member_count_on_the_bond() {
    let responder = bond_responder();
    let claim = Arp::gratuitous(OTHER_MAC, VIP4).frame(&Ethernet {
        dst: BROADCAST_MAC,
        src: OTHER_MAC,
        vlan: Vlan::Untagged,
    });
    assert_passes_untouched(&responder, &claim, "foreign gratuitous ARP on a member");
    let bond4 = VipKey::v4(BOND_IFINDEX, 0, 0, VIP4);
    assert_eq!(responder.stats(&bond4).expect("counters"), counted(0, 0, 1));
}

#[test]
fn a_members_own_ifindex_no_longer_scopes_vips() {
    let responder = bond_responder();
    let request = Arp::request(PEER_MAC, PEER4, OTHER4).frame(&broadcast(Vlan::Untagged));
    assert_passes_untouched(&responder, &request, "VIP keyed on the member");
    let member = VipKey::v4(LOOPBACK_IFINDEX, 0, 0, OTHER4);
    assert_eq!(
        responder.stats(&member).expect("counters"),
        VipStats::default()
    );
}
