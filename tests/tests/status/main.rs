//! `responder status` and the agents' bookkeeping of MetalLB's objects
//! against a real API server and real agents (three nodes on one segment):
//! the status command names why each address is or is not announced, as
//! the agents act on it; MetalLB's CRDs installed after the agents started
//! are followed without a restart; a crashed owner's ServiceL2Status goes to
//! the node that takes its Service over; and a pool deleted while in use
//! moves its addresses, or gives them up (see docs/metallb.md).
//!
//! The agents run with the lab's admin kubeconfig, so the ClusterRole of
//! deploy/rbac.yaml (the L2Advertisement CRD watch allowed by name) is not
//! exercised here; tests/tests/deploy/ checks those rules.
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use responder::crd::ServiceL2Status;
use responder_tests::{
    lab::cluster::{Cluster, ClusterOptions, EXCLUDE_LB_LABEL, NAMESPACE, NODES, WAIT},
    lab::one_cluster_at_a_time,
    netns::wait_for,
};
use serde_json::{json, Value};

mod crashed_owner;
mod deleted_pool;
mod late_crds;
mod reasons;

fn with_crds() -> ClusterOptions {
    ClusterOptions {
        crds: true,
        ..ClusterOptions::default()
    }
}

/// The rows of `responder status --json` for Service `name`.
fn rows<'a>(status: &'a Value, name: &str) -> Vec<&'a Value> {
    let key = format!("{NAMESPACE}/{name}");
    status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["service"] == key.as_str())
        .collect()
}

/// What one Service's single row must say: not announced, with `reason`
/// (and the address and causing object when given).
struct Unannounced {
    service: &'static str,
    address: Option<&'static str>,
    reason: &'static str,
    object: Option<&'static str>,
}

/// How `status` differs from `wants`, one line per difference.
fn mismatches(status: &Value, wants: &[Unannounced]) -> Vec<String> {
    let mut wrong = Vec::new();
    for want in wants {
        let found = rows(status, want.service);
        let [row] = found.as_slice() else {
            wrong.push(format!("{}: {} rows, not one", want.service, found.len()));
            continue;
        };
        let checks = [
            ("announced", row["announced"] == false),
            ("reason", row["reason"] == want.reason),
            ("address", want.address.is_none_or(|a| row["address"] == a)),
            ("object", want.object.is_none_or(|o| row["object"] == o)),
            ("node", row["node"].is_null()),
        ];
        for (field, ok) in checks {
            if !ok {
                wrong.push(format!("{}: {field} wrong in {row}", want.service));
            }
        }
    }
    wrong
}

/// `responder status --json` once `ready` holds for its output, or its last
/// output after `WAIT`: the caller asserts on it, so a timeout names what
/// was seen. The command judges from the objects alone; Leases and
/// ServiceL2Status objects take the agents a moment.
fn status_until(cluster: &Cluster, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = cluster.status_json();
        if ready(&status) || Instant::now() >= deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The one row of Service `name`, announced by `node` on its interface and
/// reported in `node`'s ServiceL2Status alone.
fn announced_by(status: &Value, name: &str, node: &str, interface: &str) -> bool {
    let found = rows(status, name);
    let [row] = found.as_slice() else {
        return false;
    };
    row["announced"] == true
        && row["node"] == node
        && row["reason"].is_null()
        && row["interfaces"] == json!([interface])
        && row["reported_by"] == json!([node])
}

/// The nodes named by the ServiceL2Status objects of Service `name`, one
/// entry per object (the `metallb.io/node` label and `status.node` must
/// agree).
fn l2_status_nodes(cluster: &Cluster, name: &str) -> Vec<String> {
    let statuses: Api<ServiceL2Status> = Api::namespaced(cluster.client(), NAMESPACE);
    let list = cluster
        .block(
            statuses
                .list(&ListParams::default().labels(&format!("metallb.io/service-name={name}"))),
        )
        .expect("list ServiceL2Statuses");
    list.items
        .iter()
        .map(|object| {
            let object = serde_json::to_value(object).expect("ServiceL2Status as JSON");
            let label = &object["metadata"]["labels"]["metallb.io/node"];
            let node = &object["status"]["node"];
            assert_eq!(label, node, "label and status disagree: {object}");
            node.as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn wait_l2_status_nodes(cluster: &Cluster, name: &str, expected: &[&str]) -> Duration {
    let start = Instant::now();
    let mut seen = Vec::new();
    let found = wait_for(WAIT, || {
        seen = l2_status_nodes(cluster, name);
        (seen == expected).then_some(())
    });
    assert!(
        found.is_some(),
        "ServiceL2Status of {name} naming exactly {expected:?} within {WAIT:?}; seen {seen:?}"
    );
    start.elapsed()
}

/// Waits until the client's ARP requests for `address` are answered by
/// `node`'s MAC alone (an empty set for none); returns how long it took.
fn wait_arp(cluster: &Cluster, address: &str, node: Option<&str>) -> Duration {
    let start = Instant::now();
    let want: BTreeSet<String> = node
        .map(|n| cluster.agent(n).mac().to_owned())
        .into_iter()
        .collect();
    let mut seen = BTreeSet::new();
    let found = wait_for(WAIT, || {
        seen = cluster.arp_answerers(address, 2);
        (seen == want).then_some(())
    });
    assert!(
        found.is_some(),
        "ARP for {address} answered by {want:?} ({node:?}) within {WAIT:?}; seen {seen:?}"
    );
    start.elapsed()
}

/// Waits for an Event with `reason` on a Service of the namespace whose
/// note holds `text`; returns the note.
fn wait_event(cluster: &Cluster, reason: &str, text: &str) -> String {
    wait_for(WAIT, || {
        cluster
            .events(&[reason])
            .into_iter()
            .find(|(_, note, _)| note.contains(text))
            .map(|(_, note, _)| note)
    })
    .unwrap_or_else(|| {
        panic!(
            "no {reason} Event holding {text:?} within {WAIT:?}; Events: {:?}",
            cluster.events(&[reason])
        )
    })
}

fn create_service(cluster: &Cluster, manifest: Value) -> Service {
    let service: Service = serde_json::from_value(manifest).expect("service manifest");
    let services: Api<Service> = Api::namespaced(cluster.client(), NAMESPACE);
    cluster
        .block(services.create(&PostParams::default(), &service))
        .expect("create Service")
}
