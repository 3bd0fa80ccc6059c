//! Conflicts: defence, yields with a frozen view, yields taken back.

use super::*;

#[test]
fn a_conflict_with_a_fresh_view_is_defended_once_per_interval() {
    let mut core = owning_core();
    let key = v4(2, 0, 0, 10);
    let start = Instant::now();
    tick_at(&mut core, start, &conflicts(key, 1));
    assert_eq!(core.dataplane.announcer().defended, vec![key]);
    tick_at(
        &mut core,
        start + Duration::from_secs(5),
        &conflicts(key, 2),
    );
    assert_eq!(
        core.dataplane.announcer().defended,
        vec![key],
        "within 10 s"
    );
    tick_at(&mut core, start + DEFEND_INTERVAL, &conflicts(key, 3));
    assert_eq!(core.dataplane.announcer().defended, vec![key, key]);
    assert_eq!(core.dataplane.map().entries[&key].flags, 0, "not yielded");
}

#[test]
fn a_conflict_with_a_frozen_view_yields_until_the_view_recovers() {
    let mut core = owning_core();
    let key = v4(2, 0, 0, 10);
    core.on_ownership(ownership(View::Frozen { epoch: 1 }, &["192.0.2.10"]));
    tick(&mut core, &conflicts(key, 1));
    assert_eq!(
        core.dataplane.map().entries[&key].flags,
        VIP_FLAG_YIELDED,
        "the data plane stops answering for it"
    );
    assert!(core.dataplane.announcer().defended.is_empty());
    assert_eq!(core.dataplane.yielded_count(), 1);

    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert_eq!(core.dataplane.map().entries[&key].flags, 0, "re-asserted");
    assert_eq!(core.dataplane.yielded_count(), 0);
    assert!(core.dataplane.announcer().announced.contains(&(key, MAC0)));
}

#[test]
fn a_vip_the_data_plane_yielded_while_the_agent_was_late_is_taken_back() {
    let mut core = core(&[]);
    core.start(vec![update(Source::CommandLine, &["192.0.2.10@eth0"])])
        .expect("start");
    let key = v4(2, 0, 0, 10);
    core.dataplane.announcer_mut().announced.clear();
    // The program yielded on its own: heartbeat late, another MAC announced.
    core.dataplane
        .map_mut()
        .entries
        .get_mut(&key)
        .expect("installed")
        .flags = VIP_FLAG_YIELDED;
    tick(&mut core, &conflicts(key, 1));
    assert_eq!(core.dataplane.map().entries[&key].flags, 0);
    assert_eq!(core.dataplane.announcer().announced, vec![(key, MAC0)]);
    assert_eq!(core.dataplane.yielded_count(), 0);
}
