//! Pool selection: priority, namespaces, selectors, autoAssign, named pools.

use super::*;

fn priority(priority: i32) -> ServiceAllocationSpec {
    ServiceAllocationSpec {
        priority,
        ..Default::default()
    }
}

#[test]
fn lower_priority_number_is_tried_first_then_name() {
    let mut alloc = allocator(vec![
        pool("a-unpinned", &["203.0.113.0/24"]),
        scoped(pool("z-first", &["192.0.2.0/31"]), priority(1)),
        scoped(pool("m-second", &["198.51.100.0/31"]), priority(2)),
        scoped(pool("b-second-too", &["198.51.100.100"]), priority(2)),
    ]);
    let order: Vec<_> = (0..6)
        .map(|i| pools_of(&mut alloc, &svc(&format!("s{i}")))[0].clone())
        .collect();
    assert_eq!(
        order,
        [
            "z-first",
            "z-first",
            "b-second-too",
            "m-second",
            "m-second",
            "a-unpinned"
        ]
    );
}

#[test]
fn namespace_scoped_pool_is_preferred_for_its_namespace_only() {
    let tenant = ServiceAllocationSpec {
        namespaces: vec!["tenant-a".into()],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        pool("a-general", &["203.0.113.0/24"]),
        scoped(pool("tenant", &["192.0.2.0/24"]), tenant),
    ]);
    assert_eq!(pools_of(&mut alloc, &in_ns("tenant-a", "web")), ["tenant"]);
    assert_eq!(
        pools_of(&mut alloc, &in_ns("tenant-b", "web")),
        ["a-general"]
    );
}

#[test]
fn namespace_selector_matches_namespace_labels() {
    let selected = ServiceAllocationSpec {
        namespace_selectors: vec![match_labels(&[("team", "edge")])],
        ..Default::default()
    };
    let mut alloc = allocator(vec![scoped(pool("edge", &["192.0.2.0/24"]), selected)]);
    let mut inside = in_ns("ns1", "web");
    inside.namespace_labels = labels(&[("team", "edge")]);
    assert_eq!(pools_of(&mut alloc, &inside), ["edge"]);
    let err = alloc.assign(&in_ns("ns2", "web")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no IPv4 pool has a free address for ns2/web (SingleStack); no pool with such addresses serves it"
    );
}

#[test]
fn service_selector_matches_service_labels() {
    let selected = ServiceAllocationSpec {
        service_selectors: vec![match_labels(&[("tier", "public")])],
        ..Default::default()
    };
    let mut alloc = allocator(vec![
        scoped(pool("public", &["192.0.2.0/24"]), selected),
        pool("private", &["198.51.100.0/24"]),
    ]);
    let mut public = svc("web");
    public.labels = labels(&[("tier", "public")]);
    assert_eq!(pools_of(&mut alloc, &public), ["public"]);
    assert_eq!(pools_of(&mut alloc, &svc("db")), ["private"]);
    let named = annotate(svc("db2"), ANNOTATION_ADDRESS_POOL, "public");
    assert_eq!(
        alloc.assign(&named).unwrap_err().to_string(),
        "address pool \"public\" named by default/db2 does not serve it: the Service's labels \
         match none of serviceAllocation.serviceSelectors"
    );
}

#[test]
fn auto_assign_false_pool_is_used_only_when_named_or_requested() {
    let mut alloc = allocator(vec![manual(pool("expensive", &["192.0.2.0/24"]))]);
    assert!(matches!(
        alloc.assign(&svc("web")),
        Err(AllocationError::NoFreeAddress { ref pools, .. }) if pools.is_empty()
    ));
    let named = annotate(svc("named"), ANNOTATION_ADDRESS_POOL, "expensive");
    assert_eq!(assigned(&mut alloc, &named), ips(&["192.0.2.0"]));
    let legacy = annotate(svc("legacy"), LEGACY_ANNOTATION_ADDRESS_POOL, "expensive");
    assert_eq!(assigned(&mut alloc, &legacy), ips(&["192.0.2.1"]));
    let requested = annotate(svc("requested"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.77");
    assert_eq!(assigned(&mut alloc, &requested), ips(&["192.0.2.77"]));
}

#[test]
fn a_named_pool_is_the_only_candidate() {
    let mut alloc = allocator(vec![
        scoped(pool("first", &["192.0.2.0/24"]), priority(1)),
        pool("chosen", &["198.51.100.0/32"]),
    ]);
    let named = annotate(svc("a"), ANNOTATION_ADDRESS_POOL, "chosen");
    assert_eq!(pools_of(&mut alloc, &named), ["chosen"]);
    let full = annotate(svc("b"), ANNOTATION_ADDRESS_POOL, "chosen");
    assert_eq!(
        alloc.assign(&full).unwrap_err().to_string(),
        "no IPv4 pool has a free address for default/b (SingleStack); pools tried: chosen"
    );
}

#[test]
fn naming_a_refused_pool_says_why() {
    let pools = PoolSet::build([pool("broken", &["192.0.2.9-192.0.2.1"])]);
    let mut alloc = Allocator::new(pools);
    let named = annotate(svc("web"), ANNOTATION_ADDRESS_POOL, "broken");
    assert_eq!(
        alloc.assign(&named).unwrap_err().to_string(),
        "address pool \"broken\" named by default/web is refused: invalid address entry \
         \"192.0.2.9-192.0.2.1\": start 192.0.2.9 is after end 192.0.2.1"
    );
}
