//! Prometheus metrics and health state of the agent, on `prometheus-client`.
//!
//! `/metrics` serves the text exposition format 0.0.4, `/healthz` answers 200
//! while the XDP program is attached and the agent's heartbeat is fresh, and
//! `/readyz` answers 200 once the initial sync is done (see [`http`]).
//!
//! Metric names follow the MetalLB layer 2 speaker where the meaning is the
//! same, so existing dashboards and alerts translate by renaming:
//!
//! | responder                                   | MetalLB                              |
//! |---------------------------------------------|--------------------------------------|
//! | `responder_layer2_requests_received_total`  | `metallb_layer2_requests_received`   |
//! | `responder_layer2_responses_sent_total`     | `metallb_layer2_responses_sent`      |
//! | `responder_layer2_gratuitous_sent_total`    | `metallb_layer2_gratuitous_sent`     |
//! | `responder_announced`                       | `metallb_speaker_announced`          |
//! | `responder_layer2_conflicts_total`          | (none)                               |
//! | `responder_layer2_stale_total`              | (none)                               |
//! | `responder_lease_renewals_total`            | (none)                               |
//! | `responder_lease_renewal_failures_total`    | (none)                               |
//! | `responder_ownership_changes_total`         | (none)                               |
//! | `responder_reconcile_errors_total`          | (none)                               |
//! | `responder_heartbeat_age_seconds`           | (none)                               |
//! | `responder_xdp_attached`                    | (none)                               |
//! | `responder_vips_family_disabled`            | (none)                               |
//! | `responder_vips_yielded`                    | (none)                               |
//! | `responder_membership_members`              | (none)                               |
//! | `responder_lease_watch_events_total`        | (none)                               |
//! | `responder_lease_renew_interval_seconds`    | (none)                               |
//! | `responder_failover_expected_seconds`       | (none)                               |
//! | `responder_membership_announcer`            | (none)                               |
//! | `responder_events_written_total`            | (none)                               |
//! | `responder_events_aggregated_total`         | (none)                               |
//! | `responder_announcements_total`             | (none)                               |
//!
//! Per-VIP series carry `ip`, `interface`, `vlan` (empty when untagged, `100`
//! for one tag, `100.200` for two) and `service` (`namespace/name`, empty for
//! VIPs from the command line or `--vip-file`). MetalLB's `ip` label means the
//! same; its `node` and `protocol` labels are left out because the scrape
//! target already names the node and the protocol is always layer 2.
//! `responder_layer2_conflicts_total` growing on the node that owns a VIP is
//! the split-brain signal: another MAC claimed the address (see
//! [`crate::conflicts`] for the log line).

mod announced;
mod heartbeat;
pub mod http;
mod vip_collector;

#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    fmt,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{prometheus_text, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Metric, Registry},
};

pub use self::vip_collector::{VipCounterSample, VipCounterSource};
use self::{
    announced::Announced,
    heartbeat::{Clock, Heartbeat},
    vip_collector::VipCollector,
};
use crate::k8s::ServiceRef;

/// The default `--metrics-addr`.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9850";

/// A heartbeat older than this makes `/healthz` fail. The agent beats every
/// second, so this tolerates a few late beats on a loaded node.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Content-Type` of [`Metrics::encode`]'s text: Prometheus text 0.0.4,
/// which every Prometheus version scrapes and which writes `+Inf` where the
/// OpenMetrics encoder would write `inf`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The agent's metrics and health state. Created once in `main` and shared
/// as `Arc<Metrics>`; every update is an atomic or a short lock, cheap enough
/// for any task.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    lease_renewals: Counter,
    lease_renewal_failures: Counter,
    ownership_changes: Counter,
    reconcile_errors: Counter,
    attached: Gauge,
    family_disabled: Gauge,
    yielded: Gauge,
    members: Gauge,
    lease_events: Counter,
    handover_pauses: Counter,
    renew_interval: Gauge<f64, AtomicU64>,
    failover_expected: Gauge<f64, AtomicU64>,
    announcer: Gauge,
    events_written: Counter,
    events_aggregated: Counter,
    announcements: Family<AnnouncementLabels, Counter>,
    heartbeat: Heartbeat,
    announced: Announced,
    vip_counters: VipCollector,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::with_clock(Clock::system()))
    }

    fn with_clock(clock: Clock) -> Self {
        let lease_renewals = Counter::default();
        let lease_renewal_failures = Counter::default();
        let ownership_changes = Counter::default();
        let reconcile_errors = Counter::default();
        let attached = Gauge::default();
        let family_disabled = Gauge::default();
        let yielded = Gauge::default();
        let members = Gauge::default();
        let lease_events = Counter::default();
        let handover_pauses = Counter::default();
        let renew_interval = Gauge::<f64, AtomicU64>::default();
        let failover_expected = Gauge::<f64, AtomicU64>::default();
        let announcer = Gauge::default();
        let events_written = Counter::default();
        let events_aggregated = Counter::default();
        let announcements = Family::<AnnouncementLabels, Counter>::default();
        // Every reason from the start, so rates need no absent-series care.
        for reason in AnnouncementReason::ALL {
            let _ = announcements.get_or_create(&AnnouncementLabels { reason });
        }
        let heartbeat = Heartbeat::new(clock);
        let announced = Announced::default();
        let vip_counters = VipCollector::default();

        let mut registry = Registry::default();
        register(
            &mut registry,
            "responder_announced",
            "1 for each VIP this node announces.",
            announced.clone(),
        );
        register(
            &mut registry,
            "responder_lease_renewals",
            "Successful renewals of this node's membership Lease.",
            lease_renewals.clone(),
        );
        register(
            &mut registry,
            "responder_lease_renewal_failures",
            "Failed renewals of this node's membership Lease.",
            lease_renewal_failures.clone(),
        );
        register(
            &mut registry,
            "responder_ownership_changes",
            "Times this node started or stopped owning a Service.",
            ownership_changes.clone(),
        );
        register(
            &mut registry,
            "responder_reconcile_errors",
            "VIP installs or removals in the XDP maps that failed.",
            reconcile_errors.clone(),
        );
        register(
            &mut registry,
            "responder_heartbeat_age_seconds",
            "Seconds since the agent's last heartbeat; +Inf before the first.",
            heartbeat.clone(),
        );
        register(
            &mut registry,
            "responder_xdp_attached",
            "1 while the XDP program is attached.",
            attached.clone(),
        );
        register(
            &mut registry,
            "responder_vips_family_disabled",
            "VIP and interface pairs not answered because the interface has the VIP's IP family (IPv6) disabled.",
            family_disabled.clone(),
        );
        register(
            &mut registry,
            "responder_vips_yielded",
            "VIP keys this node does not answer for because another MAC claimed them while this node's view was frozen or its agent late.",
            yielded.clone(),
        );
        register(
            &mut registry,
            "responder_membership_members",
            "Announcing nodes with a live membership Lease, as this agent sees them.",
            members.clone(),
        );
        register(
            &mut registry,
            "responder_lease_watch_events",
            "Membership Lease changes this agent received: every member's renewals, the load each agent's Lease watch puts on the API server.",
            lease_events.clone(),
        );
        register(
            &mut registry,
            "responder_handover_pauses",
            "Addresses this node took over from a node that could still answer for them (a planned move), each answered only after --handover-pause.",
            handover_pauses.clone(),
        );
        register(
            &mut registry,
            "responder_lease_renew_interval_seconds",
            "How often this node renews its membership Lease, following the cluster's write budget.",
            renew_interval.clone(),
        );
        register(
            &mut registry,
            "responder_failover_expected_seconds",
            "How long this node's Lease lasts without a renewal: the time to fail over from it.",
            failover_expected.clone(),
        );
        register(
            &mut registry,
            "responder_membership_announcer",
            "1 while this node is in the announcer set (renewing fast, owning Services), 0 while it stands by.",
            announcer.clone(),
        );
        register(
            &mut registry,
            "responder_events_written",
            "Kubernetes Events this agent recorded, one per object or a summary of several.",
            events_written.clone(),
        );
        register(
            &mut registry,
            "responder_events_aggregated",
            "Events not recorded on their own object because more came at once than the Event rate allows: counted in a summary Event on this node instead.",
            events_aggregated.clone(),
        );
        register(
            &mut registry,
            "responder_announcements",
            "Gratuitous ARP and unsolicited NA frames this node sent, by reason: new (a VIP gained or regained, adopted or recovered), defence (another MAC claimed it), periodic (--reannounce-interval).",
            announcements.clone(),
        );
        registry.register_collector(Box::new(vip_counters.clone()));

        Metrics {
            registry,
            lease_renewals,
            lease_renewal_failures,
            ownership_changes,
            reconcile_errors,
            attached,
            family_disabled,
            yielded,
            members,
            lease_events,
            handover_pauses,
            renew_interval,
            failover_expected,
            announcer,
            events_written,
            events_aggregated,
            announcements,
            heartbeat,
            announced,
            vip_counters,
            ready: AtomicBool::new(false),
        }
    }

    /// Where the per-VIP counters come from, from now on; without one the
    /// per-VIP families have no series.
    pub fn set_vip_counters(&self, source: Arc<dyn VipCounterSource>) {
        self.vip_counters.set_source(source);
    }

    /// The `/metrics` body, in [`CONTENT_TYPE`]; reads the per-VIP counters.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(fmt::Error) = prometheus_text::encode(&mut text, &self.registry) {
            // Only a metric's own encoder can fail, and none of ours does.
            tracing::error!("encoding the metrics failed; serving what was written");
        }
        text
    }

    pub fn lease_renewal(&self, ok: bool) {
        let counter = if ok {
            &self.lease_renewals
        } else {
            &self.lease_renewal_failures
        };
        counter.inc();
    }

    /// This node started or stopped owning a Service.
    pub fn ownership_change(&self) {
        self.ownership_changes.inc();
    }

    pub fn reconcile_error(&self) {
        self.reconcile_errors.inc();
    }

    /// Replaces the set of VIPs this node announces, each with the
    /// `namespace/name` of its Service if it has one.
    pub fn set_announced(&self, vips: impl IntoIterator<Item = (IpAddr, Option<ServiceRef>)>) {
        self.announced
            .replace(vips.into_iter().collect::<BTreeMap<_, _>>());
    }

    /// Proof of life; the agent calls it every second from its main loop.
    pub fn set_heartbeat(&self) {
        self.heartbeat.beat();
    }

    pub fn set_attached(&self, attached: bool) {
        self.attached.set(i64::from(attached));
    }

    /// How many (VIP, interface) pairs are not answered because IPv6 is
    /// disabled on the interface.
    pub fn set_family_disabled(&self, pairs: usize) {
        self.family_disabled
            .set(i64::try_from(pairs).unwrap_or(i64::MAX));
    }

    /// How many VIP keys are yielded to another MAC right now.
    pub fn set_yielded(&self, keys: usize) {
        self.yielded.set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    /// A membership Lease change arrived on the watch.
    pub fn lease_event(&self) {
        self.lease_events.inc();
    }

    /// `addresses` taken over from a live holder wait before being answered.
    pub fn handover_paused(&self, addresses: usize) {
        self.handover_pauses
            .inc_by(u64::try_from(addresses).unwrap_or(u64::MAX));
    }

    /// The membership as this node's Lease holder sees it: how many members,
    /// how often it renews, how long its Lease lasts.
    pub fn set_membership_cadence(&self, members: usize, renew: Duration, lease: Duration) {
        self.members.set(i64::try_from(members).unwrap_or(i64::MAX));
        self.renew_interval.set(renew.as_secs_f64());
        self.failover_expected.set(lease.as_secs_f64());
    }

    /// Whether this node announces (see `responder_membership_announcer`).
    pub fn set_membership_role(&self, announcer: bool) {
        self.announcer.set(i64::from(announcer));
    }

    /// A Kubernetes Event was recorded.
    pub fn event_written(&self) {
        self.events_written.inc();
    }

    /// An Event was folded into a summary instead of being recorded on its own.
    pub fn event_aggregated(&self) {
        self.events_aggregated.inc();
    }

    /// One announcement frame was sent, for `reason`.
    pub fn announcement_sent(&self, reason: AnnouncementReason) {
        self.announcements
            .get_or_create(&AnnouncementLabels { reason })
            .inc();
    }

    /// The initial sync is done: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether the agent loop is ticking. Not whether an interface is
    /// attached: a node without a matching interface is healthy, and a
    /// restart would not give it one.
    pub fn liveness(&self) -> Result<(), Unhealthy> {
        match self.heartbeat.age() {
            None => Err(Unhealthy::NoHeartbeat),
            Some(age) if age > HEARTBEAT_TIMEOUT => Err(Unhealthy::StaleHeartbeat { age }),
            Some(_) => Ok(()),
        }
    }
}

/// The agent: healthy while its heartbeat is fresh (the program is attached
/// and the loop ticks), ready once the initial sync is done.
impl http::Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

impl http::Probes for Metrics {
    fn healthz(&self) -> Result<(), String> {
        self.liveness().map_err(|reason| reason.to_string())
    }

    fn readyz(&self) -> Result<(), String> {
        if self.is_ready() {
            Ok(())
        } else {
            Err("initial sync not done".into())
        }
    }
}

/// Counter names go without `_total`, which the encoder appends; HELP texts
/// are written here as exposed, and the registry appends the full stop itself.
fn register(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
}

/// Why an announcement frame was sent: the `reason` label of
/// `responder_announcements_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnouncementReason {
    /// The `--announce-count` burst of a VIP key this node installs, gains or
    /// regains, re-asserts after a yield or a carrier flap, or announces once
    /// after adopting a previous agent's pins or recovering from an API
    /// outage (the announcer gets the same burst for all of them).
    New,
    /// One round answering another MAC's claim (RFC 5227 §2.4).
    Defence,
    /// The one frame per key and `--reannounce-interval`.
    Periodic,
}

impl AnnouncementReason {
    pub const ALL: [AnnouncementReason; 3] = [
        AnnouncementReason::New,
        AnnouncementReason::Defence,
        AnnouncementReason::Periodic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncementReason::New => "new",
            AnnouncementReason::Defence => "defence",
            AnnouncementReason::Periodic => "periodic",
        }
    }
}

impl EncodeLabelValue for AnnouncementReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AnnouncementLabels {
    reason: AnnouncementReason,
}

/// Why `/healthz` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unhealthy {
    NoHeartbeat,
    StaleHeartbeat { age: Duration },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhealthy::NoHeartbeat => write!(f, "no heartbeat from the agent yet"),
            Unhealthy::StaleHeartbeat { age } => write!(
                f,
                "last heartbeat {:.1}s ago (limit {}s)",
                age.as_secs_f64(),
                HEARTBEAT_TIMEOUT.as_secs()
            ),
        }
    }
}

/// For tests: metrics whose "now" is `now()`, with the heartbeat settable.
#[cfg(test)]
impl Metrics {
    fn at(now: impl Fn() -> std::time::Instant + Send + Sync + 'static) -> Self {
        Metrics::with_clock(Clock::new(now))
    }

    fn heartbeat_at(&self, at: std::time::Instant) {
        self.heartbeat.beat_at(at);
    }
}
