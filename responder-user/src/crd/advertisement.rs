//! `L2Advertisement`: which pools' addresses are announced, from which nodes and on
//! which interfaces. The agent follows them; the checked form here holds MetalLB's
//! matching rules so that every reader applies the same ones.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::ObjectMeta;
use serde::Deserialize;

use super::{metallb_kind, Lenient};
use crate::k8s::LabelSelector;
use crate::k8s::LabelSelectorSpec;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct L2Advertisement {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Lenient<L2AdvertisementSpec>,
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

metallb_kind!(
    L2Advertisement,
    kind = "L2Advertisement",
    plural = "l2advertisements",
    spec = Lenient<L2AdvertisementSpec>,
    status = serde_json::Value
);

/// `spec` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools by name.
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    /// Pools by label; with `ip_address_pools` empty too, every pool.
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelectorSpec>,
    /// Nodes that may announce; empty = every node.
    #[serde(default)]
    pub node_selectors: Vec<LabelSelectorSpec>,
    /// Exact interface names; empty = the agent's default interface set.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Services announced; empty = every Service of the selected pools.
    #[serde(default)]
    pub service_selectors: Vec<LabelSelectorSpec>,
}

/// Why an `L2Advertisement` is not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdvertisementError {
    #[error("L2Advertisement {name:?}: spec does not read: {reason}")]
    Unreadable { name: String, reason: String },
    #[error("L2Advertisement {name:?}: {field}: {reason}")]
    InvalidSelector {
        name: String,
        field: String,
        reason: String,
    },
    #[error("L2Advertisement {name:?}: interface name {interface:?} is empty or has blanks")]
    InvalidInterface { name: String, interface: String },
}

/// A checked `L2Advertisement`.
#[derive(Clone, Debug)]
pub struct Advertisement {
    name: String,
    every_pool: bool,
    pool_names: BTreeSet<String>,
    pool_selectors: Vec<LabelSelector>,
    node_selectors: Vec<LabelSelector>,
    interfaces: Vec<String>,
    service_selectors: Vec<LabelSelector>,
}

impl Advertisement {
    pub fn from_object(object: &L2Advertisement) -> Result<Self, AdvertisementError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let spec = object
            .spec
            .get()
            .map_err(|reason| AdvertisementError::Unreadable {
                name: name.clone(),
                reason: reason.to_owned(),
            })?;
        let selectors = |field: &str, specs: &[LabelSelectorSpec]| {
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.to_selector()
                        .map_err(|reason| AdvertisementError::InvalidSelector {
                            name: name.clone(),
                            field: format!("{field}[{i}]"),
                            reason,
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        if let Some(bad) = spec
            .interfaces
            .iter()
            .find(|i| i.is_empty() || i.contains(char::is_whitespace))
        {
            return Err(AdvertisementError::InvalidInterface {
                name,
                interface: bad.clone(),
            });
        }
        Ok(Advertisement {
            every_pool: spec.ip_address_pools.is_empty()
                && spec.ip_address_pool_selectors.is_empty(),
            pool_names: spec.ip_address_pools.iter().cloned().collect(),
            pool_selectors: selectors("ipAddressPoolSelectors", &spec.ip_address_pool_selectors)?,
            node_selectors: selectors("nodeSelectors", &spec.node_selectors)?,
            service_selectors: selectors("serviceSelectors", &spec.service_selectors)?,
            interfaces: spec.interfaces.clone(),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Named in `ipAddressPools`, or matched by any `ipAddressPoolSelectors`; every
    /// pool when both are empty.
    pub fn covers_pool(&self, pool: &str, pool_labels: &BTreeMap<String, String>) -> bool {
        self.every_pool
            || self.pool_names.contains(pool)
            || self.pool_selectors.iter().any(|s| s.matches(pool_labels))
    }

    /// Neither `ipAddressPools` nor `ipAddressPoolSelectors`: the only kind
    /// that covers an address in no pool.
    pub fn covers_every_pool(&self) -> bool {
        self.every_pool
    }

    /// Any `nodeSelectors` matches; every node when there is none.
    pub fn covers_node(&self, node_labels: &BTreeMap<String, String>) -> bool {
        any_or_all(&self.node_selectors, node_labels)
    }

    /// Any `serviceSelectors` matches; every Service when there is none.
    pub fn covers_service(&self, service_labels: &BTreeMap<String, String>) -> bool {
        any_or_all(&self.service_selectors, service_labels)
    }

    /// The interfaces to announce on; empty means the agent's default set.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }
}

fn any_or_all(selectors: &[LabelSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::fixtures::labels;

    fn advertisement(spec: &str) -> Result<Advertisement, AdvertisementError> {
        let object: L2Advertisement =
            serde_json::from_str(&format!(r#"{{"metadata":{{"name":"adv"}},"spec":{spec}}}"#))
                .unwrap();
        Advertisement::from_object(&object)
    }

    #[test]
    fn no_pool_named_or_selected_means_every_pool() {
        let every = advertisement("{}").unwrap();
        assert!(every.covers_pool("any", &labels(&[])));
        assert!(every.covers_node(&labels(&[])));
        assert!(every.covers_service(&labels(&[("a", "b")])));
        assert!(every.interfaces().is_empty());
    }

    #[test]
    fn pools_by_name_or_label_nodes_and_interfaces() {
        let internal = advertisement(
            r#"{"ipAddressPools":["internal-v4"],
                "ipAddressPoolSelectors":[{"matchLabels":{"zone":"internal"}}],
                "nodeSelectors":[{"matchLabels":{"kubernetes.io/hostname":"node-a"}},
                                 {"matchExpressions":[{"key":"edge","operator":"Exists"}]}],
                "interfaces":["eth1","ens224"],
                "serviceSelectors":[{"matchLabels":{"tier":"db"}}]}"#,
        )
        .unwrap();
        assert!(internal.covers_pool("internal-v4", &labels(&[])));
        assert!(internal.covers_pool("internal-v6", &labels(&[("zone", "internal")])));
        assert!(!internal.covers_pool("public", &labels(&[("zone", "public")])));
        assert!(internal.covers_node(&labels(&[("kubernetes.io/hostname", "node-a")])));
        assert!(internal.covers_node(&labels(&[("edge", "")])));
        assert!(!internal.covers_node(&labels(&[("kubernetes.io/hostname", "node-b")])));
        assert!(internal.covers_service(&labels(&[("tier", "db")])));
        assert!(!internal.covers_service(&labels(&[("tier", "web")])));
        assert_eq!(internal.interfaces(), ["eth1", "ens224"]);
    }

    #[test]
    fn refuses_bad_selectors_interfaces_and_specs() {
        let bad_selector = advertisement(
            r#"{"nodeSelectors":[{"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]}]}"#,
        )
        .unwrap_err();
        assert!(
            bad_selector
                .to_string()
                .starts_with("L2Advertisement \"adv\": nodeSelectors[0]: "),
            "{bad_selector}"
        );
        assert!(matches!(
            advertisement(r#"{"interfaces":["eth 0"]}"#),
            Err(AdvertisementError::InvalidInterface { .. })
        ));
        assert!(matches!(
            advertisement(r#"{"interfaces":"eth0"}"#),
            Err(AdvertisementError::Unreadable { .. })
        ));
    }
}
