//! The controller's metrics, on a registry of its own, served by the agent's
//! router (`metrics::http::Routes`) with `/healthz` and `/readyz`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

use crate::ipam::PoolStatus;
use crate::metrics::http::{Exposition, Probes};

/// The default `--metrics-addr` of `responder controller`: beside the agent's
/// 9850/9851, so both can run on one host.
pub const DEFAULT_CONTROLLER_METRICS_ADDR: &str = "0.0.0.0:9852";
pub const DEFAULT_CONTROLLER_HEALTH_ADDR: &str = "0.0.0.0:9853";

/// The election loop ticks every renew interval, leader or not; this much
/// silence means it is stuck.
const TICK_TIMEOUT: Duration = Duration::from_secs(30);

type PoolLabels = Vec<(String, String)>;
type PoolGauge = Family<PoolLabels, Gauge<f64, AtomicU64>>;

#[derive(Debug)]
pub struct ControllerMetrics {
    registry: Registry,
    leader: Gauge,
    lease_renewal_failures: Counter,
    allocations: Counter,
    allocation_failures: Counter,
    status_write_failures: Counter,
    pending: Gauge,
    pools_refused: Gauge,
    assigned: PoolGauge,
    available: PoolGauge,
    pool_labels: Mutex<Vec<PoolLabels>>,
    started: Instant,
    /// Milliseconds after `started` of the last tick, plus one (0 = never).
    last_tick: AtomicU64,
    ready: AtomicBool,
}

impl ControllerMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let metrics = ControllerMetrics {
            leader: Gauge::default(),
            lease_renewal_failures: Counter::default(),
            allocations: Counter::default(),
            allocation_failures: Counter::default(),
            status_write_failures: Counter::default(),
            pending: Gauge::default(),
            pools_refused: Gauge::default(),
            assigned: PoolGauge::default(),
            available: PoolGauge::default(),
            pool_labels: Mutex::new(Vec::new()),
            started: Instant::now(),
            last_tick: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        register(
            &mut registry,
            "responder_controller_leader",
            "1 while this controller replica holds the leader Lease and allocates.",
            metrics.leader.clone(),
        );
        register(
            &mut registry,
            "responder_controller_lease_renewal_failures",
            "Failed renewals of the controller's leader Lease.",
            metrics.lease_renewal_failures.clone(),
        );
        register(
            &mut registry,
            "responder_controller_allocations",
            "Services given new addresses (IPAllocated Events).",
            metrics.allocations.clone(),
        );
        register(
            &mut registry,
            "responder_controller_allocation_failures",
            "Allocations refused (AllocationFailed Events; each distinct reason once per Service).",
            metrics.allocation_failures.clone(),
        );
        register(
            &mut registry,
            "responder_controller_status_write_failures",
            "Service or pool status writes the API server refused or did not answer.",
            metrics.status_write_failures.clone(),
        );
        register(
            &mut registry,
            "responder_controller_services_pending",
            "LoadBalancer Services of ours without any address.",
            metrics.pending.clone(),
        );
        register(
            &mut registry,
            "responder_controller_pools_refused",
            "IPAddressPools refused (malformed, overlapping); the others are used.",
            metrics.pools_refused.clone(),
        );
        register(
            &mut registry,
            "responder_controller_pool_addresses_assigned",
            "Addresses in use per pool and family.",
            metrics.assigned.clone(),
        );
        register(
            &mut registry,
            "responder_controller_pool_addresses_available",
            "Addresses a pool can still hand out, per family.",
            metrics.available.clone(),
        );
        Arc::new(ControllerMetrics {
            registry,
            ..metrics
        })
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(fmt::Error) = prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!("encoding the metrics failed; serving what was written");
        }
        text
    }

    pub(crate) fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub(crate) fn lease_renewal_failed(&self) {
        self.lease_renewal_failures.inc();
    }

    pub(crate) fn allocated(&self) {
        self.allocations.inc();
    }

    pub(crate) fn allocation_failed(&self) {
        self.allocation_failures.inc();
    }

    pub(crate) fn status_write_failed(&self) {
        self.status_write_failures.inc();
    }

    pub(crate) fn set_pending(&self, services: usize) {
        self.pending
            .set(i64::try_from(services).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_pools_refused(&self, pools: usize) {
        self.pools_refused
            .set(i64::try_from(pools).unwrap_or(i64::MAX));
    }

    /// Replaces the per-pool series; a pool gone loses its series.
    pub(crate) fn set_pools(&self, statuses: &[PoolStatus]) {
        let mut now = Vec::new();
        for status in statuses {
            for (family, counts) in [("IPv4", status.ipv4), ("IPv6", status.ipv6)] {
                if counts.assigned == 0 && counts.available == 0 {
                    // The pool has no addresses of this family: no series, so
                    // a usage ratio never divides by zero.
                    continue;
                }
                let labels = vec![
                    ("pool".to_owned(), status.pool.clone()),
                    ("family".to_owned(), family.to_owned()),
                ];
                // f64 holds a /64's 2^64 exactly and anything larger closely enough.
                self.assigned
                    .get_or_create(&labels)
                    .set(counts.assigned as f64);
                self.available
                    .get_or_create(&labels)
                    .set(counts.available as f64);
                now.push(labels);
            }
        }
        let mut previous = self.pool_labels.lock().unwrap_or_else(|e| e.into_inner());
        for gone in previous.iter().filter(|l| !now.contains(l)) {
            self.assigned.remove(gone);
            self.available.remove(gone);
        }
        *previous = now;
    }

    /// Proof of life from the election loop.
    pub(crate) fn tick(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_tick
            .store(millis.saturating_add(1), Ordering::Relaxed);
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    fn liveness(&self) -> Result<(), String> {
        let last = self.last_tick.load(Ordering::Relaxed);
        if last == 0 {
            return Err("the election loop has not run yet".into());
        }
        let age = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(last - 1));
        if age > TICK_TIMEOUT {
            return Err(format!(
                "the election loop last ran {:.1}s ago",
                age.as_secs_f64()
            ));
        }
        Ok(())
    }
}

impl Exposition for ControllerMetrics {
    fn encode(&self) -> String {
        ControllerMetrics::encode(self)
    }
}

/// `/healthz` (the election loop runs) and `/readyz` (it ran once: a standby
/// replica is ready too, it takes over when the leader goes).
impl Probes for ControllerMetrics {
    fn healthz(&self) -> Result<(), String> {
        self.liveness()
    }

    fn readyz(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("not started".into())
        }
    }
}

/// HELP texts are written as exposed; the registry appends the full stop itself.
fn register(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::FamilyCounts;

    fn status(pool: &str, v4: u128) -> PoolStatus {
        PoolStatus {
            pool: pool.into(),
            ipv4: FamilyCounts {
                assigned: v4,
                available: 256 - v4,
            },
            ipv6: FamilyCounts {
                assigned: 0,
                available: 1 << 64,
            },
        }
    }

    #[test]
    fn pool_series_follow_the_pools() {
        let metrics = ControllerMetrics::new();
        metrics.set_pools(&[status("public", 3), status("old", 1)]);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"responder_controller_pool_addresses_assigned{pool="public",family="IPv4"} 3.0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"responder_controller_pool_addresses_available{pool="public",family="IPv6"} 18446744073709553000.0"#),
            "{text}"
        );
        metrics.set_pools(&[status("public", 4)]);
        let text = metrics.encode();
        assert!(!text.contains(r#"pool="old""#), "{text}");
        assert!(
            text.contains("# TYPE responder_controller_allocations_total counter"),
            "{text}"
        );
    }

    #[test]
    fn liveness_needs_a_tick() {
        let metrics = ControllerMetrics::new();
        assert!(metrics.liveness().is_err());
        metrics.tick();
        assert_eq!(metrics.liveness(), Ok(()));
    }

    #[test]
    fn probes_say_why_they_fail() {
        let metrics = ControllerMetrics::new();
        assert_eq!(metrics.readyz(), Err("not started".to_owned()));
        assert!(metrics.healthz().is_err());
        metrics.set_ready();
        metrics.tick();
        assert_eq!(metrics.readyz(), Ok(()));
        assert_eq!(metrics.healthz(), Ok(()));
    }
}
