//! A Service as both sides read it: its identity, whether it is ours, and
//! the addresses its status lists. The agent and the controller must agree
//! on all three, or the controller would hand out addresses no agent
//! answers for.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

/// The label that ties an EndpointSlice to its Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's namespace and name. Every map kept per Service is keyed or
/// valued by one (assignments, owned VIPs, metrics labels, the data plane's
/// table, the allocator's ledger): shared strings make each copy a pointer,
/// not two allocations, which at 10,000 Services is megabytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ServiceRef {
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(service: &Service) -> Self {
        ServiceRef::new(
            service.metadata.namespace.as_deref().unwrap_or_default(),
            service.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// LoadBalancer Services of our class; with no class configured only classless
/// ones, because a classed Service is explicitly meant for another implementation.
pub(crate) fn is_ours(service: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    is_ours_by(
        is_load_balancer(service),
        spec.load_balancer_class.as_deref(),
        lb_class,
    )
}

pub(crate) fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// [`is_ours`] from whether a Service is of type LoadBalancer and its
/// `spec.loadBalancerClass`.
pub(crate) fn is_ours_by(load_balancer: bool, class: Option<&str>, lb_class: Option<&str>) -> bool {
    load_balancer && class == lb_class
}

/// An entry of `status.loadBalancer.ingress` that is not a usable address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct UnusableIngress {
    /// `ipMode: Proxy` (Kubernetes 1.29+): the address itself is fine, but
    /// kube-proxy installs no rules for it, so drawing its traffic to a node
    /// would black-hole it. Otherwise the entry is hostname-only or malformed.
    pub(crate) proxied: bool,
    pub(crate) detail: String,
}

/// The addresses in `status.loadBalancer.ingress`, sorted and deduplicated, and
/// every entry that is not a usable IP, with why.
pub(crate) fn ingress_ips(service: &Service) -> (Vec<IpAddr>, Vec<UnusableIngress>) {
    let entries = service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    let mut ips = BTreeSet::new();
    let mut unusable = Vec::new();
    for entry in entries {
        let malformed = |detail: String| UnusableIngress {
            proxied: false,
            detail,
        };
        match (&entry.ip, &entry.hostname) {
            (Some(ip), _) if entry.ip_mode.as_deref() != Some("Proxy") => {
                match ip.parse::<IpAddr>() {
                    Ok(addr) => {
                        ips.insert(addr);
                    }
                    Err(_) => {
                        unusable.push(malformed(format!("ingress ip {ip:?} is not an IP address")))
                    }
                }
            }
            (Some(ip), _) => unusable.push(UnusableIngress {
                proxied: true,
                detail: format!(
                    "ingress ip {ip:?} has ipMode Proxy: kube-proxy does not handle it on the nodes"
                ),
            }),
            (None, Some(hostname)) => unusable.push(malformed(format!(
                "ingress hostname {hostname:?} has no ip"
            ))),
            (None, None) => unusable.push(malformed(
                "ingress entry has neither ip nor hostname".to_owned(),
            )),
        }
    }
    (ips.into_iter().collect(), unusable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::fixtures::lb_service;

    #[test]
    fn class_filter() {
        let classless = lb_service("a", None, "Cluster", &[]);
        let classed = lb_service("b", Some("example.com/responder"), "Cluster", &[]);
        let mut cluster_ip = lb_service("c", None, "Cluster", &[]);
        cluster_ip.spec.as_mut().expect("spec").type_ = Some("ClusterIP".into());
        assert!(is_ours(&classless, None));
        assert!(!is_ours(&classed, None));
        assert!(is_ours(&classed, Some("example.com/responder")));
        assert!(!is_ours(&classless, Some("example.com/responder")));
        assert!(!is_ours(&classed, Some("example.com/other")));
        assert!(!is_ours(&cluster_ip, None));
        assert!(!is_ours(&Service::default(), None));
    }

    #[test]
    fn ingress_parsing_keeps_good_entries_and_reports_bad_ones() {
        let service = lb_service(
            "a",
            None,
            "Cluster",
            &[
                (Some("2001:db8::1"), None),
                (None, Some("lb.example.com")),
                (Some("192.0.2.10"), Some("lb.example.com")),
                (Some("not-an-ip"), None),
                (Some("192.0.2.300"), None),
                (None, None),
                (Some("192.0.2.10"), None),
            ],
        );
        let (ips, problems) = ingress_ips(&service);
        assert_eq!(
            ips,
            [
                "192.0.2.10".parse::<IpAddr>().expect("ip"),
                "2001:db8::1".parse().expect("ip")
            ]
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].detail.contains("lb.example.com"),
            "{problems:?}"
        );
        assert!(ingress_ips(&Service::default()).0.is_empty());
    }
}
