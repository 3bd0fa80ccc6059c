//! Requested addresses: honoured, checked, moved, and a failed assign changing nothing.

use super::*;

#[test]
fn requested_addresses_are_honoured_and_checked() {
    let mut alloc = allocator(vec![
        pool("a", &["192.0.2.0/24", "2001:db8::/64"]),
        manual(pool("reserved", &["198.51.100.0/24"])),
    ]);
    let web = annotate(
        with_families(svc("web"), RequireDualStack, &[V6, V4]),
        ANNOTATION_LOAD_BALANCER_IPS,
        "192.0.2.50,2001:db8::50",
    );
    assert_eq!(
        assigned(&mut alloc, &web),
        ips(&["2001:db8::50", "192.0.2.50"])
    );

    let manual_ok = annotate(svc("vip"), ANNOTATION_LOAD_BALANCER_IPS, "198.51.100.9");
    assert_eq!(
        assigned(&mut alloc, &manual_ok),
        ips(&["198.51.100.9"]),
        "autoAssign false is fine when requested"
    );

    let mut legacy = svc("legacy");
    legacy.load_balancer_ip = Some("192.0.2.60".into());
    assert_eq!(assigned(&mut alloc, &legacy), ips(&["192.0.2.60"]));

    let outside = annotate(svc("outside"), ANNOTATION_LOAD_BALANCER_IPS, "203.0.113.1");
    assert_eq!(
        alloc.assign(&outside).unwrap_err().to_string(),
        "requested address 203.0.113.1 for default/outside is not in any address pool"
    );

    let taken = annotate(svc("taken"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.50");
    assert_eq!(
        alloc.assign(&taken).unwrap_err().to_string(),
        "requested address unavailable for default/taken: 192.0.2.50 is already used by \
         default/web, and this Service has no allow-shared-ip annotation"
    );

    let wrong_pool = annotate(
        annotate(svc("wrong"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.70"),
        ANNOTATION_ADDRESS_POOL,
        "reserved",
    );
    assert!(matches!(
        alloc.assign(&wrong_pool),
        Err(AllocationError::RequestedOutsideNamedPool { .. })
    ));
}

#[test]
fn changing_the_requested_address_moves_the_service() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let web = svc("web");
    assert_eq!(assigned(&mut alloc, &web), ips(&["192.0.2.0"]));
    let moved = annotate(web.clone(), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.9");
    assert_eq!(assigned(&mut alloc, &moved), ips(&["192.0.2.9"]));
    assert_eq!(
        assigned(&mut alloc, &svc("next")),
        ips(&["192.0.2.0"]),
        "old address freed"
    );
}

#[test]
fn a_failed_assign_changes_nothing() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &svc("web"));
    assigned(&mut alloc, &svc("other"));
    let bad = annotate(svc("web"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.1");
    assert!(alloc.assign(&bad).is_err());
    assert_eq!(alloc.addresses(&bad.key), Some(&ips(&["192.0.2.0"])[..]));
    let unknown = annotate(svc("web"), ANNOTATION_ADDRESS_POOL, "nope");
    assert_eq!(
        alloc.assign(&unknown).unwrap_err().to_string(),
        "address pool \"nope\" named by default/web does not exist"
    );
    assert_eq!(alloc.addresses(&bad.key), Some(&ips(&["192.0.2.0"])[..]));
}
