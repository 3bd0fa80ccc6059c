//! The whole controller against a mocked API server (tower-test), for what the
//! v1.20 integration server cannot show: `spec.loadBalancerClass` (1.21+).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::{run, ControllerMetrics, ControllerSettings, ElectionSettings, LEADER_LEASE_NAME};

const NAMESPACE: &str = "responder-system";

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": { "resourceVersion": "1" }, "items": items })
}

fn service(name: &str, class: Option<&str>) -> Value {
    let mut spec = json!({ "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] });
    if let Some(class) = class {
        spec["loadBalancerClass"] = class.into();
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "namespace": "default", "resourceVersion": "1", "uid": format!("uid-{name}") },
        "spec": spec,
    })
}

/// Services whose status the controller patched.
type Patched = Arc<Mutex<Vec<String>>>;

/// Answers the lists, the Lease and every write; holds watches open without
/// events, so the controller works from the initial lists.
async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    services: Vec<Value>,
    patched: Patched,
) {
    let mut open_watches = Vec::new();
    let mut lease: Option<Value> = None;
    let leases = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    let pools = format!("/apis/metallb.io/v1beta1/namespaces/{NAMESPACE}/ipaddresspools");
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
        let body = request.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let service_named = |name: &str| {
            services
                .iter()
                .find(|s| s["metadata"]["name"] == name)
                .cloned()
        };
        let (status, reply) = match (&method, path.as_str()) {
            (&Method::GET, p) if p == format!("{leases}/{LEADER_LEASE_NAME}") => match &lease {
                Some(lease) => (StatusCode::OK, lease.clone()),
                None => not_found(&path),
            },
            (&Method::POST, p) if p == leases => {
                let mut created = body;
                created["metadata"]["resourceVersion"] = "1".into();
                lease = Some(created.clone());
                (StatusCode::CREATED, created)
            }
            (&Method::PUT, p) if p == format!("{leases}/{LEADER_LEASE_NAME}") => {
                let mut replaced = body;
                replaced["metadata"]["resourceVersion"] = "2".into();
                lease = Some(replaced.clone());
                (StatusCode::OK, replaced)
            }
            (&Method::GET, "/api/v1/services") => {
                (StatusCode::OK, list("ServiceList", "v1", services.clone()))
            }
            (&Method::GET, "/api/v1/namespaces") => (
                StatusCode::OK,
                list(
                    "NamespaceList",
                    "v1",
                    vec![
                        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "default", "resourceVersion": "1" } }),
                    ],
                ),
            ),
            (&Method::GET, p) if p == pools => (
                StatusCode::OK,
                list(
                    "IPAddressPoolList",
                    "metallb.io/v1beta1",
                    vec![json!({
                        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                        "metadata": { "name": "p", "namespace": NAMESPACE, "resourceVersion": "1" },
                        "spec": { "addresses": ["192.0.2.0/29"] },
                    })],
                ),
            ),
            (&Method::PATCH, p) if p.starts_with("/api/v1/namespaces/default/services/") => {
                let rest = p.trim_start_matches("/api/v1/namespaces/default/services/");
                let name = rest.trim_end_matches("/status");
                if rest.ends_with("/status") {
                    patched.lock().expect("lock").push(name.to_owned());
                }
                match service_named(name) {
                    Some(service) => (StatusCode::OK, service),
                    None => not_found(&path),
                }
            }
            (&Method::PATCH, p) if p.starts_with(&pools) => (
                StatusCode::OK,
                json!({
                    "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": { "name": "p", "namespace": NAMESPACE, "resourceVersion": "2" },
                    "spec": { "addresses": ["192.0.2.0/29"] },
                }),
            ),
            (&Method::POST, p) if p.ends_with("/events") => (StatusCode::CREATED, body),
            _ => not_found(&path),
        };
        let response = Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).expect("json")))
            .expect("response");
        respond.send_response(response);
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": path }),
    )
}

/// The Services the controller writes a status for, given its class: waits for
/// `expected` (sorted last by name, so every other Service was decided first).
async fn patched_with(lb_class: Option<&str>, expected: &str) -> Vec<String> {
    let services = vec![
        service("a-classless", None),
        service("b-other", Some("example.com/other")),
        service("c-mine", Some("example.com/mine")),
        service(
            "z-expected",
            if lb_class.is_some() {
                Some("example.com/mine")
            } else {
                None
            },
        ),
    ];
    assert!(services.iter().any(|s| s["metadata"]["name"] == expected));
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let patched = Patched::default();
    tokio::spawn(serve(handle, services, Arc::clone(&patched)));
    let settings = ControllerSettings {
        namespace: NAMESPACE.into(),
        lb_class: lb_class.map(Into::into),
        election: ElectionSettings {
            identity: "test".into(),
            lease_duration: ElectionSettings::DEFAULT_LEASE_DURATION,
            renew_interval: ElectionSettings::DEFAULT_RENEW_INTERVAL,
        },
    };
    let controller = tokio::spawn(run(
        Client::new(mock, "default"),
        settings,
        ControllerMetrics::new(),
        std::future::pending(),
    ));
    for _ in 0..500 {
        if patched.lock().expect("lock").iter().any(|n| n == expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    controller.abort();
    let mut names = patched.lock().expect("lock").clone();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn without_a_class_only_classless_services_get_addresses() {
    assert_eq!(
        patched_with(None, "z-expected").await,
        ["a-classless", "z-expected"]
    );
}

#[tokio::test]
async fn with_a_class_only_that_class_gets_addresses() {
    assert_eq!(
        patched_with(Some("example.com/mine"), "z-expected").await,
        ["c-mine", "z-expected"]
    );
}
