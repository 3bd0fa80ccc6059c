//! `responder run`: validate, load (adopting a previous agent's pins),
//! attach, install the VIPs, then beat the heartbeat every second and follow
//! interfaces, source updates and signals until told to stop, and clean up.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use regex::Regex;
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    sync::{mpsc, watch},
};

use crate::{
    announce::{Announcer, SentCounts},
    bpf::{self, AttachMode, BpfVipMap, Loaded, StaleGate, StatsReader},
    dataplane::{ApplyReport, Dataplane, DesiredVips},
    error::{display_chain, Error, VipError},
    kube::Attached,
    metrics::{self, Metrics, VipSample, VipSource},
    netif::{self, Interface},
    netwatch::{self, InterfaceFilter, LinkInfo},
    sources::{KubeSource, KubeSourceConfig, ServiceIndex},
    vip::{key_addr, key_vlan, read_vip_file, validate, VipSpec},
};

/// How often the heartbeat is written and the counters checked for conflicts.
const TICK: Duration = Duration::from_secs(1);

/// After adopting a previous agent's VIPs with --kube, how long to keep
/// those the Kubernetes source has not confirmed: it publishes nothing when
/// this node owns nothing, so its silence must end the wait at some point.
const KUBE_SYNC_GRACE: Duration = Duration::from_secs(10);

/// Source name of the `--vip` arguments in [`DesiredVips`].
pub const SOURCE_CLI: &str = "cli";
/// Source name of the `--vip-file` contents in [`DesiredVips`].
pub const SOURCE_VIP_FILE: &str = "vip-file";

#[derive(Clone)]
pub struct AgentConfig {
    /// Interfaces to attach to by name; empty selects them with the regexes
    /// and the default exclusions of [`InterfaceFilter`].
    pub interfaces: Vec<String>,
    pub interface_regex: Option<Regex>,
    pub exclude_interface_regex: Option<Regex>,
    pub vips: Vec<VipSpec>,
    pub vip_file: Option<PathBuf>,
    pub pin_path: PathBuf,
    pub attach_mode: AttachMode,
    pub announce_count: u32,
    pub announce_interval: Duration,
    pub kube: Option<KubeSourceConfig>,
    pub stale_gate: StaleGate,
    /// On SIGTERM/SIGINT, leave the program attached and everything pinned
    /// for the next agent to adopt, rather than detach and unpin.
    pub keep_attached_on_exit: bool,
}

/// A new complete VIP set from one dynamic source (e.g. Kubernetes); it
/// replaces that source's previous set.
#[derive(Clone, Debug)]
pub struct SourceUpdate {
    pub source: String,
    pub vips: BTreeSet<VipSpec>,
}

struct Signals {
    hangup: Signal,
    interrupt: Signal,
    terminate: Signal,
}

pub struct Agent {
    // Field order is drop order: VIPs and map handles go before the program
    // is detached and unpinned.
    dataplane: Dataplane<BpfVipMap, Announcer>,
    loaded: Loaded,
    desired: DesiredVips,
    /// `--interface` names; static VIPs may be scoped to them even while
    /// they are down or gone.
    names: Vec<String>,
    links: watch::Receiver<BTreeMap<u32, LinkInfo>>,
    links_task: AbortOnDrop,
    attached_watch: watch::Sender<Attached>,
    kube: Option<KubeSource>,
    vip_file: Option<PathBuf>,
    sent: SentCounts,
    stats: Arc<StatsReader>,
    /// Counters at the last tick, to spot growing conflicts.
    last_samples: Vec<VipSample>,
    /// Until the Kubernetes source first publishes (or the grace ends):
    /// readiness waits and adopted VIPs are held.
    kube_sync_deadline: Option<tokio::time::Instant>,
    keep_attached_on_exit: bool,
    signals: Signals,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn validate_all(specs: &BTreeSet<VipSpec>, interfaces: &[Interface]) -> Result<(), VipError> {
    specs.iter().try_for_each(|spec| validate(spec, interfaces))
}

/// The link as an attachable interface; None without an Ethernet address.
fn interface_of(link: &LinkInfo) -> Option<Interface> {
    (link.mac != [0; 6]).then(|| Interface {
        name: link.name.clone(),
        ifindex: link.ifindex,
        mac: link.mac,
        up: link.up,
        addrs: link.addresses.clone(),
        ipv6: netif::ipv6_enabled(&link.name),
    })
}

fn attached_summary(interfaces: &[Interface]) -> Attached {
    Attached {
        names: interfaces.iter().map(|i| i.name.clone()).collect(),
        ipv6: interfaces.iter().any(|i| i.ipv6),
    }
}

/// An `--interface` that is not attached right now: a valid scope for static
/// VIPs, but with no addresses to collide with.
fn absent_interface(name: &str) -> Interface {
    Interface {
        name: name.to_owned(),
        ifindex: 0,
        mac: [0; 6],
        up: false,
        addrs: Vec::new(),
        // Unknown until it shows up; validation must not refuse IPv6 VIPs for it.
        ipv6: true,
    }
}

impl Agent {
    /// Validates everything, loads the program, attaches it to the selected
    /// interfaces that are up and installs the static VIPs; then interfaces
    /// are followed through rtnetlink. Must run inside a tokio runtime.
    pub async fn start(config: AgentConfig) -> Result<Agent, Error> {
        // Before anything is pinned: a SIGTERM from now on is a clean shutdown.
        let signal_error = |source| Error::Signals { source };
        let signals = Signals {
            hangup: signal(SignalKind::hangup()).map_err(signal_error)?,
            interrupt: signal(SignalKind::interrupt()).map_err(signal_error)?,
            terminate: signal(SignalKind::terminate()).map_err(signal_error)?,
        };

        let mut names: Vec<String> = Vec::new();
        for name in config.interfaces {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        // A misspelt --interface is fatal; one that is down is attached once
        // it comes up.
        let named = names
            .iter()
            .map(|n| netif::lookup(n))
            .collect::<Result<Vec<_>, _>>()?;
        for interface in named.iter().filter(|i| !i.up) {
            tracing::warn!(interface = %interface.name, "interface is down; VIPs on it answer once it comes up");
        }
        let filter = InterfaceFilter::new(
            names.clone(),
            config.interface_regex,
            config.exclude_interface_regex,
        );
        let accepted: Vec<Interface> = netwatch::list_links()
            .await?
            .iter()
            .filter(|link| filter.accepts(link))
            .filter_map(interface_of)
            .collect();

        // Scopes must name an --interface, or without names an interface
        // selected right now, so typos fail here rather than never answer.
        let check_against = if names.is_empty() { &accepted } else { &named };
        let cli_vips: BTreeSet<VipSpec> = config.vips.into_iter().collect();
        validate_all(&cli_vips, check_against)?;
        let file_vips = match &config.vip_file {
            Some(path) => {
                let specs = read_vip_file(path)?;
                validate_all(&specs, check_against)?;
                specs
            }
            None => BTreeSet::new(),
        };

        let (mut loaded, map, adopted) =
            bpf::load(config.attach_mode, &config.pin_path, config.stale_gate)?;
        for interface in &accepted {
            loaded.attach(interface)?;
        }
        for ifindex in loaded.attached_ifindexes() {
            if !accepted.iter().any(|i| i.ifindex == ifindex) {
                if let Some(name) = loaded.detach(ifindex) {
                    tracing::info!(interface = %name, "adopted interface is no longer selected; detached");
                }
            }
        }
        let stats = Arc::new(map.stats_reader()?);
        let announcer = Announcer::new(config.announce_count, config.announce_interval)?;
        let sent = announcer.sent_counts();
        let (links_tx, links) = watch::channel(BTreeMap::new());
        let links_task = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = netwatch::watch(filter, links_tx).await {
                tracing::error!(
                    "following interfaces failed: {}; the attached set stays as it is",
                    display_chain(&e)
                );
            }
        }));
        let attached_watch = watch::Sender::new(attached_summary(&accepted));
        let kube = config
            .kube
            .map(|kube| KubeSource::spawn(kube, attached_watch.subscribe()));
        let mut dataplane = Dataplane::new(accepted, map, announcer);
        // Fail-static: the Kubernetes VIPs of the previous agent stay until
        // the source has said which ones this node still owns.
        if kube.is_some() && !adopted.vips.is_empty() {
            dataplane.hold_removals();
        }
        dataplane.adopt(adopted.vips);
        let kube_sync_deadline = kube
            .is_some()
            .then(|| tokio::time::Instant::now() + KUBE_SYNC_GRACE);
        let mut agent = Agent {
            dataplane,
            loaded,
            desired: DesiredVips::default(),
            names,
            links,
            links_task,
            attached_watch,
            kube,
            vip_file: config.vip_file,
            sent,
            stats,
            last_samples: Vec::new(),
            kube_sync_deadline,
            keep_attached_on_exit: config.keep_attached_on_exit,
            signals,
        };
        agent.desired.set(SOURCE_CLI, cli_vips);
        agent.desired.set(SOURCE_VIP_FILE, file_vips);
        let report = agent.reconcile();
        if report.failed > 0 {
            return Err(Error::Install {
                failed: report.failed,
            });
        }
        let attached = agent.loaded.attached().next().is_some();
        metrics::record(|m| {
            m.set_attached(attached);
            m.set_heartbeat();
            if agent.kube.is_none() {
                m.set_ready();
            }
        });
        tracing::info!(
            pin_path = %agent.loaded.pin_path().display(),
            interfaces = agent.loaded.attached().collect::<Vec<_>>().join(","),
            vips = agent.dataplane.installed().len(),
            kube = agent.kube.is_some(),
            "responder running"
        );
        Ok(agent)
    }

    /// The interfaces the program is attached to right now.
    pub fn interfaces(&self) -> &[Interface] {
        self.dataplane.interfaces()
    }

    /// The attached interfaces, updated as they come and go.
    pub fn attached_interfaces(&self) -> watch::Receiver<Attached> {
        self.attached_watch.subscribe()
    }

    pub fn pin_path(&self) -> &Path {
        self.loaded.pin_path()
    }

    /// Gratuitous packets sent per VIP key.
    pub fn sent_counts(&self) -> SentCounts {
        self.sent.clone()
    }

    /// The Service behind each Kubernetes VIP; stays valid while the agent
    /// runs, so it can be handed out before [`Agent::run`].
    pub fn services(&self) -> ServiceIndex {
        self.kube
            .as_ref()
            .map_or_else(ServiceIndex::empty, KubeSource::services)
    }

    /// Per-VIP counters for the metrics endpoint, read at scrape time.
    pub fn vip_counters(&self) -> VipCounters {
        VipCounters {
            stats: Arc::clone(&self.stats),
            services: self.services(),
            sent: self.sent.clone(),
        }
    }

    /// Serves until SIGINT/SIGTERM, following interfaces, applying `updates`
    /// from dynamic sources and the Kubernetes source, reloading
    /// `--vip-file` on SIGHUP; then removes every VIP, detaches and unpins.
    /// A closed `updates` channel just means no more updates. Fails (after
    /// the same cleanup) only when the Kubernetes source stops.
    pub async fn run(mut self, mut updates: mpsc::Receiver<SourceUpdate>) -> Result<(), Error> {
        let mut updates_open = true;
        let mut links_open = true;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            let kube_sync_deadline = self.kube_sync_deadline;
            tokio::select! {
                _ = tick.tick() => self.tick(),
                () = sleep_until(kube_sync_deadline), if kube_sync_deadline.is_some() => {
                    tracing::info!("no ownership published by the Kubernetes source within {KUBE_SYNC_GRACE:?}; assuming this node owns nothing new");
                    self.kube_synced();
                }
                _ = self.signals.terminate.recv() => {
                    tracing::info!("SIGTERM received, shutting down");
                    break Ok(());
                }
                _ = self.signals.interrupt.recv() => {
                    tracing::info!("SIGINT received, shutting down");
                    break Ok(());
                }
                _ = self.signals.hangup.recv() => self.reload_vip_file(),
                changed = self.links.changed(), if links_open => match changed {
                    Ok(()) => {
                        let links = self.links.borrow_and_update().clone();
                        self.follow_links(&links);
                    }
                    // The watch task logged why it ended.
                    Err(_) => links_open = false,
                },
                update = updates.recv(), if updates_open => match update {
                    Some(update) => self.update_source(update),
                    None => updates_open = false,
                },
                update = next_kube_update(&mut self.kube) => match update {
                    Ok(update) => {
                        self.update_source(update);
                        self.kube_synced();
                    }
                    Err(e) => {
                        tracing::error!("{}; shutting down", display_chain(&e));
                        break Err(e);
                    }
                },
            }
        };
        self.shutdown();
        outcome
    }

    /// Proves the agent alive to the data plane and the health endpoint,
    /// and warns about VIPs another MAC claimed since the last tick.
    fn tick(&mut self) {
        if let Err(e) = self.loaded.beat() {
            // The data plane stops answering at the stale bound: loud.
            tracing::error!("writing the heartbeat: {}", display_chain(&e));
        } else {
            metrics::record(Metrics::set_heartbeat);
        }
        let samples = self.vip_counters().vip_samples();
        metrics::warn_on_new_conflicts(&self.last_samples, &samples);
        self.last_samples = samples;
        if let Some(report) = self.dataplane.retry_failed() {
            self.after_reconcile(&report);
        }
        if let Some(report) = self.dataplane.refresh_ipv6(netif::ipv6_enabled) {
            self.after_reconcile(&report);
            self.publish_attached();
        }
    }

    /// The Kubernetes source has spoken (or had its chance): ready, and
    /// adopted VIPs it does not want go.
    fn kube_synced(&mut self) {
        if self.kube_sync_deadline.take().is_none() {
            return;
        }
        let report = self.dataplane.release_removals();
        self.after_reconcile(&report);
        metrics::record(Metrics::set_ready);
    }

    fn update_source(&mut self, SourceUpdate { source, vips }: SourceUpdate) {
        if self.desired.set(&source, vips) {
            self.reconcile();
        }
    }

    /// Makes the attachments match the accepted links: a link that left
    /// (down, no carrier, deleted, renamed) is detached, a new one (or one
    /// recreated under a new ifindex) attached, and the VIP keys follow.
    fn follow_links(&mut self, links: &BTreeMap<u32, LinkInfo>) {
        let wanted: Vec<Interface> = links.values().filter_map(interface_of).collect();
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
            if let Some(name) = self.loaded.detach(ifindex) {
                tracing::info!(interface = %name, ifindex, "interface gone; detached");
            }
        }
        let mut attached = Vec::new();
        for interface in wanted {
            if self.loaded.attached_name(interface.ifindex).is_none() {
                if let Err(e) = self.loaded.attach(&interface) {
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
        let attached = self.loaded.attached().next().is_some();
        metrics::record(|m| m.set_attached(attached));
        self.publish_attached();
    }

    fn publish_attached(&self) {
        let summary = attached_summary(self.dataplane.interfaces());
        self.attached_watch.send_if_modified(|current| {
            let changed = *current != summary;
            *current = summary;
            changed
        });
    }

    fn reconcile(&mut self) -> ApplyReport {
        let report = self.dataplane.apply(&self.desired.union());
        self.after_reconcile(&report);
        report
    }

    fn after_reconcile(&self, report: &ApplyReport) {
        log_report(report, self.dataplane.installed().len());
        let services = self.services();
        let announced: BTreeMap<IpAddr, Option<String>> = self
            .dataplane
            .installed()
            .keys()
            .map(|key| {
                let ip = key_addr(key);
                (ip, services.service_of(ip).map(|s| s.to_string()))
            })
            .collect();
        metrics::record(|m| {
            (0..report.failed).for_each(|_| m.reconcile_error());
            m.set_announced(announced);
            m.set_family_disabled(report.family_disabled);
        });
    }

    /// A file that does not parse or validate changes nothing: dropping VIPs
    /// because of a typo would take services down.
    fn reload_vip_file(&mut self) {
        let Some(path) = &self.vip_file else {
            tracing::info!("SIGHUP received; no --vip-file to reload");
            return;
        };
        let mut check_against = self.dataplane.interfaces().to_vec();
        for name in &self.names {
            if !check_against.iter().any(|i| &i.name == name) {
                check_against.push(absent_interface(name));
            }
        }
        let loaded = read_vip_file(path).and_then(|specs| {
            validate_all(&specs, &check_against)?;
            Ok(specs)
        });
        match loaded {
            Ok(specs) => {
                tracing::info!(path = %path.display(), vips = specs.len(), "SIGHUP: reloaded VIP file");
                if self.desired.set(SOURCE_VIP_FILE, specs) {
                    self.reconcile();
                }
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "SIGHUP: {e}; keeping the current VIPs")
            }
        }
    }

    fn shutdown(mut self) {
        // Stop following first, so nothing is re-attached while tearing down.
        drop(self.kube.take());
        self.links_task.0.abort();
        if self.loaded.superseded() {
            self.loaded.keep_pinned();
            let pin_path = self.loaded.pin_path().display().to_string();
            drop(self);
            tracing::info!(%pin_path, "the pinned program is no longer this agent's (a newer agent adopted it, or it was cleaned up); leaving the pins alone");
            return;
        }
        if self.keep_attached_on_exit {
            self.loaded.keep_pinned();
            let pin_path = self.loaded.pin_path().display().to_string();
            let interfaces = self.loaded.attached().collect::<Vec<_>>().join(",");
            let vips = self.dataplane.installed().len();
            drop(self);
            tracing::info!(
                %interfaces,
                %pin_path,
                vips,
                "leaving the XDP program attached and pinned for the next agent to adopt; without one it stops answering at the stale bound"
            );
            return;
        }
        let report = self.dataplane.clear();
        if report.failed > 0 {
            tracing::warn!(
                failed = report.failed,
                "some VIPs could not be removed; the maps go away with the pins"
            );
        }
        let pin_path = self.loaded.pin_path().display().to_string();
        let interfaces = self.loaded.attached().collect::<Vec<_>>().join(",");
        drop(self);
        tracing::info!(removed = report.removed, %interfaces, %pin_path, "detached and unpinned");
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Per-VIP counters from the data plane's maps, the announcer and the
/// Kubernetes source, for `/metrics`.
#[derive(Clone)]
pub struct VipCounters {
    stats: Arc<StatsReader>,
    services: ServiceIndex,
    sent: SentCounts,
}

impl VipSource for VipCounters {
    fn vip_samples(&self) -> Vec<VipSample> {
        let sent = self.sent.snapshot();
        self.stats
            .read()
            .into_iter()
            .map(|(key, stats)| {
                let ip = key_addr(&key);
                let vlan = key_vlan(&key);
                VipSample {
                    ip,
                    interface: netif::name_of(key.ifindex)
                        .unwrap_or_else(|| format!("#{}", key.ifindex)),
                    vlan: if vlan.is_tagged() {
                        vlan.to_string()
                    } else {
                        String::new()
                    },
                    service: self.services.service_of(ip).map(|s| s.to_string()),
                    requests: stats.requests,
                    replies: stats.replies,
                    conflicts: stats.conflicts,
                    stale: stats.stale,
                    gratuitous_sent: sent.get(&key).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}

/// Never resolves without a Kubernetes source.
async fn next_kube_update(kube: &mut Option<KubeSource>) -> Result<SourceUpdate, Error> {
    match kube {
        Some(kube) => kube.next().await,
        None => std::future::pending().await,
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
