//! The Kubernetes VIP source against a real kube-apiserver (v1.20, no controllers):
//! three agents for three Nodes agree on exactly one owner per Service, fail over
//! when the owner's agent stops, and follow Service and Node changes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use responder::{
    cluster::{run, Attached, ClusterSettings, Ownership, Reach},
    metrics::Metrics,
};
use responder_tests::bulk_services::create_lb_service;
use responder_tests::lab::apiserver::ApiServer;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);
const LEASE_NAMESPACE: &str = "responder-kube-source";
const NODES: [&str; 3] = ["kube-source-1", "kube-source-2", "kube-source-3"];
const WEB_V4: &str = "192.0.2.10";
const WEB_V6: &str = "2001:db8::10";
const OTHER_V4: &str = "198.51.100.20";

struct Agent {
    node: &'static str,
    task: JoinHandle<()>,
    owned: watch::Receiver<Ownership>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start_agent(client: &Client, node: &'static str) -> Agent {
    let settings = ClusterSettings::new(node, LEASE_NAMESPACE);
    let (interfaces_tx, interfaces) = watch::channel(Attached {
        names: vec!["eth0".to_owned()],
        reach: Reach::UNKNOWN,
        local_addresses: Default::default(),
    });
    let (owned_tx, owned) = watch::channel(Ownership::default());
    let client = client.clone();
    let task = tokio::spawn(async move {
        let _interfaces_tx = interfaces_tx;
        let result = run(
            client,
            settings,
            interfaces,
            Default::default(),
            Default::default(),
            owned_tx,
            Metrics::new(),
        )
        .await;
        panic!("agent {node} stopped: {result:?}");
    });
    Agent { node, task, owned }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// Nodes whose agent currently publishes `address`.
fn publishers(agents: &[Agent], address: &str) -> Vec<&'static str> {
    if let Some(agent) = agents.iter().find(|agent| agent.task.is_finished()) {
        panic!("agent {} stopped", agent.node);
    }
    agents
        .iter()
        .filter(|agent| agent.owned.borrow().vips.contains_key(&ip(address)))
        .map(|agent| agent.node)
        .collect()
}

async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The single agent publishing every one of `addresses`, once no other agent
/// does, and it is none of `not` (owners that a change must move away from:
/// right after the change they may still be publishing).
async fn sole_owner(
    agents: &[Agent],
    addresses: &[&str],
    not: &[&str],
    what: &str,
) -> &'static str {
    wait_for(what, || {
        let owners: Vec<Vec<&str>> = addresses.iter().map(|a| publishers(agents, a)).collect();
        match owners.first() {
            Some(first)
                if first.len() == 1
                    && !not.contains(&first[0])
                    && owners.iter().all(|o| o == first) =>
            {
                Some(first[0])
            }
            _ => None,
        }
    })
    .await
}

async fn nobody_publishes(agents: &[Agent], addresses: &[&str], what: &str) {
    wait_for(what, || {
        addresses
            .iter()
            .all(|a| publishers(agents, a).is_empty())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_agree_fail_over_and_follow_changes() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("responder=info"))
        .with_test_writer()
        .init();
    let server = ApiServer::start("kube-source");
    let client = server.client().await;

    let namespace: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": LEASE_NAMESPACE } }))
            .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create lease namespace");
    let nodes = Api::<Node>::all(client.clone());
    for name in NODES {
        let node: Node =
            serde_json::from_value(json!({ "metadata": { "name": name } })).expect("node");
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("create Node");
    }
    let mut agents: Vec<Agent> = NODES
        .iter()
        .map(|node| start_agent(&client, node))
        .collect();

    let services = Api::<Service>::namespaced(client.clone(), "default");
    create_lb_service(&services, "web", &[WEB_V4, WEB_V6]).await;
    let first = sole_owner(
        &agents,
        &[WEB_V4, WEB_V6],
        &[],
        "one agent to announce both addresses of web",
    )
    .await;

    let events = Api::<Event>::namespaced(client.clone(), "default");
    let deadline = Instant::now() + WAIT;
    while !events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .iter()
        .any(|e| {
            e.reason.as_deref() == Some("AnnouncingStarted")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")
                && e.reporting_instance.as_deref() == Some(first)
        })
    {
        assert!(
            Instant::now() < deadline,
            "no AnnouncingStarted Event from {first} on web"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    agents.retain(|agent| agent.node != first);
    let second = sole_owner(
        &agents,
        &[WEB_V4, WEB_V6],
        &[first],
        "a surviving agent to take web over",
    )
    .await;
    assert_ne!(second, first, "the stopped agent cannot be the owner");

    let exclude = json!({ "metadata": { "labels": { "node.kubernetes.io/exclude-from-external-load-balancers": "" } } });
    nodes
        .patch(second, &PatchParams::default(), &Patch::Merge(&exclude))
        .await
        .expect("label node excluded");
    let third = sole_owner(
        &agents,
        &[WEB_V4, WEB_V6],
        &[second],
        "web to leave the excluded node",
    )
    .await;
    assert!(
        third != first && third != second,
        "web moved to {third}, expected the last eligible node"
    );

    // v1.20 has no spec.loadBalancerClass (it prunes the field), so leaving our
    // responsibility is exercised by the type filter that shares its code path.
    let to_cluster_ip = json!({
        "spec": { "type": "ClusterIP", "externalTrafficPolicy": null, "ports": [{ "port": 80, "protocol": "TCP" }] },
    });
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&to_cluster_ip),
        )
        .await
        .expect("make web a ClusterIP Service");
    nobody_publishes(
        &agents,
        &[WEB_V4, WEB_V6],
        "web to be withdrawn once it is no LoadBalancer",
    )
    .await;

    create_lb_service(&services, "other", &[OTHER_V4]).await;
    let owner = sole_owner(
        &agents,
        &[OTHER_V4],
        &[],
        "the only eligible live node to announce other",
    )
    .await;
    assert_eq!(owner, third, "other must go to the only eligible live node");
    services
        .delete("other", &DeleteParams::default())
        .await
        .expect("delete Service other");
    nobody_publishes(&agents, &[OTHER_V4], "other to be withdrawn after deletion").await;
}
