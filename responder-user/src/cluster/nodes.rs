//! Which Nodes may announce, as the service controller judges load-balancer
//! backends, and which addresses are the Nodes' own (never VIPs).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use crate::k8s::LabelSelector;

pub(crate) const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The taint Kubernetes' non-graceful node shutdown puts on a node that is
/// known to be down: its Services move at once rather than when its Lease
/// runs out (MetalLB #3116).
pub(crate) const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// Why a Node may not announce, as the service controller judges
/// load-balancer backends, plus `--node-selector` and the out-of-service
/// taint; `None` when it may.
pub(crate) fn exclusion(node: &Node, selector: &LabelSelector) -> Option<String> {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if labels.contains_key(EXCLUDE_LB_LABEL) {
        return Some(format!("labelled {EXCLUDE_LB_LABEL}"));
    }
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    if network_unavailable {
        return Some("its NetworkUnavailable condition is True".to_owned());
    }
    let out_of_service = node
        .spec
        .as_ref()
        .and_then(|spec| spec.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|taint| taint.key == OUT_OF_SERVICE_TAINT);
    if out_of_service {
        return Some(format!("tainted {OUT_OF_SERVICE_TAINT}"));
    }
    if !selector.matches(labels) {
        return Some(format!(
            "its labels do not match --node-selector '{selector}'"
        ));
    }
    None
}

pub(crate) fn node_eligible(node: &Node, selector: &LabelSelector) -> bool {
    exclusion(node, selector).is_none()
}

/// A node's own address, which is never a VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnAddress {
    pub(crate) node: String,
    /// What it is (`InternalIP of Node n1`).
    pub(crate) what: String,
    /// Known to this agent only (an address of its interfaces that its Node
    /// does not list): no other agent can tell about it.
    pub(crate) local_only: bool,
}

/// Every address in the Nodes' `status.addresses`, with whose it is.
pub(crate) fn node_addresses<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
) -> BTreeMap<IpAddr, OwnAddress> {
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
                addresses.entry(ip).or_insert_with(|| OwnAddress {
                    node: name.to_owned(),
                    what: format!("{} of Node {name}", address.type_),
                    local_only: false,
                });
            }
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};

    use super::*;

    fn node(labels: &[(&str, &str)], network_unavailable: Option<&str>) -> Node {
        let mut node = crate::k8s::fixtures::node("n1", labels);
        node.status = Some(NodeStatus {
            conditions: network_unavailable.map(|status| {
                vec![NodeCondition {
                    type_: "NetworkUnavailable".into(),
                    status: status.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        node
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

    #[test]
    fn each_exclusion_says_why() {
        let any: LabelSelector = "".parse().expect("empty selector");
        let edge: LabelSelector = "role=edge".parse().expect("selector");
        let excluded =
            |node: &Node, selector: &LabelSelector| exclusion(node, selector).expect("excluded");
        assert!(excluded(&node(&[(EXCLUDE_LB_LABEL, "")], None), &any).contains(EXCLUDE_LB_LABEL));
        assert!(excluded(&node(&[], Some("True")), &any).contains("NetworkUnavailable"));
        assert!(excluded(&node(&[("role", "core")], None), &edge).contains("'role=edge'"));
        let mut shut_down = node(&[("role", "edge")], None);
        shut_down.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: OUT_OF_SERVICE_TAINT.into(),
                value: Some("nodeshutdown".into()),
                effect: "NoExecute".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(excluded(&shut_down, &edge).contains(OUT_OF_SERVICE_TAINT));
        assert!(
            !node_eligible(&shut_down, &any),
            "the taint excludes at once"
        );
        assert_eq!(exclusion(&node(&[("role", "edge")], None), &edge), None);
    }
}
