//! `ServiceL2Status`: which node announces a Service, on which interfaces. Written
//! by the announcing node only, deleted by a node that stops announcing, so
//! `kubectl get servicel2status -A` shows who announces what.

use kube::core::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{metallb_kind, Lenient};
use crate::k8s::ServiceRef;

/// MetalLB's labels on each status object, by which a node finds its own.
pub const LABEL_NODE: &str = "metallb.io/node";
pub const LABEL_SERVICE_NAME: &str = "metallb.io/service-name";
pub const LABEL_SERVICE_NAMESPACE: &str = "metallb.io/service-namespace";

/// Lives in the responder's namespace. The CRD has a status subresource (as
/// MetalLB's): a create stores no status, so the writer creates the object, then
/// patches `/status`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServiceL2Status {
    pub metadata: ObjectMeta,
    /// Always empty.
    #[serde(default)]
    pub spec: serde_json::Value,
    #[serde(default)]
    pub status: Option<Lenient<ServiceL2StatusFields>>,
}

metallb_kind!(
    ServiceL2Status,
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    spec = serde_json::Value,
    status = Lenient<ServiceL2StatusFields>
);

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusFields {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct InterfaceInfo {
    #[serde(default)]
    pub name: String,
}

impl ServiceL2Status {
    /// A new status object for `service` announced by `node`: named by the API
    /// server (`l2-` prefix, as MetalLB), labelled so each node finds its own.
    pub fn announcing(
        namespace: &str,
        node: &str,
        service: &ServiceRef,
        interfaces: &[String],
    ) -> Self {
        ServiceL2Status {
            metadata: ObjectMeta {
                generate_name: Some("l2-".to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(
                    [
                        (LABEL_NODE, node),
                        (LABEL_SERVICE_NAME, &*service.name),
                        (LABEL_SERVICE_NAMESPACE, &*service.namespace),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ),
                ..Default::default()
            },
            spec: serde_json::json!({}),
            status: Some(Lenient::new(ServiceL2StatusFields {
                node: node.to_owned(),
                service_name: service.name.to_string(),
                service_namespace: service.namespace.to_string(),
                interfaces: interfaces
                    .iter()
                    .map(|name| InterfaceInfo { name: name.clone() })
                    .collect(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcing_status_serializes_as_metallb_writes_it() {
        let status = ServiceL2Status::announcing(
            "responder-system",
            "node-a",
            &ServiceRef::new("default", "web"),
            &["eth0".to_owned()],
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["apiVersion"], "metallb.io/v1beta1");
        assert_eq!(json["kind"], "ServiceL2Status");
        assert_eq!(json["metadata"]["generateName"], "l2-");
        assert_eq!(json["metadata"]["labels"][LABEL_NODE], "node-a");
        assert_eq!(
            json["metadata"]["labels"][LABEL_SERVICE_NAMESPACE],
            "default"
        );
        assert_eq!(
            json["status"],
            serde_json::json!({"node":"node-a","serviceName":"web","serviceNamespace":"default",
                               "interfaces":[{"name":"eth0"}]})
        );
        let back: ServiceL2Status = serde_json::from_value(json).unwrap();
        assert_eq!(back.status.unwrap().get().unwrap().node, "node-a");
    }
}
