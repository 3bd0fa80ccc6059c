//! The anycast addresses every IPv6 subnet reserves (RFC 4291 §2.6.1, RFC 2526):
//! never handed out, never counted, refused when requested, moved after a restart.

use super::*;

/// The field report: the first Service of a /64 pool got the Subnet-Router anycast
/// address, which every router on the link answers for.
#[test]
fn a_64_pool_starts_at_interface_identifier_one() {
    let mut alloc = allocator(vec![pool("v6", &["2001:db8:e100::/64"])]);
    let v6 = |name: &str| with_families(svc(name), SingleStack, &[V6]);
    assert_eq!(
        assigned(&mut alloc, &v6("first")),
        ips(&["2001:db8:e100::1"])
    );
    assert_eq!(
        assigned(&mut alloc, &v6("second")),
        ips(&["2001:db8:e100::2"])
    );
    let status = alloc.pool_status("v6").unwrap();
    assert_eq!(
        status.ipv6,
        FamilyCounts {
            assigned: 2,
            // 2^64, less the Subnet-Router and the 128 RFC 2526 addresses.
            available: (1u128 << 64) - 1 - 128 - 2
        }
    );
}

#[test]
fn a_range_smaller_than_a_64_is_affected_only_where_it_holds_them() {
    let mut alloc = allocator(vec![
        pool("small", &["2001:db8:100::10-2001:db8:100::1ff"]),
        manual(pool(
            "edge",
            &[
                // The last usable identifier below RFC 2526's, the first above.
                "2001:db8:200:0:fdff:ffff:ffff:ff7f-2001:db8:200:0:fe00::",
                // Across a /64 boundary: 2001:db8:200:1:: is the next subnet's
                // Subnet-Router anycast address.
                "2001:db8:200:0:ffff:ffff:ffff:ffff-2001:db8:200:1::1",
            ],
        )),
    ]);
    let small = alloc.pools().get("small").unwrap();
    assert_eq!(small.capacity(V6), 0x1f0, "nothing reserved in it");
    let v6 = |name: &str| with_families(svc(name), SingleStack, &[V6]);
    assert_eq!(assigned(&mut alloc, &v6("a")), ips(&["2001:db8:100::10"]));

    let edge = alloc.pools().get("edge").unwrap();
    assert_eq!(edge.capacity(V6), 4);
    let from_edge = |name: &str| annotate(v6(name), ANNOTATION_ADDRESS_POOL, "edge");
    let got: Vec<IpAddr> = ["e1", "e2", "e3", "e4"]
        .iter()
        .map(|name| assigned(&mut alloc, &from_edge(name))[0])
        .collect();
    assert_eq!(
        got,
        ips(&[
            "2001:db8:200:0:fdff:ffff:ffff:ff7f",
            "2001:db8:200:0:fe00::",
            "2001:db8:200:0:ffff:ffff:ffff:ffff",
            "2001:db8:200:1::1",
        ])
    );
    assert!(matches!(
        alloc.assign(&from_edge("e5")),
        Err(AllocationError::NoFreeAddress { .. })
    ));
    assert_eq!(
        alloc.pool_status("edge").unwrap().ipv6,
        FamilyCounts {
            assigned: 4,
            available: 0
        }
    );
}

#[test]
fn a_requested_reserved_address_is_refused_with_the_rfc() {
    let mut alloc = allocator(vec![
        pool("v6", &["2001:db8:e100::/64"]),
        pool("v4", &["192.0.2.0/24"]),
    ]);
    let v6 = |name: &str| with_families(svc(name), SingleStack, &[V6]);

    let annotated = annotate(
        v6("router"),
        ANNOTATION_LOAD_BALANCER_IPS,
        "2001:db8:e100::",
    );
    assert_eq!(
        alloc.assign(&annotated).unwrap_err().to_string(),
        "requested address 2001:db8:e100:: for default/router is refused: it is the \
         Subnet-Router anycast address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every \
         router on that link answers for"
    );

    let mut spec = v6("home-agents");
    spec.load_balancer_ip = Some("2001:db8:e100::fdff:ffff:ffff:fffe".into());
    assert_eq!(
        alloc.assign(&spec).unwrap_err().to_string(),
        "requested address 2001:db8:e100:0:fdff:ffff:ffff:fffe for default/home-agents is \
         refused: it is reserved subnet anycast address 126 of 2001:db8:e100::/64 (RFC 2526: \
         the highest 128 interface identifiers of a subnet are anycast addresses; 126 is the \
         Mobile IPv6 Home-Agents anycast address)"
    );

    let legacy = annotate(
        v6("legacy"),
        LEGACY_ANNOTATION_LOAD_BALANCER_IPS,
        "2001:db8:e100::fdff:ffff:ffff:ff80",
    );
    assert!(matches!(
        alloc.assign(&legacy),
        Err(AllocationError::RequestedReserved { .. })
    ));

    // In no pool: the RFC is the better reason.
    let outside = annotate(
        v6("outside"),
        ANNOTATION_LOAD_BALANCER_IPS,
        "2001:db8:ffff::",
    );
    assert!(matches!(
        alloc.assign(&outside),
        Err(AllocationError::RequestedReserved { address, .. }) if address == ip("2001:db8:ffff::")
    ));

    // Dual-stack: one reserved address refuses the request, and nothing changes.
    let dual = with_families(svc("dual"), RequireDualStack, &[V4, V6]);
    let held = assigned(&mut alloc, &dual);
    let moved = annotate(
        dual.clone(),
        ANNOTATION_LOAD_BALANCER_IPS,
        "192.0.2.9,2001:db8:e100::",
    );
    assert!(alloc.assign(&moved).is_err());
    assert_eq!(alloc.addresses(&dual.key), Some(&held[..]));

    // Neighbours are fine.
    let fine = annotate(
        v6("fine"),
        ANNOTATION_LOAD_BALANCER_IPS,
        "2001:db8:e100::fe00:0:0:0",
    );
    assert_eq!(
        assigned(&mut alloc, &fine),
        ips(&["2001:db8:e100::fe00:0:0:0"])
    );
}

/// Addresses an older version (or MetalLB's controller) handed out move once, with
/// the reason; nobody gets them again.
#[test]
fn a_reserved_address_in_a_status_moves_after_a_restart() {
    let pools = PoolSet::build([pool("v6", &["2001:db8:e100::/64"])]);
    let web = with_families(svc("web"), SingleStack, &[V6]);
    let (mut alloc, stale) = Allocator::rebuild(pools, [(web.clone(), ips(&["2001:db8:e100::"]))]);
    assert_eq!(stale.len(), 1);
    assert_eq!(
        stale[0].to_string(),
        "2001:db8:e100:: of default/web needs reallocation: it is the Subnet-Router anycast \
         address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every router on that link \
         answers for"
    );
    assert_eq!(alloc.addresses(&web.key), None, "not kept");
    assert_eq!(alloc.pool_status("v6").unwrap().ipv6.assigned, 0);
    assert_eq!(assigned(&mut alloc, &web), ips(&["2001:db8:e100::1"]));
}
