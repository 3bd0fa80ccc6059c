//! Benchmark setup, not measured: many LoadBalancer Services, each with one
//! ingress IP from the documentation ranges, created by a few concurrent
//! clients.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Requests in flight while creating the Services.
const CONCURRENCY: usize = 16;

/// IPv4 documentation addresses are few: the first `IPV4_ADDRESSES` indexes
/// get 203.0.113.1…254, the rest 2001:db8:5e::/64.
pub const IPV4_ADDRESSES: usize = 254;

/// The `index`-th documentation address of [`IPV4_ADDRESSES`].
pub fn documentation_ip(index: usize) -> IpAddr {
    if index < IPV4_ADDRESSES {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, index as u8 + 1))
    } else {
        let low = index as u32;
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x5e,
            0,
            0,
            0,
            (low >> 16) as u16,
            low as u16,
        ))
    }
}

/// Creates `svc-0` … `svc-{count-1}` in `services`' namespace, the ingress
/// IP of `svc-N` being `ingress_ip(N)`.
pub async fn create_lb_services(
    services: Api<Service>,
    count: usize,
    ingress_ip: fn(usize) -> IpAddr,
) {
    let services = Arc::new(services);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let services = Arc::clone(&services);
            tokio::spawn(async move {
                for index in (worker..count).step_by(CONCURRENCY) {
                    create_lb_service(&services, &format!("svc-{index}"), &[ingress_ip(index)])
                        .await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("Service creation task");
    }
}

/// A LoadBalancer Service `name` whose ingress lists `addresses`.
/// Kubernetes 1.20 ignores status on create: the ingress is a status patch.
pub async fn create_lb_service(services: &Api<Service>, name: &str, addresses: &[impl ToString]) {
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] },
    }))
    .expect("service manifest");
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap_or_else(|e| panic!("create Service {name}: {e}"));
    let ingress: Vec<_> = addresses
        .iter()
        .map(|ip| json!({ "ip": ip.to_string() }))
        .collect();
    let status = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
    services
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("patch Service {name} status: {e}"));
}
