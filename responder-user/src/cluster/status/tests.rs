//! Every reason of the list, each from the smallest cluster that shows it,
//! judged as `responder status` judges it.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::cluster::advertising::tests::{advertisement, pool};
use crate::k8s::fixtures::{lb_service, slice};

const NOW: i64 = 1_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).expect("timestamp")
}

fn node(name: &str, labels: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": format!("198.51.100.{}", name.len())}]},
    }))
    .expect("node")
}

/// A Lease renewed just now by an agent on `node` that serves `families`
/// on `interfaces`.
fn lease(node: &str, families: &str, interfaces: &str) -> Lease {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("responder-{node}"),
            "annotations": {
                "responder/ip-families": families,
                "responder/interfaces": interfaces,
                "responder/lease-duration-ms": "1000",
            },
        },
        "spec": {
            "holderIdentity": node,
            "renewTime": "1970-01-01T00:16:40.000000Z",
        },
    }))
    .expect("lease")
}

fn service(name: &str, addresses: &[&str]) -> Service {
    let ingress: Vec<(Option<&str>, Option<&str>)> =
        addresses.iter().map(|a| (Some(*a), None)).collect();
    lb_service(name, None, "Cluster", &ingress)
}

/// Two live dual-stack nodes on eth0, no advertisement.
fn two_nodes() -> Snapshot {
    Snapshot {
        nodes: vec![node("a", json!({})), node("b", json!({}))],
        leases: vec![
            lease("a", "IPv4,IPv6", "eth0"),
            lease("b", "IPv4,IPv6", "eth0"),
        ],
        ..Snapshot::default()
    }
}

fn judged(snapshot: &Snapshot) -> Report {
    judge(snapshot, &Settings::default(), now())
}

/// The one row of `service`.
fn only_row(report: &Report, service: &str) -> AddressStatus {
    let rows: Vec<&AddressStatus> = report
        .addresses
        .iter()
        .filter(|row| row.service == format!("default/{service}"))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

fn reason_of(snapshot: &Snapshot, service: &str) -> (Option<Reason>, AddressStatus) {
    let row = only_row(&judged(snapshot), service);
    (row.reason, row)
}

#[test]
fn an_announced_address_names_its_node_and_the_interfaces_it_reports() {
    let mut snapshot = two_nodes();
    snapshot.services = vec![service("web", &["192.0.2.10"])];
    let row = only_row(&judged(&snapshot), "web");
    assert!(row.announced, "{row:?}");
    let owner = row.node.clone().expect("an owner");
    assert!(["a", "b"].contains(&owner.as_str()));
    assert_eq!(row.reason, None);
    assert!(row.interfaces.is_empty(), "the default set until reported");
    snapshot.l2_statuses = vec![ServiceL2Status::announcing(
        "responder-system",
        &owner,
        &ServiceRef::new("default", "web"),
        &["eth0".to_owned()],
    )];
    let row = only_row(&judged(&snapshot), "web");
    assert_eq!(row.interfaces, ["eth0"]);
    assert_eq!(row.reported_by, [owner]);
}

/// Judged as the agents judge it: declared roles count only once no live
/// agent predates them.
#[test]
fn roles_count_only_once_every_live_agent_declares_one() {
    let mut snapshot = two_nodes();
    snapshot.services = vec![service("web", &["192.0.2.10"])];
    let owner = only_row(&judged(&snapshot), "web").node.expect("an owner");
    let other = if owner == "a" { "b" } else { "a" };
    let declare = |snapshot: &mut Snapshot, node: &str, role: &str| {
        let lease = snapshot
            .leases
            .iter_mut()
            .find(|l| l.metadata.name.as_deref() == Some(&format!("responder-{node}")))
            .expect("the node's Lease");
        lease
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("responder/role".to_owned(), role.to_owned());
    };
    declare(&mut snapshot, &owner, "standby");
    let row = only_row(&judged(&snapshot), "web");
    assert_eq!(
        row.node.as_deref(),
        Some(owner.as_str()),
        "{other} predates roles"
    );
    declare(&mut snapshot, other, "announcer");
    let row = only_row(&judged(&snapshot), "web");
    assert_eq!(
        row.node.as_deref(),
        Some(other),
        "the announcer before the standby"
    );
}

#[test]
fn other_class_and_no_address_are_told_per_service() {
    let mut snapshot = two_nodes();
    snapshot.services = vec![
        lb_service(
            "classed",
            Some("example.com/other"),
            "Cluster",
            &[(Some("192.0.2.1"), None)],
        ),
        lb_service("pending", None, "Cluster", &[]),
    ];
    assert_eq!(reason_of(&snapshot, "classed").0, Some(Reason::OtherClass));
    assert_eq!(reason_of(&snapshot, "pending").0, Some(Reason::NoAddress));
}

#[test]
fn unusable_proxied_node_and_anycast_entries_are_refused() {
    let mut snapshot = two_nodes();
    let mut proxied = service("proxied", &["192.0.2.5"]);
    proxied
        .status
        .as_mut()
        .and_then(|s| s.load_balancer.as_mut())
        .and_then(|lb| lb.ingress.as_mut())
        .expect("ingress")[0]
        .ip_mode = Some("Proxy".into());
    snapshot.services = vec![
        lb_service(
            "hostname",
            None,
            "Cluster",
            &[(None, Some("lb.example.com"))],
        ),
        proxied,
        service("hijack", &["198.51.100.1"]),
        service("anycast", &["2001:db8:e100::"]),
    ];
    assert_eq!(
        reason_of(&snapshot, "hostname").0,
        Some(Reason::UnusableEntry)
    );
    assert_eq!(reason_of(&snapshot, "proxied").0, Some(Reason::ProxyMode));
    let (reason, row) = reason_of(&snapshot, "hijack");
    assert_eq!(reason, Some(Reason::NodeAddress));
    assert_eq!(row.object.as_deref(), Some("Node/a"));
    assert_eq!(
        reason_of(&snapshot, "anycast").0,
        Some(Reason::ReservedAnycast)
    );
}

#[test]
fn pools_and_advertisements_name_the_pool_or_its_absence() {
    let mut snapshot = two_nodes();
    snapshot.pools = vec![
        Arc::new(pool("public", &["203.0.113.0/28"], &[])),
        Arc::new(pool("internal", &["198.51.100.128/28"], &[])),
    ];
    snapshot.advertisements = vec![Arc::new(advertisement(
        "public-only",
        json!({"ipAddressPools": ["public"]}),
    ))];
    snapshot.services = vec![
        service("outside", &["192.0.2.9"]),
        service("internal", &["198.51.100.130"]),
        service("public", &["203.0.113.1"]),
    ];
    assert_eq!(reason_of(&snapshot, "outside").0, Some(Reason::NotInPool));
    let (reason, row) = reason_of(&snapshot, "internal");
    assert_eq!(reason, Some(Reason::NotAdvertised));
    assert_eq!(row.object.as_deref(), Some("IPAddressPool/internal"));
    assert!(reason_of(&snapshot, "public").1.announced);
}

#[test]
fn advertisements_that_select_no_node_or_name_absent_interfaces_say_which() {
    let mut snapshot = two_nodes();
    snapshot.pools = vec![Arc::new(pool("public", &["203.0.113.0/28"], &[]))];
    snapshot.advertisements = vec![Arc::new(advertisement(
        "edge",
        json!({"ipAddressPools": ["public"], "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
    ))];
    snapshot.services = vec![service("web", &["203.0.113.1"])];
    let (reason, row) = reason_of(&snapshot, "web");
    assert_eq!(reason, Some(Reason::NoNodeSelected));
    assert_eq!(row.object.as_deref(), Some("L2Advertisement/edge"));
    snapshot.advertisements = vec![Arc::new(advertisement(
        "uplink",
        json!({"ipAddressPools": ["public"], "interfaces": ["eth9"]}),
    ))];
    let (reason, row) = reason_of(&snapshot, "web");
    assert_eq!(reason, Some(Reason::InterfaceMissing));
    assert!(row.detail.contains("[eth9]"), "{row:?}");
    assert_eq!(row.object.as_deref(), Some("L2Advertisement/uplink"));
}

#[test]
fn a_local_service_without_a_ready_endpoint_on_a_live_node() {
    let mut snapshot = two_nodes();
    snapshot.services = vec![lb_service(
        "web",
        None,
        "Local",
        &[(Some("192.0.2.10"), None)],
    )];
    snapshot.slices = Some(vec![slice("web", &[("c", Some(true), None)])]);
    assert_eq!(reason_of(&snapshot, "web").0, Some(Reason::NoLocalEndpoint));
    snapshot.slices = Some(vec![slice("web", &[("b", Some(true), None)])]);
    let row = only_row(&judged(&snapshot), "web");
    assert_eq!(row.node.as_deref(), Some("b"), "the node with the endpoint");
}

#[test]
fn no_eligible_node_lists_why_each_node_is_out() {
    let mut snapshot = two_nodes();
    snapshot.nodes = vec![
        node(
            "a",
            json!({"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
        ),
        node("b", json!({})),
        node("c", json!({})),
    ];
    snapshot.leases = vec![lease("a", "IPv4", "eth0"), {
        let mut stale = lease("c", "IPv4", "eth0");
        stale.spec.as_mut().expect("spec").renew_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                Timestamp::from_second(NOW - 60).expect("timestamp"),
            ));
        stale
    }];
    snapshot.services = vec![service("web", &["192.0.2.10"])];
    let report = judged(&snapshot);
    assert_eq!(
        only_row(&report, "web").reason,
        Some(Reason::NoEligibleNode)
    );
    let why: Vec<String> = report
        .nodes
        .iter()
        .map(|n| format!("{}: {}", n.node, n.excluded.clone().unwrap_or_default()))
        .collect();
    assert!(
        why[0].contains("exclude-from-external-load-balancers"),
        "{why:?}"
    );
    assert!(why[1].contains("no membership Lease"), "{why:?}");
    assert!(why[2].contains("last renewed 60s ago"), "{why:?}");
}

#[test]
fn no_live_node_serving_the_family() {
    let mut snapshot = two_nodes();
    snapshot.leases = vec![lease("a", "IPv4", "eth0"), lease("b", "IPv4", "eth0")];
    snapshot.services = vec![service("web6", &["2001:db8::10"])];
    let (reason, row) = reason_of(&snapshot, "web6");
    assert_eq!(reason, Some(Reason::NoServingInterface));
    assert!(row.detail.contains("IPv6"), "{row:?}");
}

#[test]
fn a_yielded_address_names_the_claimant() {
    let mut snapshot = two_nodes();
    snapshot.services = vec![service("web", &["192.0.2.10"])];
    let claim = |yielded, second| Claim {
        service: ServiceRef::new("default", "web"),
        address: "192.0.2.10".parse().expect("ip"),
        mac: "02:00:00:00:00:99".to_owned(),
        yielded,
        at: Timestamp::from_second(second).expect("timestamp"),
    };
    snapshot.claims = vec![claim(false, NOW - 30), claim(true, NOW - 20)];
    let (reason, row) = reason_of(&snapshot, "web");
    assert_eq!(reason, Some(Reason::Yielded));
    assert!(!row.announced);
    assert!(row.detail.contains("02:00:00:00:00:99"), "{row:?}");
    snapshot.claims.push(claim(false, NOW - 10));
    let (reason, row) = reason_of(&snapshot, "web");
    assert_eq!(reason, None, "taken back since: {row:?}");
    assert!(row.announced);
    assert_eq!(
        row.claimant.as_deref(),
        Some("02:00:00:00:00:99"),
        "the claimant is named while the owner answers too"
    );
}

#[test]
fn a_shared_address_is_announced_through_the_service_that_keeps_it() {
    let mut snapshot = two_nodes();
    snapshot.services = vec![
        service("first", &["192.0.2.10"]),
        service("second", &["192.0.2.10"]),
    ];
    let report = judged(&snapshot);
    let (first, second) = (only_row(&report, "first"), only_row(&report, "second"));
    assert!(first.announced && second.announced, "{report:?}");
    assert_eq!(first.node, second.node, "one node for the shared address");
    assert_eq!(second.object.as_deref(), Some("Service/default/first"));
}

#[test]
fn every_reason_is_shown_by_some_test_here() {
    // Keeps this file and the list in step: a new reason needs a test.
    let source = include_str!("tests.rs");
    for reason in Reason::ALL {
        assert!(
            source.contains(&format!("Reason::{reason:?}")),
            "no test shows {reason}"
        );
    }
}
