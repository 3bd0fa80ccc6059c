//! Which Nodes may announce, as the service controller judges load-balancer
//! backends, and which addresses are the Nodes' own (never VIPs).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use crate::k8s::LabelSelector;

pub(crate) const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Mirrors the service controller's rules for load-balancer backends.
pub(crate) fn node_eligible(node: &Node, selector: &LabelSelector) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    !labels.contains_key(EXCLUDE_LB_LABEL) && !network_unavailable && selector.matches(labels)
}

/// Every address in the Nodes' `status.addresses`, with whose it is.
pub(crate) fn node_addresses<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
) -> BTreeMap<IpAddr, String> {
    let mut addresses = BTreeMap::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let listed = node
            .status
            .as_ref()
            .and_then(|status| status.addresses.as_deref())
            .unwrap_or_default();
        for address in listed {
            if let Ok(ip) = address.address.parse::<IpAddr>() {
                addresses
                    .entry(ip)
                    .or_insert_with(|| format!("it is {} of Node {name}", address.type_));
            }
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use kube::api::ObjectMeta;

    use super::*;

    fn node(labels: &[(&str, &str)], network_unavailable: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: network_unavailable.map(|status| {
                    vec![NodeCondition {
                        type_: "NetworkUnavailable".into(),
                        status: status.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn eligibility_rules() {
        let any: LabelSelector = "".parse().expect("empty selector");
        let edge: LabelSelector = "role=edge".parse().expect("selector");
        assert!(node_eligible(&node(&[], None), &any));
        assert!(node_eligible(&node(&[], Some("False")), &any));
        assert!(!node_eligible(&node(&[], Some("True")), &any));
        assert!(!node_eligible(&node(&[(EXCLUDE_LB_LABEL, "")], None), &any));
        assert!(
            !node_eligible(&node(&[(EXCLUDE_LB_LABEL, "false")], None), &any),
            "presence excludes"
        );
        assert!(!node_eligible(&node(&[("role", "core")], None), &edge));
        assert!(node_eligible(&node(&[("role", "edge")], None), &edge));
        assert!(node_eligible(&Node::default(), &any));
    }
}
