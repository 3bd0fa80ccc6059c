//! The ownership loop: keeps reflectors of Services, Nodes, EndpointSlices and
//! membership Leases, recomputes ownership when any of them (or the set of live
//! members) changes, and publishes this node's VIPs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::advertising::{Advertising, BadObject};
use super::events::OwnershipEvent;
use super::indexes::{node_facts, EndpointIndex, NodeFacts};
use super::membership::{lease_name, LeaseTracker, Member};
use super::nodes;
use super::ownership::{self, Assignments, Inputs, Problem};
use super::service_facts::{ServiceCache, ServiceFacts};
use super::watches::{self, Change, MetallbStores, Source, Stores, Update};
use super::{Attached, ClusterError, ClusterSettings, Ownership, View};
use crate::cpu_bound::cpu_bound;
use crate::k8s::LabelSelector;
use crate::k8s::ServiceRef;
use crate::memory;
use crate::metrics::Metrics;

mod reports;

#[derive(Debug, PartialEq, Eq)]
enum Health {
    /// No complete view yet; nothing computed or published.
    Starting,
    Healthy,
    /// The view is broken: ownership is frozen at the last computed state.
    Frozen {
        since: Instant,
    },
}

pub(crate) async fn assign_forever(
    client: Client,
    settings: ClusterSettings,
    selector: LabelSelector,
    attached: watch::Receiver<Attached>,
    own_session: watch::Receiver<Option<Instant>>,
    outputs: Outputs,
) -> Result<(), ClusterError> {
    let (stores, mut updates) = watches::start(client, &settings.namespace).await;
    let mut assigner = Assigner::new(settings, selector, stores, attached.clone(), outputs);
    let mut attached = attached;
    let mut own_session = own_session;
    loop {
        let wake = assigner.next_wake(Instant::now());
        tokio::select! {
            update = updates.next() => {
                let update = update.ok_or(ClusterError::WatchEnded("Kubernetes objects"))?;
                assigner.apply(update, Instant::now());
            }
            Ok(()) = attached.changed() => assigner.dirty.all = true,
            Ok(()) = own_session.changed() => {
                if let Some(started) = *own_session.borrow_and_update() {
                    assigner.tracker.own_session_started(started);
                }
            }
            () = sleep_until_some(wake) => {}
        }
        // Coalesce bursts (relists, many renewals at once) into one recomputation.
        while let Some(Some(update)) = updates.next().now_or_never() {
            assigner.apply(update, Instant::now());
        }
        assigner.evaluate(Instant::now());
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where the assigner's decisions go.
pub(super) struct Outputs {
    /// The addresses the data plane already answered for at start: owning
    /// them is no change.
    pub(super) announced_before: BTreeSet<IpAddr>,
    /// Events to record on Services.
    pub(super) events: mpsc::UnboundedSender<OwnershipEvent>,
    /// This node's VIPs, for the agent.
    pub(super) owned: watch::Sender<Ownership>,
    /// How many members are live, for the Lease holder's cadence.
    pub(super) members: watch::Sender<usize>,
    /// Counts the times any view of this agent became complete, so that
    /// each one is new to the agent (see [`View::Fresh`]).
    pub(super) epochs: Arc<AtomicU64>,
    pub(super) metrics: Arc<Metrics>,
}

/// What needs recomputing.
#[derive(Debug, Default)]
struct Dirty {
    /// Everything: membership, Nodes, or a relist changed.
    all: bool,
    services: BTreeSet<ServiceRef>,
}

impl Dirty {
    fn is_clean(&self) -> bool {
        !self.all && self.services.is_empty()
    }
}

struct Assigner {
    settings: ClusterSettings,
    selector: LabelSelector,
    own_lease: String,
    services: ServiceCache,
    nodes: Store<Node>,
    slices: Option<Store<EndpointSlice>>,
    /// Pools and L2Advertisements (`None` when MetalLB's kinds are not
    /// served), what they say, and whether that must be rebuilt.
    metallb: Option<MetallbStores>,
    advertising: Option<Advertising>,
    advertising_stale: bool,
    reported_bad: BTreeSet<BadObject>,
    tracker: LeaseTracker,
    /// Sources that have not completed their first list.
    unsynced: BTreeSet<Source>,
    /// Sources whose last result was an error.
    failing: BTreeSet<Source>,
    /// Lease names seen since the Lease watch restarted its list.
    relisted_leases: Option<HashSet<String>>,
    health: Health,
    /// Counts the times the view became complete (see [`View::Fresh`]).
    epoch: u64,
    dirty: Dirty,
    last_members: BTreeMap<String, Member>,
    /// What ownership reads of each Node, to skip Node updates that change
    /// none of it.
    node_facts: BTreeMap<String, NodeFacts>,
    /// Which nodes have endpoints of each Service (`None` without
    /// EndpointSlices).
    endpoints: Option<EndpointIndex>,
    /// Each Service's owner before shared addresses are settled, and the
    /// problems of its entries: recomputed only for the Services a change
    /// affects.
    raw: Assignments,
    problems: BTreeMap<ServiceRef, BTreeSet<Problem>>,
    assignments: Assignments,
    reported_problems: BTreeSet<(ServiceRef, Problem)>,
    events: mpsc::UnboundedSender<OwnershipEvent>,
    owned: watch::Sender<Ownership>,
    metrics: Arc<Metrics>,
    /// This node's interfaces: its own addresses are never VIPs.
    attached: watch::Receiver<Attached>,
    /// The addresses this node's data plane answered for when the agent
    /// started (adopted from its predecessor), until the first assignment.
    announced_before: BTreeSet<IpAddr>,
    members: watch::Sender<usize>,
    epochs: Arc<AtomicU64>,
}

impl Assigner {
    /// Starting, with every source still to list (EndpointSlices only when
    /// `slices` is given).
    fn new(
        settings: ClusterSettings,
        selector: LabelSelector,
        Stores {
            services,
            nodes,
            slices,
            metallb,
        }: Stores,
        attached: watch::Receiver<Attached>,
        Outputs {
            announced_before,
            events,
            owned,
            members,
            epochs,
            metrics,
        }: Outputs,
    ) -> Self {
        let mut unsynced: BTreeSet<Source> =
            [Source::Services, Source::Nodes, Source::Leases].into();
        if slices.is_some() {
            unsynced.insert(Source::EndpointSlices);
        }
        if metallb.is_some() {
            unsynced.extend([Source::Pools, Source::Advertisements]);
        }
        let endpoints = slices.as_ref().map(|_| EndpointIndex::default());
        Assigner {
            own_lease: lease_name(&settings.node_name),
            tracker: LeaseTracker::new(
                settings.lease_duration,
                settings.hold_down,
                lease_name(&settings.node_name),
            ),
            settings,
            selector,
            services,
            nodes,
            slices,
            metallb,
            advertising: None,
            advertising_stale: false,
            reported_bad: BTreeSet::new(),
            unsynced,
            failing: BTreeSet::new(),
            relisted_leases: None,
            health: Health::Starting,
            epoch: 0,
            dirty: Dirty::default(),
            last_members: BTreeMap::new(),
            node_facts: BTreeMap::new(),
            endpoints,
            raw: BTreeMap::new(),
            problems: BTreeMap::new(),
            assignments: BTreeMap::new(),
            reported_problems: BTreeSet::new(),
            events,
            owned,
            metrics,
            attached,
            announced_before,
            members,
            epochs,
        }
    }

    fn apply(&mut self, update: Update, now: Instant) {
        let source = update.source();
        if let Some(error) = update.error() {
            if self.failing.insert(source) {
                warn!(?source, %error, "watch failed; keeping the last known state while it retries");
            } else {
                debug!(?source, %error, "watch still failing");
            }
            return;
        }
        if self.failing.remove(&source) {
            info!(?source, "watch works again");
        }
        if update.is_listed() {
            self.unsynced.remove(&source);
        }
        match update {
            Update::Leases(Ok(event)) => self.apply_lease(*event, now),
            Update::Services(Ok(Change::One(service))) => {
                self.dirty.services.insert(service);
            }
            Update::Nodes(Ok(Change::One((name, facts)))) => {
                let changed = match facts {
                    Some(facts) => self.node_facts.insert(name, facts.clone()) != Some(facts),
                    None => self.node_facts.remove(&name).is_some(),
                };
                // Eligibility and forbidden addresses concern every Service.
                self.dirty.all |= changed;
            }
            Update::Nodes(Ok(Change::Listed)) => {
                let facts = self
                    .nodes
                    .state()
                    .iter()
                    .map(|node| {
                        (
                            node.metadata.name.clone().unwrap_or_default(),
                            node_facts(node),
                        )
                    })
                    .collect();
                self.dirty.all |= facts != self.node_facts;
                self.node_facts = facts;
            }
            Update::Slices(Ok(Change::One((key, nodes)))) => {
                if let Some(index) = &mut self.endpoints {
                    self.dirty.services.extend(index.update(key, nodes));
                }
            }
            Update::Slices(Ok(Change::Listed)) => {
                if let Some(slices) = &self.slices {
                    self.endpoints =
                        Some(EndpointIndex::build(slices.state().iter().map(Arc::as_ref)));
                    self.dirty.all = true;
                }
            }
            Update::Services(Ok(Change::Listed)) => self.dirty.all = true,
            Update::Pools(Ok(Change::One(()) | Change::Listed))
            | Update::Advertisements(Ok(Change::One(()) | Change::Listed)) => {
                self.advertising_stale = true;
                self.dirty.all = true;
            }
            _ => {}
        }
    }

    fn apply_lease(&mut self, event: watcher::Event<Lease>, now: Instant) {
        self.metrics.lease_event();
        match event {
            watcher::Event::Apply(lease) => self.tracker.observe(&lease, now, false),
            watcher::Event::Delete(lease) => {
                if let Some(name) = &lease.metadata.name {
                    self.tracker.forget(name);
                }
            }
            watcher::Event::Init => self.relisted_leases = Some(HashSet::new()),
            watcher::Event::InitApply(lease) => {
                self.tracker.observe(&lease, now, true);
                if let (Some(seen), Some(name)) = (&mut self.relisted_leases, &lease.metadata.name)
                {
                    seen.insert(name.clone());
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisted_leases.take() {
                    self.tracker.retain(&seen);
                }
            }
        }
    }

    /// Our own renewals come back through the Lease watch every renew interval; not
    /// seeing them for half a lease duration means our view (or our renewing) is
    /// broken, and is noticed before any other member could expire in that view.
    fn own_lease_deadline(&self) -> Option<Instant> {
        self.tracker
            .last_change(&self.own_lease)
            .map(|seen| seen + self.tracker.duration_of(&self.own_lease) / 2)
    }

    fn broken_view(&self, now: Instant) -> Option<String> {
        if !self.unsynced.is_empty() {
            return Some(format!("initial list of {:?} incomplete", self.unsynced));
        }
        if self.failing.contains(&Source::Leases) {
            return Some("the Lease watch is failing".to_owned());
        }
        match self.own_lease_deadline() {
            Some(deadline) if now < deadline => None,
            _ => Some(format!("own Lease {} not seen renewed", self.own_lease)),
        }
    }

    fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.health != Health::Healthy {
            // Recovery arrives as a watch event (our own renewal), not by time.
            return None;
        }
        [self.own_lease_deadline(), self.tracker.next_change(now)]
            .into_iter()
            .flatten()
            .min()
    }

    fn evaluate(&mut self, now: Instant) {
        match (&self.health, self.broken_view(now)) {
            (Health::Starting, Some(_)) | (Health::Frozen { .. }, Some(_)) => return,
            (Health::Starting, None) => {
                info!(node = %self.settings.node_name, "membership view complete; assigning Services");
                self.health = Health::Healthy;
                self.epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
                self.dirty.all = true;
            }
            (Health::Healthy, Some(reason)) => {
                warn!(%reason, "Kubernetes view broken; keeping the current VIPs until it recovers");
                self.health = Health::Frozen { since: now };
                self.publish_view();
                return;
            }
            (Health::Frozen { since }, None) => {
                info!(outage = ?now.duration_since(*since), "Kubernetes view recovered; reassigning Services");
                self.tracker.restart_clocks(now);
                self.health = Health::Healthy;
                self.epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
                self.dirty.all = true;
            }
            (Health::Healthy, None) => {}
        }
        let live = self.tracker.live(now);
        if live != self.last_members {
            self.members.send_replace(live.len());
            self.last_members = live;
            self.dirty.all = true;
        }
        if !self.dirty.is_clean() {
            let dirty = std::mem::take(&mut self.dirty);
            match dirty.all {
                true => cpu_bound(|| {
                    self.reassign(dirty);
                    // What the relists and the full pass freed, with ten
                    // thousand Services tens of megabytes, goes back now.
                    memory::release_after_burst();
                }),
                false => self.reassign(dirty),
            }
        }
        self.publish_view();
    }

    fn view(&self) -> View {
        match self.health {
            Health::Starting => View::Starting,
            Health::Healthy => View::Fresh { epoch: self.epoch },
            Health::Frozen { .. } => View::Frozen { epoch: self.epoch },
        }
    }

    /// Publishes a change of view even when the VIPs stayed the same: the
    /// first complete view must reach the agent when it owns nothing, and a
    /// recovery makes it announce everything again.
    fn publish_view(&self) {
        let view = self.view();
        self.owned.send_if_modified(|current| {
            let changed = current.view != view;
            current.view = view;
            changed
        });
    }

    /// Recomputes the owners of the Services `dirty` names (all of them
    /// when it says so), settles shared addresses, and publishes.
    fn reassign(&mut self, dirty: Dirty) {
        if std::mem::take(&mut self.advertising_stale) {
            self.rebuild_advertising();
        }
        let nodes = self.nodes.state();
        let members: BTreeMap<String, Member> = nodes
            .iter()
            .filter(|node| nodes::node_eligible(node, &self.selector))
            .filter_map(|node| node.metadata.name.clone())
            .filter_map(|name| {
                let member = self.last_members.get(&name)?.clone();
                Some((name, member))
            })
            .collect();
        // The Nodes' addresses are refused by every agent alike; this node's
        // own ones only here (no other agent knows them), which keeps this
        // node from answering for them wherever the Service goes.
        let mut forbidden = nodes::node_addresses(nodes.iter().map(Arc::as_ref));
        for ip in &self.attached.borrow().local_addresses {
            forbidden
                .entry(*ip)
                .or_insert_with(|| format!("it is an address of node {}", self.settings.node_name));
        }
        let node_labels: BTreeMap<String, BTreeMap<String, String>> = nodes
            .iter()
            .filter_map(|node| {
                let name = node.metadata.name.as_ref()?;
                members.contains_key(name).then(|| {
                    (
                        name.clone(),
                        node.metadata.labels.clone().unwrap_or_default(),
                    )
                })
            })
            .collect();
        let inputs = Inputs {
            lb_class: self.settings.lb_class.as_deref(),
            members: &members,
            endpoints: self.endpoints.as_ref().map(EndpointIndex::nodes),
            forbidden: &forbidden,
            advertising: self.advertising.as_ref(),
            node_labels: &node_labels,
        };
        let services: Vec<Arc<ServiceFacts>> = match dirty.all {
            true => {
                self.raw.clear();
                self.problems.clear();
                self.services.state()
            }
            false => dirty
                .services
                .iter()
                .filter_map(|service| {
                    self.raw.remove(service);
                    self.problems.remove(service);
                    self.services.get(service)
                })
                .collect(),
        };
        for service in services {
            let key = service.key.clone();
            let mut problems = BTreeSet::new();
            let assignment = ownership::assign_one(&service, &inputs, |p| {
                problems.insert(p);
            });
            if let Some(assignment) = assignment {
                self.raw.insert(key.clone(), Arc::new(assignment));
            }
            if !problems.is_empty() {
                self.problems.insert(key, problems);
            }
        }
        let mut problems: BTreeSet<(ServiceRef, Problem)> = self
            .problems
            .iter()
            .flat_map(|(service, problems)| problems.iter().map(|p| (service.clone(), p.clone())))
            .collect();
        let assignments = ownership::settle_shared(&self.raw, |service, problem| {
            problems.insert((service.clone(), problem));
        });
        self.report_problems(problems, &members);

        self.report_changes(&assignments);
        self.announced_before.clear();
        self.assignments = assignments;
        let owned = ownership::owned_by(&self.assignments, &self.settings.node_name);
        let interfaces =
            ownership::interfaces_owned_by(&self.assignments, &self.settings.node_name);
        let view = self.view();
        self.owned.send_if_modified(|current| {
            let changed =
                current.vips != owned || current.interfaces != interfaces || current.view != view;
            current.vips = owned;
            current.interfaces = interfaces;
            current.view = view;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::api::ObjectMeta;
    use kube::runtime::reflector;

    use super::*;
    use crate::cluster::indexes::node_facts;

    use super::super::membership::tests::lease;
    use super::super::ownership::pick_owner;
    use crate::k8s::fixtures::{lb_service, svc};

    const WINNER_AND_LOSER: [&str; 2] = ["node-a", "node-b"];

    struct Harness {
        assigner: Assigner,
        owned: watch::Receiver<Ownership>,
        event_queue: mpsc::UnboundedReceiver<OwnershipEvent>,
        start: Instant,
    }

    fn lease_event(node: &str, renewal: i64) -> watcher::Event<Lease> {
        watcher::Event::Apply(lease(node, renewal))
    }

    impl Harness {
        /// An assigner on `node` that has listed one Service and both nodes' Leases at `start`.
        fn new(node: &str) -> Self {
            Self::restarted(node, &[])
        }

        /// An agent whose data plane already answered for `announced` at start.
        fn restarted(node: &str, announced: &[&str]) -> Self {
            Self::build(node, announced, None)
        }

        /// With MetalLB's kinds served, the pools and advertisements of
        /// `metallb` listed.
        fn build(node: &str, announced: &[&str], metallb: Option<MetallbStores>) -> Self {
            let with_metallb = metallb.is_some();
            let services = ServiceCache::default();
            let (nodes, mut nodes_writer) = reflector::store();
            services.apply(&watcher::Event::Apply(lb_service(
                "web",
                None,
                "Cluster",
                &[(Some("192.0.2.1"), None)],
            )));
            for name in WINNER_AND_LOSER {
                nodes_writer.apply_watcher_event(&watcher::Event::Apply(Node {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }));
            }
            let (events, event_queue) = mpsc::unbounded_channel();
            let (owned_tx, owned) = watch::channel(Ownership::default());
            let mut settings = ClusterSettings::new(node, "responder");
            settings.lease_duration = Duration::from_secs(1);
            // Hold-down has tests of its own (membership, ownership).
            settings.hold_down = Duration::ZERO;
            let mut assigner = Assigner::new(
                settings,
                LabelSelector::default(),
                Stores {
                    services,
                    nodes,
                    slices: None,
                    metallb,
                },
                watch::channel(Attached::default()).1,
                Outputs {
                    announced_before: announced.iter().map(|ip| ip.parse().expect("ip")).collect(),
                    events,
                    owned: owned_tx,
                    members: watch::channel(0).0,
                    epochs: Arc::default(),
                    metrics: Metrics::new(),
                },
            );
            let start = Instant::now();
            assigner.apply(Update::Services(Ok(Change::Listed)), start);
            assigner.apply(Update::Nodes(Ok(Change::Listed)), start);
            if with_metallb {
                assigner.apply(Update::Pools(Ok(Change::Listed)), start);
                assigner.apply(Update::Advertisements(Ok(Change::Listed)), start);
            }
            for node in WINNER_AND_LOSER {
                assigner.apply(Update::Leases(Ok(Box::new(lease_event(node, 1)))), start);
            }
            assigner.apply(
                Update::Leases(Ok(Box::new(watcher::Event::InitDone))),
                start,
            );
            assigner.evaluate(start);
            Harness {
                assigner,
                owned,
                event_queue,
                start,
            }
        }

        fn renew(&mut self, node: &str, renewal: i64, at_ms: u64) {
            let at = self.start + Duration::from_millis(at_ms);
            self.assigner
                .apply(Update::Leases(Ok(Box::new(lease_event(node, renewal)))), at);
            self.assigner.evaluate(at);
        }

        fn evaluate(&mut self, at_ms: u64) {
            self.assigner
                .evaluate(self.start + Duration::from_millis(at_ms));
        }

        fn owns_web(&self) -> bool {
            self.owned
                .borrow()
                .vips
                .values()
                .any(|s| *s == svc("default", "web"))
        }
    }

    fn winner() -> &'static str {
        pick_owner(WINNER_AND_LOSER, &svc("default", "web")).expect("two candidates")
    }

    fn loser() -> &'static str {
        WINNER_AND_LOSER
            .into_iter()
            .find(|node| *node != winner())
            .expect("two nodes")
    }

    #[test]
    fn takes_over_when_the_owner_stops_renewing() {
        let mut h = Harness::new(loser());
        assert_eq!(h.assigner.health, Health::Healthy);
        assert!(
            !h.owns_web(),
            "{} wins the hash while both are live",
            winner()
        );
        h.renew(loser(), 2, 300);
        h.renew(loser(), 3, 600);
        h.renew(winner(), 2, 700);
        h.renew(loser(), 4, 900);
        h.evaluate(1_100);
        assert!(
            !h.owns_web(),
            "the winner renewed at 700 ms and is live until 1700 ms"
        );
        h.renew(loser(), 5, 1_200);
        h.renew(loser(), 6, 1_500);
        h.evaluate(1_700);
        assert!(h.owns_web(), "the winner expired at 1700 ms");
        match h.event_queue.try_recv() {
            Ok(OwnershipEvent::Started { ips, .. }) => {
                assert_eq!(ips, ["192.0.2.1".parse::<std::net::IpAddr>().expect("ip")])
            }
            other => panic!("expected AnnouncingStarted, got {other:?}"),
        }
    }

    #[test]
    fn a_broken_view_freezes_ownership_until_it_recovers() {
        let mut h = Harness::new(loser());
        h.renew(loser(), 2, 300);
        // Nothing arrives any more, not even our own renewals: by 800 ms our view
        // is broken, before the winner (seen at 0 ms) could expire at 1000 ms.
        h.evaluate(800);
        assert!(
            matches!(h.assigner.health, Health::Frozen { .. }),
            "{:?}",
            h.assigner.health
        );
        h.evaluate(5_000);
        assert!(!h.owns_web(), "a frozen assigner must not take over");

        // Recovery: every member gets a full lease duration again.
        h.renew(loser(), 3, 5_000);
        assert_eq!(h.assigner.health, Health::Healthy);
        assert!(!h.owns_web(), "the winner is given time to show a renewal");
        h.renew(loser(), 4, 5_400);
        h.renew(loser(), 5, 5_800);
        h.evaluate(6_000);
        assert!(
            h.owns_web(),
            "the winner stayed silent for a lease duration after recovery"
        );
    }

    #[test]
    fn a_failing_lease_watch_freezes_and_the_owner_keeps_its_vips() {
        let mut h = Harness::new(winner());
        assert!(h.owns_web());
        let at = h.start + Duration::from_millis(100);
        h.assigner
            .apply(Update::Leases(Err(watcher::Error::NoResourceVersion)), at);
        h.assigner.evaluate(at);
        assert!(
            matches!(h.assigner.health, Health::Frozen { .. }),
            "{:?}",
            h.assigner.health
        );
        h.evaluate(10_000);
        assert!(
            h.owns_web(),
            "fail-static: keep announcing while the view is broken"
        );
        h.renew(winner(), 2, 10_000);
        assert_eq!(h.assigner.health, Health::Healthy);
        assert!(h.owns_web());
    }

    #[test]
    fn a_restarted_owner_keeps_its_services_without_an_event() {
        let mut h = Harness::restarted(winner(), &["192.0.2.1"]);
        assert!(h.owns_web());
        assert!(
            h.event_queue.try_recv().is_err(),
            "nothing started: the node answered for web before the restart"
        );
        let mut fresh = Harness::new(winner());
        assert!(fresh.owns_web());
        assert!(
            matches!(
                fresh.event_queue.try_recv(),
                Ok(OwnershipEvent::Started { .. })
            ),
            "a node that did not answer for web before starts to"
        );
    }

    #[test]
    fn a_reserved_anycast_address_in_a_status_is_refused_with_one_event() {
        // Another controller wrote a /64's Subnet-Router anycast address.
        let router = svc("default", "router");
        let reporter = pick_owner(WINNER_AND_LOSER, &router).expect("two candidates");
        for node in WINNER_AND_LOSER {
            let mut h = Harness::new(node);
            while h.event_queue.try_recv().is_ok() {}
            h.assigner.services.apply(&watcher::Event::Apply(lb_service(
                "router",
                None,
                "Cluster",
                &[(Some("2001:db8:e100::"), None)],
            )));
            let at = h.start + Duration::from_millis(100);
            h.assigner
                .apply(Update::Services(Ok(Change::One(router.clone()))), at);
            h.assigner.evaluate(at);
            assert!(
                !h.owned.borrow().vips.values().any(|s| *s == router),
                "{node} does not answer for it"
            );
            let refused: Vec<String> = std::iter::from_fn(|| h.event_queue.try_recv().ok())
                .filter_map(|event| match event {
                    OwnershipEvent::Refused { reason, .. } => Some(reason),
                    _ => None,
                })
                .collect();
            if node == reporter {
                assert_eq!(
                    refused,
                    [
                        "ingress ip 2001:db8:e100:: is not answered for: it is the Subnet-Router \
                      anycast address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every \
                      router on that link answers for"
                    ]
                );
            } else {
                assert!(refused.is_empty(), "one node tells: {refused:?}");
            }
        }
    }

    #[test]
    fn only_what_a_change_can_affect_is_recomputed() {
        let mut h = Harness::new(winner());
        let at = h.start + Duration::from_millis(100);
        let node = |labels: &[(&str, &str)]| Node {
            metadata: ObjectMeta {
                name: Some(loser().into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let node_update = |node: &Node| {
            Update::Nodes(Ok(Change::One((
                loser().to_owned(),
                Some(node_facts(node)),
            ))))
        };
        // A status heartbeat or resourceVersion bump: nothing ownership reads.
        h.assigner.apply(node_update(&node(&[])), at);
        assert!(h.assigner.dirty.is_clean(), "{:?}", h.assigner.dirty);

        h.assigner
            .apply(Update::Services(Ok(Change::One(svc("default", "web")))), at);
        assert!(!h.assigner.dirty.all);
        assert_eq!(
            h.assigner.dirty.services,
            BTreeSet::from([svc("default", "web")])
        );
        h.assigner.evaluate(at);
        assert!(h.assigner.dirty.is_clean());

        h.assigner
            .apply(node_update(&node(&[("role", "edge")])), at);
        assert!(h.assigner.dirty.all, "a label may change eligibility");
    }

    #[test]
    fn advertisements_scope_interfaces_and_an_uncovered_address_gets_one_event() {
        use crate::cluster::advertising::tests::{advertisement, pool};
        use crate::crd::L2Advertisement;

        let (pools, mut pools_writer) = reflector::store();
        let (advertisements, mut advertisements_writer) = reflector::store::<L2Advertisement>();
        pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
            "public",
            &["192.0.2.0/28"],
            &[],
        )));
        let on_eth0 = |pools: &[&str]| {
            advertisement(
                "public",
                serde_json::json!({"ipAddressPools": pools, "interfaces": ["eth0"]}),
            )
        };
        advertisements_writer.apply_watcher_event(&watcher::Event::Apply(on_eth0(&["public"])));
        let mut h = Harness::build(
            winner(),
            &[],
            Some(MetallbStores {
                pools,
                advertisements,
            }),
        );
        assert!(h.owns_web());
        assert_eq!(
            h.owned.borrow().interfaces,
            BTreeMap::from([(
                "192.0.2.1".parse::<IpAddr>().expect("ip"),
                BTreeSet::from(["eth0".to_owned()])
            )]),
            "keyed on the advertised interface only"
        );

        // The advertisement moves to another pool: web's address is covered
        // by nothing any more.
        advertisements_writer.apply_watcher_event(&watcher::Event::Apply(on_eth0(&["other"])));
        let at = h.start + Duration::from_millis(100);
        h.assigner
            .apply(Update::Advertisements(Ok(Change::One(()))), at);
        h.assigner.evaluate(at);
        assert!(!h.owns_web());
        let mut unadvertised = 0;
        while let Ok(event) = h.event_queue.try_recv() {
            if let OwnershipEvent::Unadvertised { reason, .. } = event {
                assert!(reason.contains("pool \"public\""), "{reason}");
                unadvertised += 1;
            }
        }
        assert_eq!(unadvertised, 1, "the top candidate tells, once");
        h.assigner
            .apply(Update::Services(Ok(Change::One(svc("default", "web")))), at);
        h.assigner.evaluate(at);
        assert!(
            h.event_queue.try_recv().is_err(),
            "a recomputation tells nothing new"
        );
    }
}
