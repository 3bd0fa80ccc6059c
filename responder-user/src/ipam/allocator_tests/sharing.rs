//! allow-shared-ip: shared keys, ports and traffic policies.

use super::*;

#[test]
fn same_key_with_distinct_ports_shares_an_address() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let tcp = shared(svc("dns-tcp"), "dns", &[ServicePort::tcp(53)]);
    let udp = shared(svc("dns-udp"), "dns", &[ServicePort::udp(53)]);
    assert_eq!(assigned(&mut alloc, &tcp), ips(&["192.0.2.0"]));
    assert_eq!(
        assigned(&mut alloc, &udp),
        ips(&["192.0.2.0"]),
        "auto-allocation joins the sharer"
    );
    assert_eq!(
        alloc.pool_status("a").unwrap().ipv4.assigned,
        1,
        "a shared address counts once"
    );
    alloc.release(&tcp.key);
    assert_eq!(
        assigned(&mut alloc, &svc("plain")),
        ips(&["192.0.2.1"]),
        "still held by dns-udp"
    );
    alloc.release(&udp.key);
    assert_eq!(assigned(&mut alloc, &svc("plain2")), ips(&["192.0.2.0"]));
}

#[test]
fn conflicting_ports_or_keys_are_refused_with_a_reason() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(
        &mut alloc,
        &shared(svc("web"), "k", &[ServicePort::tcp(80)]),
    );

    let same_port = annotate(
        shared(svc("web2"), "k", &[ServicePort::tcp(80)]),
        ANNOTATION_LOAD_BALANCER_IPS,
        "192.0.2.0",
    );
    assert_eq!(
        alloc.assign(&same_port).unwrap_err().to_string(),
        "requested address unavailable for default/web2: port TCP/80 on 192.0.2.0 is already \
         used by default/web"
    );
    let other_key = annotate(
        shared(svc("api"), "other", &[ServicePort::tcp(81)]),
        ANNOTATION_LOAD_BALANCER_IPS,
        "192.0.2.0",
    );
    assert!(matches!(
        alloc.assign(&other_key),
        Err(AllocationError::RequestedInUse { conflict, .. })
            if matches!(*conflict, SharingConflict::KeyMismatch { .. })
    ));
    let no_key = annotate(svc("nokey"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.0");
    assert!(matches!(
        alloc.assign(&no_key),
        Err(AllocationError::RequestedInUse { conflict, .. })
            if matches!(*conflict, SharingConflict::ClaimantDoesNotShare { .. })
    ));
    // Automatic allocation simply passes over addresses it may not share.
    assert_eq!(
        assigned(
            &mut alloc,
            &shared(svc("web3"), "k", &[ServicePort::tcp(80)])
        ),
        ips(&["192.0.2.1"])
    );
    assert_eq!(
        assigned(
            &mut alloc,
            &shared(svc("api2"), "other", &[ServicePort::tcp(81)])
        ),
        ips(&["192.0.2.2"])
    );
}

#[test]
fn an_address_held_without_a_key_is_not_shareable() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &svc("private"));
    let wants = annotate(
        shared(svc("wants"), "k", &[ServicePort::tcp(81)]),
        ANNOTATION_LOAD_BALANCER_IPS,
        "192.0.2.0",
    );
    assert_eq!(
        alloc.assign(&wants).unwrap_err().to_string(),
        "requested address unavailable for default/wants: 192.0.2.0 is already used by \
         default/private, which does not allow sharing"
    );
}

#[test]
fn a_port_change_that_conflicts_moves_the_service() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    assigned(&mut alloc, &shared(svc("a"), "k", &[ServicePort::tcp(80)]));
    let b = shared(svc("b"), "k", &[ServicePort::tcp(81)]);
    assert_eq!(assigned(&mut alloc, &b), ips(&["192.0.2.0"]));
    let b_moved = shared(svc("b"), "k", &[ServicePort::tcp(80)]);
    assert_eq!(assigned(&mut alloc, &b_moved), ips(&["192.0.2.1"]));
}

#[test]
fn local_traffic_policy_shares_only_with_the_same_pods() {
    let mut alloc = allocator(vec![pool("a", &["192.0.2.0/24"])]);
    let local = |name: &str, app: &str, port| {
        let mut request = shared(svc(name), "k", &[ServicePort::tcp(port)]);
        request.external_traffic_local = true;
        request.selector = labels(&[("app", app)]);
        request
    };
    assert_eq!(
        assigned(&mut alloc, &local("a", "x", 80)),
        ips(&["192.0.2.0"])
    );
    assert_eq!(
        assigned(&mut alloc, &local("b", "y", 81)),
        ips(&["192.0.2.1"])
    );
    assert_eq!(
        assigned(&mut alloc, &local("c", "x", 82)),
        ips(&["192.0.2.0"])
    );
}
