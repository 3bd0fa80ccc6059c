//! The ownership loop: keeps reflectors of Services, Nodes, EndpointSlices and
//! membership Leases, recomputes ownership when any of them (or the set of live
//! members) changes, and publishes this node's VIPs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, ObjectRef, Store};

use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::backoff::WatchBackoff;
use super::events::OwnershipEvent;
use super::membership::{lease_name, lease_selector, LeaseTracker, Member};
use super::ownership::{self, Assignment, Inputs, Problem};
use super::projections;
use super::selector::LabelSelector;
use super::{Attached, ClusterError, ClusterSettings, Ownership, ServiceRef, View};
use crate::metrics::Metrics;

const ENDPOINT_SLICE_GROUP_VERSION: &str = "discovery.k8s.io/v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Services,
    Nodes,
    EndpointSlices,
    Leases,
}

enum Update {
    /// A reflected source moved on; its store already holds the objects.
    Reflected(Source, watcher::Result<Progress>),
    Leases(watcher::Result<Box<watcher::Event<Lease>>>),
}

enum Progress {
    Changed,
    InitDone,
}

impl Progress {
    fn of<K>(event: watcher::Event<K>) -> Self {
        match event {
            watcher::Event::InitDone => Progress::InitDone,
            _ => Progress::Changed,
        }
    }
}

impl Update {
    fn source(&self) -> Source {
        match self {
            Update::Reflected(source, _) => *source,
            Update::Leases(_) => Source::Leases,
        }
    }

    fn error(&self) -> Option<&watcher::Error> {
        match self {
            Update::Reflected(_, Err(e)) | Update::Leases(Err(e)) => Some(e),
            _ => None,
        }
    }

    fn is_init_done(&self) -> bool {
        match self {
            Update::Reflected(_, Ok(progress)) => matches!(progress, Progress::InitDone),
            Update::Leases(Ok(event)) => matches!(**event, watcher::Event::InitDone),
            _ => false,
        }
    }
}

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

/// Asks API discovery once whether EndpointSlices v1 are served, retrying (with
/// backoff) until the API server answers at all.
async fn endpoint_slices_served(client: &Client) -> bool {
    let mut delay = Duration::from_millis(250);
    let mut warned = false;
    loop {
        match client.list_api_groups().await {
            Ok(groups) => {
                return groups
                    .groups
                    .iter()
                    .flat_map(|group| &group.versions)
                    .any(|version| version.group_version == ENDPOINT_SLICE_GROUP_VERSION)
            }
            Err(error) => {
                if !warned {
                    warn!(%error, "API discovery failed; retrying");
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

pub(crate) async fn assign_forever(
    client: Client,
    settings: ClusterSettings,
    selector: LabelSelector,
    attached: watch::Receiver<Attached>,
    own_session: watch::Receiver<Option<Instant>>,
    outputs: Outputs,
) -> Result<(), ClusterError> {
    let slices_served = endpoint_slices_served(&client).await;
    if !slices_served {
        // Without EndpointSlices (Kubernetes < 1.21) we cannot see where endpoints
        // run, so externalTrafficPolicy: Local Services are assigned like Cluster
        // ones: every eligible live node counts as having endpoints.
        warn!("{ENDPOINT_SLICE_GROUP_VERSION} is not served; Local Services are assigned as if every node had endpoints");
    }

    let (services, services_writer) = reflector::store();
    let (nodes, nodes_writer) = reflector::store();
    let (slices, slices_writer) = reflector::store();
    let mut sources: Vec<BoxStream<'static, Update>> = vec![
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::new())
        .modify(projections::strip_service)
        .reflect(services_writer)
        .map(|result| Update::Reflected(Source::Services, result.map(Progress::of)))
        .boxed(),
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .backoff(WatchBackoff::new())
            .modify(projections::strip_node)
            .reflect(nodes_writer)
            .map(|result| Update::Reflected(Source::Nodes, result.map(Progress::of)))
            .boxed(),
        // The LeaseTracker is the cache of Leases: it needs each change as it
        // arrives to timestamp it, which a store would not give.
        watcher(
            Api::<Lease>::namespaced(client.clone(), &settings.namespace),
            watcher::Config::default().labels(&lease_selector()),
        )
        .backoff(WatchBackoff::new())
        .map(|result| Update::Leases(result.map(Box::new)))
        .boxed(),
    ];
    if slices_served {
        sources.push(
            watcher(
                Api::<EndpointSlice>::all(client),
                watcher::Config::default(),
            )
            .backoff(WatchBackoff::new())
            .modify(projections::strip_slice)
            .reflect(slices_writer)
            .map(|result| Update::Reflected(Source::EndpointSlices, result.map(Progress::of)))
            .boxed(),
        );
    }
    let mut updates = stream::select_all(sources);
    let slices = slices_served.then_some(slices);
    let mut assigner = Assigner::new(
        settings,
        selector,
        Stores {
            services,
            nodes,
            slices,
        },
        attached.clone(),
        outputs,
    );
    let mut attached = attached;
    let mut own_session = own_session;
    loop {
        let wake = assigner.next_wake(Instant::now());
        tokio::select! {
            update = updates.next() => {
                let update = update.ok_or(ClusterError::WatchEnded("Kubernetes objects"))?;
                assigner.apply(update, Instant::now());
            }
            Ok(()) = attached.changed() => assigner.dirty = true,
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

/// The reflectors' caches the assigner computes ownership from.
struct Stores {
    services: Store<Service>,
    nodes: Store<Node>,
    /// `None` when EndpointSlices v1 are not served.
    slices: Option<Store<EndpointSlice>>,
}

struct Assigner {
    settings: ClusterSettings,
    selector: LabelSelector,
    own_lease: String,
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Option<Store<EndpointSlice>>,
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
    dirty: bool,
    last_members: BTreeMap<String, Member>,
    assignments: BTreeMap<ServiceRef, Assignment>,
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
            unsynced,
            failing: BTreeSet::new(),
            relisted_leases: None,
            health: Health::Starting,
            epoch: 0,
            dirty: false,
            last_members: BTreeMap::new(),
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
        if update.is_init_done() {
            self.unsynced.remove(&source);
        }
        match update {
            Update::Leases(Ok(event)) => self.apply_lease(*event, now),
            // The reflectors already hold the objects; any change may move owners.
            _ => self.dirty = true,
        }
    }

    fn apply_lease(&mut self, event: watcher::Event<Lease>, now: Instant) {
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
                self.dirty = true;
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
                self.dirty = true;
            }
            (Health::Healthy, None) => {}
        }
        let live = self.tracker.live(now);
        if live != self.last_members {
            self.members.send_replace(live.len());
            self.last_members = live;
            self.dirty = true;
        }
        if self.dirty {
            self.dirty = false;
            self.reassign();
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

    fn reassign(&mut self) {
        let nodes = self.nodes.state();
        let members: BTreeMap<String, Member> = nodes
            .iter()
            .filter(|node| ownership::node_eligible(node, &self.selector))
            .filter_map(|node| node.metadata.name.clone())
            .filter_map(|name| {
                let member = self.last_members.get(&name)?.clone();
                Some((name, member))
            })
            .collect();
        // The Nodes' addresses are refused by every agent alike; this node's
        // own ones only here (no other agent knows them), which keeps this
        // node from answering for them wherever the Service goes.
        let mut forbidden = ownership::node_addresses(nodes.iter().map(Arc::as_ref));
        for ip in &self.attached.borrow().local_addresses {
            forbidden
                .entry(*ip)
                .or_insert_with(|| format!("it is an address of node {}", self.settings.node_name));
        }
        let endpoints = self.slices.as_ref().map(|slices| {
            let state = slices.state();
            ownership::endpoint_nodes(state.iter().map(Arc::as_ref))
        });
        let inputs = Inputs {
            lb_class: self.settings.lb_class.as_deref(),
            members: &members,
            endpoints: endpoints.as_ref(),
            forbidden: &forbidden,
        };
        let mut problems = BTreeSet::new();
        let assignments =
            ownership::assign(self.services.state().iter(), &inputs, |service, problem| {
                problems.insert((service.clone(), problem));
            });
        self.report_problems(problems, &members);

        self.report_changes(&assignments);
        self.announced_before.clear();
        self.assignments = assignments;
        let owned = ownership::owned_by(&self.assignments, &self.settings.node_name);
        let view = self.view();
        self.owned.send_if_modified(|current| {
            let changed = current.vips != owned || current.view != view;
            current.vips = owned;
            current.view = view;
            changed
        });
    }

    /// Logs each problem once, and records an Event on the Service for each
    /// refused address: from one node only, the Service's top candidate,
    /// unless the address is this node's own (no other node knows it).
    fn report_problems(
        &mut self,
        problems: BTreeSet<(ServiceRef, Problem)>,
        members: &BTreeMap<String, Member>,
    ) {
        for (service, problem) in problems.difference(&self.reported_problems) {
            warn!(%service, %problem, "not answering for a load-balancer ingress entry");
            let Problem::Refused(reason) = problem else {
                continue;
            };
            let own = reason.ends_with(&format!("of node {}", self.settings.node_name));
            let reporter = ownership::pick_owner(members.keys().map(String::as_str), service);
            if own || reporter == Some(self.settings.node_name.as_str()) {
                if let Some(object) = self
                    .services
                    .get(&ObjectRef::new(&service.name).within(&service.namespace))
                {
                    // The receiver only goes away when the agent stops.
                    let _ = self.events.send(OwnershipEvent::Refused {
                        service: object,
                        reason: reason.clone(),
                    });
                }
            }
        }
        self.reported_problems = problems;
    }

    fn report_changes(&self, assignments: &BTreeMap<ServiceRef, Assignment>) {
        let node = self.settings.node_name.as_str();
        let services: BTreeSet<&ServiceRef> =
            self.assignments.keys().chain(assignments.keys()).collect();
        for service in services {
            let old = self.assignments.get(service);
            let new = assignments.get(service);
            let old_owner = old.and_then(|a| a.owner.as_deref());
            let new_owner = new.and_then(|a| a.owner.as_deref());
            let new_ips = new.map(|a| a.ips.as_slice()).unwrap_or_default();
            // A restarted agent that already announced a Service's addresses
            // before the restart keeps it: not a change worth an Event.
            let kept = old.is_none()
                && !new_ips.is_empty()
                && new_ips.iter().all(|ip| self.announced_before.contains(ip));
            let old_ips = match kept {
                true => new_ips,
                false => old.map(|a| a.ips.as_slice()).unwrap_or_default(),
            };
            if old_owner != new_owner {
                info!(%service, ips = ?new_ips, old_owner = old_owner.unwrap_or("none"), new_owner = new_owner.unwrap_or("none"), "ownership changed");
            } else if old_ips != new_ips {
                info!(%service, old_ips = ?old_ips, new_ips = ?new_ips, owner = new_owner.unwrap_or("none"), "addresses changed");
            }
            let was_ours = old_owner == Some(node) || kept;
            let is_ours = new_owner == Some(node);
            if was_ours != is_ours {
                self.metrics.ownership_change();
            }
            // The receiver only goes away when the agent stops, when Events no longer matter.
            let _ = match (old, new) {
                (Some(old), _) if was_ours && !is_ours => {
                    self.events.send(OwnershipEvent::Stopped {
                        service: Arc::clone(&old.service),
                        ips: old.ips.clone(),
                    })
                }
                (_, Some(new)) if is_ours && (!was_ours || old_ips != new_ips) => {
                    self.events.send(OwnershipEvent::Started {
                        service: Arc::clone(&new.service),
                        ips: new.ips.clone(),
                    })
                }
                _ => Ok(()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    use super::super::membership::tests::lease;
    use super::super::ownership::pick_owner;
    use super::super::ownership::tests::{lb_service, svc};

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
            let (services, mut services_writer) = reflector::store();
            let (nodes, mut nodes_writer) = reflector::store();
            services_writer.apply_watcher_event(&watcher::Event::Apply(lb_service(
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
            for source in [Source::Services, Source::Nodes] {
                assigner.apply(Update::Reflected(source, Ok(Progress::InitDone)), start);
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
}
