//! Where the VIPs to answer for come from: the command line, `--vip-file`
//! and the Kubernetes source. Each publishes complete sets; [`DesiredVips`]
//! keeps the latest set per source, and their union is what the agent
//! installs. The Kubernetes source runs as its own task ([`ClusterSource`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    cluster::{Attached, ClusterError, ClusterSettings, Departure, Ownership},
    conflicts::Claimants,
    error::Error,
    k8s::ServiceRef,
    metrics::Metrics,
    vip::{Placement, Scope, VipSpec},
};

/// One producer of VIP sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `--vip` arguments.
    CommandLine,
    /// The contents of `--vip-file`, reloaded on SIGHUP.
    VipFile,
    /// The Services this node owns.
    Kubernetes,
}

/// A new complete VIP set from one source; it replaces that source's
/// previous set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceUpdate {
    pub source: Source,
    pub vips: BTreeSet<VipSpec>,
}

/// The latest VIP set of each source.
#[derive(Debug, Default)]
pub struct DesiredVips {
    sources: BTreeMap<Source, BTreeSet<VipSpec>>,
}

impl DesiredVips {
    /// Replaces the set of `update.source`; returns whether it changed.
    pub fn set(&mut self, update: SourceUpdate) -> bool {
        if self.sources.get(&update.source) == Some(&update.vips) {
            return false;
        }
        self.sources.insert(update.source, update.vips);
        true
    }

    /// Every VIP any source wants.
    pub fn union(&self) -> BTreeSet<VipSpec> {
        self.sources.values().flatten().cloned().collect()
    }
}

/// The VIPs this node owns for its Services, untagged: on their subnet's
/// interfaces, or, when L2Advertisements name interfaces for one, one spec
/// per named interface (the data plane leaves out names not attached). An
/// address that is not a usable unicast VIP (a mistaken Service status) is
/// logged and left out.
pub(crate) fn cluster_update(owned: &Ownership) -> SourceUpdate {
    let mut vips = BTreeSet::new();
    for (ip, service) in &owned.vips {
        let spec = match VipSpec::try_from(*ip) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::warn!(%service, "ignoring load-balancer IP: {e}");
                continue;
            }
        };
        match owned.interfaces.get(ip) {
            None => {
                vips.insert(spec);
            }
            Some(names) => vips.extend(names.iter().map(|name| VipSpec {
                addr: spec.addr,
                scope: Scope {
                    placement: Placement::Interface(name.clone()),
                    vlan: spec.scope.vlan,
                },
            })),
        }
    }
    SourceUpdate {
        source: Source::Kubernetes,
        vips,
    }
}

/// Which Service each Kubernetes VIP belongs to, as last published by the
/// Kubernetes source (empty without one). Cheap to clone; for labelling.
#[derive(Clone, Debug)]
pub struct ServiceIndex(watch::Receiver<Ownership>);

impl ServiceIndex {
    /// An index that stays empty, for agents without a Kubernetes source.
    pub fn empty() -> Self {
        ServiceIndex(watch::channel(Ownership::default()).1)
    }

    pub fn service_of(&self, ip: IpAddr) -> Option<ServiceRef> {
        self.0.borrow().vips.get(&ip).cloned()
    }
}

/// What the agent needs to start the Kubernetes source.
#[derive(Clone)]
pub struct ClusterSourceConfig {
    pub client: kube::Client,
    pub settings: ClusterSettings,
}

/// The Kubernetes source running as a task; aborted when dropped, which
/// stops renewing this node's membership Lease.
pub(crate) struct ClusterSource {
    task: JoinHandle<Result<(), ClusterError>>,
    owned: watch::Receiver<Ownership>,
    config: ClusterSourceConfig,
}

impl ClusterSource {
    /// `attached` follows the attached interfaces (see [`crate::cluster::run`]);
    /// `claimants` tells of other MACs claiming this node's VIPs, for Events.
    pub(crate) fn spawn(
        config: ClusterSourceConfig,
        attached: watch::Receiver<Attached>,
        announced_before: BTreeSet<IpAddr>,
        claimants: &Claimants,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (owned_tx, owned) = watch::channel(Ownership::default());
        let task = tokio::spawn(crate::cluster::run(
            config.client.clone(),
            config.settings.clone(),
            attached,
            announced_before,
            claimants.clone(),
            owned_tx,
            metrics,
        ));
        ClusterSource {
            task,
            owned,
            config,
        }
    }

    /// Stops the source and writes how this node leaves into its Lease: a
    /// restart within `grace`, or for good without one (see
    /// [`crate::cluster::depart`], which may turn a restart into leaving).
    pub(crate) async fn depart(self, grace: Option<Duration>) -> Departure {
        self.task.abort();
        crate::cluster::depart(self.config.client.clone(), &self.config.settings, grace).await
    }

    pub(crate) fn services(&self) -> ServiceIndex {
        ServiceIndex(self.owned.clone())
    }

    /// The next change of this node's VIPs or of the view behind them; an
    /// error once the source has stopped, which it only does on a bug or bad
    /// settings (an unreachable API server keeps the last VIPs in place
    /// instead). Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Ownership, Error> {
        if self.owned.changed().await.is_ok() {
            return Ok(self.owned.borrow_and_update().clone());
        }
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(())) => Err(ClusterError::WatchEnded("Kubernetes objects").into()),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ClusterError::WatchEnded("Kubernetes objects").into()),
        }
    }
}

impl Drop for ClusterSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vip::Vlan;

    fn service(name: &str) -> ServiceRef {
        ServiceRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn set(specs: &[&str]) -> BTreeSet<VipSpec> {
        specs
            .iter()
            .map(|s| s.parse().expect("test spec"))
            .collect()
    }

    fn update(source: Source, specs: &[&str]) -> SourceUpdate {
        SourceUpdate {
            source,
            vips: set(specs),
        }
    }

    #[test]
    fn owned_ips_become_on_link_cluster_vips() {
        let owned: BTreeMap<IpAddr, ServiceRef> = [
            ("192.0.2.10".parse().expect("ip"), service("a")),
            ("2001:db8::10".parse().expect("ip"), service("b")),
            ("127.0.0.1".parse().expect("ip"), service("broken")),
        ]
        .into();
        let on_link = |ip: &str| VipSpec {
            addr: ip.parse().expect("ip"),
            scope: Scope {
                placement: Placement::OnLink,
                vlan: Vlan::UNTAGGED,
            },
        };
        let mut ownership = Ownership {
            vips: owned,
            ..Default::default()
        };
        assert_eq!(
            cluster_update(&ownership),
            SourceUpdate {
                source: Source::Kubernetes,
                vips: [on_link("192.0.2.10"), on_link("2001:db8::10")].into(),
            },
            "loopback left out, the rest placed on their subnets"
        );
        ownership.interfaces.insert(
            "192.0.2.10".parse().expect("ip"),
            ["eth1".to_owned(), "eth2".to_owned()].into(),
        );
        assert_eq!(
            cluster_update(&ownership).vips,
            set(&["192.0.2.10@eth1", "192.0.2.10@eth2"])
                .into_iter()
                .chain([on_link("2001:db8::10")])
                .collect(),
            "an address advertised on named interfaces is keyed on those only"
        );
    }

    #[test]
    fn service_index_follows_the_published_map() {
        let (tx, rx) = watch::channel(Ownership::default());
        let index = ServiceIndex(rx);
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        assert_eq!(index.service_of(ip), None);
        tx.send_replace(Ownership {
            vips: [(ip, service("a"))].into(),
            ..Default::default()
        });
        assert_eq!(index.service_of(ip), Some(service("a")));
        assert_eq!(ServiceIndex::empty().service_of(ip), None);
    }

    #[test]
    fn desired_vips_is_the_union_of_sources() {
        let mut desired = DesiredVips::default();
        assert!(desired.set(update(Source::CommandLine, &["192.0.2.10"])));
        assert!(desired.set(update(Source::VipFile, &["192.0.2.10", "192.0.2.11@eth0"])));
        assert!(
            !desired.set(update(Source::VipFile, &["192.0.2.11@eth0", "192.0.2.10"])),
            "same set is no change"
        );
        assert_eq!(desired.union(), set(&["192.0.2.10", "192.0.2.11@eth0"]));
        assert!(desired.set(update(Source::VipFile, &[])));
        assert_eq!(desired.union(), set(&["192.0.2.10"]));
    }
}
