//! Objects the unit tests of both sides build: Services, EndpointSlices,
//! label sets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, Service, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use kube::api::ObjectMeta;

use super::service::SERVICE_NAME_LABEL;
use super::ServiceRef;

pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// A Node named `name` with `labels` and nothing else.
pub(crate) fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(self::labels(labels)),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(crate) fn svc(namespace: &str, name: &str) -> ServiceRef {
    ServiceRef {
        namespace: namespace.into(),
        name: name.into(),
    }
}

pub(crate) fn lb_service(
    name: &str,
    class: Option<&str>,
    policy: &str,
    ingress: &[(Option<&str>, Option<&str>)],
) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: class.map(Into::into),
            external_traffic_policy: Some(policy.into()),
            ..Default::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ingress
                        .iter()
                        .map(|(ip, hostname)| LoadBalancerIngress {
                            ip: ip.map(Into::into),
                            hostname: hostname.map(Into::into),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }),
    }
}

pub(crate) fn slice(
    service: &str,
    endpoints: &[(&str, Option<bool>, Option<bool>)],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(format!("{service}-abcde")),
            labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(
            endpoints
                .iter()
                .map(|(node, ready, serving)| Endpoint {
                    addresses: vec!["198.51.100.10".into()],
                    node_name: Some((*node).into()),
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        serving: *serving,
                        terminating: None,
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: None,
    }
}
