//! L2Advertisements against a real API server: two segments ("public",
//! "internal"), three nodes with a NIC on each, the controller assigning
//! addresses from a public (dual-stack) and an internal pool. Each Service is
//! answered by one node, only on the segment its pool is advertised on, only
//! from nodes the advertisement selects, and the announcing node writes its
//! ServiceL2Status.
use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use responder::crd::ServiceL2Status;
use responder_tests::{
    lab::segments::{Segments, Side, NAMESPACE, WAIT},
    netns::wait_for,
};
use serde_json::json;

fn service(name: &str, pool: &str, dual_stack: bool) -> Service {
    let (policy, families) = match dual_stack {
        true => ("RequireDualStack", json!(["IPv4", "IPv6"])),
        false => ("SingleStack", json!(["IPv4"])),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"metallb.io/address-pool": pool}},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": policy, "ipFamilies": families,
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }))
    .expect("service")
}

fn ingress(lab: &Segments, name: &str, count: usize) -> Vec<String> {
    let services: Api<Service> = Api::namespaced(lab.client(), "default");
    wait_for(WAIT, || {
        let service = lab.block(services.get(name)).ok()?;
        let ips: Vec<String> = service
            .status?
            .load_balancer?
            .ingress?
            .into_iter()
            .filter_map(|i| i.ip)
            .collect();
        (ips.len() == count).then_some(ips)
    })
    .unwrap_or_else(|| panic!("no {count} addresses for {name} within {WAIT:?}"))
}

/// The one node holding every one of `addresses`, each only on that node's
/// interface of `side`, once settled.
fn sole_holder(lab: &Segments, addresses: &[String], side: Side) -> &'static str {
    wait_for(WAIT, || lab.holder_on(addresses, side)).unwrap_or_else(|| {
        let holders: Vec<_> = addresses.iter().map(|a| (a, lab.holders_on(a))).collect();
        panic!(
            "no single holder of {addresses:?} on the {side:?} side within {WAIT:?}: {holders:?}"
        )
    })
}

#[test]
fn pools_are_answered_on_their_own_segment_from_the_nodes_advertised() {
    // node-c is no internal node: the internal advertisement selects a and b.
    let internal_label = json!({"example.com/internal": "true"});
    let lab = Segments::start("adv", [internal_label.clone(), internal_label, json!({})]);
    let quote = |names: Vec<String>| {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    lab.apply(&format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: public, namespace: {NAMESPACE}}}
spec:
  addresses: ["203.0.113.0/28", "2001:db8:1::10-2001:db8:1::ff"]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: internal, namespace: {NAMESPACE}}}
spec:
  addresses: ["198.51.100.0/28"]
  avoidBuggyIPs: true
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: public, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [public]
  interfaces: [{public}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: internal, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [internal]
  interfaces: [{internal}]
  nodeSelectors:
    - matchLabels: {{example.com/internal: "true"}}
"#,
        public = quote(lab.interfaces(Side::Public)),
        internal = quote(lab.interfaces(Side::Internal)),
    ));
    let services: Api<Service> = Api::namespaced(lab.client(), "default");
    for object in [
        service("web", "public", true),
        service("db", "internal", false),
    ] {
        lab.block(services.create(&PostParams::default(), &object))
            .expect("create Service");
    }
    let web = ingress(&lab, "web", 2);
    let db = ingress(&lab, "db", 1);
    assert!(web.iter().any(|ip| ip.starts_with("203.0.113.")), "{web:?}");
    assert!(
        web.iter().any(|ip| ip.starts_with("2001:db8:1::")),
        "{web:?}"
    );
    assert!(db[0].starts_with("198.51.100."), "{db:?}");

    let web_owner = sole_holder(&lab, &web, Side::Public);
    let db_owner = sole_holder(&lab, &db, Side::Internal);
    assert_ne!(
        db_owner, "node-c",
        "node-c is not selected for the internal pool"
    );

    let web_v4 = web.iter().find(|ip| !ip.contains(':')).expect("v4");
    let web_v6 = web.iter().find(|ip| ip.contains(':')).expect("v6");
    let public_mac = lab.mac(web_owner, Side::Public).to_owned();
    let internal_mac = lab.mac(db_owner, Side::Internal).to_owned();
    assert_eq!(
        lab.arp_answerers(Side::Public, web_v4),
        BTreeSet::from([public_mac.clone()]),
        "{web_v4} answered on the public segment by {web_owner} alone"
    );
    assert_eq!(
        lab.nd_answerers(Side::Public, web_v6),
        BTreeSet::from([public_mac]),
        "{web_v6} answered on the public segment by {web_owner} alone"
    );
    assert_eq!(
        lab.arp_answerers(Side::Internal, &db[0]),
        BTreeSet::from([internal_mac]),
        "{} answered on the internal segment by {db_owner} alone",
        db[0]
    );
    assert!(
        lab.arp_answerers(Side::Internal, web_v4).is_empty(),
        "the public address is not answered on the internal segment"
    );
    assert!(
        lab.nd_answerers(Side::Internal, web_v6).is_empty(),
        "the public IPv6 address is not answered on the internal segment"
    );
    assert!(
        lab.arp_answerers(Side::Public, &db[0]).is_empty(),
        "the internal address is not answered on the public segment"
    );

    // Who announces what, as MetalLB's tools read it.
    let statuses: Api<ServiceL2Status> = Api::namespaced(lab.client(), NAMESPACE);
    for (name, owner, side) in [
        ("web", web_owner, Side::Public),
        ("db", db_owner, Side::Internal),
    ] {
        let want = json!({"node": owner, "serviceName": name, "serviceNamespace": "default",
                          "interfaces": [{"name": lab.interface(owner, side)}]});
        let mut seen = Vec::new();
        let found = wait_for(WAIT, || {
            let list = lab
                .block(statuses.list(
                    &ListParams::default().labels(&format!("metallb.io/service-name={name}")),
                ))
                .ok()?;
            seen = list
                .items
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect();
            let [only] = seen.as_slice() else {
                return None;
            };
            (only["status"] == want).then_some(())
        });
        assert!(
            found.is_some(),
            "one ServiceL2Status for {name} showing {want} within {WAIT:?}; seen {seen:?}"
        );
    }
}
