//! `ServiceL2Status` objects, MetalLB's record of who announces what: this
//! node keeps one per Service it announces (which interfaces, in `status`),
//! deletes its own ones for Services it stopped announcing, and those a
//! crashed previous owner left for a Service it takes over. A task of its own,
//! fed the published ownership: the VIPs go to the data plane first, and a slow
//! or failing API server only delays this bookkeeping, never a failover.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{Attached, Ownership, View};
use crate::crd::{
    ServiceL2Status, ServiceL2StatusFields, LABEL_NODE, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE,
};
use crate::k8s::{ServiceRef, WatchBackoff};

/// The Services this node announces, each with the interfaces it answers on.
pub(crate) type Announced = BTreeMap<ServiceRef, Vec<String>>;

/// What this node announces according to `ownership`: an address restricted
/// to named interfaces is answered on those of them attached here (an
/// advertisement may name other nodes' NICs too), the others on every
/// attached one.
/// `None` until the view is complete (nothing is known to be stale before).
pub(crate) fn announced(ownership: &Ownership, attached: &Attached) -> Option<Announced> {
    if ownership.view == View::Starting {
        return None;
    }
    let mut services: BTreeMap<ServiceRef, BTreeSet<String>> = BTreeMap::new();
    for (ip, service) in &ownership.vips {
        let names = services.entry(service.clone()).or_default();
        match ownership.interfaces.get(ip) {
            Some(named) => names.extend(
                named
                    .iter()
                    .filter(|name| attached.names.contains(name))
                    .cloned(),
            ),
            None => names.extend(attached.names.iter().cloned()),
        }
    }
    Some(
        services
            .into_iter()
            .map(|(service, names)| (service, names.into_iter().collect()))
            .collect(),
    )
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// A new object for the Service (its status patched right after).
    Create {
        service: ServiceRef,
        interfaces: Vec<String>,
    },
    /// An existing object whose status is not what it should be.
    PatchStatus {
        name: String,
        service: ServiceRef,
        interfaces: Vec<String>,
    },
    /// A Service no longer announced here, or a duplicate.
    Delete { name: String },
}

fn service_of(object: &ServiceL2Status) -> Option<ServiceRef> {
    let labels = object.metadata.labels.as_ref()?;
    Some(ServiceRef::new(
        labels.get(LABEL_SERVICE_NAMESPACE)?.as_str(),
        labels.get(LABEL_SERVICE_NAME)?.as_str(),
    ))
}

fn fields(node: &str, service: &ServiceRef, interfaces: &[String]) -> ServiceL2StatusFields {
    let key = ServiceRef::new(&*service.namespace, &*service.name);
    ServiceL2Status::announcing("", node, &key, interfaces)
        .status
        .and_then(|status| status.get().ok().cloned())
        .unwrap_or_default()
}

/// The writes that turn this node's `existing` objects into one per
/// `announced` Service with the right status. Pure and idempotent: run again
/// after every change until it returns nothing.
pub(crate) fn plan(
    node: &str,
    announced: &Announced,
    existing: &[Arc<ServiceL2Status>],
) -> Vec<Write> {
    let mut by_service: BTreeMap<ServiceRef, Vec<&ServiceL2Status>> = BTreeMap::new();
    let mut writes = Vec::new();
    for object in existing {
        let name = object.metadata.name.clone().unwrap_or_default();
        match service_of(object) {
            Some(service) => by_service.entry(service).or_default().push(object),
            None => writes.push(Write::Delete { name }),
        }
    }
    for objects in by_service.values_mut() {
        objects.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    for (service, interfaces) in announced {
        let wanted = fields(node, service, interfaces);
        match by_service.get(service).and_then(|objects| objects.first()) {
            None => writes.push(Write::Create {
                service: service.clone(),
                interfaces: interfaces.clone(),
            }),
            Some(object) => {
                let current = object.status.as_ref().and_then(|s| s.get().ok());
                if current != Some(&wanted) {
                    writes.push(Write::PatchStatus {
                        name: object.metadata.name.clone().unwrap_or_default(),
                        service: service.clone(),
                        interfaces: interfaces.clone(),
                    });
                }
            }
        }
    }
    for (service, objects) in &by_service {
        let keep = usize::from(announced.contains_key(service));
        for object in objects.iter().skip(keep) {
            writes.push(Write::Delete {
                name: object.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    writes
}

/// Keeps this node's `ServiceL2Status` objects in `api`'s namespace following
/// what it announces (see [`announced`]); runs until `owned`'s sender goes.
pub(crate) async fn write_statuses(
    api: Api<ServiceL2Status>,
    node: String,
    namespace: String,
    mut owned: watch::Receiver<Ownership>,
    mut attached: watch::Receiver<Attached>,
) {
    let (store, writer) = reflector::store();
    let mut objects = watcher(
        api.clone(),
        watcher::Config::default().labels(&format!("{LABEL_NODE}={node}")),
    )
    .backoff(WatchBackoff::new())
    .reflect(writer)
    .boxed();
    let mut listed = false;
    let mut retry = Duration::from_millis(500);
    let mut pending = true;
    loop {
        if listed && pending {
            let wanted = announced(&owned.borrow(), &attached.borrow());
            if let Some(wanted) = wanted {
                match apply(&api, &node, &namespace, &wanted, &store).await {
                    Ok(0) => {
                        pending = false;
                        retry = Duration::from_millis(500);
                    }
                    // Wrote something: check again once the watch brings it back.
                    Ok(_) => {}
                    Err(error) => {
                        warn!(%error, ?retry, "could not write ServiceL2Status; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
            } else {
                pending = false;
            }
        }
        tokio::select! {
            event = objects.next() => match event {
                Some(Ok(watcher::Event::InitDone)) => {
                    listed = true;
                    pending = true;
                }
                Some(Ok(_)) => pending = true,
                Some(Err(error)) => debug!(%error, "ServiceL2Status watch failing"),
                None => return,
            },
            changed = owned.changed() => match changed {
                Ok(()) => pending = true,
                Err(_) => return,
            },
            Ok(()) = attached.changed() => pending = true,
        }
    }
}

/// Runs the writes the current state needs; returns how many.
async fn apply(
    api: &Api<ServiceL2Status>,
    node: &str,
    namespace: &str,
    wanted: &Announced,
    store: &Store<ServiceL2Status>,
) -> Result<usize, kube::Error> {
    let writes = plan(node, wanted, &store.state());
    for write in &writes {
        match write {
            Write::Create {
                service,
                interfaces,
            } => {
                let key = ServiceRef::new(&*service.namespace, &*service.name);
                let object = ServiceL2Status::announcing(namespace, node, &key, interfaces);
                let created = api.create(&PostParams::default(), &object).await?;
                let name = created.metadata.name.unwrap_or_default();
                patch_status(api, &name, node, service, interfaces).await?;
                info!(%service, %name, "ServiceL2Status written");
                remove_predecessors(api, node, service).await?;
            }
            Write::PatchStatus {
                name,
                service,
                interfaces,
            } => patch_status(api, name, node, service, interfaces).await?,
            Write::Delete { name } => {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    // Already gone: what we wanted.
                    Err(kube::Error::Api(response)) if response.code == 404 => {}
                    Err(error) => return Err(error),
                }
                debug!(%name, "stale ServiceL2Status deleted");
            }
        }
    }
    Ok(writes.len())
}

/// Deletes the ServiceL2Status objects other nodes left for `service`, which
/// this node now announces: its previous owner deletes its own when it stops,
/// but not when it crashed, and then nobody else would.
async fn remove_predecessors(
    api: &Api<ServiceL2Status>,
    node: &str,
    service: &ServiceRef,
) -> Result<(), kube::Error> {
    let selector = format!(
        "{LABEL_SERVICE_NAMESPACE}={},{LABEL_SERVICE_NAME}={},{LABEL_NODE}!={node}",
        service.namespace, service.name
    );
    let left = api.list(&ListParams::default().labels(&selector)).await?;
    for object in left.items {
        let name = object.metadata.name.unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(error) => return Err(error),
        }
        let previous = object
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(LABEL_NODE).cloned())
            .unwrap_or_default();
        info!(%service, %name, %previous, "the previous owner's ServiceL2Status deleted");
    }
    Ok(())
}

async fn patch_status(
    api: &Api<ServiceL2Status>,
    name: &str,
    node: &str,
    service: &ServiceRef,
    interfaces: &[String],
) -> Result<(), kube::Error> {
    // A merge patch would merge `interfaces` element-wise by index; the
    // whole list is replaced by writing it whole.
    let status = serde_json::json!({ "status": fields(node, service, interfaces) });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn svc(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    pub(super) fn existing(
        name: &str,
        service: &str,
        interfaces: Option<&[&str]>,
    ) -> ServiceL2Status {
        let mut object = ServiceL2Status::announcing(
            "responder",
            "node-a",
            &ServiceRef::new("default", service),
            &interfaces
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
        object.metadata = ObjectMeta {
            name: Some(name.into()),
            ..object.metadata
        };
        if interfaces.is_none() {
            object.status = None;
        }
        object
    }

    #[test]
    fn creates_patches_and_deletes_to_one_object_per_announced_service() {
        let announced: Announced = [
            (svc("new"), vec!["eth0".to_owned()]),
            (svc("moved"), vec!["eth1".to_owned()]),
            (svc("fresh"), vec!["eth0".to_owned()]),
            (svc("right"), vec!["eth0".to_owned()]),
        ]
        .into();
        let objects: Vec<Arc<ServiceL2Status>> = [
            existing("l2-moved", "moved", Some(&["eth0"])),
            existing("l2-fresh", "fresh", None),
            existing("l2-right", "right", Some(&["eth0"])),
            existing("l2-right2", "right", Some(&["eth0"])),
            existing("l2-gone", "gone", Some(&["eth0"])),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let writes = plan("node-a", &announced, &objects);
        assert_eq!(
            writes,
            [
                Write::PatchStatus {
                    name: "l2-fresh".into(),
                    service: svc("fresh"),
                    interfaces: vec!["eth0".into()],
                },
                Write::PatchStatus {
                    name: "l2-moved".into(),
                    service: svc("moved"),
                    interfaces: vec!["eth1".into()],
                },
                Write::Create {
                    service: svc("new"),
                    interfaces: vec!["eth0".into()],
                },
                Write::Delete {
                    name: "l2-gone".into()
                },
                Write::Delete {
                    name: "l2-right2".into()
                },
            ]
        );
    }

    #[test]
    fn announced_services_take_named_interfaces_or_every_attached_one() {
        let ownership = Ownership {
            vips: [
                ("203.0.113.1".parse().expect("ip"), svc("public")),
                ("2001:db8:1::1".parse().expect("ip"), svc("public")),
                ("198.51.100.1".parse().expect("ip"), svc("plain")),
            ]
            .into(),
            interfaces: [
                (
                    "203.0.113.1".parse().expect("ip"),
                    // ens192 is another node's NIC.
                    ["eth0".to_owned(), "ens192".to_owned()].into(),
                ),
                (
                    "2001:db8:1::1".parse().expect("ip"),
                    ["eth0".to_owned()].into(),
                ),
            ]
            .into(),
            view: View::Fresh { epoch: 1 },
        };
        let attached = Attached {
            names: vec!["eth0".into(), "eth1".into()],
            ..Attached::default()
        };
        assert_eq!(
            announced(&ownership, &attached),
            Some(
                [
                    (svc("plain"), vec!["eth0".to_owned(), "eth1".to_owned()]),
                    (svc("public"), vec!["eth0".to_owned()]),
                ]
                .into()
            )
        );
        let starting = Ownership {
            view: View::Starting,
            ..ownership
        };
        assert_eq!(announced(&starting, &attached), None, "nothing known yet");
    }

    /// The writer against a mocked API server: one stale object of a Service
    /// no longer announced, none for the announced one.
    #[tokio::test]
    async fn the_writer_creates_patches_status_and_deletes_stale_objects() {
        use http::{Method, Request, Response, StatusCode};
        use kube::client::Body;
        use serde_json::{json, Value};

        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(Method, String, Value)>();
        tokio::spawn(async move {
            let mut open_watches = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                let query = request.uri().query().unwrap_or_default().to_owned();
                if query.contains("watch=true") {
                    open_watches.push(respond);
                    continue;
                }
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let body = request.into_body().collect_bytes().await.expect("body");
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let base = "/apis/metallb.io/v1beta1/namespaces/responder/servicel2statuses";
                let reply = match (&method, path.as_str()) {
                    (&Method::GET, p)
                        if p == base && query.contains("metallb.io%2Fnode%21%3Dnode-a") =>
                    {
                        assert!(query.contains("metallb.io%2Fservice-name%3Dweb"), "{query}");
                        let mut crashed =
                            serde_json::to_value(existing("l2-old", "web", Some(&["eth0"])))
                                .expect("json");
                        crashed["metadata"]["labels"]["metallb.io/node"] = "node-b".into();
                        json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2StatusList",
                               "metadata": {"resourceVersion": "2"}, "items": [crashed]})
                    }
                    (&Method::GET, p) if p == base => {
                        assert!(query.contains("metallb.io%2Fnode%3Dnode-a"), "{query}");
                        let mut stale =
                            serde_json::to_value(existing("l2-gone", "gone", Some(&["eth0"])))
                                .expect("json");
                        stale["metadata"]["resourceVersion"] = "1".into();
                        json!({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2StatusList",
                               "metadata": {"resourceVersion": "1"}, "items": [stale]})
                    }
                    (&Method::POST, p) if p == base => {
                        let mut created = body.clone();
                        created["metadata"]["name"] = "l2-new".into();
                        created.as_object_mut().expect("object").remove("status");
                        created
                    }
                    _ => {
                        let mut object =
                            serde_json::to_value(existing("l2-new", "web", None)).expect("json");
                        if method == Method::DELETE {
                            object =
                                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
                        }
                        object
                    }
                };
                seen_tx.send((method, path, body)).expect("test listens");
                respond.send_response(
                    Response::builder()
                        .status(StatusCode::OK)
                        .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                        .expect("response"),
                );
            }
        });
        let client = kube::Client::new(mock, "responder");
        let (owned_tx, owned) = watch::channel(Ownership {
            vips: [("203.0.113.1".parse().expect("ip"), svc("web"))].into(),
            interfaces: [(
                "203.0.113.1".parse().expect("ip"),
                ["eth0".to_owned()].into(),
            )]
            .into(),
            view: View::Fresh { epoch: 1 },
        });
        let attached = watch::channel(Attached {
            names: vec!["eth0".into()],
            ..Attached::default()
        })
        .1;
        let writer = tokio::spawn(write_statuses(
            Api::namespaced(client, "responder"),
            "node-a".into(),
            "responder".into(),
            owned,
            attached,
        ));
        let mut writes = Vec::new();
        while writes.len() < 6 {
            let next = tokio::time::timeout(Duration::from_secs(10), seen.recv())
                .await
                .expect("the writer writes within 10 s")
                .expect("server running");
            writes.push(next);
        }
        writer.abort();
        drop(owned_tx);
        let summary: Vec<(Method, &str)> = writes
            .iter()
            .map(|(m, p, _)| (m.clone(), p.as_str()))
            .collect();
        let base = "/apis/metallb.io/v1beta1/namespaces/responder/servicel2statuses";
        assert_eq!(
            summary,
            [
                (Method::GET, base),
                (Method::POST, base),
                (Method::PATCH, &*format!("{base}/l2-new/status")),
                (Method::GET, base),
                (Method::DELETE, &*format!("{base}/l2-old")),
                (Method::DELETE, &*format!("{base}/l2-gone")),
            ],
            "a crashed previous owner's object goes when this node takes over"
        );
        let created = &writes[1].2;
        assert_eq!(created["metadata"]["labels"]["metallb.io/node"], "node-a");
        assert_eq!(
            created["metadata"]["labels"]["metallb.io/service-name"],
            "web"
        );
        assert_eq!(
            writes[2].2["status"],
            json!({"node": "node-a", "serviceName": "web", "serviceNamespace": "default",
                   "interfaces": [{"name": "eth0"}]})
        );
    }
}
