//! What a change of Services, advertisements or claims does: recomputation, refusals, Events.

use super::*;

#[test]
fn a_reserved_anycast_address_in_a_status_is_refused_with_one_event() {
    // Another controller wrote a /64's Subnet-Router anycast address.
    let router = svc("default", "router");
    let reporter = pick_owner(WINNER_AND_LOSER, &router).expect("two candidates");
    for node in WINNER_AND_LOSER {
        let mut h = Harness::new(node);
        while h.event_queue.try_recv().is_ok() {}
        h.assigner.services.apply(&watcher::Event::Apply(lb_service(
            "router",
            None,
            "Cluster",
            &[(Some("2001:db8:e100::"), None)],
        )));
        let at = h.start + Duration::from_millis(100);
        h.assigner
            .apply(Update::Services(Ok(Change::One(router.clone()))), at);
        h.assigner.evaluate(at);
        assert!(
            !h.owned.borrow().vips.values().any(|s| *s == router),
            "{node} does not answer for it"
        );
        let refused: Vec<String> = std::iter::from_fn(|| h.event_queue.try_recv().ok())
            .filter_map(|event| match event {
                OwnershipEvent::NotAnswered {
                    event_reason,
                    problem,
                    ..
                } => {
                    assert_eq!(event_reason, "AddressRefused");
                    Some(problem.detail)
                }
                _ => None,
            })
            .collect();
        if node == reporter {
            assert_eq!(
                refused,
                [
                    "ingress ip 2001:db8:e100:: is not answered for: it is the Subnet-Router \
                  anycast address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every \
                  router on that link answers for"
                ]
            );
        } else {
            assert!(refused.is_empty(), "one node tells: {refused:?}");
        }
    }
}

#[test]
fn only_what_a_change_can_affect_is_recomputed() {
    let mut h = Harness::new(winner());
    let at = h.start + Duration::from_millis(100);
    let node = |labels: &[(&str, &str)]| crate::k8s::fixtures::node(loser(), labels);
    let node_update = |node: &Node| {
        Update::Nodes(Ok(Change::One((
            loser().to_owned(),
            Some(node_facts(node)),
        ))))
    };
    // A status heartbeat or resourceVersion bump: nothing ownership reads.
    h.assigner.apply(node_update(&node(&[])), at);
    assert!(h.assigner.dirty.is_clean(), "{:?}", h.assigner.dirty);

    h.assigner
        .apply(Update::Services(Ok(Change::One(svc("default", "web")))), at);
    assert!(!h.assigner.dirty.all);
    assert_eq!(
        h.assigner.dirty.services,
        BTreeSet::from([svc("default", "web")])
    );
    h.assigner.evaluate(at);
    assert!(h.assigner.dirty.is_clean());

    h.assigner
        .apply(node_update(&node(&[("role", "edge")])), at);
    assert!(h.assigner.dirty.all, "a label may change eligibility");
}

#[test]
fn advertisements_scope_interfaces_and_an_uncovered_address_gets_one_event() {
    use crate::cluster::advertising::tests::{advertisement, pool};
    use crate::crd::L2Advertisement;

    let (pools, mut pools_writer) = reflector::store();
    let (advertisements, mut advertisements_writer) = reflector::store::<L2Advertisement>();
    pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
        "public",
        &["192.0.2.0/28"],
        &[],
    )));
    let on_eth0 = |pools: &[&str]| {
        advertisement(
            "public",
            serde_json::json!({"ipAddressPools": pools, "interfaces": ["eth0"]}),
        )
    };
    advertisements_writer.apply_watcher_event(&watcher::Event::Apply(on_eth0(&["public"])));
    let mut h = Harness::build(
        winner(),
        &[],
        Some(MetallbStores {
            pools,
            advertisements,
        }),
    );
    assert!(h.owns_web());
    assert_eq!(
        h.owned.borrow().interfaces,
        BTreeMap::from([(
            "192.0.2.1".parse::<IpAddr>().expect("ip"),
            BTreeSet::from(["eth0".to_owned()])
        )]),
        "keyed on the advertised interface only"
    );

    // The advertisement moves to another pool: web's address is covered
    // by nothing any more.
    advertisements_writer.apply_watcher_event(&watcher::Event::Apply(on_eth0(&["other"])));
    let at = h.start + Duration::from_millis(100);
    h.assigner
        .apply(Update::Advertisements(Ok(Change::One(()))), at);
    h.assigner.evaluate(at);
    assert!(!h.owns_web());
    let mut unadvertised = 0;
    while let Ok(event) = h.event_queue.try_recv() {
        if let OwnershipEvent::NotAnswered {
            event_reason: "NotAdvertised",
            problem,
            ..
        } = event
        {
            assert!(problem.detail.contains("pool \"public\""), "{problem:?}");
            assert_eq!(problem.object.as_deref(), Some("IPAddressPool/public"));
            unadvertised += 1;
        }
    }
    assert_eq!(unadvertised, 1, "the top candidate tells, once");
    h.assigner
        .apply(Update::Services(Ok(Change::One(svc("default", "web")))), at);
    h.assigner.evaluate(at);
    assert!(
        h.event_queue.try_recv().is_err(),
        "a recomputation tells nothing new"
    );
}

#[test]
fn a_claim_on_an_owned_vip_gets_an_event_that_status_reads_back() {
    use crate::conflicts::{ClaimReport, Defence};
    use crate::interface_names::InterfaceNames;
    use responder_common::VipKey;

    let mut h = Harness::new(winner());
    assert!(h.owns_web());
    while h.event_queue.try_recv().is_ok() {}
    let names: InterfaceNames = [(2, "eth0".to_owned())].into_iter().collect();
    let key = VipKey::v4(2, 0, 0, [192, 0, 2, 1]);
    let mac = [0x02, 0, 0, 0, 0, 0x99];
    let report = |defence| ClaimReport::new(key, mac, &names, defence, h.start);
    h.assigner.tell_claim(&report(Defence::DefendedRecently));
    assert!(
        h.event_queue.try_recv().is_err(),
        "a repeat is in the log only"
    );
    h.assigner.tell_claim(&report(Defence::Yielded));
    let Ok(OwnershipEvent::Conflict { service, note }) = h.event_queue.try_recv() else {
        panic!("an AddressConflict Event");
    };
    assert_eq!(service.key, svc("default", "web"));
    let event = k8s_openapi::api::core::v1::Event {
        reason: Some("AddressConflict".into()),
        message: Some(note.clone()),
        involved_object: service.object_ref(),
        event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::from_second(1_000).expect("timestamp"),
        )),
        ..Default::default()
    };
    let claim = crate::cluster::claim_of(&event).expect("status reads it back");
    assert_eq!(claim.mac, "02:00:00:00:00:99", "{note}");
    assert_eq!(
        claim.address,
        "192.0.2.1".parse::<std::net::IpAddr>().expect("ip")
    );
    assert_eq!(claim.service, svc("default", "web"));
    assert!(claim.yielded, "{note}");

    let mut other = Harness::new(loser());
    while other.event_queue.try_recv().is_ok() {}
    other.assigner.tell_claim(&report(Defence::Defended));
    assert!(
        other.event_queue.try_recv().is_err(),
        "only the owner tells about its VIP"
    );
}

#[test]
fn metallb_kinds_served_after_the_start_are_followed_without_a_restart() {
    use crate::cluster::advertising::tests::{advertisement, pool};
    use crate::crd::L2Advertisement;

    let (pools, mut pools_writer) = reflector::store();
    let (advertisements, mut advertisements_writer) = reflector::store::<L2Advertisement>();
    let stores = MetallbStores {
        pools,
        advertisements,
    };
    let mut h = Harness::build_served(winner(), &[], stores, false);
    assert!(
        h.assigner.broken_view(h.start).is_none(),
        "not waiting for kinds that are not served"
    );
    assert!(h.owns_web(), "flags only: announced");

    // The CRDs arrive, then an advertisement of another pool.
    pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
        "public",
        &["192.0.2.0/28"],
        &[],
    )));
    advertisements_writer.apply_watcher_event(&watcher::Event::Apply(advertisement(
        "other",
        serde_json::json!({"ipAddressPools": ["other"]}),
    )));
    let at = h.start + Duration::from_millis(100);
    h.assigner.apply(Update::MetallbServed, at);
    h.assigner.apply(Update::Pools(Ok(Change::Listed)), at);
    h.assigner
        .apply(Update::Advertisements(Ok(Change::Listed)), at);
    h.assigner.evaluate(at);
    assert!(
        !h.owns_web(),
        "the advertisement now decides: web's pool is not advertised"
    );
}
