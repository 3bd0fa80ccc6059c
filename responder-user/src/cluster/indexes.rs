//! What the assigner remembers of Nodes and EndpointSlices between updates, to
//! tell which changes matter: a Node's status is rewritten all the time, but
//! ownership reads only its labels, network condition and addresses; a slice
//! changes with every pod, but ownership reads only which nodes have ready
//! endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::nodes::OUT_OF_SERVICE_TAINT;
use crate::k8s::{ServiceRef, SERVICE_NAME_LABEL};

/// What ownership reads of a Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NodeFacts {
    labels: BTreeMap<String, String>,
    network_unavailable: bool,
    out_of_service: bool,
    addresses: Vec<String>,
}

pub(super) fn node_facts(node: &Node) -> NodeFacts {
    let status = node.status.as_ref();
    NodeFacts {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        network_unavailable: status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True"),
        out_of_service: node
            .spec
            .as_ref()
            .and_then(|spec| spec.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|taint| taint.key == OUT_OF_SERVICE_TAINT),
        addresses: status
            .and_then(|s| s.addresses.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|a| a.address.clone())
            .collect(),
    }
}

/// `namespace/name` of a slice.
pub(super) fn slice_key(slice: &EndpointSlice) -> String {
    format!(
        "{}/{}",
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        slice.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The nodes with endpoints of each Service, kept up to date slice by slice.
#[derive(Debug, Default)]
pub(super) struct EndpointIndex {
    slices: HashMap<String, (ServiceRef, BTreeSet<String>)>,
    slices_of: HashMap<ServiceRef, BTreeSet<String>>,
    nodes: HashMap<ServiceRef, BTreeSet<String>>,
}

impl EndpointIndex {
    pub(super) fn build<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        let mut index = EndpointIndex::default();
        for slice in slices {
            index.update(slice_key(slice), slice_nodes(slice));
        }
        index
    }

    /// Records slice `key` (now of a Service with endpoints on some nodes,
    /// or gone) and returns the Services whose nodes changed.
    pub(super) fn update(
        &mut self,
        key: String,
        now: Option<(ServiceRef, BTreeSet<String>)>,
    ) -> Vec<ServiceRef> {
        let before = match &now {
            Some(entry) => self.slices.insert(key.clone(), entry.clone()),
            None => self.slices.remove(&key),
        };
        let mut affected = Vec::new();
        if let Some((service, _)) = before {
            if let Some(keys) = self.slices_of.get_mut(&service) {
                keys.remove(&key);
            }
            affected.push(service);
        }
        if let Some((service, _)) = now {
            self.slices_of
                .entry(service.clone())
                .or_default()
                .insert(key);
            affected.push(service);
        }
        affected.sort();
        affected.dedup();
        affected
            .into_iter()
            .filter(|service| self.refresh(service))
            .collect()
    }

    /// Recomputes `service`'s nodes from its slices; whether they changed.
    fn refresh(&mut self, service: &ServiceRef) -> bool {
        let keys = self.slices_of.get(service).cloned().unwrap_or_default();
        if keys.is_empty() {
            self.slices_of.remove(service);
            return self.nodes.remove(service).is_some();
        }
        let nodes: BTreeSet<String> = keys
            .iter()
            .filter_map(|key| self.slices.get(key))
            .flat_map(|(_, nodes)| nodes.iter().cloned())
            .collect();
        self.nodes.insert(service.clone(), nodes.clone()) != Some(nodes)
    }

    pub(super) fn nodes(&self) -> &HashMap<ServiceRef, BTreeSet<String>> {
        &self.nodes
    }
}

/// The Service of a slice, and the nodes hosting one of its ready or serving
/// (e.g. terminating but still draining) endpoints. Absent conditions mean
/// ready, as the EndpointSlice API specifies. `None` for a slice of no
/// Service.
pub(crate) fn slice_nodes(slice: &EndpointSlice) -> Option<(ServiceRef, BTreeSet<String>)> {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))?;
    let key = ServiceRef::new(
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        service.as_str(),
    );
    let mut nodes = BTreeSet::new();
    for endpoint in slice.endpoints.iter().flatten() {
        let conditions = endpoint.conditions.as_ref();
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
        if let (true, Some(node)) = (ready || serving, &endpoint.node_name) {
            nodes.insert(node.clone());
        }
    }
    Some((key, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn only_services_whose_nodes_change_are_reported() {
        let mut index = EndpointIndex::default();
        let web = service("web");
        assert_eq!(
            index.update("default/web-1".into(), Some((web.clone(), nodes(&["a"])))),
            vec![web.clone()]
        );
        assert_eq!(
            index.update(
                "default/web-2".into(),
                Some((web.clone(), nodes(&["a", "b"])))
            ),
            vec![web.clone()]
        );
        assert!(
            index
                .update("default/web-1".into(), Some((web.clone(), nodes(&["a"]))))
                .is_empty(),
            "a pod change that moves no node"
        );
        assert!(
            index.update("default/web-1".into(), None).is_empty(),
            "web-2 still has a"
        );
        assert_eq!(index.nodes()[&web], nodes(&["a", "b"]));
        assert_eq!(
            index.update("default/web-2".into(), None),
            vec![web.clone()]
        );
        assert!(!index.nodes().contains_key(&web));
    }
}
