//! The address controller against a real API server: a dual-stack kube-apiserver
//! (v1.20 with the IPv6DualStack gate) with the CRDs of `deploy/crds/` and the
//! `responder-system` namespace, and `responder controller` processes started and
//! stopped by the test. No network namespace: the controller only talks to the
//! API server.
use std::time::Duration;

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Event, Service},
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::Value;

use super::kube::{kube_lab_setting, KubeLab};
use crate::netns::wait_for;

pub const NAMESPACE: &str = "responder-system";
pub const LEADER_LEASE: &str = "responder.controller";
/// Generous for a 2-core machine running other tests: no assertion is timed.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct ControllerLab(KubeLab);

kube_lab_setting!(ControllerLab);

impl ControllerLab {
    /// `name` says which test owns it. Controllers are started by the test
    /// ([`KubeLab::spawn_controller`]).
    pub fn start(name: &str) -> Self {
        ControllerLab(
            KubeLab::builder(name)
                .dual_stack()
                .crds()
                .namespace(NAMESPACE)
                .wait(WAIT)
                .start(),
        )
    }

    /// The identity part of the leader Lease's holder (the CLI appends a random
    /// suffix to `--identity`).
    pub fn leader(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client(), NAMESPACE);
        let lease = self.block(leases.get_opt(LEADER_LEASE)).ok()??;
        let holder = lease.spec?.holder_identity?;
        self.controllers
            .iter()
            .find(|c| holder.starts_with(&format!("{}-", c.identity)))
            .map(|c| c.identity.clone())
    }

    pub fn wait_leader(&self, other_than: Option<&str>) -> String {
        wait_for(WAIT, || {
            self.leader().filter(|l| Some(l.as_str()) != other_than)
        })
        .unwrap_or_else(|| panic!("no leader (other than {other_than:?}) within {WAIT:?}"))
    }

    pub fn services(&self, namespace: &str) -> Api<Service> {
        Api::namespaced(self.client(), namespace)
    }

    pub fn create_service(&self, namespace: &str, service: Value) {
        let service: Service = serde_json::from_value(service).expect("a Service");
        self.block(
            self.services(namespace)
                .create(&PostParams::default(), &service),
        )
        .unwrap_or_else(|e| panic!("create Service {:?}: {e}", service.metadata.name));
    }

    pub fn delete_service(&self, namespace: &str, name: &str) {
        self.block(
            self.services(namespace)
                .delete(name, &DeleteParams::default()),
        )
        .unwrap_or_else(|e| panic!("delete Service {namespace}/{name}: {e}"));
    }

    pub fn service(&self, namespace: &str, name: &str) -> Service {
        self.block(self.services(namespace).get(name))
            .unwrap_or_else(|e| panic!("get Service {namespace}/{name}: {e}"))
    }

    /// `status.loadBalancer.ingress[].ip`, in order.
    pub fn ingress(&self, namespace: &str, name: &str) -> Vec<String> {
        self.service(namespace, name)
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect()
    }

    /// Waits until the ingress is not empty.
    pub fn wait_ingress(&self, namespace: &str, name: &str) -> Vec<String> {
        wait_for(WAIT, || {
            Some(self.ingress(namespace, name)).filter(|i| !i.is_empty())
        })
        .unwrap_or_else(|| panic!("{namespace}/{name} got no address within {WAIT:?}"))
    }

    pub fn wait_ingress_eq(&self, namespace: &str, name: &str, expected: &[&str]) {
        let got = wait_for(WAIT, || {
            let now = self.ingress(namespace, name);
            (now == expected).then_some(())
        });
        assert!(
            got.is_some(),
            "{namespace}/{name}: ingress {:?}, expected {expected:?}",
            self.ingress(namespace, name)
        );
    }

    pub fn annotation(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        self.service(namespace, name)
            .metadata
            .annotations
            .and_then(|a| a.get(key).cloned())
    }

    /// (reason, message) of the Events about `kind`/`name` in `namespace`.
    pub fn events(&self, namespace: &str, kind: &str, name: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client(), namespace);
        self.block(events.list(&ListParams::default()))
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some(kind)
                    && e.involved_object.name.as_deref() == Some(name)
            })
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// Waits for an Event about `kind`/`name` with `reason` whose message holds
    /// `text`; returns the message.
    pub fn wait_event(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        reason: &str,
        text: &str,
    ) -> String {
        wait_for(WAIT, || {
            self.events(namespace, kind, name)
                .into_iter()
                .find(|(r, m)| r == reason && m.contains(text))
                .map(|(_, m)| m)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {reason} Event holding {text:?} on {kind} {namespace}/{name}; Events: {:?}",
                self.events(namespace, kind, name)
            )
        })
    }

    /// The status of an IPAddressPool, as JSON.
    pub fn pool_status(&self, pool: &str) -> Value {
        let out = self.kubectl_ok(&["get", "ipaddresspool", "-n", NAMESPACE, pool, "-o", "json"]);
        let object: Value = serde_json::from_str(&out).expect("kubectl -o json");
        object["status"].clone()
    }

    pub fn wait_pool_status(&self, pool: &str, field: &str, value: i64) {
        let got = wait_for(WAIT, || {
            (self.pool_status(pool)[field] == value).then_some(())
        });
        assert!(
            got.is_some(),
            "pool {pool}: status {} has no {field}: {value}",
            self.pool_status(pool)
        );
    }
}

/// A `type: LoadBalancer` Service with `ports` (protocol, port) and extra spec
/// fields and annotations.
pub fn lb_service(name: &str, ports: &[(&str, u16)], spec: Value, annotations: Value) -> Value {
    let mut service = serde_json::json!({
        "metadata": { "name": name, "annotations": annotations },
        "spec": {
            "type": "LoadBalancer",
            "ports": ports
                .iter()
                .enumerate()
                .map(|(i, (protocol, port))| serde_json::json!({ "name": format!("p{i}"), "protocol": protocol, "port": port }))
                .collect::<Vec<_>>(),
        },
    });
    if let (Some(base), Some(extra)) = (service["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    service
}
