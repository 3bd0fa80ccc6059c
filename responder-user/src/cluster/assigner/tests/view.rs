//! A broken view freezes ownership; a restart keeps it.

use super::*;

#[test]
fn a_broken_view_freezes_ownership_until_it_recovers() {
    let mut h = Harness::new(loser());
    h.renew(loser(), 2, 300);
    // Nothing arrives any more, not even our own renewals: by 800 ms our view
    // is broken, before the winner (seen at 0 ms) could expire at 1000 ms.
    h.evaluate(800);
    assert!(
        matches!(h.assigner.health, Health::Frozen { .. }),
        "{:?}",
        h.assigner.health
    );
    h.evaluate(5_000);
    assert!(!h.owns_web(), "a frozen assigner must not take over");

    // Recovery: every member gets two lease durations (a holder retries a
    // failed renewal once per duration, so its first may come late).
    h.renew(loser(), 3, 5_000);
    assert_eq!(h.assigner.health, Health::Healthy);
    assert!(!h.owns_web(), "the winner is given time to show a renewal");
    h.renew(loser(), 4, 5_400);
    h.renew(loser(), 5, 5_800);
    h.evaluate(6_000);
    assert!(
        !h.owns_web(),
        "one duration after recovery the winner may still be retrying"
    );
    h.renew(loser(), 6, 6_200);
    h.renew(loser(), 7, 6_600);
    h.renew(loser(), 8, 6_900);
    h.evaluate(7_000);
    assert!(
        h.owns_web(),
        "the winner stayed silent for two lease durations after recovery"
    );
}

#[test]
fn a_failing_lease_watch_freezes_and_the_owner_keeps_its_vips() {
    let mut h = Harness::new(winner());
    assert!(h.owns_web());
    let at = h.start + Duration::from_millis(100);
    h.assigner
        .apply(Update::Leases(Err(watcher::Error::NoResourceVersion)), at);
    h.assigner.evaluate(at);
    assert!(
        matches!(h.assigner.health, Health::Frozen { .. }),
        "{:?}",
        h.assigner.health
    );
    h.evaluate(10_000);
    assert!(
        h.owns_web(),
        "fail-static: keep announcing while the view is broken"
    );
    h.renew(winner(), 2, 10_000);
    assert_eq!(h.assigner.health, Health::Healthy);
    assert!(h.owns_web());
}

#[test]
fn a_restarted_owner_keeps_its_services_without_an_event() {
    let mut h = Harness::restarted(winner(), &["192.0.2.1"]);
    assert!(h.owns_web());
    assert!(
        h.event_queue.try_recv().is_err(),
        "nothing started: the node answered for web before the restart"
    );
    let mut fresh = Harness::new(winner());
    assert!(fresh.owns_web());
    assert!(
        matches!(
            fresh.event_queue.try_recv(),
            Ok(OwnershipEvent::Started { .. })
        ),
        "a node that did not answer for web before starts to"
    );
}
