//! Who owns web as Leases come, go and declare roles: failover, the hand-over pause, agents from before roles.

use super::*;

#[test]
fn takes_over_when_the_owner_stops_renewing() {
    let mut h = Harness::new(loser());
    assert_eq!(h.assigner.health, Health::Healthy);
    assert!(
        !h.owns_web(),
        "{} wins the hash while both are live",
        winner()
    );
    h.renew(loser(), 2, 300);
    h.renew(loser(), 3, 600);
    h.renew(winner(), 2, 700);
    h.renew(loser(), 4, 900);
    h.evaluate(1_100);
    assert!(
        !h.owns_web(),
        "the winner renewed at 700 ms and is live until 1700 ms"
    );
    h.renew(loser(), 5, 1_200);
    h.renew(loser(), 6, 1_500);
    h.evaluate(1_700);
    assert!(h.owns_web(), "the winner expired at 1700 ms");
    match h.event_queue.try_recv() {
        Ok(OwnershipEvent::Started { ips, .. }) => {
            assert_eq!(ips, ["192.0.2.1".parse::<std::net::IpAddr>().expect("ip")])
        }
        other => panic!("expected AnnouncingStarted, got {other:?}"),
    }
}

/// A planned move: the owner stays a member that could keep the address
/// (here it stands by), so the node taking it waits for the owner to
/// withdraw; had the owner died, it would take it at once (above).
#[test]
fn an_address_taken_from_an_owner_that_could_keep_it_is_answered_after_the_pause() {
    let pause = ClusterSettings::DEFAULT_HANDOVER_PAUSE.as_millis() as u64;
    let mut h = Harness::new(loser());
    assert!(!h.owns_web());
    h.declare(loser(), "announcer", 2, 200);
    h.declare(winner(), "standby", 2, 300);
    assert_eq!(
        h.assigner.assignments[&svc("default", "web")]
            .owner
            .as_deref(),
        Some(loser()),
        "an announcer goes before a standby"
    );
    assert!(!h.owns_web(), "the standby may still answer: not yet");
    assert_eq!(
        h.assigner.next_wake(h.start + Duration::from_millis(300)),
        Some(h.start + Duration::from_millis(300 + pause)),
        "woken when the pause ends"
    );
    h.evaluate(300 + pause - 1);
    assert!(!h.owns_web());
    h.evaluate(300 + pause);
    assert!(h.owns_web(), "answered once the pause is over");
}

/// While an agent from before roles is live it counts everyone as an
/// announcer, and ownership here must agree with it: roles decide only once
/// every live member declares one (a downgrade, or the start of an upgrade).
#[test]
fn roles_decide_no_owner_while_an_agent_from_before_roles_is_live() {
    let mut h = Harness::new(winner());
    assert!(h.owns_web());
    h.declare(winner(), "standby", 2, 200);
    assert!(
        h.owns_web(),
        "{} predates roles and sees {} announce: so does {}",
        loser(),
        winner(),
        winner()
    );
    h.declare(loser(), "announcer", 2, 300);
    assert!(
        !h.owns_web(),
        "every member declares a role: the announcer goes before the standby"
    );
}

#[test]
fn the_owner_dying_during_the_pause_ends_it() {
    let mut h = Harness::new(loser());
    // A pause longer than the owner's Lease, to see its expiry end it.
    h.assigner.handovers = Handovers::new(Duration::from_secs(5));
    h.declare(loser(), "announcer", 2, 200);
    h.declare(winner(), "standby", 2, 300);
    for (renewal, at_ms) in [(3, 600), (4, 900), (5, 1_200)] {
        h.declare(loser(), "announcer", renewal, at_ms);
        assert!(!h.owns_web(), "pausing at {at_ms} ms");
    }
    h.evaluate(1_299);
    assert!(!h.owns_web());
    h.evaluate(1_300);
    assert!(
        h.owns_web(),
        "the standby's Lease expired (seen at 300 ms, one second long): a failover"
    );
}
