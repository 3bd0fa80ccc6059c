//! `responder run`: validate, load (adopting a previous agent's pins),
//! attach, install the VIPs, then follow interfaces, sources, the tick and
//! signals until told to stop, and clean up. Decisions live in [`core`];
//! this file only turns events into calls to it.

mod core;
mod pacemaker;
mod selection;

use std::{path::PathBuf, sync::Arc, time::Duration};

use regex::Regex;
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::Instant,
};

use self::core::{AgentCore, Attachments, TickInput};
use self::pacemaker::LoopAlive;
use self::selection::{attachable, Selection};
use crate::{
    bpf::{self, AttachMode, BpfVipMap, ClaimReader, Loaded, StaleGate, StatsReader},
    cluster::{Departure, Ownership},
    conflicts::Claimants,
    dataplane::Dataplane,
    error::{display_chain, Error},
    garp::{Announcer, SentCounts},
    memory,
    metrics::{Metrics, VipCounterSample, VipCounterSource},
    netif::topology::Topology,
    netif::{
        self,
        multicast::{DeviceMulticast, Group, Memberships},
        watch::LinkWatch,
        Interface,
    },
    nic::capabilities::privileges_or,
    nic::vlan_offload::VlanOffloadPolicy,
    sources::{ClusterSource, ClusterSourceConfig, ServiceIndex, Source, SourceUpdate},
    vip::{key_addr, read_vip_file, VipSpec},
};

/// How often the heartbeat is written and the counters checked for conflicts.
const TICK: Duration = Duration::from_secs(1);

/// VIPs gained or lost in one ownership update past which the memory the
/// update freed is handed back (a first sync, a node taking over another's
/// Services).
const LARGE_OWNERSHIP_CHANGE: usize = 1_000;

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
    /// How often each owned VIP key is announced again (one frame, spread
    /// over the interval); zero disables it.
    pub reannounce_interval: Duration,
    pub cluster: Option<ClusterSourceConfig>,
    pub stale_gate: StaleGate,
    /// What SIGTERM/SIGINT does to the data plane.
    pub exit: Exit,
    /// How long an attached interface may be without carrier before it
    /// stops counting as serving (its Services move).
    pub carrier_debounce: Duration,
    pub vlan_offload: VlanOffloadPolicy,
}

struct Signals {
    hangup: Signal,
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> Result<Self, Error> {
        let install = |kind| signal(kind).map_err(|source| Error::Signals { source });
        Ok(Signals {
            hangup: install(SignalKind::hangup())?,
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }
}

/// The kernel as the core reaches it: the loaded program with its links,
/// the devices' multicast lists, and (through the pacemaker) the heartbeat.
struct Kernel {
    loaded: Loaded,
    multicast: DeviceMulticast,
    alive: Arc<LoopAlive>,
}

impl Attachments for Kernel {
    fn attach(&mut self, interface: &Interface) -> Result<(), Error> {
        self.loaded.attach(interface)
    }

    fn detach(&mut self, ifindex: u32) -> Option<String> {
        self.loaded.detach(ifindex)
    }

    fn is_attached(&self, ifindex: u32) -> bool {
        self.loaded.attached_name(ifindex).is_some()
    }

    fn attached_names(&self) -> Vec<String> {
        self.loaded.attached().map(str::to_owned).collect()
    }

    fn set_topology(&mut self, topology: &Topology) -> Result<(), Error> {
        self.loaded.set_topology(topology)
    }

    /// The pacemaker writes the heartbeat itself, as long as this is said.
    fn beat(&mut self) -> Result<(), Error> {
        self.alive.tick();
        Ok(())
    }
}

impl Memberships for Kernel {
    fn join(&mut self, group: Group) -> std::io::Result<()> {
        self.multicast.join(group)
    }

    fn leave(&mut self, group: Group) -> std::io::Result<()> {
        self.multicast.leave(group)
    }
}

/// The running agent: the decision core plus what feeds it.
pub struct Agent {
    // Field order is drop order: the core (VIPs, program, pins) goes last.
    _pacemaker: AbortOnDrop,
    cluster: Option<ClusterSource>,
    links: LinkWatch,
    /// The data plane's reports of who claimed a VIP; `None` if it failed.
    claims: Option<ClaimReader>,
    vip_file: Option<PathBuf>,
    stats: Arc<StatsReader>,
    sent: SentCounts,
    exit: Exit,
    signals: Signals,
    core: AgentCore<Kernel, BpfVipMap, Announcer>,
}

impl Agent {
    /// Validates everything, loads the program, attaches it to the selected
    /// interfaces that are up and installs the static VIPs; then interfaces
    /// are followed through rtnetlink. Must run inside a tokio runtime.
    pub async fn start(config: AgentConfig, metrics: Arc<Metrics>) -> Result<Agent, Error> {
        // Before anything is pinned: a SIGTERM from now on is a clean shutdown.
        let signals = Signals::install()?;
        let selection = Selection::now(&config).await?;
        let [cli_vips, file_vips] = selection.static_vips(&config)?;

        let (mut loaded, map, adopted) =
            bpf::load(config.attach_mode, &config.pin_path, config.stale_gate)?;
        loaded.set_vlan_offload_policy(config.vlan_offload);
        // Before attaching, so the first claim seen from another NIC of this
        // node is not taken for a conflict; a failure is logged and retried
        // by the core with the next link change.
        if let Err(e) = loaded.set_topology(&selection.topology) {
            tracing::warn!("{}", display_chain(&e));
        }
        for interface in &selection.accepted {
            loaded.attach(interface)?;
        }
        for ifindex in loaded.attached_ifindexes() {
            if !selection.accepted.iter().any(|i| i.ifindex == ifindex) {
                if let Some(name) = loaded.detach(ifindex) {
                    tracing::info!(interface = %name, "adopted interface is no longer selected; detached");
                }
            }
        }
        let stats = Arc::new(map.stats_reader()?);
        let claims = loaded.take_claim_reader()?;
        let announcer = Announcer::new(
            config.announce_count,
            config.announce_interval,
            config.reannounce_interval,
            Arc::clone(&metrics),
        )?;
        let sent = announcer.sent_counts();
        let mut dataplane = Dataplane::new(selection.accepted.clone(), map, announcer);
        // Fail-static: the Kubernetes VIPs of the previous agent stay until
        // the source has said which ones this node still owns.
        if config.cluster.is_some() && !adopted.vips.is_empty() {
            dataplane.hold_removals();
        }
        dataplane.adopt(adopted.vips);

        let multicast = DeviceMulticast::open().map_err(|source| {
            privileges_or("opening a socket for multicast lists", source, |source| {
                Error::MulticastSocket { source }
            })
        })?;
        let alive = Arc::new(LoopAlive::default());
        alive.tick();
        let pacemaker = AbortOnDrop(tokio::spawn(pacemaker::run(
            loaded.heartbeat()?,
            Arc::clone(&alive),
        )));
        let mut core = AgentCore::new(
            dataplane,
            Kernel {
                loaded,
                multicast,
                alive,
            },
            selection.names,
            config.carrier_debounce,
            Arc::clone(&metrics),
        );
        core.set_local_addresses(selection.local_addresses);
        core.on_topology(&selection.topology);
        // Spawned once the core can tell it which interfaces are attached;
        // it then fills the core's Service index.
        let cluster = config.cluster.map(|cluster| {
            ClusterSource::spawn(
                cluster,
                core.attached_interfaces(),
                core.installed_addresses(),
                &core.claimants(),
                Arc::clone(&metrics),
            )
        });
        if let Some(cluster) = &cluster {
            core.set_services(cluster.services());
            core.await_cluster();
        }
        core.start(vec![
            SourceUpdate {
                source: Source::CommandLine,
                vips: cli_vips,
            },
            SourceUpdate {
                source: Source::VipFile,
                vips: file_vips,
            },
        ])?;
        tracing::info!(
            pin_path = %core.attachments().loaded.pin_path().display(),
            interfaces = core.attachments().attached_names().join(","),
            vips = core.installed_count(),
            kube = cluster.is_some(),
            "responder running"
        );
        Ok(Agent {
            _pacemaker: pacemaker,
            cluster,
            links: LinkWatch::spawn(selection.filter),
            claims,
            vip_file: config.vip_file,
            stats,
            sent,
            exit: config.exit,
            signals,
            core,
        })
    }

    /// Per-VIP counters for the metrics endpoint, read at scrape time.
    pub fn vip_counters(&self) -> VipCounters {
        VipCounters {
            stats: Arc::clone(&self.stats),
            services: self.core.services().clone(),
            sent: self.sent.clone(),
        }
    }

    /// The last claimant of each VIP (who else announced it, what this
    /// node did): for whatever reports on VIPs, Kubernetes Events included.
    pub fn claimants(&self) -> Claimants {
        self.core.claimants()
    }

    /// Serves until SIGINT/SIGTERM, following interfaces and the Kubernetes
    /// source, reloading `--vip-file` on SIGHUP; then removes every VIP,
    /// detaches and unpins (or leaves everything for the next agent). Fails
    /// (after the same cleanup) only when the Kubernetes source stops.
    pub async fn run(mut self) -> Result<(), Error> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                _ = tick.tick() => {
                    let counters = self.stats.read();
                    self.core.on_tick(TickInput {
                        now: Instant::now(),
                        ipv6_enabled: netif::ipv6_enabled,
                        counters: &counters,
                    });
                }
                claims = next_claims(&mut self.claims) => match claims {
                    Ok(claims) => self.core.on_claims(&claims, Instant::now()),
                    Err(e) => {
                        // The conflict counters still move and are answered.
                        tracing::error!("reading the data plane's claims: {e}; claimants are no longer named");
                        self.claims = None;
                    }
                },
                _ = self.signals.terminate.recv() => {
                    tracing::info!("SIGTERM received, shutting down");
                    break Ok(());
                }
                _ = self.signals.interrupt.recv() => {
                    tracing::info!("SIGINT received, shutting down");
                    break Ok(());
                }
                _ = self.signals.hangup.recv() => match &self.vip_file {
                    Some(path) => self.core.on_vip_file(path, read_vip_file(path)),
                    None => tracing::info!("SIGHUP received; no --vip-file to reload"),
                },
                links = self.links.changed() => {
                    self.core.on_topology(&links.topology);
                    self.core.on_links(
                        attachable(links.accepted.values()),
                        links.addresses,
                        Instant::now(),
                    );
                }
                update = next_cluster_update(&mut self.cluster) => match update {
                    Ok(ownership) => {
                        let before = self.core.installed_count();
                        self.core.on_ownership(ownership);
                        if before.abs_diff(self.core.installed_count()) >= LARGE_OWNERSHIP_CHANGE {
                            memory::release_after_burst();
                        }
                    }
                    Err(e) => {
                        tracing::error!("{}; shutting down", display_chain(&e));
                        break Err(e);
                    }
                },
            }
        };
        self.shutdown().await;
        outcome
    }

    async fn shutdown(mut self) {
        // Stop following first, so nothing is re-attached while tearing down.
        self.links.stop();
        let keep_attached = matches!(self.exit, Exit::KeepAttached { .. });
        let departure = match self.cluster.take() {
            Some(cluster) => Some(cluster.depart(self.exit.restart_grace()).await),
            None => None,
        };
        // Nothing comes to adopt the program after an uninstall.
        let keep_attached = keep_attached && departure != Some(Departure::Uninstall);
        let loaded = &mut self.core.attachments_mut().loaded;
        let pin_path = loaded.pin_path().display().to_string();
        let interfaces = loaded.attached().collect::<Vec<_>>().join(",");
        if loaded.superseded() {
            loaded.keep_pinned();
            drop(self);
            tracing::info!(%pin_path, "the pinned program is no longer this agent's (a newer agent adopted it, or it was cleaned up); leaving the pins alone");
            return;
        }
        if keep_attached {
            loaded.keep_pinned();
            if departure == Some(Departure::Leave) {
                // The node leaves for good (drained): its VIPs are another
                // node's from now on, so this one stops answering at once.
                let report = self.core.clear();
                tracing::info!(
                    removed = report.removed,
                    "the Node is cordoned: withdrew every VIP"
                );
            }
            let vips = self.core.installed_count();
            drop(self);
            tracing::info!(
                %interfaces,
                %pin_path,
                vips,
                "leaving the XDP program attached and pinned for the next agent to adopt; without one it stops answering at the stale bound"
            );
            return;
        }
        let report = self.core.clear();
        if report.failed > 0 {
            tracing::warn!(
                failed = report.failed,
                "some VIPs could not be removed; the maps go away with the pins"
            );
        }
        drop(self);
        tracing::info!(removed = report.removed, %interfaces, %pin_path, "detached and unpinned");
    }
}

/// What the agent does with the data plane when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Detach and unpin everything (static mode, `--detach-on-exit`).
    Detach,
    /// Leave the program attached and everything pinned for the next agent
    /// to adopt, and ask the other nodes to wait `restart_grace` for it.
    KeepAttached { restart_grace: Duration },
}

impl Exit {
    fn restart_grace(self) -> Option<Duration> {
        match self {
            Exit::Detach => None,
            Exit::KeepAttached { restart_grace } => Some(restart_grace),
        }
    }
}

/// A task aborted when its handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Never resolves without a reader.
async fn next_claims(
    claims: &mut Option<ClaimReader>,
) -> std::io::Result<Vec<responder_common::claims::Claim>> {
    match claims {
        Some(claims) => claims.next_batch().await,
        None => std::future::pending().await,
    }
}

/// Never resolves without a Kubernetes source.
async fn next_cluster_update(cluster: &mut Option<ClusterSource>) -> Result<Ownership, Error> {
    match cluster {
        Some(cluster) => cluster.next().await,
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

impl VipCounterSource for VipCounters {
    fn vip_counter_samples(&self) -> Vec<VipCounterSample> {
        let sent = self.sent.snapshot();
        self.stats
            .read()
            .into_iter()
            .map(|(key, stats)| VipCounterSample {
                key,
                service: self.services.service_of(key_addr(&key)),
                requests: stats.requests,
                replies: stats.replies,
                conflicts: stats.conflicts,
                stale: stats.stale,
                gratuitous_sent: sent.get(&key).copied().unwrap_or(0),
            })
            .collect()
    }
}
