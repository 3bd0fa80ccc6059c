//! What the controller reads from a Service object: whether it is ours, what it
//! asks for (as the IPAM core's `ServiceRequest`) and what its status holds.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::crd::ANNOTATION_ALLOCATED_FROM_POOL;
use crate::ipam::{IpFamily, IpFamilyPolicy, ServicePort, ServiceRequest};
use crate::k8s::ServiceRef;

/// Whether the controller gives this Service addresses: the same rule as the
/// agents' (`type: LoadBalancer`; with `--lb-class` only that class, without it
/// only classless Services), so every address handed out has agents answering it.
pub(crate) fn is_ours(service: &Service, lb_class: Option<&str>) -> bool {
    crate::k8s::is_ours(service, lb_class)
}

/// The Service as the IPAM core reads it. Fails, in words for an Event, only on
/// values the API server itself would refuse (an unknown protocol or family, a port
/// out of range), which a Service from a real API server never has.
pub(crate) fn request(
    service: &Service,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<ServiceRequest, String> {
    let key = ServiceRef::of(service);
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|port| {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            Ok(ServicePort {
                protocol: protocol
                    .parse()
                    .map_err(|e| format!("{key}: spec.ports: {e}"))?,
                port: u16::try_from(port.port)
                    .map_err(|_| format!("{key}: spec.ports: port {} out of range", port.port))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let ip_families = spec
        .ip_families
        .unwrap_or_default()
        .iter()
        .map(|f| {
            f.parse::<IpFamily>()
                .map_err(|e| format!("{key}: spec.ipFamilies: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let ip_family_policy = match spec.ip_family_policy.as_deref() {
        None => IpFamilyPolicy::SingleStack,
        Some(policy) => policy
            .parse()
            .map_err(|e| format!("{key}: spec.ipFamilyPolicy: {e}"))?,
    };
    Ok(ServiceRequest {
        labels: service.metadata.labels.clone().unwrap_or_default(),
        namespace_labels: namespace_labels.clone(),
        annotations: service.metadata.annotations.clone().unwrap_or_default(),
        ports,
        ip_family_policy,
        ip_families,
        load_balancer_ip: spec.load_balancer_ip,
        external_traffic_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        selector: spec.selector.unwrap_or_default(),
        key,
    })
}

/// `status.loadBalancer.ingress[].ip` in order; entries without a readable IP are
/// left out (a status that differs from what the controller wants is rewritten
/// whole anyway).
pub(crate) fn ingress(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ip.as_deref()?.parse().ok())
        .collect()
}

pub(crate) fn allocated_from(service: &Service) -> Option<&str> {
    service
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, ServicePort as K8sPort};

    use super::*;
    use crate::k8s::fixtures::lb_service;

    /// A LoadBalancer Service in `default` with one TCP port 80 and no
    /// status.
    pub(crate) fn lb(name: &str) -> Service {
        let mut service = lb_service(name, None, "Cluster", &[]);
        let spec = service.spec.as_mut().expect("spec");
        spec.external_traffic_policy = None;
        spec.ports = Some(vec![K8sPort {
            port: 80,
            ..Default::default()
        }]);
        service.status = None;
        service
    }

    /// `service` with `ips` in its status, in order.
    pub(crate) fn with_ingress(mut service: Service, ips: &[&str]) -> Service {
        let ingress: Vec<(Option<&str>, Option<&str>)> =
            ips.iter().map(|ip| (Some(*ip), None)).collect();
        service.status = lb_service("", None, "Cluster", &ingress).status;
        service
    }

    #[test]
    fn reads_families_ports_and_requests() {
        let mut service = lb("web");
        let spec = service.spec.as_mut().unwrap();
        spec.ip_family_policy = Some("RequireDualStack".into());
        spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
        spec.load_balancer_ip = Some("192.0.2.7".into());
        spec.external_traffic_policy = Some("Local".into());
        spec.ports.as_mut().unwrap().push(K8sPort {
            port: 53,
            protocol: Some("UDP".into()),
            ..Default::default()
        });
        let request = request(&service, &[("team".into(), "a".into())].into()).unwrap();
        assert_eq!(request.key, ServiceRef::new("default", "web"));
        assert_eq!(request.ip_family_policy, IpFamilyPolicy::RequireDualStack);
        assert_eq!(request.ip_families, [IpFamily::V6, IpFamily::V4]);
        assert_eq!(
            request.ports,
            [ServicePort::tcp(80), ServicePort::udp(53)],
            "a port without protocol is TCP"
        );
        assert_eq!(request.load_balancer_ip.as_deref(), Some("192.0.2.7"));
        assert!(request.external_traffic_local);
        assert_eq!(request.namespace_labels["team"], "a");
    }

    #[test]
    fn refuses_what_the_api_server_would() {
        let mut service = lb("web");
        service.spec.as_mut().unwrap().ip_families = Some(vec!["IPv5".into()]);
        let error = request(&service, &BTreeMap::new()).unwrap_err();
        assert!(
            error.starts_with("default/web: spec.ipFamilies: "),
            "{error}"
        );
    }

    #[test]
    fn ingress_keeps_order_and_skips_hostnames() {
        let mut service = with_ingress(lb("web"), &["2001:db8::1", "192.0.2.1"]);
        let ingress_list = &mut service
            .status
            .as_mut()
            .unwrap()
            .load_balancer
            .as_mut()
            .unwrap()
            .ingress;
        ingress_list.as_mut().unwrap().push(LoadBalancerIngress {
            hostname: Some("lb.example".into()),
            ..Default::default()
        });
        assert_eq!(
            ingress(&service),
            [
                "2001:db8::1".parse::<IpAddr>().unwrap(),
                "192.0.2.1".parse().unwrap()
            ]
        );
    }
}
