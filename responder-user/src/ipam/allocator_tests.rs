//! Allocator scenarios: order, families, sharing, pool selection, pool changes,
//! restart, scale.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use IpFamily::{V4, V6};
use IpFamilyPolicy::{PreferDualStack, RequireDualStack, SingleStack};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| ip(t)).collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pool(name: &str, addresses: &[&str]) -> PoolSpec {
    PoolSpec::new(name, addresses)
}

fn scoped(spec: PoolSpec, allocation: ServiceAllocationSpec) -> PoolSpec {
    PoolSpec {
        service_allocation: Some(allocation),
        ..spec
    }
}

fn manual(spec: PoolSpec) -> PoolSpec {
    PoolSpec {
        auto_assign: Some(false),
        ..spec
    }
}

fn allocator(specs: Vec<PoolSpec>) -> Allocator {
    let pools = PoolSet::build(specs);
    assert!(pools.refused().is_empty(), "{:?}", pools.refused());
    Allocator::new(pools)
}

fn svc(name: &str) -> ServiceRequest {
    ServiceRequest {
        ports: vec![ServicePort::tcp(80)],
        ..ServiceRequest::new("default", name)
    }
}

fn in_ns(namespace: &str, name: &str) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new(namespace, name),
        ..svc(name)
    }
}

fn with_families(
    mut request: ServiceRequest,
    policy: IpFamilyPolicy,
    families: &[IpFamily],
) -> ServiceRequest {
    request.ip_family_policy = policy;
    request.ip_families = families.to_vec();
    request
}

fn annotate(mut request: ServiceRequest, key: &str, value: &str) -> ServiceRequest {
    request.annotations.insert(key.into(), value.into());
    request
}

fn shared(request: ServiceRequest, key: &str, ports: &[ServicePort]) -> ServiceRequest {
    let mut request = annotate(request, ANNOTATION_ALLOW_SHARED_IP, key);
    request.ports = ports.to_vec();
    request
}

fn assigned(allocator: &mut Allocator, request: &ServiceRequest) -> Vec<IpAddr> {
    match allocator.assign(request) {
        Ok(assignment) => assignment.ips(),
        Err(e) => panic!("{} should get addresses: {e}", request.key),
    }
}

fn pools_of(allocator: &mut Allocator, request: &ServiceRequest) -> Vec<String> {
    let assignment = allocator.assign(request).unwrap();
    assignment.addresses.into_iter().map(|a| a.pool).collect()
}

// --- allocation order ---------------------------------------------------------------

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
        alloc.release(&ServiceKey::new("default", "b")),
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
    alloc.release(&ServiceKey::new("default", "a"));
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

fn dual_pools() -> Vec<PoolSpec> {
    vec![
        pool("v4", &["192.0.2.0/24"]),
        pool("v6", &["2001:db8::/64"]),
    ]
}

#[test]
fn single_stack_gets_its_first_family() {
    let mut alloc = allocator(dual_pools());
    assert_eq!(
        assigned(&mut alloc, &svc("default-v4")),
        ips(&["192.0.2.0"])
    );
    let v6 = with_families(svc("v6"), SingleStack, &[V6]);
    assert_eq!(assigned(&mut alloc, &v6), ips(&["2001:db8::"]));
}

#[test]
fn dual_stack_addresses_follow_ip_families_order() {
    let mut alloc = allocator(dual_pools());
    let v6_first = with_families(svc("a"), RequireDualStack, &[V6, V4]);
    assert_eq!(
        assigned(&mut alloc, &v6_first),
        ips(&["2001:db8::", "192.0.2.0"])
    );
    assert_eq!(
        pools_of(&mut alloc, &v6_first),
        ["v6", "v4"],
        "each family from its own pool"
    );
    let v4_first = with_families(svc("b"), PreferDualStack, &[V4, V6]);
    assert_eq!(
        assigned(&mut alloc, &v4_first),
        ips(&["192.0.2.1", "2001:db8::1"])
    );
}

#[test]
fn prefer_dual_stack_takes_what_there_is_and_completes_later() {
    let mut alloc = allocator(vec![pool("v4", &["192.0.2.0/24"])]);
    let web = with_families(svc("web"), PreferDualStack, &[V6, V4]);
    let assignment = alloc.assign(&web).unwrap();
    assert_eq!(assignment.ips(), ips(&["192.0.2.0"]));
    assert_eq!(
        assignment
            .unfilled
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "no IPv6 pool has a free address for default/web (PreferDualStack); \
          no pool with such addresses serves it"
        ]
    );

    let stale = alloc.set_pools(PoolSet::build(dual_pools()));
    assert!(stale.is_empty(), "{stale:?}");
    let assignment = alloc.assign(&web).unwrap();
    assert_eq!(
        assignment.ips(),
        ips(&["2001:db8::", "192.0.2.0"]),
        "IPv4 kept, IPv6 added"
    );
    assert!(assignment.unfilled.is_empty());
}

#[test]
fn prefer_dual_stack_fails_only_when_no_family_has_room() {
    let mut alloc = allocator(vec![pool("tiny", &["192.0.2.7"])]);
    assigned(&mut alloc, &svc("taker"));
    let err = alloc
        .assign(&with_families(svc("web"), PreferDualStack, &[V4, V6]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no IPv4 or IPv6 pool has a free address for default/web (PreferDualStack); pools tried: tiny"
    );
}

#[test]
fn prefer_dual_stack_on_a_single_stack_cluster_gets_one_family() {
    let mut alloc = allocator(dual_pools());
    let web = with_families(svc("web"), PreferDualStack, &[V6]);
    let assignment = alloc.assign(&web).unwrap();
    assert_eq!(assignment.ips(), ips(&["2001:db8::"]));
    assert!(assignment.unfilled.is_empty());
}

#[test]
fn require_dual_stack_gets_both_or_nothing() {
    let mut alloc = allocator(vec![
        pool("v4", &["192.0.2.0/24"]),
        pool("v6", &["2001:db8::/127"]),
    ]);
    let v6_only = with_families(svc("hog"), SingleStack, &[V6]);
    assigned(&mut alloc, &v6_only);
    assigned(
        &mut alloc,
        &ServiceRequest {
            key: ServiceKey::new("default", "hog2"),
            ..v6_only
        },
    );
    let web = with_families(svc("web"), RequireDualStack, &[V4, V6]);
    let err = alloc.assign(&web).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no IPv6 pool has a free address for default/web (RequireDualStack); pools tried: v6"
    );
    assert_eq!(
        alloc.addresses(&web.key),
        None,
        "no IPv4 address was taken either"
    );
    assert_eq!(alloc.pool_status("v4").unwrap().ipv4.assigned, 0);
}

#[test]
fn one_pool_may_hold_both_families() {
    let mut alloc = allocator(vec![pool("dual", &["2001:db8::/120", "192.0.2.0/24"])]);
    let web = with_families(svc("web"), RequireDualStack, &[V4, V6]);
    assert_eq!(
        assigned(&mut alloc, &web),
        ips(&["192.0.2.0", "2001:db8::"])
    );
    assert_eq!(pools_of(&mut alloc, &web), ["dual", "dual"]);
}

#[test]
fn changing_policy_keeps_the_address_of_the_remaining_family() {
    let mut alloc = allocator(dual_pools());
    let dual = with_families(svc("web"), RequireDualStack, &[V4, V6]);
    assigned(&mut alloc, &dual);
    let single = with_families(svc("web"), SingleStack, &[V6]);
    assert_eq!(assigned(&mut alloc, &single), ips(&["2001:db8::"]));
    assert_eq!(
        alloc.pool_status("v4").unwrap().ipv4.assigned,
        0,
        "IPv4 released"
    );
}

// --- requested addresses ------------------------------------------------------------

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

// --- sharing ------------------------------------------------------------------------

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

// --- pool selection -----------------------------------------------------------------

fn priority(priority: i32) -> ServiceAllocationSpec {
    ServiceAllocationSpec {
        priority,
        ..Default::default()
    }
}

fn match_labels(pairs: &[(&str, &str)]) -> LabelSelectorSpec {
    LabelSelectorSpec {
        match_labels: labels(pairs),
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

// --- pool changes -------------------------------------------------------------------

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
        .map(|s| (s.service.name.as_str(), s.address))
        .collect();
    reported.sort();
    assert_eq!(reported, [("in-b", ip_b[0]), ("in-c", ip_c[0])]);
    assert!(matches!(
        stale
            .iter()
            .find(|s| s.service.name == "in-b")
            .unwrap()
            .reason,
        StaleReason::NotInAnyPool
    ));
    assert_eq!(
        stale
            .iter()
            .find(|s| s.service.name == "in-c")
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
    assert_eq!(stale[0].service.name, "zero");
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

// --- restart ------------------------------------------------------------------------

#[test]
fn rebuild_keeps_every_address_where_it_is() {
    let pools = || PoolSet::build([pool("a", &["192.0.2.0/24"]), pool("v6", &["2001:db8::/64"])]);
    let web = with_families(svc("web"), RequireDualStack, &[V6, V4]);
    let dns_tcp = shared(svc("dns-tcp"), "dns", &[ServicePort::tcp(53)]);
    let dns_udp = shared(svc("dns-udp"), "dns", &[ServicePort::udp(53)]);
    let (mut alloc, stale) = Allocator::rebuild(
        pools(),
        [
            (web.clone(), ips(&["2001:db8::77", "192.0.2.77"])),
            (dns_tcp.clone(), ips(&["192.0.2.5"])),
            (dns_udp.clone(), ips(&["192.0.2.5"])),
        ],
    );
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(
        assigned(&mut alloc, &web),
        ips(&["2001:db8::77", "192.0.2.77"])
    );
    assert_eq!(assigned(&mut alloc, &dns_udp), ips(&["192.0.2.5"]));
    assert_eq!(assigned(&mut alloc, &dns_tcp), ips(&["192.0.2.5"]));
    assert_eq!(assigned(&mut alloc, &svc("new")), ips(&["192.0.2.0"]));
    let status = alloc.pool_status("a").unwrap();
    assert_eq!(
        status.ipv4,
        FamilyCounts {
            assigned: 3,
            available: 253
        }
    );
}

#[test]
fn rebuild_reports_addresses_that_fit_no_pool_or_conflict() {
    let pools = PoolSet::build([PoolSpec {
        avoid_buggy_ips: true,
        ..pool("a", &["192.0.2.0/24"])
    }]);
    let first = svc("first");
    let second = svc("second");
    let twice = svc("twice");
    let named_elsewhere = annotate(svc("named"), ANNOTATION_ADDRESS_POOL, "gone");
    let (mut alloc, stale) = Allocator::rebuild(
        pools,
        [
            (first.clone(), ips(&["192.0.2.10"])),
            (
                second.clone(),
                ips(&["192.0.2.10", "203.0.113.1", "192.0.2.255"]),
            ),
            (twice.clone(), ips(&["192.0.2.20", "192.0.2.21"])),
            (named_elsewhere.clone(), ips(&["192.0.2.30"])),
        ],
    );
    let reported: Vec<String> = stale.iter().map(ToString::to_string).collect();
    assert_eq!(
        reported,
        [
            "192.0.2.10 of default/second needs reallocation: 192.0.2.10 is already used by \
             default/first, and this Service has no allow-shared-ip annotation",
            "203.0.113.1 of default/second needs reallocation: it is not in any address pool",
            "192.0.2.255 of default/second needs reallocation: pool \"a\" now avoids addresses \
             ending in .0 or .255",
            "192.0.2.21 of default/twice needs reallocation: the Service already holds another \
             IPv4 address",
            "192.0.2.30 of default/named needs reallocation: it is in pool \"a\", but the \
             Service names pool \"gone\"",
        ]
    );
    assert_eq!(
        alloc.addresses(&first.key),
        Some(&ips(&["192.0.2.10"])[..]),
        "the earlier Service keeps it"
    );
    assert_eq!(alloc.addresses(&second.key), None);
    assert_eq!(
        alloc.addresses(&named_elsewhere.key),
        Some(&ips(&["192.0.2.30"])[..]),
        "held until moved"
    );
    assert_eq!(assigned(&mut alloc, &second), ips(&["192.0.2.1"]));
    assert_eq!(assigned(&mut alloc, &twice), ips(&["192.0.2.20"]));
}

#[test]
fn rebuild_keeps_addresses_of_a_service_whose_request_does_not_read() {
    let pools = PoolSet::build([pool("a", &["192.0.2.0/24"])]);
    let mut broken = annotate(svc("broken"), ANNOTATION_LOAD_BALANCER_IPS, "192.0.2.8");
    broken.load_balancer_ip = Some("192.0.2.9".into());
    let (mut alloc, stale) = Allocator::rebuild(pools, [(broken.clone(), ips(&["192.0.2.8"]))]);
    assert!(stale.is_empty(), "{stale:?}");
    assert!(matches!(
        alloc.assign(&broken),
        Err(AllocationError::ConflictingRequests { .. })
    ));
    assert_eq!(alloc.addresses(&broken.key), Some(&ips(&["192.0.2.8"])[..]));
}

// --- scale and status ---------------------------------------------------------------

#[test]
fn a_64_with_10_000_assigned_addresses_allocates_without_enumerating() {
    let mut alloc = allocator(vec![pool("big", &["2001:db8::/64"])]);
    let v6 = |name: String| with_families(ServiceRequest::new("load", name), SingleStack, &[V6]);
    for i in 0..10_000u32 {
        let got = assigned(&mut alloc, &v6(format!("s{i}")));
        assert_eq!(
            got,
            [IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i)).into())]
        );
    }
    assert_eq!(
        assigned(&mut alloc, &v6("next".into())),
        ips(&["2001:db8::2710"])
    );
    alloc.release(&ServiceKey::new("load", "s5000"));
    assert_eq!(
        assigned(&mut alloc, &v6("hole".into())),
        ips(&["2001:db8::1388"])
    );
    let status = alloc.pool_status("big").unwrap();
    assert_eq!(status.ipv6.assigned, 10_001);
    assert_eq!(status.ipv6.available, (1u128 << 64) - 10_001);
    assert_eq!(saturating_i64(status.ipv6.available), i64::MAX);
    assert_eq!(status.ipv4, FamilyCounts::default());
}

#[test]
fn statuses_cover_every_accepted_pool_by_name() {
    let mut alloc = allocator(vec![
        pool("z", &["192.0.2.0/30"]),
        pool("a", &["2001:db8::/126", "198.51.100.0/31"]),
    ]);
    assert_eq!(
        pools_of(&mut alloc, &svc("web")),
        ["a"],
        "equal standing: by name"
    );
    let statuses = alloc.pool_statuses();
    assert_eq!(
        statuses,
        [
            PoolStatus {
                pool: "a".into(),
                ipv4: FamilyCounts {
                    assigned: 1,
                    available: 1
                },
                ipv6: FamilyCounts {
                    assigned: 0,
                    available: 4
                },
            },
            PoolStatus {
                pool: "z".into(),
                ipv4: FamilyCounts {
                    assigned: 0,
                    available: 4
                },
                ipv6: FamilyCounts::default(),
            },
        ]
    );
    assert_eq!(saturating_i64(3), 3);
}

#[test]
fn rebuild_takes_the_last_status_of_a_service_listed_twice() {
    let pools = PoolSet::build([pool("a", &["192.0.2.0/24"])]);
    let web = svc("web");
    let (mut alloc, stale) = Allocator::rebuild(
        pools,
        [
            (web.clone(), ips(&["192.0.2.1"])),
            (web.clone(), ips(&["192.0.2.2"])),
        ],
    );
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(alloc.addresses(&web.key), Some(&ips(&["192.0.2.2"])[..]));
    assert_eq!(alloc.pool_status("a").unwrap().ipv4.assigned, 1);
    assert_eq!(assigned(&mut alloc, &svc("other")), ips(&["192.0.2.0"]));
    assert_eq!(assigned(&mut alloc, &svc("third")), ips(&["192.0.2.1"]));
}
