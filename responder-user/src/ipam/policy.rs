//! `serviceAllocation`: which Services a pool serves and in which order pools are
//! tried, following MetalLB.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::error::{NotAdmitted, PoolProblem};
use super::request::ServiceRequest;
use crate::k8s::{LabelSelector, LabelSelectorSpec};

/// `spec.serviceAllocation` of an `IPAddressPool`, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocationSpec {
    /// Lower numbers are tried first; 0 (the default) means no priority: tried after
    /// every pool with one.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelectorSpec>,
    #[serde(default)]
    pub service_selectors: Vec<LabelSelectorSpec>,
}

/// A checked `serviceAllocation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAllocation {
    priority: Option<u32>,
    namespaces: BTreeSet<String>,
    namespace_selectors: Vec<LabelSelector>,
    service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    pub(crate) fn from_spec(spec: &ServiceAllocationSpec) -> Result<Self, Vec<PoolProblem>> {
        let mut problems = Vec::new();
        let priority = match u32::try_from(spec.priority) {
            Ok(0) => None,
            Ok(p) => Some(p),
            Err(_) => {
                problems.push(PoolProblem::NegativePriority(spec.priority));
                None
            }
        };
        let mut selectors = |field: &str, specs: &[LabelSelectorSpec]| {
            specs
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.to_selector()
                        .map_err(|reason| {
                            problems.push(PoolProblem::InvalidSelector {
                                field: format!("{field}[{i}]"),
                                reason,
                            })
                        })
                        .ok()
                })
                .collect::<Vec<_>>()
        };
        let namespace_selectors = selectors("namespaceSelectors", &spec.namespace_selectors);
        let service_selectors = selectors("serviceSelectors", &spec.service_selectors);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ServiceAllocation {
            priority,
            namespaces: spec.namespaces.iter().cloned().collect(),
            namespace_selectors,
            service_selectors,
        })
    }

    pub fn priority(&self) -> Option<u32> {
        self.priority
    }

    /// The namespace condition (`namespaces` or any `namespaceSelectors`, unrestricted
    /// when both are empty) and the label condition (any `serviceSelectors`,
    /// unrestricted when empty) must both hold.
    pub fn admits(&self, service: &ServiceRequest) -> Result<(), NotAdmitted> {
        let namespace_open = self.namespaces.is_empty() && self.namespace_selectors.is_empty();
        if !namespace_open
            && !self.namespaces.contains(&*service.key.namespace)
            && !self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(&service.namespace_labels))
        {
            return Err(NotAdmitted::Namespace {
                namespace: service.key.namespace.to_string(),
            });
        }
        if !self.service_selectors.is_empty()
            && !self
                .service_selectors
                .iter()
                .any(|s| s.matches(&service.labels))
        {
            return Err(NotAdmitted::ServiceLabels);
        }
        Ok(())
    }
}

/// Sort key of a pool among the candidates: pools with a priority by ascending
/// priority, then pools with a `serviceAllocation` but no priority, then pools without
/// any (MetalLB tries pools pinned to a Service before the unpinned ones), then by name
/// so the order never depends on input order.
pub(crate) fn selection_key<'a>(
    allocation: Option<&ServiceAllocation>,
    name: &'a str,
) -> (u32, bool, &'a str) {
    // Priorities come from an i32, so u32::MAX sorts after every real one.
    let priority = allocation.and_then(ServiceAllocation::priority);
    (priority.unwrap_or(u32::MAX), allocation.is_none(), name)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::k8s::fixtures::labels;

    fn selector(pairs: &[(&str, &str)]) -> LabelSelectorSpec {
        LabelSelectorSpec {
            match_labels: labels(pairs),
            ..Default::default()
        }
    }

    fn service(
        namespace: &str,
        ns_labels: &[(&str, &str)],
        svc_labels: &[(&str, &str)],
    ) -> ServiceRequest {
        ServiceRequest {
            namespace_labels: labels(ns_labels),
            labels: labels(svc_labels),
            ..ServiceRequest::new(namespace, "web")
        }
    }

    fn allocation(spec: ServiceAllocationSpec) -> ServiceAllocation {
        ServiceAllocation::from_spec(&spec).unwrap()
    }

    #[test]
    fn empty_allocation_admits_everyone() {
        let open = allocation(ServiceAllocationSpec {
            priority: 3,
            ..Default::default()
        });
        assert_eq!(open.admits(&service("any", &[], &[])), Ok(()));
        assert_eq!(open.priority(), Some(3));
    }

    #[test]
    fn namespaces_and_namespace_selectors_are_alternatives() {
        let scoped = allocation(ServiceAllocationSpec {
            namespaces: vec!["prod".into()],
            namespace_selectors: vec![selector(&[("tenant", "a")])],
            ..Default::default()
        });
        assert_eq!(scoped.admits(&service("prod", &[], &[])), Ok(()));
        assert_eq!(
            scoped.admits(&service("dev", &[("tenant", "a")], &[])),
            Ok(())
        );
        assert_eq!(
            scoped.admits(&service("dev", &[("tenant", "b")], &[])),
            Err(NotAdmitted::Namespace {
                namespace: "dev".into()
            })
        );
    }

    #[test]
    fn namespace_selector_that_matches_nothing_admits_nobody() {
        let scoped = allocation(ServiceAllocationSpec {
            namespace_selectors: vec![selector(&[("tenant", "nobody")])],
            ..Default::default()
        });
        assert!(scoped.admits(&service("dev", &[], &[])).is_err());
    }

    #[test]
    fn service_selectors_must_also_match() {
        let scoped = allocation(ServiceAllocationSpec {
            namespaces: vec!["prod".into()],
            service_selectors: vec![selector(&[("tier", "web")]), selector(&[("tier", "api")])],
            ..Default::default()
        });
        assert_eq!(
            scoped.admits(&service("prod", &[], &[("tier", "api")])),
            Ok(())
        );
        assert_eq!(
            scoped.admits(&service("prod", &[], &[("tier", "db")])),
            Err(NotAdmitted::ServiceLabels)
        );
        assert!(matches!(
            scoped.admits(&service("dev", &[], &[("tier", "web")])),
            Err(NotAdmitted::Namespace { .. })
        ));
    }

    #[test]
    fn refuses_negative_priority_and_bad_selectors() {
        let problems = ServiceAllocation::from_spec(&ServiceAllocationSpec {
            priority: -1,
            service_selectors: vec![LabelSelectorSpec::default(), selector(&[("a", "b c")])],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0], PoolProblem::NegativePriority(-1));
        assert!(
            matches!(&problems[1], PoolProblem::InvalidSelector { field, .. } if field == "serviceSelectors[1]"),
            "{problems:?}"
        );
    }

    #[test]
    fn selection_order_is_priority_then_pinned_then_name() {
        let with = |priority| {
            Some(allocation(ServiceAllocationSpec {
                priority,
                ..Default::default()
            }))
        };
        let mut pools = [
            ("z-open", None),
            ("a-open", None),
            ("pinned-no-priority", with(0)),
            ("p10", with(10)),
            ("p1-b", with(1)),
            ("p1-a", with(1)),
        ];
        pools.sort_by(|a, b| {
            selection_key(a.1.as_ref(), a.0).cmp(&selection_key(b.1.as_ref(), b.0))
        });
        let names: Vec<_> = pools.iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "p1-a",
                "p1-b",
                "p10",
                "pinned-no-priority",
                "a-open",
                "z-open"
            ]
        );
    }
}
