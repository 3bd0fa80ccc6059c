//! What the long-running subcommands share: where they listen, which
//! namespace they work in, and their Kubernetes client.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use clap::Args;

use anyhow::Context as _;
use responder::metrics::http::HttpServer;

/// How a subcommand that only talks to the API server reaches it, and
/// which of responder's objects it works with.
#[derive(Args, Clone, Debug)]
pub(crate) struct ClusterAccess {
    /// Kubeconfig; default: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Namespace of responder's objects (its Leases, MetalLB's pools and
    /// advertisements); default: $POD_NAMESPACE, the service account's
    /// namespace, else responder-system.
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// Handle only Services with this spec.loadBalancerClass (default: only
    /// Services without a class); the agents, the controller and `status`
    /// must be given the same.
    #[arg(long, value_name = "NAME")]
    pub(crate) lb_class: Option<String>,
}

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const DEFAULT_NAMESPACE: &str = "responder-system";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    Off,
    Listen(SocketAddr),
}

pub(crate) fn parse_listen_addr(text: &str) -> Result<ListenAddr, String> {
    match text {
        "" | "off" => Ok(ListenAddr::Off),
        _ => text
            .parse()
            .map(ListenAddr::Listen)
            .map_err(|e| format!("{e}: expected IP:PORT or `off`")),
    }
}

pub(crate) fn namespace(flag: Option<String>) -> String {
    flag.or_else(|| {
        std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
            .ok()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
    })
    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Builds the client up front so a broken kubeconfig fails the start; the
/// API server itself may well be unreachable for now.
pub(crate) async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding the Kubernetes API server (no --kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster service account)")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Binds `addr` (unless off) and logs what it will serve.
pub(crate) async fn bind(addr: ListenAddr, serves: &str) -> anyhow::Result<Option<HttpServer>> {
    let ListenAddr::Listen(addr) = addr else {
        return Ok(None);
    };
    let server = HttpServer::bind(addr).await?;
    let bound = server.local_addr()?;
    tracing::info!(addr = %bound, "serving {serves}");
    Ok(Some(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_flag_wins() {
        assert_eq!(namespace(Some("ns1".into())), "ns1");
    }
}
