//! Allocator scenarios, one file per concern: order, families, requested
//! addresses, reserved anycast addresses, sharing, pool selection, pool changes,
//! restart and scale; the helpers they share.

use std::net::IpAddr;

use super::*;
use crate::k8s::fixtures::labels;
use crate::k8s::{LabelSelectorSpec, ServiceRef};
use IpFamily::{V4, V6};
use IpFamilyPolicy::{PreferDualStack, RequireDualStack, SingleStack};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| ip(t)).collect()
}

fn pool(name: &str, addresses: &[&str]) -> PoolSpec {
    PoolSpec::new(name, addresses)
}

fn scoped(spec: PoolSpec, allocation: ServiceAllocationSpec) -> PoolSpec {
    PoolSpec {
        service_allocation: Some(allocation),
        ..spec
    }
}

fn manual(spec: PoolSpec) -> PoolSpec {
    PoolSpec {
        auto_assign: Some(false),
        ..spec
    }
}

fn allocator(specs: Vec<PoolSpec>) -> Allocator {
    let pools = PoolSet::build(specs);
    assert!(pools.refused().is_empty(), "{:?}", pools.refused());
    Allocator::new(pools)
}

fn svc(name: &str) -> ServiceRequest {
    ServiceRequest {
        ports: vec![ServicePort::tcp(80)],
        ..ServiceRequest::new("default", name)
    }
}

fn in_ns(namespace: &str, name: &str) -> ServiceRequest {
    ServiceRequest {
        key: ServiceRef::new(namespace, name),
        ..svc(name)
    }
}

fn with_families(
    mut request: ServiceRequest,
    policy: IpFamilyPolicy,
    families: &[IpFamily],
) -> ServiceRequest {
    request.ip_family_policy = policy;
    request.ip_families = families.to_vec();
    request
}

fn annotate(mut request: ServiceRequest, key: &str, value: &str) -> ServiceRequest {
    request.annotations.insert(key.into(), value.into());
    request
}

fn shared(request: ServiceRequest, key: &str, ports: &[ServicePort]) -> ServiceRequest {
    let mut request = annotate(request, ANNOTATION_ALLOW_SHARED_IP, key);
    request.ports = ports.to_vec();
    request
}

fn assigned(allocator: &mut Allocator, request: &ServiceRequest) -> Vec<IpAddr> {
    match allocator.assign(request) {
        Ok(assignment) => assignment.ips(),
        Err(e) => panic!("{} should get addresses: {e}", request.key),
    }
}

fn pools_of(allocator: &mut Allocator, request: &ServiceRequest) -> Vec<String> {
    let assignment = allocator.assign(request).unwrap();
    assignment.addresses.into_iter().map(|a| a.pool).collect()
}

mod changes;
mod families;

fn match_labels(pairs: &[(&str, &str)]) -> LabelSelectorSpec {
    LabelSelectorSpec {
        match_labels: labels(pairs),
        ..Default::default()
    }
}

mod order;
mod requests;
mod reserved;
mod restart;
mod selection;
mod sharing;
