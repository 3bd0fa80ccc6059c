//! The whole agent loop against a mocked API server (tower-test), covering the
//! externalTrafficPolicy: Local rules that need EndpointSlices, which the v1.20
//! integration server does not serve.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::membership::{lease_name, LEASE_LABEL_KEY, LEASE_LABEL_VALUE};
use super::ownership::pick_owner;
use super::Ownership;
use super::{run, Attached, ClusterSettings, ServiceRef};
use crate::k8s::fixtures::{lb_service, slice, svc};

const NAMESPACE: &str = "responder";

struct Cluster {
    services: Vec<Service>,
    nodes: Vec<String>,
    slices: Vec<EndpointSlice>,
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": { "resourceVersion": "1" }, "items": items })
}

fn lease(node: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(node),
            "namespace": NAMESPACE,
            "resourceVersion": "1",
            "labels": { LEASE_LABEL_KEY: LEASE_LABEL_VALUE },
        },
        // Renewed just now and lasting an hour, by this machine's clock: the
        // agent's own Lease continues its session, as if its agent had just
        // been updated (a lapsed one makes no member until a renewal is
        // watched, which this server never delivers).
        "spec": {
            "holderIdentity": node,
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now()),
            "leaseDurationSeconds": 3600,
        },
    })
}

fn with_type(value: Value, api_version: &str, kind: &str) -> Value {
    let mut value = value;
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    value["metadata"]["resourceVersion"] = "1".into();
    value
}

/// Answers lists from `cluster`, accepts Lease renewals and Events, and holds
/// every watch open without events so the agent works from the initial lists.
async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    cluster: Cluster,
) {
    let mut open_watches = Vec::new();
    while let Some((request, respond)) = handle.next_request().await {
        if request
            .uri()
            .query()
            .unwrap_or_default()
            .contains("watch=true")
        {
            open_watches.push(respond);
            continue;
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let leases_path = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
        let (status, body) = match (&method, path.as_str()) {
            (&Method::GET, "/apis") => (
                StatusCode::OK,
                json!({
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [{
                        "name": "discovery.k8s.io",
                        "versions": [{ "groupVersion": "discovery.k8s.io/v1", "version": "v1" }],
                        "preferredVersion": { "groupVersion": "discovery.k8s.io/v1", "version": "v1" },
                    }],
                }),
            ),
            (&Method::GET, "/api/v1/services") => (
                StatusCode::OK,
                list(
                    "ServiceList",
                    "v1",
                    cluster
                        .services
                        .iter()
                        .map(|s| {
                            with_type(
                                serde_json::to_value(s).expect("service json"),
                                "v1",
                                "Service",
                            )
                        })
                        .collect(),
                ),
            ),
            (&Method::GET, "/api/v1/nodes") => (
                StatusCode::OK,
                list(
                    "NodeList",
                    "v1",
                    cluster
                        .nodes
                        .iter()
                        .map(|name| {
                            let node = Node {
                                metadata: kube::api::ObjectMeta {
                                    name: Some(name.clone()),
                                    ..Default::default()
                                },
                                ..Default::default()
                            };
                            with_type(serde_json::to_value(node).expect("node json"), "v1", "Node")
                        })
                        .collect(),
                ),
            ),
            (&Method::GET, "/apis/discovery.k8s.io/v1/endpointslices") => (
                StatusCode::OK,
                list(
                    "EndpointSliceList",
                    "discovery.k8s.io/v1",
                    cluster
                        .slices
                        .iter()
                        .map(|s| {
                            with_type(
                                serde_json::to_value(s).expect("slice json"),
                                "discovery.k8s.io/v1",
                                "EndpointSlice",
                            )
                        })
                        .collect(),
                ),
            ),
            (&Method::GET, p) if p == leases_path => (
                StatusCode::OK,
                list(
                    "LeaseList",
                    "coordination.k8s.io/v1",
                    cluster.nodes.iter().map(|n| lease(n)).collect(),
                ),
            ),
            (&Method::PATCH, p) if p.starts_with(&leases_path) => {
                let node = p
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.strip_prefix("responder-"))
                    .unwrap_or_default();
                (StatusCode::OK, lease(node))
            }
            (&Method::POST, p) if p.ends_with("/events") => {
                let body = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("event body");
                (
                    StatusCode::CREATED,
                    serde_json::from_slice(&body).expect("event json"),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{method} {path}") }),
            ),
        };
        let response = Response::builder()
            .status(status)
            .body(Body::from(
                serde_json::to_vec(&body).expect("response json"),
            ))
            .expect("response");
        respond.send_response(response);
    }
}

/// The first name `prefix-N` for which node-a wins the hash against node-b.
fn name_won_by_a(prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|name| pick_owner(["node-a", "node-b"], &svc("default", name)) == Some("node-a"))
        .expect("some name hashes to node-a")
}

async fn owned_by_agent(node: &str, cluster: Cluster) -> BTreeMap<IpAddr, ServiceRef> {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(serve(handle, cluster));
    let client = Client::new(mock, "default");
    let settings = ClusterSettings {
        // Watches never deliver renewals here, so leases must outlive the test.
        renew_interval: Duration::from_secs(600),
        lease_duration: Duration::from_secs(3600),
        // The agent's own session is new here; hold-down has tests of its own.
        hold_down: Duration::ZERO,
        ..ClusterSettings::new(node, NAMESPACE)
    };
    let (_attached_tx, attached) = watch::channel(Attached {
        names: vec!["eth0".to_owned()],
        reach: crate::cluster::Reach::UNKNOWN,
        local_addresses: Default::default(),
    });
    let (owned_tx, mut owned) = watch::channel(Ownership::default());
    let agent = tokio::spawn(run(
        client,
        settings,
        attached,
        Default::default(),
        Default::default(),
        owned_tx,
        crate::metrics::Metrics::new(),
    ));
    let published = tokio::time::timeout(
        Duration::from_secs(20),
        owned.wait_for(|owned| !owned.vips.is_empty()),
    )
    .await
    .unwrap_or_else(|_| panic!("{node} published nothing within 20 s"))
    .expect("agent keeps the sender")
    .vips
    .clone();
    agent.abort();
    published
}

#[tokio::test]
async fn local_services_go_to_nodes_with_endpoints() {
    let local = name_won_by_a("local");
    let cluster_wide = name_won_by_a("cluster");
    let idle = name_won_by_a("idle");
    let cluster = || Cluster {
        services: vec![
            lb_service(
                &local,
                None,
                "Local",
                &[(Some("192.0.2.1"), None), (Some("2001:db8::1"), None)],
            ),
            lb_service(&cluster_wide, None, "Cluster", &[(Some("192.0.2.2"), None)]),
            lb_service(&idle, None, "Local", &[(Some("192.0.2.3"), None)]),
        ],
        nodes: vec!["node-a".into(), "node-b".into()],
        slices: vec![
            slice(&local, &[("node-b", Some(true), Some(true))]),
            slice(
                &idle,
                &[
                    ("node-a", Some(false), Some(false)),
                    ("node-b", Some(false), None),
                ],
            ),
        ],
    };
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");

    let on_a = owned_by_agent("node-a", cluster()).await;
    assert_eq!(
        on_a,
        BTreeMap::from([(ip("192.0.2.2"), svc("default", &cluster_wide))]),
        "node-a wins every hash but has no ready endpoints for {local} or {idle}"
    );

    let on_b = owned_by_agent("node-b", cluster()).await;
    assert_eq!(
        on_b,
        BTreeMap::from([
            (ip("192.0.2.1"), svc("default", &local)),
            (ip("2001:db8::1"), svc("default", &local)),
        ]),
        "node-b holds the only endpoint of {local}; nobody owns {idle}"
    );
}

/// `ipMode: Proxy` (Kubernetes 1.29+) cannot be stored by the v1.20 test API
/// server, so it is checked here: kube-proxy installs nothing for such an
/// address, so it is never announced, while the Service's other entries are.
#[tokio::test]
async fn proxied_ingress_entries_are_not_announced() {
    let name = name_won_by_a("proxied");
    let mut service = lb_service(
        &name,
        None,
        "Cluster",
        &[(Some("192.0.2.1"), None), (Some("192.0.2.2"), None)],
    );
    service
        .status
        .as_mut()
        .and_then(|status| status.load_balancer.as_mut())
        .and_then(|lb| lb.ingress.as_mut())
        .expect("ingress")[0]
        .ip_mode = Some("Proxy".into());
    let cluster = Cluster {
        services: vec![service],
        nodes: vec!["node-a".into()],
        slices: Vec::new(),
    };
    let owned = owned_by_agent("node-a", cluster).await;
    assert_eq!(
        owned,
        BTreeMap::from([(
            "192.0.2.2".parse::<IpAddr>().expect("ip"),
            svc("default", &name)
        )])
    );
}
