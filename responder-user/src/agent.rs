//! `responder run`: validate, load, attach, install the VIPs, then follow
//! source updates and signals until told to stop, and clean up.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    sync::mpsc,
};

use crate::{
    announce::{Announcer, SentCounts},
    bpf::{self, AttachMode, BpfVipMap, Loaded},
    dataplane::{ApplyReport, Dataplane, DesiredVips},
    error::{Error, VipError},
    netif::{self, Interface},
    vip::{read_vip_file, validate, VipSpec},
};

/// Source name of the `--vip` arguments in [`DesiredVips`].
pub const SOURCE_CLI: &str = "cli";
/// Source name of the `--vip-file` contents in [`DesiredVips`].
pub const SOURCE_VIP_FILE: &str = "vip-file";

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub interfaces: Vec<String>,
    pub vips: Vec<VipSpec>,
    pub vip_file: Option<PathBuf>,
    pub pin_path: PathBuf,
    pub attach_mode: AttachMode,
    pub announce_count: u32,
    pub announce_interval: Duration,
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
    vip_file: Option<PathBuf>,
    sent: SentCounts,
    signals: Signals,
}

fn validate_all(specs: &BTreeSet<VipSpec>, interfaces: &[Interface]) -> Result<(), VipError> {
    specs.iter().try_for_each(|spec| validate(spec, interfaces))
}

impl Agent {
    /// Validates everything, loads and attaches the program and installs the
    /// static VIPs. Must run inside a tokio runtime (announcements are tasks).
    pub fn start(config: AgentConfig) -> Result<Agent, Error> {
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
        let interfaces = names
            .iter()
            .map(|n| netif::lookup(n))
            .collect::<Result<Vec<_>, _>>()?;
        for interface in interfaces.iter().filter(|i| !i.up) {
            tracing::warn!(interface = %interface.name, "interface is down; VIPs on it answer once it comes up");
        }

        let cli_vips: BTreeSet<VipSpec> = config.vips.into_iter().collect();
        validate_all(&cli_vips, &interfaces)?;
        let file_vips = match &config.vip_file {
            Some(path) => {
                let specs = read_vip_file(path)?;
                validate_all(&specs, &interfaces)?;
                specs
            }
            None => BTreeSet::new(),
        };

        let (loaded, map) = bpf::load(&interfaces, config.attach_mode, &config.pin_path)?;
        let announcer =
            Announcer::new(&interfaces, config.announce_count, config.announce_interval)?;
        let sent = announcer.sent_counts();
        let mut agent = Agent {
            dataplane: Dataplane::new(interfaces, map, announcer),
            loaded,
            desired: DesiredVips::default(),
            vip_file: config.vip_file,
            sent,
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
        tracing::info!(
            pin_path = %agent.loaded.pin_path().display(),
            interfaces = agent.loaded.attached().collect::<Vec<_>>().join(","),
            vips = agent.dataplane.installed().len(),
            "responder running"
        );
        Ok(agent)
    }

    pub fn interfaces(&self) -> &[Interface] {
        self.dataplane.interfaces()
    }

    /// Gratuitous packets sent per VIP key.
    pub fn sent_counts(&self) -> SentCounts {
        self.sent.clone()
    }

    /// Serves until SIGINT/SIGTERM, applying `updates` from dynamic sources
    /// and reloading `--vip-file` on SIGHUP, then removes every VIP, detaches
    /// and unpins. A closed `updates` channel just means no more updates.
    pub async fn run(mut self, mut updates: mpsc::Receiver<SourceUpdate>) {
        let mut updates_open = true;
        loop {
            tokio::select! {
                _ = self.signals.terminate.recv() => {
                    tracing::info!("SIGTERM received, shutting down");
                    break;
                }
                _ = self.signals.interrupt.recv() => {
                    tracing::info!("SIGINT received, shutting down");
                    break;
                }
                _ = self.signals.hangup.recv() => self.reload_vip_file(),
                update = updates.recv(), if updates_open => match update {
                    Some(SourceUpdate { source, vips }) => {
                        if self.desired.set(&source, vips) {
                            self.reconcile();
                        }
                    }
                    None => updates_open = false,
                },
            }
        }
        self.shutdown();
    }

    fn reconcile(&mut self) -> ApplyReport {
        let report = self.dataplane.apply(&self.desired.union());
        if report != ApplyReport::default() {
            tracing::info!(
                added = report.added,
                updated = report.updated,
                removed = report.removed,
                rejected = report.rejected,
                failed = report.failed,
                installed = self.dataplane.installed().len(),
                "VIPs reconciled"
            );
        }
        report
    }

    /// A file that does not parse or validate changes nothing: dropping VIPs
    /// because of a typo would take services down.
    fn reload_vip_file(&mut self) {
        let Some(path) = &self.vip_file else {
            tracing::info!("SIGHUP received; no --vip-file to reload");
            return;
        };
        let loaded = read_vip_file(path).and_then(|specs| {
            validate_all(&specs, self.dataplane.interfaces())?;
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
