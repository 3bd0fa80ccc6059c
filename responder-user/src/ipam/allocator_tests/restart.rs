//! Restart: the state rebuilt from Service statuses; allocation at scale and pool statuses.

use super::*;

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

#[test]
fn a_64_with_10_000_assigned_addresses_allocates_without_enumerating() {
    let mut alloc = allocator(vec![pool("big", &["2001:db8::/64"])]);
    let v6 = |name: String| with_families(ServiceRequest::new("load", name), SingleStack, &[V6]);
    // From 2001:db8::1: 2001:db8:: is the Subnet-Router anycast address.
    for i in 1..=10_000u32 {
        let got = assigned(&mut alloc, &v6(format!("s{i}")));
        assert_eq!(
            got,
            [IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i)).into())]
        );
    }
    assert_eq!(
        assigned(&mut alloc, &v6("next".into())),
        ips(&["2001:db8::2711"])
    );
    alloc.release(&ServiceRef::new("load", "s5000"));
    assert_eq!(
        assigned(&mut alloc, &v6("hole".into())),
        ips(&["2001:db8::1388"])
    );
    let status = alloc.pool_status("big").unwrap();
    assert_eq!(status.ipv6.assigned, 10_001);
    // Without the 129 reserved anycast addresses of the /64.
    assert_eq!(status.ipv6.available, (1u128 << 64) - 129 - 10_001);
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
                // 2001:db8:: is the Subnet-Router anycast address.
                ipv6: FamilyCounts {
                    assigned: 0,
                    available: 3
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
