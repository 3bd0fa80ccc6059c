//! The stale-agent gate and the yield after a conflict: what the program
//! does as the agent's heartbeat ages.
use super::*;

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
