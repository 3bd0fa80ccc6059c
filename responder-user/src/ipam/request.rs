//! What a `type: LoadBalancer` Service asks for, as a plain struct the controller
//! fills from the Service object, and its reading under MetalLB's annotations.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::error::AllocationError;
use super::family::{IpFamily, IpFamilyPolicy};
use super::port::ServicePort;
use crate::k8s::ServiceRef;

pub const ANNOTATION_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
pub const ANNOTATION_ADDRESS_POOL: &str = "metallb.io/address-pool";
pub const ANNOTATION_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// Older spellings, still honoured when the `metallb.io/` one is absent.
pub const LEGACY_ANNOTATION_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
pub const LEGACY_ANNOTATION_ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";
pub const LEGACY_ANNOTATION_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";

/// The parts of a Service (and of its Namespace) that address allocation reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRequest {
    pub key: ServiceRef,
    pub labels: BTreeMap<String, String>,
    /// Labels of the Service's Namespace, for `namespaceSelectors`.
    pub namespace_labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
    /// `spec.ipFamilyPolicy`; absent means SingleStack.
    pub ip_family_policy: IpFamilyPolicy,
    /// `spec.ipFamilies`, in order; the addresses are returned in this order.
    pub ip_families: Vec<IpFamily>,
    /// `spec.loadBalancerIP` as written (empty = unset).
    pub load_balancer_ip: Option<String>,
    /// `spec.externalTrafficPolicy: Local`: Services may then share an address only
    /// with Services that select the same pods (MetalLB's backend key).
    pub external_traffic_local: bool,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
}

impl ServiceRequest {
    pub fn new(
        namespace: impl Into<std::sync::Arc<str>>,
        name: impl Into<std::sync::Arc<str>>,
    ) -> Self {
        ServiceRequest {
            key: ServiceRef::new(namespace, name),
            ..Default::default()
        }
    }

    /// `metallb.io/address-pool` (or its older spelling); empty means none.
    pub fn named_pool(&self) -> Option<&str> {
        self.annotation(ANNOTATION_ADDRESS_POOL, LEGACY_ANNOTATION_ADDRESS_POOL)
    }

    /// How this Service may share its addresses; never fails, so even a Service whose
    /// other annotations are broken keeps its addresses across a restart.
    pub(crate) fn sharing(&self) -> Sharing {
        let key = self
            .annotation(
                ANNOTATION_ALLOW_SHARED_IP,
                LEGACY_ANNOTATION_ALLOW_SHARED_IP,
            )
            .map(str::to_owned);
        let backend = self.external_traffic_local.then(|| {
            self.selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        let mut ports = self.ports.clone();
        ports.sort();
        ports.dedup();
        Sharing {
            key,
            backend,
            ports,
        }
    }

    /// The stable annotation wins when present, as in MetalLB; an empty value counts
    /// as unset.
    fn annotation(&self, stable: &str, legacy: &str) -> Option<&str> {
        self.annotations
            .get(stable)
            .or_else(|| self.annotations.get(legacy))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Reads the request; every refusal is worded for an `AllocationFailed` Event.
    pub(crate) fn intent(&self) -> Result<Intent, AllocationError> {
        let families = self.families()?;
        let requested = self.requested(&families)?;
        Ok(Intent {
            policy: self.ip_family_policy,
            families,
            requested,
            pool: self.named_pool().map(str::to_owned),
            sharing: self.sharing(),
        })
    }

    /// Kubernetes fills `ipFamilies` from the cluster's families (one entry for
    /// PreferDualStack on a single-stack cluster), so it is authoritative when set;
    /// without it IPv4 comes first, as in a Service created before dual-stack.
    fn families(&self) -> Result<Vec<IpFamily>, AllocationError> {
        let mut families: Vec<IpFamily> = Vec::new();
        for &family in &self.ip_families {
            if families.contains(&family) {
                return Err(AllocationError::DuplicateIpFamily {
                    service: self.key.clone(),
                    family,
                });
            }
            families.push(family);
        }
        let first = families.first().copied().unwrap_or(IpFamily::V4);
        Ok(match self.ip_family_policy {
            IpFamilyPolicy::SingleStack => vec![first],
            IpFamilyPolicy::PreferDualStack if !families.is_empty() => families,
            IpFamilyPolicy::PreferDualStack | IpFamilyPolicy::RequireDualStack => {
                vec![first, first.other()]
            }
        })
    }

    /// `metallb.io/loadBalancerIPs` (one address per family) or the deprecated
    /// `spec.loadBalancerIP`, ordered as `families`.
    fn requested(&self, families: &[IpFamily]) -> Result<Vec<IpAddr>, AllocationError> {
        // Errors name the spelling the user wrote.
        let annotation = if self.annotations.contains_key(ANNOTATION_LOAD_BALANCER_IPS) {
            ANNOTATION_LOAD_BALANCER_IPS
        } else {
            LEGACY_ANNOTATION_LOAD_BALANCER_IPS
        };
        let listed = self.annotation(
            ANNOTATION_LOAD_BALANCER_IPS,
            LEGACY_ANNOTATION_LOAD_BALANCER_IPS,
        );
        let spec = self
            .load_balancer_ip
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let (field, text) = match (listed, spec) {
            (Some(_), Some(_)) => {
                return Err(AllocationError::ConflictingRequests {
                    service: self.key.clone(),
                    annotation,
                })
            }
            (Some(listed), None) => (annotation, listed),
            (None, Some(spec)) => ("spec.loadBalancerIP", spec),
            (None, None) => return Ok(Vec::new()),
        };
        let mut by_family: BTreeMap<IpFamily, IpAddr> = BTreeMap::new();
        for part in text.split(',') {
            let address: IpAddr =
                part.trim()
                    .parse()
                    .map_err(|_| AllocationError::MalformedRequest {
                        service: self.key.clone(),
                        field,
                        value: part.trim().to_owned(),
                    })?;
            let family = IpFamily::of(address);
            if !families.contains(&family) {
                return Err(AllocationError::RequestedFamilyNotInService {
                    service: self.key.clone(),
                    address,
                    family,
                    families: families.to_vec(),
                });
            }
            if by_family.insert(family, address).is_some() {
                return Err(AllocationError::RequestedFamilyTwice {
                    service: self.key.clone(),
                    field,
                    family,
                });
            }
        }
        if self.ip_family_policy == IpFamilyPolicy::RequireDualStack {
            if let Some(&missing) = families.iter().find(|f| !by_family.contains_key(f)) {
                return Err(AllocationError::RequestedFamilyMissing {
                    service: self.key.clone(),
                    field,
                    missing,
                });
            }
        }
        Ok(families
            .iter()
            .filter_map(|f| by_family.get(f).copied())
            .collect())
    }
}

/// How a Service holds an address, compared with the other holders' to decide sharing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sharing {
    /// `allow-shared-ip` value.
    pub key: Option<String>,
    /// The pod selector when `externalTrafficPolicy: Local`.
    pub backend: Option<String>,
    /// Sorted, without duplicates.
    pub ports: Vec<ServicePort>,
}

/// A Service's request, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Intent {
    pub policy: IpFamilyPolicy,
    /// One or two families, in `ipFamilies` order.
    pub families: Vec<IpFamily>,
    /// Requested addresses in `families` order; when set the Service gets exactly
    /// these, nothing picked automatically.
    pub requested: Vec<IpAddr>,
    pub pool: Option<String>,
    pub sharing: Sharing,
}

impl Intent {
    pub(crate) fn requested_for(&self, family: IpFamily) -> Option<IpAddr> {
        self.requested
            .iter()
            .copied()
            .find(|a| IpFamily::of(*a) == family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::port::Protocol;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn service(policy: IpFamilyPolicy, families: &[IpFamily]) -> ServiceRequest {
        ServiceRequest {
            ip_family_policy: policy,
            ip_families: families.to_vec(),
            ..ServiceRequest::new("default", "web")
        }
    }

    fn annotated(mut request: ServiceRequest, key: &str, value: &str) -> ServiceRequest {
        request.annotations.insert(key.into(), value.into());
        request
    }

    use IpFamily::{V4, V6};
    use IpFamilyPolicy::*;

    #[test]
    fn families_follow_policy_and_ip_families() {
        let families =
            |policy, listed: &[IpFamily]| service(policy, listed).intent().unwrap().families;
        assert_eq!(families(SingleStack, &[]), [V4]);
        assert_eq!(families(SingleStack, &[V6]), [V6]);
        assert_eq!(families(PreferDualStack, &[]), [V4, V6]);
        assert_eq!(families(PreferDualStack, &[V6, V4]), [V6, V4]);
        assert_eq!(
            families(PreferDualStack, &[V6]),
            [V6],
            "single-stack cluster"
        );
        assert_eq!(families(RequireDualStack, &[]), [V4, V6]);
        assert_eq!(families(RequireDualStack, &[V6, V4]), [V6, V4]);
        assert_eq!(families(RequireDualStack, &[V6]), [V6, V4]);
        let err = service(PreferDualStack, &[V4, V4]).intent().unwrap_err();
        assert!(
            matches!(err, AllocationError::DuplicateIpFamily { family: V4, .. }),
            "{err}"
        );
    }

    #[test]
    fn requested_addresses_ordered_by_ip_families() {
        let request = annotated(
            service(RequireDualStack, &[V6, V4]),
            ANNOTATION_LOAD_BALANCER_IPS,
            "192.0.2.5, 2001:db8::5",
        );
        assert_eq!(
            request.intent().unwrap().requested,
            [ip("2001:db8::5"), ip("192.0.2.5")]
        );
    }

    #[test]
    fn legacy_annotations_apply_when_the_stable_one_is_absent() {
        let request = annotated(
            annotated(
                annotated(
                    service(SingleStack, &[]),
                    LEGACY_ANNOTATION_LOAD_BALANCER_IPS,
                    "192.0.2.5",
                ),
                LEGACY_ANNOTATION_ADDRESS_POOL,
                "old",
            ),
            LEGACY_ANNOTATION_ALLOW_SHARED_IP,
            "k",
        );
        let intent = request.intent().unwrap();
        assert_eq!(intent.requested, [ip("192.0.2.5")]);
        assert_eq!(intent.pool.as_deref(), Some("old"));
        assert_eq!(intent.sharing.key.as_deref(), Some("k"));
        let request = annotated(request, ANNOTATION_ADDRESS_POOL, "new");
        assert_eq!(request.named_pool(), Some("new"), "stable spelling wins");
    }

    #[test]
    fn spec_load_balancer_ip_is_honoured() {
        let mut request = service(SingleStack, &[]);
        request.load_balancer_ip = Some("192.0.2.9".into());
        assert_eq!(request.intent().unwrap().requested, [ip("192.0.2.9")]);
        request.load_balancer_ip = Some(String::new());
        assert!(
            request.intent().unwrap().requested.is_empty(),
            "empty is unset"
        );
    }

    #[test]
    fn refuses_contradictory_requests() {
        let mut both = annotated(
            service(SingleStack, &[]),
            ANNOTATION_LOAD_BALANCER_IPS,
            "192.0.2.1",
        );
        both.load_balancer_ip = Some("192.0.2.2".into());
        let err = both.intent().unwrap_err();
        assert_eq!(
            err.to_string(),
            "default/web sets both spec.loadBalancerIP and metallb.io/loadBalancerIPs; set only the annotation"
        );

        type Expect = fn(&AllocationError) -> bool;
        let cases: [(ServiceRequest, Expect); 5] = [
            (
                annotated(
                    service(SingleStack, &[]),
                    ANNOTATION_LOAD_BALANCER_IPS,
                    "192.0.2.1,,",
                ),
                |e| matches!(e, AllocationError::MalformedRequest { .. }),
            ),
            (
                annotated(
                    service(SingleStack, &[]),
                    ANNOTATION_LOAD_BALANCER_IPS,
                    "2001:db8::1",
                ),
                |e| {
                    matches!(
                        e,
                        AllocationError::RequestedFamilyNotInService { family: V6, .. }
                    )
                },
            ),
            (
                annotated(
                    service(PreferDualStack, &[]),
                    ANNOTATION_LOAD_BALANCER_IPS,
                    "192.0.2.1,192.0.2.2",
                ),
                |e| matches!(e, AllocationError::RequestedFamilyTwice { family: V4, .. }),
            ),
            (
                annotated(
                    service(RequireDualStack, &[]),
                    ANNOTATION_LOAD_BALANCER_IPS,
                    "192.0.2.1",
                ),
                |e| {
                    matches!(
                        e,
                        AllocationError::RequestedFamilyMissing { missing: V6, .. }
                    )
                },
            ),
            (
                annotated(
                    service(SingleStack, &[]),
                    LEGACY_ANNOTATION_LOAD_BALANCER_IPS,
                    "nope",
                ),
                |e| {
                    matches!(e, AllocationError::MalformedRequest { field, .. }
                        if *field == LEGACY_ANNOTATION_LOAD_BALANCER_IPS)
                },
            ),
        ];
        for (request, expected) in cases {
            let err = request.intent().unwrap_err();
            assert!(expected(&err), "{:?}: {err}", request.annotations);
        }
    }

    #[test]
    fn prefer_dual_stack_may_request_one_family() {
        let request = annotated(
            service(PreferDualStack, &[]),
            ANNOTATION_LOAD_BALANCER_IPS,
            "2001:db8::1",
        );
        assert_eq!(request.intent().unwrap().requested, [ip("2001:db8::1")]);
    }

    #[test]
    fn sharing_key_and_backend() {
        let mut request = annotated(service(SingleStack, &[]), ANNOTATION_ALLOW_SHARED_IP, " ");
        request.ports = vec![
            ServicePort::udp(53),
            ServicePort::tcp(53),
            ServicePort::udp(53),
        ];
        request.selector.insert("app".into(), "dns".into());
        let sharing = request.sharing();
        assert_eq!(sharing.key, None, "a blank key does not allow sharing");
        assert_eq!(
            sharing.backend, None,
            "Cluster traffic policy has no backend key"
        );
        assert_eq!(sharing.ports, [ServicePort::tcp(53), ServicePort::udp(53)]);
        request.external_traffic_local = true;
        assert_eq!(request.sharing().backend.as_deref(), Some("app=dns"));
    }

    #[test]
    fn parses_kubernetes_spellings() {
        assert_eq!("SCTP".parse::<Protocol>(), Ok(Protocol::Sctp));
        assert!("tcp".parse::<Protocol>().is_err());
        assert_eq!(
            "PreferDualStack".parse::<IpFamilyPolicy>(),
            Ok(PreferDualStack)
        );
        assert_eq!(ServicePort::udp(53).to_string(), "UDP/53");
        assert_eq!(ServiceRef::new("default", "web").to_string(), "default/web");
    }
}
