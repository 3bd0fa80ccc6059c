//! `responder controller`: address management for LoadBalancer Services, reading
//! MetalLB's `IPAddressPool`s, so a cluster without MetalLB's controller (or Cilium
//! LB-IPAM, or kube-vip's cloud provider) gets its Services' addresses from us.
//!
//! - One replica allocates ([`leader`]): a Lease, taken over by a standby within
//!   a few seconds of the leader going away.
//! - The leader rebuilds its state from the Services' statuses first, so a restart
//!   or a failover never moves an address, then reconciles every change
//!   ([`reconciler`], pure) and writes `status.loadBalancer.ingress`, the
//!   `metallb.io/ip-allocated-from-pool` annotation, the pools' status and Events
//!   (`IPAllocated`, `AllocationFailed`, ...).
//! - The allocation itself is the IPAM core's (`crate::ipam`).

mod allocate;
mod events;
mod leader;
mod metrics;
mod reconciler;
mod service;
mod writer;

#[cfg(test)]
mod mock_tests;
#[cfg(test)]
mod monitoring_tests;

use std::future::Future;
use std::sync::Arc;

use kube::api::Api;
use kube::Client;
use tracing::warn;

use leader::Election;
pub use leader::{ElectionSettings, LEADER_LEASE_NAME};
pub use metrics::{
    ControllerMetrics, DEFAULT_CONTROLLER_HEALTH_ADDR, DEFAULT_CONTROLLER_METRICS_ADDR,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerSettings {
    /// Where the pools and the leader Lease are.
    pub namespace: String,
    /// Handle only Services of this `spec.loadBalancerClass`; `None`: only Services
    /// without a class (the agents' rule, so they answer for every address).
    pub lb_class: Option<String>,
    pub election: ElectionSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("a watch stream ended")]
    WatchEnded,
}

/// Runs until `shutdown` completes, when a leading replica hands its Lease over.
pub async fn run(
    client: Client,
    settings: ControllerSettings,
    metrics: Arc<ControllerMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    settings
        .election
        .check()
        .map_err(ControllerError::Settings)?;
    tokio::spawn(crate::crd::tell_ignored(
        client.clone(),
        settings.namespace.clone(),
    ));
    let (notices, notice_queue) = events::channel();
    tokio::spawn(events::publish(
        client.clone(),
        settings.election.identity.clone(),
        notice_queue,
    ));
    let election = Election::new(
        Api::namespaced(client.clone(), &settings.namespace),
        settings.election.clone(),
        Arc::clone(&metrics),
    );
    tokio::pin!(shutdown);
    loop {
        let mut leadership = tokio::select! {
            leadership = election.acquire() => leadership,
            () = &mut shutdown => return Ok(()),
        };
        metrics.set_leader(true);
        enum Ended {
            Lost,
            Failed(ControllerError),
            Shutdown,
        }
        let ended = tokio::select! {
            () = election.hold(&mut leadership) => Ended::Lost,
            result = allocate::allocate(client.clone(), &settings, Arc::clone(&metrics), notices.clone()) => match result {
                Err(error) => Ended::Failed(error),
                Ok(never) => match never {},
            },
            () = &mut shutdown => Ended::Shutdown,
        };
        metrics.set_leader(false);
        match ended {
            Ended::Lost => warn!("leadership lost: allocation stopped; standing by"),
            Ended::Failed(error) => {
                election.release(leadership).await;
                return Err(error);
            }
            Ended::Shutdown => {
                election.release(leadership).await;
                return Ok(());
            }
        }
    }
}
