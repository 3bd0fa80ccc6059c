//! Allocation order: first free address in pool order, stable, avoidBuggyIPs.

use super::*;

#[test]
fn first_free_address_in_pool_order() {
    let mut alloc = allocator(vec![pool(
        "p",
        &["198.51.100.10-198.51.100.11", "192.0.2.0/31", "192.0.2.100"],
    )]);
    let got: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| assigned(&mut alloc, &svc(n))[0])
        .collect();
    assert_eq!(
        got,
        ips(&[
            "198.51.100.10",
            "198.51.100.11",
            "192.0.2.0",
            "192.0.2.1",
            "192.0.2.100"
        ]),
        "ranges in the order the pool lists them, lowest address first"
    );
    let err = alloc.assign(&svc("f")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no IPv4 pool has a free address for default/f (SingleStack); pools tried: p"
    );
    assert_eq!(
        alloc.release(&ServiceRef::new("default", "b")),
        Some(ips(&["198.51.100.11"]))
    );
    assert_eq!(
        assigned(&mut alloc, &svc("f")),
        ips(&["198.51.100.11"]),
        "freed address reused"
    );
}

#[test]
fn assign_is_idempotent_and_stable() {
    let mut alloc = allocator(vec![pool("p", &["192.0.2.0/24"])]);
    let a = assigned(&mut alloc, &svc("a"));
    assigned(&mut alloc, &svc("b"));
    alloc.release(&ServiceRef::new("default", "a"));
    assert_eq!(
        assigned(&mut alloc, &svc("b")),
        ips(&["192.0.2.1"]),
        "b does not move to the lower hole"
    );
    assert_eq!(assigned(&mut alloc, &svc("a")), a);
    assert_eq!(assigned(&mut alloc, &svc("a")), a);
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let careful = PoolSpec {
        avoid_buggy_ips: true,
        ..pool(
            "careful",
            &["192.0.2.254-192.0.3.1", "2001:db8::ff-2001:db8::100"],
        )
    };
    let mut alloc = allocator(vec![careful]);
    assert_eq!(assigned(&mut alloc, &svc("a")), ips(&["192.0.2.254"]));
    assert_eq!(
        assigned(&mut alloc, &svc("b")),
        ips(&["192.0.3.1"]),
        ".255 and .0 skipped"
    );
    assert!(
        alloc.assign(&svc("c")).is_err(),
        "only two usable IPv4 addresses"
    );
    let status = alloc.pool_status("careful").unwrap();
    assert_eq!(
        status.ipv4,
        FamilyCounts {
            assigned: 2,
            available: 0
        }
    );

    let v6 = with_families(svc("v6"), SingleStack, &[V6]);
    assert_eq!(
        assigned(&mut alloc, &v6),
        ips(&["2001:db8::ff"]),
        "IPv6 has no buggy addresses"
    );

    let requested = annotate(svc("asks"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.255");
    assert!(matches!(
        alloc.assign(&requested),
        Err(AllocationError::RequestedAvoided { .. })
    ));

    let mut plain = allocator(vec![pool("plain", &["192.0.2.255-192.0.3.0"])]);
    assert_eq!(
        assigned(&mut plain, &svc("a")),
        ips(&["192.0.2.255"]),
        "only when asked"
    );
}

// --- IP families --------------------------------------------------------------------
