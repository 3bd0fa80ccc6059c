//! The Kubernetes view: readiness, adopted VIPs, regained VIPs announced.

use super::*;

/// A restarted kube-mode agent: it adopted 192.0.2.10 and .99 on eth0.
fn restarted_core() -> Core {
    let mut core = core(&[]);
    core.dataplane.hold_removals();
    let adopted: BTreeMap<VipKey, _> = [
        (v4(2, 0, 0, 10), value(MAC0)),
        (v4(2, 0, 0, 99), value(MAC0)),
    ]
    .into();
    core.dataplane.map_mut().entries = adopted.clone();
    core.dataplane.adopt(adopted);
    core.await_cluster();
    core.start(Vec::new()).expect("start");
    core
}

#[test]
fn readiness_and_adopted_vips_wait_for_a_complete_view() {
    let mut core = restarted_core();
    assert!(
        !core.metrics.is_ready(),
        "not ready before the source spoke"
    );
    assert!(
        core.dataplane.announcer().announced.is_empty(),
        "adopted Kubernetes VIPs are not announced before the view confirms them"
    );
    core.on_ownership(ownership(View::Starting, &[]));
    assert_eq!(keys(&core).len(), 2, "adopted VIPs held while starting");

    core.on_ownership(ownership(fresh(1), &["192.0.2.10"]));
    assert!(core.metrics.is_ready());
    assert_eq!(
        keys(&core),
        vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)],
        "the adopted VIP nobody wants is gone, the owned one installed everywhere"
    );
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(3, 0, 0, 10), MAC1), (v4(2, 0, 0, 10), MAC0)],
        "the new key, then the adopted one: the view is new after a restart"
    );
}

#[test]
fn a_first_view_owning_nothing_applies_at_once() {
    let mut core = restarted_core();
    core.on_ownership(ownership(fresh(1), &[]));
    assert!(core.metrics.is_ready());
    assert!(
        keys(&core).is_empty(),
        "VIPs that moved away during the restart go now"
    );
}

#[test]
fn a_vip_regained_is_announced_even_though_the_map_still_holds_it() {
    let mut core = owning_core();
    // The view froze (this node's own Lease expired for the others, who
    // moved the VIP); fail-static keeps the key. Then the view recovers.
    core.on_ownership(ownership(View::Frozen { epoch: 1 }, &["192.0.2.10"]));
    assert!(core.dataplane.announcer().announced.is_empty());
    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(2, 0, 0, 10), MAC0), (v4(3, 0, 0, 10), MAC1)],
        "recovery re-announces every owned VIP"
    );

    // Within one view only gains are announced: a VIP that another node took
    // and gave back, whose key this node could not remove, is one.
    core.dataplane.map_mut().fail_removes = true;
    core.on_ownership(ownership(fresh(2), &[]));
    assert_eq!(keys(&core).len(), 2, "the removal failed; the keys stay");
    core.dataplane.map_mut().fail_removes = false;
    core.dataplane.announcer_mut().announced.clear();
    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(2, 0, 0, 10), MAC0), (v4(3, 0, 0, 10), MAC1)]
    );
    core.dataplane.announcer_mut().announced.clear();
    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert!(
        core.dataplane.announcer().announced.is_empty(),
        "nothing gained, nothing announced"
    );
}
