//! Dynamic VIP sources beside the command line and `--vip-file`: the
//! Kubernetes source runs in its own task and its published ownership is
//! turned into [`SourceUpdate`]s for the agent.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    agent::SourceUpdate,
    error::Error,
    kube::{Attached, KubeError, KubeSettings, ServiceRef},
    vip::VipSpec,
};

/// Source name of the Kubernetes VIPs in [`crate::dataplane::DesiredVips`].
pub const SOURCE_KUBE: &str = "kube";

/// The VIPs this node owns for its Services: answered on every attached
/// interface, untagged. An address that is not a usable unicast VIP (a
/// mistaken Service status) is logged and left out.
pub fn kube_update(owned: &BTreeMap<IpAddr, ServiceRef>) -> SourceUpdate {
    let vips: BTreeSet<VipSpec> = owned
        .iter()
        .filter_map(|(ip, service)| match ip.to_string().parse::<VipSpec>() {
            Ok(spec) => Some(spec),
            Err(e) => {
                tracing::warn!(%service, "ignoring load-balancer IP: {e}");
                None
            }
        })
        .collect();
    SourceUpdate {
        source: SOURCE_KUBE.to_owned(),
        vips,
    }
}

/// Which Service each Kubernetes VIP belongs to, as last published by the
/// Kubernetes source (empty without one). Cheap to clone; for labelling.
#[derive(Clone, Debug)]
pub struct ServiceIndex(watch::Receiver<BTreeMap<IpAddr, ServiceRef>>);

impl ServiceIndex {
    /// An index that stays empty, for agents without a Kubernetes source.
    pub fn empty() -> Self {
        ServiceIndex(watch::channel(BTreeMap::new()).1)
    }

    pub fn service_of(&self, ip: IpAddr) -> Option<ServiceRef> {
        self.0.borrow().get(&ip).cloned()
    }

    pub fn snapshot(&self) -> BTreeMap<IpAddr, ServiceRef> {
        self.0.borrow().clone()
    }
}

/// What the agent needs to start the Kubernetes source.
#[derive(Clone)]
pub struct KubeSourceConfig {
    pub client: ::kube::Client,
    pub settings: KubeSettings,
}

/// The Kubernetes source running as a task; aborted when dropped, which
/// stops renewing this node's membership Lease.
pub struct KubeSource {
    task: JoinHandle<Result<(), KubeError>>,
    owned: watch::Receiver<BTreeMap<IpAddr, ServiceRef>>,
}

impl KubeSource {
    /// `attached` follows the attached interfaces (see [`crate::kube::run`]).
    pub fn spawn(config: KubeSourceConfig, attached: watch::Receiver<Attached>) -> Self {
        let (owned_tx, owned) = watch::channel(BTreeMap::new());
        let task = tokio::spawn(crate::kube::run(
            config.client,
            config.settings,
            attached,
            owned_tx,
        ));
        KubeSource { task, owned }
    }

    pub fn services(&self) -> ServiceIndex {
        ServiceIndex(self.owned.clone())
    }

    /// The next change of this node's VIPs; an error once the source has
    /// stopped, which it only does on a bug or bad settings (an unreachable
    /// API server keeps the last VIPs in place instead). Cancel-safe.
    pub async fn next(&mut self) -> Result<SourceUpdate, Error> {
        if self.owned.changed().await.is_ok() {
            return Ok(kube_update(&self.owned.borrow_and_update()));
        }
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(())) => Err(KubeError::WatchEnded("Kubernetes objects").into()),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(KubeError::WatchEnded("Kubernetes objects").into()),
        }
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn owned_ips_become_unscoped_kube_vips() {
        let owned: BTreeMap<IpAddr, ServiceRef> = [
            ("192.0.2.10".parse().expect("ip"), service("a")),
            ("2001:db8::10".parse().expect("ip"), service("b")),
            ("127.0.0.1".parse().expect("ip"), service("broken")),
        ]
        .into();
        let update = kube_update(&owned);
        assert_eq!(update.source, SOURCE_KUBE);
        let expected: BTreeSet<VipSpec> = ["192.0.2.10", "2001:db8::10"]
            .iter()
            .map(|s| s.parse().expect("spec"))
            .collect();
        assert_eq!(
            update.vips, expected,
            "loopback left out, the rest unscoped"
        );
    }

    #[test]
    fn service_index_follows_the_published_map() {
        let (tx, rx) = watch::channel(BTreeMap::new());
        let index = ServiceIndex(rx);
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        assert_eq!(index.service_of(ip), None);
        tx.send_replace([(ip, service("a"))].into());
        assert_eq!(index.service_of(ip), Some(service("a")));
        assert_eq!(ServiceIndex::empty().service_of(ip), None);
    }
}
