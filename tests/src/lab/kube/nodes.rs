//! What tests do to a lab's Nodes through the API server: labels,
//! conditions, taints, addresses.

use super::*;

impl KubeLab {
    pub fn include_node(&self, node: &str) {
        self.label_node(node, json!(null), "included");
    }

    pub fn exclude_node(&self, node: &str) {
        self.label_node(node, json!(""), "excluded");
    }

    fn label_node(&self, node: &str, value: serde_json::Value, what: &str) {
        let patch = json!({ "metadata": { "labels": { EXCLUDE_LB_LABEL: value } } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)))
            .unwrap_or_else(|e| panic!("label Node {what}: {e}"));
    }

    /// Sets the Node's condition `kind` (e.g. `NetworkUnavailable`) to
    /// `status` (`"True"`, `"False"`), as a CNI plugin or the route
    /// controller would, through the status subresource; other conditions
    /// are kept (strategic merge by type).
    pub fn set_node_condition(&self, node: &str, kind: &str, status: &str) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let patch = json!({ "status": { "conditions": [{
            "type": kind,
            "status": status,
            "reason": "ResponderTest",
            "message": format!("set by the test to {status}"),
            "lastTransitionTime": now,
            "lastHeartbeatTime": now,
        }] } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch)))
            .unwrap_or_else(|e| panic!("set condition {kind}={status} on Node {node}: {e}"));
    }

    /// Puts the out-of-service taint on the Node (effect NoExecute, value
    /// `nodeshutdown`), as an operator does for a node known to be shut
    /// down; replaces the Node's taints (the lab's Nodes have no others).
    pub fn taint_out_of_service(&self, node: &str) {
        let taint =
            json!({ "key": OUT_OF_SERVICE_TAINT, "value": "nodeshutdown", "effect": "NoExecute" });
        self.set_taints(node, json!([taint]));
    }

    /// Removes every taint of the Node.
    pub fn untaint(&self, node: &str) {
        self.set_taints(node, json!(null));
    }

    fn set_taints(&self, node: &str, taints: serde_json::Value) {
        let patch = json!({ "spec": { "taints": taints } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)))
            .unwrap_or_else(|e| panic!("set the taints of Node {node}: {e}"));
    }

    /// Writes `addresses` into the Node's `status.addresses` as InternalIPs,
    /// as the kubelet would.
    pub fn set_node_addresses(&self, node: &str, addresses: &[&str]) {
        let listed: Vec<_> = addresses
            .iter()
            .map(|a| json!({ "type": "InternalIP", "address": a }))
            .collect();
        let status = json!({ "status": { "addresses": listed } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch_status(node, &PatchParams::default(), &Patch::Merge(&status)))
            .expect("patch Node status");
    }
}
