//! IP families per ipFamilyPolicy and ipFamilies.

use super::*;

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
    assert_eq!(
        assigned(&mut alloc, &v6),
        ips(&["2001:db8::1"]),
        "2001:db8:: is the Subnet-Router anycast address"
    );
}

#[test]
fn dual_stack_addresses_follow_ip_families_order() {
    let mut alloc = allocator(dual_pools());
    let v6_first = with_families(svc("a"), RequireDualStack, &[V6, V4]);
    assert_eq!(
        assigned(&mut alloc, &v6_first),
        ips(&["2001:db8::1", "192.0.2.0"])
    );
    assert_eq!(
        pools_of(&mut alloc, &v6_first),
        ["v6", "v4"],
        "each family from its own pool"
    );
    let v4_first = with_families(svc("b"), PreferDualStack, &[V4, V6]);
    assert_eq!(
        assigned(&mut alloc, &v4_first),
        ips(&["192.0.2.1", "2001:db8::2"])
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
        ips(&["2001:db8::1", "192.0.2.0"]),
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
    assert_eq!(assignment.ips(), ips(&["2001:db8::1"]));
    assert!(assignment.unfilled.is_empty());
}

#[test]
fn require_dual_stack_gets_both_or_nothing() {
    let mut alloc = allocator(vec![
        pool("v4", &["192.0.2.0/24"]),
        pool("v6", &["2001:db8::2/127"]),
    ]);
    let v6_only = with_families(svc("hog"), SingleStack, &[V6]);
    assigned(&mut alloc, &v6_only);
    assigned(
        &mut alloc,
        &ServiceRequest {
            key: ServiceRef::new("default", "hog2"),
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
        ips(&["192.0.2.0", "2001:db8::1"])
    );
    assert_eq!(pools_of(&mut alloc, &web), ["dual", "dual"]);
}

#[test]
fn changing_policy_keeps_the_address_of_the_remaining_family() {
    let mut alloc = allocator(dual_pools());
    let dual = with_families(svc("web"), RequireDualStack, &[V4, V6]);
    assigned(&mut alloc, &dual);
    let single = with_families(svc("web"), SingleStack, &[V6]);
    assert_eq!(assigned(&mut alloc, &single), ips(&["2001:db8::1"]));
    assert_eq!(
        alloc.pool_status("v4").unwrap().ipv4.assigned,
        0,
        "IPv4 released"
    );
}
