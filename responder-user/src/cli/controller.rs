//! `responder controller`: its arguments, and the Kubernetes client, metrics
//! listeners and controller wired from them.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use responder::{
    controller::{
        run as run_controller, ControllerMetrics, ControllerSettings, ElectionSettings,
        DEFAULT_CONTROLLER_HEALTH_ADDR, DEFAULT_CONTROLLER_METRICS_ADDR,
    },
    duration::parse_duration,
    metrics::http::Routes,
};

use super::runtime;
use super::shared::{bind, kube_client, namespace, parse_listen_addr, ClusterAccess, ListenAddr};

#[derive(Args)]
pub(crate) struct ControllerArgs {
    #[command(flatten)]
    pub(crate) cluster: ClusterAccess,
    /// This replica's name in the leader Lease; default: $POD_NAME or the host
    /// name, with a random suffix so that a restarted replica never mistakes a
    /// Lease of its predecessor for its own.
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub(crate) identity: Option<String>,
    /// How long a standby replica waits after it last saw the leader renew its
    /// Lease: the failover time.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = parse_duration)]
    pub(crate) lease_duration: Duration,
    /// How often the leader renews its Lease and standbys look at it.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) renew_interval: Duration,
    /// Listen address of /metrics; `off` disables it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_CONTROLLER_METRICS_ADDR, value_parser = parse_listen_addr)]
    pub(crate) metrics_addr: ListenAddr,
    /// Listen address of /healthz and /readyz; `off` disables it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_CONTROLLER_HEALTH_ADDR, value_parser = parse_listen_addr)]
    pub(crate) health_addr: ListenAddr,
}

impl ControllerArgs {
    pub(crate) fn check(&self) -> Result<(), String> {
        self.election("check".into())
            .check()
            .map_err(|e| format!("--renew-interval / --lease-duration: {e}"))
    }

    fn election(&self, identity: String) -> ElectionSettings {
        ElectionSettings {
            identity,
            lease_duration: self.lease_duration,
            renew_interval: self.renew_interval,
        }
    }
}

/// `name-<8 hex digits>`.
fn identity(base: Option<String>) -> String {
    use std::hash::{BuildHasher, Hasher};
    let base = base
        .filter(|b| !b.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "responder-controller".to_owned());
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{base}-{:08x}", random as u32)
}

pub(crate) fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let client = kube_client(args.cluster.kubeconfig.as_deref()).await?;
        let settings = ControllerSettings {
            namespace: namespace(args.cluster.namespace.clone()),
            lb_class: args.cluster.lb_class.clone(),
            election: args.election(identity(args.identity.clone())),
        };
        tracing::info!(namespace = %settings.namespace, identity = %settings.election.identity, lb_class = ?settings.lb_class, "controller starting");
        let metrics = ControllerMetrics::new();
        if let Some(server) = bind(args.metrics_addr, "/metrics").await? {
            tokio::spawn(server.run(Routes::metrics(&metrics), std::future::pending()));
        }
        if let Some(server) = bind(args.health_addr, "/healthz and /readyz").await? {
            tokio::spawn(server.run(Routes::probes(&metrics), std::future::pending()));
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping");
        };
        run_controller(client, settings, metrics, shutdown)
            .await
            .context("the controller stopped")
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::cli::args::{parse, Command};

    fn controller_args(args: &[&str]) -> Result<ControllerArgs, String> {
        let cli =
            parse(["responder", "controller"].iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Controller(args) => Ok(*args),
            _ => panic!("expected controller"),
        }
    }

    #[test]
    fn defaults_and_every_option() {
        let args = controller_args(&[]).expect("defaults");
        assert_eq!(args.lease_duration, Duration::from_secs(4));
        assert_eq!(args.renew_interval, Duration::from_secs(1));
        assert_eq!(
            args.metrics_addr,
            ListenAddr::Listen("0.0.0.0:9852".parse().expect("addr"))
        );
        let args = controller_args(&[
            "--kubeconfig",
            "/k",
            "--namespace",
            "lb",
            "--lb-class",
            "example.com/lb",
            "--identity",
            "ctl-0",
            "--metrics-addr",
            "off",
            "--health-addr",
            "127.0.0.1:0",
            "--lease-duration",
            "10s",
            "--renew-interval",
            "2s",
        ])
        .expect("every option");
        assert_eq!(args.cluster.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(args.cluster.namespace.as_deref(), Some("lb"));
        assert_eq!(args.cluster.lb_class.as_deref(), Some("example.com/lb"));
        assert_eq!(args.metrics_addr, ListenAddr::Off);
        assert!(identity(args.identity).starts_with("ctl-0-"));
    }

    #[test]
    fn refuses_a_renew_interval_too_close_to_the_lease() {
        let e = controller_args(&["--lease-duration", "2s", "--renew-interval", "1500ms"])
            .err()
            .expect("renew too slow");
        assert!(e.contains("--renew-interval"), "{e}");
    }
}
