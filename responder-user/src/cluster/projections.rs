//! What the reflectors of Nodes and EndpointSlices keep of each object: only
//! what ownership reads (Services have a cache of their own, see
//! `service_facts`). Full objects (managedFields, last-applied
//! annotations, Node images and capacity, endpoint addresses) would make the
//! agent's memory grow with the size of the cluster's objects rather than
//! their number: at 10,000 Services that is most of its footprint.

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::api::ObjectMeta;

use super::nodes::OUT_OF_SERVICE_TAINT;

/// Identity and labels: nothing reads a Node's or a slice's annotations
/// (MetalLB's pool annotation is on Services, see `service_facts`).
fn strip_metadata(metadata: &mut ObjectMeta) {
    let kept = ObjectMeta {
        name: metadata.name.take(),
        namespace: metadata.namespace.take(),
        uid: metadata.uid.take(),
        resource_version: metadata.resource_version.take(),
        labels: metadata.labels.take(),
        ..ObjectMeta::default()
    };
    *metadata = kept;
}

/// Labels (eligibility, node selectors), the NetworkUnavailable condition,
/// the out-of-service taint and the addresses (never VIPs).
pub(super) fn strip_node(node: &mut Node) {
    strip_metadata(&mut node.metadata);
    node.spec = node.spec.take().and_then(|spec| {
        let taints: Vec<Taint> = spec
            .taints?
            .into_iter()
            .filter(|taint| taint.key == OUT_OF_SERVICE_TAINT)
            .collect();
        (!taints.is_empty()).then(|| NodeSpec {
            taints: Some(taints),
            ..NodeSpec::default()
        })
    });
    node.status = node.status.take().map(|status| NodeStatus {
        addresses: status.addresses,
        conditions: status.conditions.map(|conditions| {
            conditions
                .into_iter()
                .filter(|c| c.type_ == "NetworkUnavailable")
                .collect()
        }),
        ..NodeStatus::default()
    });
}

/// Which node each endpoint runs on, and whether it is ready or serving.
pub(super) fn strip_slice(slice: &mut EndpointSlice) {
    strip_metadata(&mut slice.metadata);
    slice.ports = None;
    for endpoint in slice.endpoints.iter_mut().flatten() {
        *endpoint = Endpoint {
            node_name: endpoint.node_name.take(),
            conditions: endpoint.conditions.take(),
            ..Endpoint::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition};

    use super::*;

    fn annotated(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_node_keeps_labels_addresses_and_its_network_condition() {
        let condition = |type_: &str| NodeCondition {
            type_: type_.into(),
            status: "True".into(),
            ..Default::default()
        };
        let address = NodeAddress {
            type_: "InternalIP".into(),
            address: "198.51.100.3".into(),
        };
        let mut node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: annotated(&[("role", "edge")]),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(vec![address.clone()]),
                conditions: Some(vec![condition("Ready"), condition("NetworkUnavailable")]),
                images: Some(Vec::new()),
                ..Default::default()
            }),
            ..Default::default()
        };
        strip_node(&mut node);
        let status = node.status.expect("status");
        assert_eq!(status.addresses, Some(vec![address]));
        assert_eq!(
            status.conditions,
            Some(vec![condition("NetworkUnavailable")])
        );
        assert_eq!(status.images, None);
        assert_eq!(node.metadata.labels, annotated(&[("role", "edge")]));
    }

    #[test]
    fn a_node_keeps_only_the_out_of_service_taint_of_its_spec() {
        let taint = |key: &str| Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        let mut node = Node {
            spec: Some(NodeSpec {
                pod_cidr: Some("10.244.0.0/24".into()),
                taints: Some(vec![taint("dedicated"), taint(OUT_OF_SERVICE_TAINT)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        strip_node(&mut node);
        let spec = node.spec.expect("the taint is kept");
        assert_eq!(spec.taints, Some(vec![taint(OUT_OF_SERVICE_TAINT)]));
        assert_eq!(spec.pod_cidr, None);
        let mut untainted = Node {
            spec: Some(NodeSpec {
                taints: Some(vec![taint("dedicated")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        strip_node(&mut untainted);
        assert_eq!(untainted.spec, None);
    }

    #[test]
    fn an_endpoint_slice_keeps_nodes_and_conditions() {
        let mut slice = crate::k8s::fixtures::slice("web", &[("a", Some(true), None)]);
        slice.endpoints.as_mut().expect("endpoints")[0].addresses = vec!["10.0.0.1".into()];
        strip_slice(&mut slice);
        let endpoint = &slice.endpoints.as_ref().expect("endpoints")[0];
        assert_eq!(endpoint.node_name.as_deref(), Some("a"));
        assert!(endpoint.addresses.is_empty());
        assert!(endpoint.conditions.is_some());
        assert!(slice
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("kubernetes.io/service-name")));
    }
}
