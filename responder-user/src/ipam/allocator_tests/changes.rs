//! Pool changes: which addresses must move.

use super::*;

#[test]
fn pool_change_reports_only_addresses_that_left_every_usable_pool() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24"]),
        pool("c", &["203.0.113.0/24"]),
    ]);
    let in_a = svc("in-a");
    let in_b = annotate(svc("in-b"), ANNOTATION_ADDRESS_POOL, "b");
    let in_c = in_ns("team", "in-c");
    let ip_a = assigned(&mut alloc, &in_a);
    let ip_b = assigned(&mut alloc, &in_b);
    let c_only = annotate(in_c.clone(), ANNOTATION_ADDRESS_POOL, "c");
    let ip_c = assigned(&mut alloc, &c_only);

    let stale = alloc.set_pools(PoolSet::build([
        // a shrinks but still holds in-a's address, under a new name.
        pool("a-renamed", &["192.0.2.0/25"]),
        // b disappears; c now only serves the "other" namespace.
        scoped(
            pool("c", &["203.0.113.0/24"]),
            ServiceAllocationSpec {
                namespaces: vec!["other".into()],
                ..Default::default()
            },
        ),
    ]));
    let mut reported: Vec<_> = stale
        .iter()
        .map(|s| (&*s.service.name, s.address))
        .collect();
    reported.sort();
    assert_eq!(reported, [("in-b", ip_b[0]), ("in-c", ip_c[0])]);
    assert!(matches!(
        stale
            .iter()
            .find(|s| &*s.service.name == "in-b")
            .unwrap()
            .reason,
        StaleReason::NotInAnyPool
    ));
    assert_eq!(
        stale
            .iter()
            .find(|s| &*s.service.name == "in-c")
            .unwrap()
            .to_string(),
        "203.0.113.0 of team/in-c needs reallocation: it is in pool \"c\", which does not \
         serve the Service: namespace \"team\" is neither in serviceAllocation.namespaces nor \
         matched by serviceAllocation.namespaceSelectors"
    );

    assert_eq!(
        assigned(&mut alloc, &in_a),
        ip_a,
        "still valid: stays exactly where it was"
    );
    assert_eq!(pools_of(&mut alloc, &in_a), ["a-renamed"]);
    let in_b_unnamed = svc("in-b");
    assert_eq!(
        assigned(&mut alloc, &in_b_unnamed),
        ips(&["192.0.2.1"]),
        "reallocated"
    );
    let err = alloc.assign(&c_only).unwrap_err();
    assert!(
        matches!(err, AllocationError::NamedPoolNotAdmitted { .. }),
        "{err}"
    );
    assert_eq!(
        alloc.addresses(&c_only.key),
        Some(&ip_c[..]),
        "kept until it can move"
    );
}

#[test]
fn turning_on_avoid_buggy_ips_reports_dot_zero_holders() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &svc("zero"));
    assigned(&mut alloc, &svc("one"));
    let stale = alloc.set_pools(PoolSet::build([PoolSpec {
        avoid_buggy_ips: true,
        ..pool("a", &["192.0.2.0/24"])
    }]));
    assert_eq!(stale.len(), 1);
    assert_eq!(&*stale[0].service.name, "zero");
    assert_eq!(assigned(&mut alloc, &svc("zero")), ips(&["192.0.2.2"]));
}

#[test]
fn turning_off_auto_assign_keeps_existing_addresses() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let ip_a = assigned(&mut alloc, &svc("web"));
    let stale = alloc.set_pools(PoolSet::build([manual(pool("a", &["192.0.2.0/24"]))]));
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(assigned(&mut alloc, &svc("web")), ip_a);
    assert!(
        alloc.assign(&svc("new")).is_err(),
        "but no new automatic allocation"
    );
}

#[test]
fn namespace_label_change_moves_the_service_on_next_assign() {
    let edge = ServiceAllocationSpec {
        namespace_selectors: vec![match_labels(&[("edge", "true")])],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        scoped(pool("edge", &["192.0.2.0/24"]), edge),
        pool("rest", &["198.51.100.0/24"]),
    ]);
    let mut web = in_ns("ns", "web");
    web.namespace_labels = labels(&[("edge", "true")]);
    assert_eq!(pools_of(&mut alloc, &web), ["edge"]);
    web.namespace_labels.clear();
    assert_eq!(pools_of(&mut alloc, &web), ["rest"]);
    assert_eq!(alloc.pool_status("edge").unwrap().ipv4.assigned, 0);
}
