//! `responder run`: the Kubernetes client, the metrics listener and the
//! agent, wired from the command line.

use std::sync::Arc;

use anyhow::Context as _;
use responder::{
    agent::{Agent, AgentConfig, Exit},
    bpf::StaleGate,
    cluster::ClusterSettings,
    metrics::{http::Routes, Metrics},
    sources::ClusterSourceConfig,
};

use super::args::RunArgs;
use super::runtime;
use super::shared::{bind, kube_client, namespace};

async fn cluster_source(args: &RunArgs) -> anyhow::Result<ClusterSourceConfig> {
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let node_name = args.node_name.clone().context("--kube needs --node-name")?;
    let mut settings = ClusterSettings::new(node_name, namespace(args.namespace.clone()));
    settings.lb_class = args.lb_class.clone();
    settings.node_selector = args.node_selector.clone();
    settings.lease_duration = args.lease_duration;
    settings.renew_interval = args.renew_interval;
    settings.lease_write_budget = args.lease_write_budget;
    settings.announcers = args.announcers;
    settings.hold_down = args.hold_down;
    settings.handover_pause = args.handover_pause;
    settings.pod_name = args.pod_name.clone().filter(|name| !name.is_empty());
    Ok(ClusterSourceConfig { client, settings })
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let cluster = match args.kube {
            true => Some(cluster_source(&args).await?),
            false => None,
        };
        if let Some(cluster) = &cluster {
            tracing::info!(node = %cluster.settings.node_name, namespace = %cluster.settings.namespace, "Kubernetes source enabled");
        }
        // Bound before anything is attached, so a taken port fails the start
        // rather than leave a node answering without observability.
        let metrics_server = bind(args.metrics_addr, "/metrics").await?;
        let health_server = bind(args.health_addr, "/healthz and /readyz").await?;
        let metrics = Metrics::new();
        let config = AgentConfig {
            interfaces: args.interfaces,
            interface_regex: args.interface_regex,
            exclude_interface_regex: args.exclude_interface_regex,
            vips: args.vip,
            vip_file: args.vip_file,
            pin_path: args.pin_path,
            attach_mode: args.xdp_mode,
            announce_count: args.announce_count,
            announce_interval: args.announce_interval,
            reannounce_interval: args.reannounce_interval,
            exit: match cluster.is_some() && !args.detach_on_exit {
                true => Exit::KeepAttached {
                    restart_grace: args.restart_grace,
                },
                false => Exit::Detach,
            },
            carrier_debounce: args.carrier_debounce,
            vlan_offload: args.vlan_offload,
            cluster,
            stale_gate: StaleGate {
                stale_after: args.stale_after,
                yield_after: args.yield_after,
            },
        };
        let agent = Agent::start(config, Arc::clone(&metrics))
            .await
            .context("starting the responder")?;
        metrics.set_vip_counters(Arc::new(agent.vip_counters()));
        // Both end with the runtime when the agent returns.
        if let Some(server) = metrics_server {
            tokio::spawn(server.run(Routes::metrics(&metrics), std::future::pending()));
        }
        if let Some(server) = health_server {
            tokio::spawn(server.run(Routes::probes(&metrics), std::future::pending()));
        }
        agent.run().await.context("the responder stopped")
    })
}
