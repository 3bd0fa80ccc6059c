//! The agent's decisions, free of IO: what to attach and detach when links
//! change, what to install when a source publishes, what to do on each tick.
//! The shell (`agent/mod.rs`) turns kernel and Kubernetes events into calls
//! here, with the time passed in; the kernel is reached only through the
//! [`Attachments`], [`VipMap`] and [`Announce`] traits, so every decision is
//! unit-tested with fakes.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use responder_common::{VipKey, VipStats};
use tokio::{sync::watch, time::Instant};

use crate::{
    cluster::{Attached, Families, Ownership, Reach, View},
    conflicts::{Claimants, ConflictCounts},
    dataplane::{ApplyReport, Dataplane, VipMap},
    error::{display_chain, Error, VipError},
    garp::Announce,
    k8s::ServiceRef,
    metrics::Metrics,
    netif::multicast::{groups_of, GroupTable, Memberships},
    netif::topology::Topology,
    netif::Interface,
    sources::{cluster_update, DesiredVips, ServiceIndex, Source, SourceUpdate},
    vip::{key_addr, validate, VipSpec},
};

mod defence;

#[cfg(test)]
pub(crate) use defence::DEFEND_INTERVAL;

/// The program's attachments to interfaces, the heartbeat that keeps its
/// stale gate open, and (as [`Memberships`]) the devices' multicast lists.
pub(crate) trait Attachments: Memberships {
    /// Attaches to `interface`; attaching an ifindex twice is a no-op.
    fn attach(&mut self, interface: &Interface) -> Result<(), Error>;
    /// Detaches from `ifindex`; the interface name, or None when nothing
    /// was attached there.
    fn detach(&mut self, ifindex: u32) -> Option<String>;
    fn is_attached(&self, ifindex: u32) -> bool;
    /// Names of the attached interfaces.
    fn attached_names(&self) -> Vec<String>;
    /// Proves the agent alive to the data plane's stale gate.
    fn beat(&mut self) -> Result<(), Error>;
    /// Tells the data plane the node's own MACs and bond members.
    fn set_topology(&mut self, topology: &Topology) -> Result<(), Error>;
}

/// What a tick needs to know of the outside world.
pub(crate) struct TickInput<'a, F: Fn(&str) -> bool> {
    pub(crate) now: Instant,
    /// Whether the kernel handles IPv6 on an interface, by name.
    pub(crate) ipv6_enabled: F,
    /// Counters of every VIP key, summed over CPUs.
    pub(crate) counters: &'a [(VipKey, VipStats)],
}

pub(crate) struct AgentCore<L, M, A> {
    // Field order is drop order: the VIP maps go before the program is
    // detached and unpinned.
    dataplane: Dataplane<M, A>,
    attachments: L,
    desired: DesiredVips,
    /// `--interface` names; static VIPs may be scoped to them even while
    /// they are down or gone.
    names: Vec<String>,
    attached: watch::Sender<Attached>,
    services: ServiceIndex,
    metrics: Arc<Metrics>,
    /// Conflict counters at the last tick, to spot growing ones.
    last_conflicts: ConflictCounts,
    /// When each key was last defended, to defend at most once per
    /// [`defence::DEFEND_INTERVAL`].
    last_defended: BTreeMap<VipKey, Instant>,
    /// The last claimant the data plane reported per VIP key.
    claimants: Claimants,
    /// The Kubernetes view behind the cluster VIPs; `None` without a
    /// Kubernetes source (static VIPs are always this node's to defend).
    view: Option<View>,
    /// The addresses the Kubernetes source gave this node last time, to
    /// tell which ones it gains.
    cluster_vips: BTreeSet<IpAddr>,
    /// Attached interfaces without carrier, since when. Some drivers reset
    /// the link when XDP is attached, so carrier loss does not detach; it
    /// stops counting the interface as serving once it lasted
    /// `carrier_debounce`.
    carrier_lost: BTreeMap<u32, Instant>,
    carrier_debounce: Duration,
    /// Every address configured on this node.
    local_addresses: BTreeSet<IpAddr>,
    /// The solicited-node groups joined for the IPv6 VIPs.
    groups: GroupTable,
    /// The own MACs and bond members the data plane was last given; `None`
    /// until given, or after a failed write (retried on the next change).
    topology: Option<Topology>,
}

impl<L: Attachments, M: VipMap, A: Announce> AgentCore<L, M, A> {
    pub(crate) fn new(
        dataplane: Dataplane<M, A>,
        attachments: L,
        names: Vec<String>,
        carrier_debounce: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let attached = watch::Sender::new(Attached::default());
        let groups = GroupTable::adopt(groups_of(dataplane.installed().keys()));
        let mut core = AgentCore {
            dataplane,
            attachments,
            desired: DesiredVips::default(),
            names,
            attached,
            services: ServiceIndex::empty(),
            metrics,
            last_conflicts: ConflictCounts::new(),
            last_defended: BTreeMap::new(),
            claimants: Claimants::default(),
            view: None,
            cluster_vips: BTreeSet::new(),
            carrier_lost: BTreeMap::new(),
            carrier_debounce,
            local_addresses: BTreeSet::new(),
            groups,
            topology: None,
        };
        core.follow_carrier(Instant::now());
        core.publish_attached(Instant::now());
        core
    }

    /// VIPs come from Kubernetes too: readiness waits, and VIPs adopted from
    /// a previous agent that no source wants are kept (fail-static), until
    /// the Kubernetes source has a complete view.
    pub(crate) fn await_cluster(&mut self) {
        self.view = Some(View::Starting);
    }

    /// The attached interfaces and the families they can answer for, for
    /// the Kubernetes source; updated as they change.
    pub(crate) fn attached_interfaces(&self) -> watch::Receiver<Attached> {
        self.attached.subscribe()
    }

    /// The Service behind each Kubernetes VIP, for labels and logs.
    pub(crate) fn set_services(&mut self, services: ServiceIndex) {
        self.services = services;
    }

    /// The last claimant of each VIP, shared with whoever reports on VIPs.
    pub(crate) fn claimants(&self) -> Claimants {
        self.claimants.clone()
    }

    pub(crate) fn services(&self) -> &ServiceIndex {
        &self.services
    }

    pub(crate) fn attachments(&self) -> &L {
        &self.attachments
    }

    pub(crate) fn attachments_mut(&mut self) -> &mut L {
        &mut self.attachments
    }

    /// Every address configured on the node, at start (later ones come with
    /// [`AgentCore::on_links`]).
    pub(crate) fn set_local_addresses(&mut self, addresses: BTreeSet<IpAddr>) {
        self.local_addresses = addresses;
        self.publish_attached(Instant::now());
    }

    /// The addresses the data plane answers for now.
    pub(crate) fn installed_addresses(&self) -> BTreeSet<IpAddr> {
        self.dataplane.installed().keys().map(key_addr).collect()
    }

    pub(crate) fn installed_count(&self) -> usize {
        self.dataplane.installed().len()
    }

    /// Installs the initial sets; fails when any key could not be written,
    /// since a node that starts half-configured should not look healthy.
    pub(crate) fn start(&mut self, initial: Vec<SourceUpdate>) -> Result<(), Error> {
        for update in initial {
            self.desired.set(update);
        }
        let report = self.reconcile();
        if report.failed > 0 {
            return Err(Error::Install {
                failed: report.failed,
            });
        }
        // Adopted static VIPs were kept without a write: neighbours may have
        // moved on while no agent ran. Kubernetes VIPs wait for the view.
        let static_vips: BTreeSet<IpAddr> = self.desired.union().iter().map(|s| s.addr).collect();
        let announced = self.dataplane.just_announced().clone();
        self.dataplane
            .reassert(|key| static_vips.contains(&key_addr(key)), &announced);
        self.metrics
            .set_attached(!self.attachments.attached_names().is_empty());
        self.metrics.set_heartbeat();
        if self.view.is_none() {
            self.metrics.set_ready();
        }
        Ok(())
    }

    pub(crate) fn on_source_update(&mut self, update: SourceUpdate) {
        if self.desired.set(update) {
            self.reconcile();
        }
    }

    /// A new decision, or a new view, of the Kubernetes source. VIPs this
    /// node gains are announced whatever the map held (it may hold them
    /// from before a failover that moved them away and back), and every
    /// owned VIP when the view becomes complete again (first sync after a
    /// restart, recovery from an outage).
    pub(crate) fn on_ownership(&mut self, ownership: Ownership) {
        let (fresh, epoch) = match ownership.view {
            View::Starting => return,
            View::Fresh { epoch } => (true, epoch),
            View::Frozen { epoch } => (false, epoch),
        };
        let first = self.view == Some(View::Starting);
        let new_epoch = fresh
            && !matches!(self.view, Some(View::Fresh { epoch: seen } | View::Frozen { epoch: seen }) if seen == epoch);
        let update = cluster_update(&ownership);
        let owned: BTreeSet<IpAddr> = update.vips.iter().map(|spec| spec.addr).collect();
        let gained: BTreeSet<IpAddr> = match new_epoch {
            true => owned.clone(),
            false => owned.difference(&self.cluster_vips).copied().collect(),
        };
        self.view = Some(ownership.view);
        self.desired.set(update);
        self.reconcile();
        let announced = self.dataplane.just_announced().clone();
        let taken_back: Vec<VipKey> = self
            .dataplane
            .yielded_keys()
            .iter()
            .filter(|key| gained.contains(&key_addr(key)) && !announced.contains(key))
            .copied()
            .collect();
        let reasserted = self
            .dataplane
            .reassert(|key| gained.contains(&key_addr(key)), &announced);
        self.tell_taken_back(&taken_back);
        self.metrics.set_yielded(self.dataplane.yielded_count());
        if first {
            // Adopted VIPs this node no longer owns go now, not later.
            let report = self.dataplane.release_removals();
            self.after_reconcile(&report);
            self.metrics.set_ready();
        }
        if reasserted > 0 {
            tracing::info!(
                vips = gained.len(),
                keys = reasserted,
                view_epoch = epoch,
                "announcing VIPs this node (re)gained"
            );
        }
        self.cluster_vips = owned;
    }

    /// Makes the attachments match `wanted` (the accepted links that can be
    /// attached): a link that left (down, deleted, renamed) is detached, a
    /// new one (or one recreated under a new ifindex) attached, and the VIP
    /// keys follow. `local_addresses` are every address on the node.
    /// Keeps the data plane's own-MAC and bond-member maps equal to the
    /// node's links: a claim from another NIC of this node is no conflict,
    /// and a bond member's frames are answered for VIPs on its bond.
    pub(crate) fn on_topology(&mut self, topology: &Topology) {
        if self.topology.as_ref() == Some(topology) {
            return;
        }
        match self.attachments.set_topology(topology) {
            Ok(()) => {
                tracing::debug!(
                    own_macs = topology.own_macs.len(),
                    bond_members = topology.bond_members.len(),
                    "data plane told the node's MACs and bond members"
                );
                self.topology = Some(topology.clone());
            }
            Err(e) => {
                tracing::error!(
                    "{}; claims from this node's other NICs may count as conflicts, and \
                     bond members' frames may go unanswered, until the next link change",
                    display_chain(&e)
                );
                self.topology = None;
            }
        }
    }

    pub(crate) fn on_links(
        &mut self,
        wanted: Vec<Interface>,
        local_addresses: BTreeSet<IpAddr>,
        now: Instant,
    ) {
        let gone: Vec<u32> = self
            .dataplane
            .interfaces()
            .iter()
            .filter(|old| {
                !wanted
                    .iter()
                    .any(|new| new.ifindex == old.ifindex && new.name == old.name)
            })
            .map(|old| old.ifindex)
            .collect();
        // Before attaching: a recreated interface reuses the link pin name.
        for ifindex in gone {
            if let Some(name) = self.attachments.detach(ifindex) {
                tracing::info!(interface = %name, ifindex, "interface gone; detached");
            }
        }
        let mut attached = Vec::new();
        for interface in wanted {
            if !self.attachments.is_attached(interface.ifindex) {
                if let Err(e) = self.attachments.attach(&interface) {
                    // Retried on the next link change.
                    tracing::error!(
                        interface = %interface.name,
                        "{}; its VIPs are not answered",
                        display_chain(&e)
                    );
                    continue;
                }
            }
            attached.push(interface);
        }
        let report = self.dataplane.set_interfaces(attached);
        self.after_reconcile(&report);
        self.local_addresses = local_addresses;
        self.follow_carrier(now);
        self.metrics
            .set_attached(!self.attachments.attached_names().is_empty());
        self.publish_attached(now);
    }

    /// Notes carrier changes of the attached interfaces; an interface whose
    /// carrier came back has its VIPs announced again (a flap may have made
    /// switches and neighbours forget this node).
    fn follow_carrier(&mut self, now: Instant) {
        let mut regained = BTreeSet::new();
        let attached: BTreeMap<u32, bool> = self
            .dataplane
            .interfaces()
            .iter()
            .map(|i| (i.ifindex, i.carrier))
            .collect();
        self.carrier_lost
            .retain(|ifindex, _| attached.contains_key(ifindex));
        for (ifindex, carrier) in attached {
            match (carrier, self.carrier_lost.contains_key(&ifindex)) {
                (false, false) => {
                    self.carrier_lost.insert(ifindex, now);
                }
                (true, true) => {
                    self.carrier_lost.remove(&ifindex);
                    regained.insert(ifindex);
                }
                _ => {}
            }
        }
        if !regained.is_empty() {
            let announced = self.dataplane.just_announced().clone();
            let keys = self
                .dataplane
                .reassert(|key| regained.contains(&key.ifindex), &announced);
            tracing::info!(ifindexes = ?regained, keys, "carrier back; VIPs announced again");
        }
    }

    /// Whether an attached interface counts as serving: it has carrier, or
    /// lost it less than the debounce ago.
    fn serving(&self, interface: &Interface, now: Instant) -> bool {
        self.carrier_lost
            .get(&interface.ifindex)
            .is_none_or(|since| now.duration_since(*since) < self.carrier_debounce)
    }

    /// Proves the agent alive to the data plane and the health endpoint,
    /// answers VIPs another MAC claimed since the last tick, retries failed
    /// map writes and follows IPv6 being switched on or off.
    pub(crate) fn on_tick<F: Fn(&str) -> bool>(&mut self, input: TickInput<'_, F>) {
        match self.attachments.beat() {
            // The data plane stops answering at the stale bound: loud.
            Err(e) => tracing::error!("writing the heartbeat: {}", display_chain(&e)),
            Ok(()) => self.metrics.set_heartbeat(),
        }
        for key in self.warn_on_new_conflicts(input.counters) {
            self.answer_conflict(&key, input.now);
        }
        if let Some(report) = self.dataplane.retry_failed() {
            self.after_reconcile(&report);
        }
        if let Some(report) = self.dataplane.refresh_ipv6(input.ipv6_enabled) {
            self.after_reconcile(&report);
        }
        // Carrier lost long enough now stops counting as serving.
        self.publish_attached(input.now);
    }

    /// A reloaded `--vip-file`. A file that does not parse or validate
    /// changes nothing: dropping VIPs because of a typo would take services
    /// down.
    pub(crate) fn on_vip_file(&mut self, path: &Path, loaded: Result<BTreeSet<VipSpec>, VipError>) {
        let mut check_against = self.dataplane.interfaces().to_vec();
        for name in &self.names {
            if !check_against.iter().any(|i| &i.name == name) {
                check_against.push(absent_interface(name));
            }
        }
        let checked = loaded.and_then(|specs| {
            validate_all(&specs, &check_against)?;
            Ok(specs)
        });
        match checked {
            Ok(vips) => {
                tracing::info!(path = %path.display(), vips = vips.len(), "SIGHUP: reloaded VIP file");
                self.on_source_update(SourceUpdate {
                    source: Source::VipFile,
                    vips,
                });
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "SIGHUP: {e}; keeping the current VIPs")
            }
        }
    }

    /// Removes every installed VIP (a shutdown that detaches); returns what
    /// it did.
    pub(crate) fn clear(&mut self) -> ApplyReport {
        let report = self.dataplane.clear();
        self.groups.clear(&mut self.attachments);
        report
    }

    fn reconcile(&mut self) -> ApplyReport {
        let report = self.dataplane.apply(&self.desired.union());
        self.after_reconcile(&report);
        report
    }

    fn after_reconcile(&mut self, report: &ApplyReport) {
        let wanted = groups_of(self.dataplane.installed().keys());
        self.groups.reconcile(&wanted, &mut self.attachments);
        log_report(report, self.dataplane.installed().len());
        let announced: BTreeMap<IpAddr, Option<ServiceRef>> = self
            .dataplane
            .installed()
            .keys()
            .map(|key| {
                let ip = key_addr(key);
                (ip, self.services.service_of(ip))
            })
            .collect();
        (0..report.failed).for_each(|_| self.metrics.reconcile_error());
        self.metrics.set_yielded(self.dataplane.yielded_count());
        self.metrics.set_announced(announced);
        self.metrics.set_family_disabled(report.family_disabled);
    }

    /// What the Kubernetes source needs: the attached interfaces' names,
    /// the families and subnets of those serving, and the node's addresses.
    fn publish_attached(&self, now: Instant) {
        let interfaces = self.dataplane.interfaces();
        let serving: Vec<&Interface> = interfaces.iter().filter(|i| self.serving(i, now)).collect();
        let mut prefixes: Vec<IpNet> = serving
            .iter()
            .flat_map(|i| &i.addresses)
            .map(IpNet::trunc)
            // Never where a VIP lives.
            .filter(|net| !is_link_local(net))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        let summary = Attached {
            names: interfaces.iter().map(|i| i.name.clone()).collect(),
            reach: Reach {
                families: Families {
                    ipv4: !serving.is_empty(),
                    ipv6: serving.iter().any(|i| i.ipv6),
                },
                prefixes,
                // Serving ones only: a NIC without carrier cannot answer for
                // the pools advertised on it, so they go to another node.
                interfaces: Some(serving.iter().map(|i| i.name.clone()).collect()),
            },
            local_addresses: self.local_addresses.clone(),
        };
        self.attached.send_if_modified(|current| {
            let changed = *current != summary;
            *current = summary;
            changed
        });
    }
}

pub(crate) fn validate_all(
    specs: &BTreeSet<VipSpec>,
    interfaces: &[Interface],
) -> Result<(), VipError> {
    specs.iter().try_for_each(|spec| validate(spec, interfaces))
}

fn is_link_local(net: &IpNet) -> bool {
    match net {
        IpNet::V4(net) => net.addr().is_link_local(),
        IpNet::V6(net) => net.addr().segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// An `--interface` that is not attached right now: a valid scope for static
/// VIPs, but with no addresses to collide with.
fn absent_interface(name: &str) -> Interface {
    Interface {
        name: name.to_owned(),
        ifindex: 0,
        mac: [0; 6],
        carrier: false,
        addresses: Vec::new(),
        // Unknown until it shows up; validation must not refuse IPv6 VIPs for it.
        ipv6: true,
    }
}

fn log_report(report: &ApplyReport, installed: usize) {
    if *report != ApplyReport::default() {
        tracing::info!(
            added = report.added,
            updated = report.updated,
            removed = report.removed,
            rejected = report.rejected,
            failed = report.failed,
            family_disabled = report.family_disabled,
            installed,
            "VIPs reconciled"
        );
    }
}

#[cfg(test)]
mod tests;
