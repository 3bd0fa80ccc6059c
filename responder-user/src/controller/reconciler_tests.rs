use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use serde_json::json;

use super::*;
use crate::controller::service::tests::{lb, with_ingress};
use crate::crd::ANNOTATION_ALLOCATED_FROM_POOL;

fn pool(name: &str, created_second: i64, spec: serde_json::Value) -> Arc<IPAddressPool> {
    let mut pool: IPAddressPool = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "responder-system", "resourceVersion": "1" },
        "spec": spec,
    }))
    .unwrap();
    pool.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created_second).unwrap()));
    Arc::new(pool)
}

fn v4_pool() -> Arc<IPAddressPool> {
    pool("v4", 1, json!({ "addresses": ["192.0.2.0/30"] }))
}

fn v6_pool() -> Arc<IPAddressPool> {
    pool("v6", 2, json!({ "addresses": ["2001:db8::/64"] }))
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

fn versioned(mut service: Service, version: &str) -> Service {
    service.metadata.resource_version = Some(version.into());
    service
}

/// The Service as it reads back after `write` landed.
fn written(service: &Service, write: &StatusWrite, version: &str) -> Service {
    let texts: Vec<String> = write.ingress.iter().map(ToString::to_string).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut back = with_ingress(service.clone(), &refs);
    let annotations = back
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    match &write.pools {
        Some(pools) => annotations.insert(ANNOTATION_ALLOCATED_FROM_POOL.into(), pools.clone()),
        None => annotations.remove(ANNOTATION_ALLOCATED_FROM_POOL),
    };
    versioned(back, version)
}

fn writes(actions: &[Action]) -> Vec<&StatusWrite> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteStatus(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn notices(actions: &[Action]) -> Vec<(&'static str, EventType, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notice(n) => Some((n.reason, n.type_, n.note.clone())),
            _ => None,
        })
        .collect()
}

fn rebuilt(pools: &[Arc<IPAddressPool>], services: &[Arc<Service>]) -> Reconciler {
    Reconciler::rebuild(None, pools, services, |_| BTreeMap::new()).0
}

fn key(name: &str) -> ServiceRef {
    ServiceRef::new("default", name)
}

const NO_LABELS: &BTreeMap<String, String> = &BTreeMap::new();

#[test]
fn a_new_service_gets_the_first_address_once() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let service = versioned(lb("web"), "10");
    let actions = reconciler.reconcile(&key("web"), Some(&service), NO_LABELS);
    let write = writes(&actions)[0].clone();
    assert_eq!(write.ingress, ips(&["192.0.2.0"]));
    assert_eq!(write.pools.as_deref(), Some("v4"));
    assert!(!write.annotation_current);
    assert_eq!(
        notices(&actions),
        [(
            REASON_ALLOCATED,
            EventType::Normal,
            "assigned 192.0.2.0 from pool v4".to_owned()
        )]
    );
    assert!(
        reconciler
            .reconcile(&key("web"), Some(&service), NO_LABELS)
            .is_empty(),
        "the same view again: the write is in flight"
    );
    let back = written(&service, &write, "11");
    assert!(reconciler
        .reconcile(&key("web"), Some(&back), NO_LABELS)
        .is_empty());
    assert_eq!(reconciler.pending(), 0);
}

#[test]
fn a_failed_write_is_decided_again() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let service = versioned(lb("web"), "10");
    assert_eq!(
        writes(&reconciler.reconcile(&key("web"), Some(&service), NO_LABELS)).len(),
        1
    );
    reconciler.write_failed(&key("web"));
    let again = reconciler.reconcile(&key("web"), Some(&service), NO_LABELS);
    assert_eq!(writes(&again).len(), 1);
    assert_eq!(
        writes(&again)[0].ingress,
        ips(&["192.0.2.0"]),
        "the same address"
    );
}

#[test]
fn rebuild_keeps_every_address_and_writes_nothing() {
    // The first two addresses were taken in the opposite order, and 192.0.2.0 freed:
    // a fresh allocation would move both.
    let b = Arc::new(versioned(with_ingress(lb("b"), &["192.0.2.2"]), "5"));
    let c = Arc::new(versioned(with_ingress(lb("c"), &["192.0.2.1"]), "6"));
    let mut reconciler = rebuilt(&[v4_pool()], &[b.clone(), c.clone()]);
    let annotated = |s: &Arc<Service>| {
        let mut s = (**s).clone();
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION_ALLOCATED_FROM_POOL.into(), "v4".into());
        s
    };
    assert!(reconciler
        .reconcile(&key("b"), Some(&annotated(&b)), NO_LABELS)
        .is_empty());
    assert!(reconciler
        .reconcile(&key("c"), Some(&annotated(&c)), NO_LABELS)
        .is_empty());
    let d = versioned(lb("d"), "7");
    let actions = reconciler.reconcile(&key("d"), Some(&d), NO_LABELS);
    assert_eq!(
        writes(&actions)[0].ingress,
        ips(&["192.0.2.0"]),
        "the freed one"
    );
}

#[test]
fn an_address_that_leaves_every_pool_moves_or_is_given_up() {
    let other = pool("other", 3, json!({ "addresses": ["203.0.113.10"] }));
    let web = Arc::new(versioned(with_ingress(lb("web"), &["192.0.2.1"]), "5"));
    let mut reconciler = rebuilt(&[v4_pool(), other.clone()], std::slice::from_ref(&web));
    assert!(reconciler
        .set_pools(std::slice::from_ref(&other))
        .is_empty());
    let actions = reconciler.reconcile(&key("web"), Some(&web), NO_LABELS);
    assert_eq!(writes(&actions)[0].ingress, ips(&["203.0.113.10"]));
    let (reason, _, note) = &notices(&actions)[0];
    assert_eq!(*reason, REASON_ALLOCATED);
    assert_eq!(
        note,
        "assigned 203.0.113.10 from pool other; 192.0.2.1 moved: it is not in any address pool"
    );

    // No pool left with room: the address is given up all the same.
    let mut reconciler = rebuilt(&[v4_pool()], std::slice::from_ref(&web));
    reconciler.set_pools(&[]);
    let actions = reconciler.reconcile(&key("web"), Some(&web), NO_LABELS);
    let write = writes(&actions)[0];
    assert!(write.ingress.is_empty() && write.pools.is_none());
    assert_eq!(notices(&actions)[0].0, REASON_FAILED);
    assert_eq!(reconciler.pending(), 1);
    assert!(reconciler.allocator().addresses(&key("web")).is_none());
}

#[test]
fn a_refusal_is_told_once_and_a_bad_edit_keeps_the_address() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let service = versioned(lb("web"), "1");
    let first = reconciler.reconcile(&key("web"), Some(&service), NO_LABELS);
    let back = written(&service, writes(&first)[0], "2");
    // Now the Service asks for an address outside every pool.
    let mut edited = back.clone();
    edited.spec.as_mut().unwrap().load_balancer_ip = Some("198.51.100.77".into());
    let edited = versioned(edited, "3");
    let actions = reconciler.reconcile(&key("web"), Some(&edited), NO_LABELS);
    assert!(writes(&actions).is_empty(), "keeps 192.0.2.0: {actions:?}");
    assert_eq!(
        notices(&actions),
        [(
            REASON_FAILED,
            EventType::Warning,
            "requested address 198.51.100.77 for default/web is not in any address pool".to_owned()
        )]
    );
    let again = versioned(edited.clone(), "4");
    assert!(
        reconciler
            .reconcile(&key("web"), Some(&again), NO_LABELS)
            .is_empty(),
        "told once"
    );
    assert_eq!(reconciler.pending(), 0, "it still has an address");
}

#[test]
fn require_dual_stack_without_a_family_stays_pending_and_says_which() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let mut service = versioned(lb("dual"), "1");
    let spec = service.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("RequireDualStack".into());
    spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    let actions = reconciler.reconcile(&key("dual"), Some(&service), NO_LABELS);
    assert!(writes(&actions).is_empty(), "nothing to clear: {actions:?}");
    let (reason, _, note) = &notices(&actions)[0];
    assert_eq!(*reason, REASON_FAILED);
    assert!(note.contains("no IPv6 pool has a free address"), "{note}");
    assert_eq!(reconciler.pending(), 1);
}

#[test]
fn dual_stack_from_two_pools_follows_ip_families_and_names_both() {
    let mut reconciler = rebuilt(&[v4_pool(), v6_pool()], &[]);
    let mut service = versioned(lb("dual"), "1");
    let spec = service.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("PreferDualStack".into());
    spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    let actions = reconciler.reconcile(&key("dual"), Some(&service), NO_LABELS);
    let write = writes(&actions)[0];
    // 2001:db8:: is the Subnet-Router anycast address.
    assert_eq!(write.ingress, ips(&["2001:db8::1", "192.0.2.0"]));
    assert_eq!(write.pools.as_deref(), Some("v6,v4"));
}

fn v6_only(service: Service) -> Service {
    let mut service = service;
    let spec = service.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("SingleStack".into());
    spec.ip_families = Some(vec!["IPv6".into()]);
    service
}

#[test]
fn a_requested_reserved_anycast_address_gets_a_warning_event_naming_the_rfc() {
    let mut reconciler = rebuilt(&[v6_pool()], &[]);
    let mut service = v6_only(lb("router"));
    service
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("metallb.io/loadBalancerIPs".into(), "2001:db8::".into());
    let service = versioned(service, "1");
    let actions = reconciler.reconcile(&key("router"), Some(&service), NO_LABELS);
    assert!(writes(&actions).is_empty(), "nothing written: {actions:?}");
    assert_eq!(
        notices(&actions),
        [(
            REASON_FAILED,
            EventType::Warning,
            "requested address 2001:db8:: for default/router is refused: it is the \
             Subnet-Router anycast address of 2001:db8::/64 (RFC 4291 §2.6.1), which every \
             router on that link answers for"
                .to_owned()
        )]
    );
    assert_eq!(reconciler.pending(), 1);
    assert!(
        reconciler
            .reconcile(&key("router"), Some(&versioned(service, "2")), NO_LABELS)
            .is_empty(),
        "told once"
    );

    let mut spec_ip = v6_only(lb("agents"));
    spec_ip.spec.as_mut().unwrap().load_balancer_ip = Some("2001:db8::fdff:ffff:ffff:fffe".into());
    let actions = reconciler.reconcile(&key("agents"), Some(&spec_ip), NO_LABELS);
    let (reason, type_, note) = &notices(&actions)[0];
    assert_eq!((*reason, *type_), (REASON_FAILED, EventType::Warning));
    assert!(
        note.contains("2001:db8::fdff:ffff:ffff:fffe") && note.contains("(RFC 2526"),
        "{note}"
    );
}

#[test]
fn a_reserved_anycast_address_in_a_status_moves_with_the_reason() {
    // Handed out by an older version, or by MetalLB's controller.
    let web = Arc::new(versioned(
        with_ingress(v6_only(lb("web")), &["2001:db8::"]),
        "5",
    ));
    let mut reconciler = rebuilt(&[v6_pool()], std::slice::from_ref(&web));
    let actions = reconciler.reconcile(&key("web"), Some(&web), NO_LABELS);
    assert_eq!(writes(&actions)[0].ingress, ips(&["2001:db8::1"]));
    assert_eq!(
        notices(&actions),
        [(
            REASON_ALLOCATED,
            EventType::Normal,
            "assigned 2001:db8::1 from pool v6; 2001:db8:: moved: it is the Subnet-Router \
             anycast address of 2001:db8::/64 (RFC 4291 §2.6.1), which every router on that \
             link answers for"
                .to_owned()
        )]
    );
    let status = reconciler.allocator().pool_status("v6").unwrap();
    assert_eq!(status.ipv6.assigned, 1);
    assert_eq!(status.ipv6.available, (1u128 << 64) - 129 - 1);
}

#[test]
fn prefer_dual_stack_with_one_family_says_so_without_failing() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let mut service = versioned(lb("dual"), "1");
    service.spec.as_mut().unwrap().ip_family_policy = Some("PreferDualStack".into());
    let actions = reconciler.reconcile(&key("dual"), Some(&service), NO_LABELS);
    assert_eq!(writes(&actions)[0].ingress, ips(&["192.0.2.0"]));
    let told: Vec<_> = notices(&actions).into_iter().map(|n| (n.0, n.1)).collect();
    assert_eq!(
        told,
        [
            (REASON_PARTIAL, EventType::Normal),
            (REASON_ALLOCATED, EventType::Normal)
        ]
    );
    assert_eq!(reconciler.pending(), 0);
}

#[test]
fn a_service_that_stops_being_a_load_balancer_is_cleared_and_freed() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let service = versioned(lb("web"), "1");
    let first = reconciler.reconcile(&key("web"), Some(&service), NO_LABELS);
    let mut back = written(&service, writes(&first)[0], "2");
    back.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let actions = reconciler.reconcile(&key("web"), Some(&back), NO_LABELS);
    let write = writes(&actions)[0];
    assert!(write.ingress.is_empty() && write.pools.is_none());
    assert!(reconciler.allocator().addresses(&key("web")).is_none());
    // Deleted: forgotten without any write.
    let other = versioned(lb("other"), "3");
    reconciler.reconcile(&key("other"), Some(&other), NO_LABELS);
    assert!(reconciler
        .reconcile(&key("other"), None, NO_LABELS)
        .is_empty());
    assert!(reconciler.holders().is_empty());
}

#[test]
fn services_of_another_class_are_never_touched() {
    let mut reconciler = rebuilt(&[v4_pool()], &[]);
    let mut classed = with_ingress(lb("classed"), &["192.0.2.1"]);
    classed.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    assert!(reconciler
        .reconcile(&key("classed"), Some(&classed), NO_LABELS)
        .is_empty());

    let mut mine = Reconciler::rebuild(
        Some("example.com/mine".into()),
        &[v4_pool()],
        &[Arc::new(classed.clone())],
        |_| BTreeMap::new(),
    )
    .0;
    assert!(
        mine.holders().is_empty(),
        "another class's status is not ours to keep"
    );
    assert!(mine
        .reconcile(&key("plain"), Some(&lb("plain")), NO_LABELS)
        .is_empty());
    let mut ours = lb("ours");
    ours.spec.as_mut().unwrap().load_balancer_class = Some("example.com/mine".into());
    assert_eq!(
        writes(&mine.reconcile(&key("ours"), Some(&ours), NO_LABELS)).len(),
        1
    );
}

#[test]
fn namespace_labels_choose_the_pool() {
    let tenant = pool(
        "tenant",
        5,
        json!({ "addresses": ["203.0.113.0/30"],
                "serviceAllocation": { "priority": 1,
                    "namespaceSelectors": [{ "matchLabels": { "tenant": "a" } }] } }),
    );
    let mut reconciler = rebuilt(&[v4_pool(), tenant], &[]);
    let labels: BTreeMap<String, String> = [("tenant".to_owned(), "a".to_owned())].into();
    let actions = reconciler.reconcile(&key("web"), Some(&lb("web")), &labels);
    assert_eq!(writes(&actions)[0].pools.as_deref(), Some("tenant"));
    let actions = reconciler.reconcile(&key("other"), Some(&lb("other")), NO_LABELS);
    assert_eq!(writes(&actions)[0].pools.as_deref(), Some("v4"));
}

#[test]
fn bad_pools_are_told_once_and_the_newer_of_two_overlapping_is_refused() {
    let newer = pool("newer", 9, json!({ "addresses": ["192.0.2.2-192.0.2.9"] }));
    let broken = pool("broken", 10, json!({ "addresses": "192.0.2.0/24" }));
    let (mut reconciler, actions) = Reconciler::rebuild(
        None,
        &[newer.clone(), v4_pool(), broken.clone()],
        &[],
        |_| BTreeMap::new(),
    );
    let told = notices(&actions);
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told
        .iter()
        .all(|(reason, t, _)| *reason == REASON_INVALID_POOL && *t == EventType::Warning));
    assert!(
        told[0].2.contains("broken") && told[0].2.contains("spec does not read"),
        "{told:?}"
    );
    assert_eq!(
        told[1].2,
        "address pool \"newer\" refused: entry \"192.0.2.2-192.0.2.9\" overlaps entry \"192.0.2.0/30\" of pool \"v4\""
    );
    assert_eq!(reconciler.refused_pools(), 2);
    assert!(
        reconciler.set_pools(&[newer, v4_pool(), broken]).is_empty(),
        "told once"
    );
    let actions = reconciler.reconcile(&key("web"), Some(&lb("web")), NO_LABELS);
    assert_eq!(
        writes(&actions)[0].pools.as_deref(),
        Some("v4"),
        "the others carry on"
    );
}

#[test]
fn pool_statuses_are_written_when_they_change() {
    let v4 = v4_pool();
    let mut reconciler = rebuilt(std::slice::from_ref(&v4), &[]);
    reconciler.reconcile(&key("web"), Some(&lb("web")), NO_LABELS);
    let actions = reconciler.pool_statuses(std::slice::from_ref(&v4));
    let expected = IPAddressPoolStatus {
        assigned_ipv4: 1,
        available_ipv4: 3,
        ..Default::default()
    };
    assert_eq!(
        actions,
        [Action::WritePoolStatus {
            pool: "v4".into(),
            status: expected
        }]
    );
    assert!(
        reconciler
            .pool_statuses(std::slice::from_ref(&v4))
            .is_empty(),
        "in flight"
    );
    let mut shown = (*v4).clone();
    shown.status = Some(crate::crd::Lenient::new(expected));
    shown.metadata.resource_version = Some("2".into());
    assert!(reconciler.pool_statuses(&[Arc::new(shown)]).is_empty());
}
