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
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::advertising::{Advertising, BadObject};
use super::announcers::{Domains, RoleKeeper};
use super::events::OwnershipEvent;
use super::handover::Handovers;
use super::indexes::{node_facts, EndpointIndex, NodeFacts};
use super::membership::{lease_name, LeaseTracker, Member, Roster};
use super::ownership::{self, Assignments};
use super::reason::Problem;
use super::service_facts::ServiceCache;
use super::watches::{self, Change, MetallbStores, Source, Stores, Update};
use super::{Attached, ClusterError, ClusterSettings, Ownership, View};
use crate::conflicts::ClaimReport;
use crate::cpu_bound::cpu_bound;
use crate::k8s::LabelSelector;
use crate::k8s::ServiceRef;
use crate::memory;
use crate::metrics::Metrics;

mod reassign;
mod reports;
mod roles;

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
    claims: broadcast::Receiver<ClaimReport>,
) -> Result<(), ClusterError> {
    let mut claims = Some(claims);
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
            claim = next_claim(&mut claims) => {
                if let Some(report) = claim {
                    assigner.tell_claim(&report);
                }
            }
        }
        // Coalesce bursts (relists, many renewals at once) into one recomputation.
        while let Some(Some(update)) = updates.next().now_or_never() {
            assigner.apply(update, Instant::now());
        }
        assigner.evaluate(Instant::now());
    }
}

/// The next claim the agent reports; pending for ever once it can report
/// none (a claim missed for falling behind is logged and skipped).
async fn next_claim(claims: &mut Option<broadcast::Receiver<ClaimReport>>) -> Option<ClaimReport> {
    let Some(receiver) = claims else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(report) => Some(report),
        Err(broadcast::error::RecvError::Lagged(missed)) => {
            warn!(
                missed,
                "too many claims at once: some get no Event (the agent's log names each)"
            );
            None
        }
        Err(broadcast::error::RecvError::Closed) => {
            *claims = None;
            None
        }
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
    /// The membership's counts and this node's role, for its Lease holder.
    pub(super) roster: watch::Sender<Roster>,
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
    /// Pools and L2Advertisements (`None` while MetalLB's kinds are not
    /// served), what they say, and whether that must be rebuilt.
    metallb: Option<MetallbStores>,
    /// The stores of kinds not served yet, taken when they are.
    metallb_pending: Option<MetallbStores>,
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
    /// The domain (see `announcers`) each Service counts in.
    domain_of: BTreeMap<ServiceRef, u64>,
    domains: Domains,
    keeper: RoleKeeper,
    /// Addresses gained from a holder that could keep them, not answered
    /// for yet (see `handover`).
    handovers: Handovers,
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
    roster: watch::Sender<Roster>,
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
            metallb_served,
        }: Stores,
        attached: watch::Receiver<Attached>,
        Outputs {
            announced_before,
            events,
            owned,
            roster,
            epochs,
            metrics,
        }: Outputs,
    ) -> Self {
        let mut unsynced: BTreeSet<Source> =
            [Source::Services, Source::Nodes, Source::Leases].into();
        if slices.is_some() {
            unsynced.insert(Source::EndpointSlices);
        }
        if metallb_served {
            unsynced.extend([Source::Pools, Source::Advertisements]);
        }
        let (metallb, metallb_pending) = match metallb_served {
            true => (Some(metallb), None),
            false => (None, Some(metallb)),
        };
        let endpoints = slices.as_ref().map(|_| EndpointIndex::default());
        Assigner {
            own_lease: lease_name(&settings.node_name),
            keeper: RoleKeeper::new(settings.announcers, settings.plan(), settings.hold_down),
            handovers: Handovers::new(settings.handover_pause),
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
            metallb_pending,
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
            domain_of: BTreeMap::new(),
            domains: Domains::default(),
            problems: BTreeMap::new(),
            assignments: BTreeMap::new(),
            reported_problems: BTreeSet::new(),
            events,
            owned,
            metrics,
            attached,
            announced_before,
            roster,
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
            // Not waited for as an initial list: until the first lists
            // arrive, the empty stores say what was said before (flags only).
            Update::MetallbServed => self.metallb = self.metallb_pending.take(),
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
        [
            self.own_lease_deadline(),
            self.tracker.next_change(now),
            self.keeper.next_change(),
            self.handovers.next_change(),
        ]
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
            self.last_members = live;
            self.dirty.all = true;
        }
        let changed = !self.dirty.is_clean();
        if changed {
            let dirty = std::mem::take(&mut self.dirty);
            match dirty.all {
                true => cpu_bound(|| {
                    self.reassign(dirty, now);
                    // What the relists and the full pass freed, with ten
                    // thousand Services tens of megabytes, goes back now.
                    memory::release_after_burst();
                }),
                false => self.reassign(dirty, now),
            }
        } else if self.handovers.release_due(now) {
            let owned = ownership::owned_by(&self.assignments, &self.settings.node_name);
            self.publish_owned(&owned);
        }
        self.decide_role(now, changed);
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
}

#[cfg(test)]
mod tests;
