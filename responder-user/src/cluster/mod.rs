//! Kubernetes source of VIPs: every agent watches LoadBalancer Services, Nodes,
//! EndpointSlices and the agents' membership Leases, and all agents derive the same
//! single owner per Service by rendezvous hashing, so exactly one node answers
//! ARP/NDP for each VIP without any per-Service coordination.

mod assigner;
mod backoff;
mod events;
mod membership;
mod ownership;
mod selector;

#[cfg(test)]
mod mock_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use tokio::sync::watch;

pub use selector::{LabelSelector, SelectorError};

// Shared with the controller.
pub(crate) use backoff::WatchBackoff;
pub(crate) use ownership::is_ours;

pub use membership::Departure;

use crate::metrics::Metrics;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's name, as in its Node object.
    pub node_name: String,
    /// Where the membership Leases live.
    pub namespace: String,
    /// Handle only Services with this `spec.loadBalancerClass`; `None` handles only
    /// Services without a class.
    pub lb_class: Option<String>,
    /// Label selector restricting which Nodes may announce.
    pub node_selector: Option<String>,
    pub renew_interval: Duration,
    /// How long a member stays alive after this agent last saw its Lease renewed:
    /// the failover time.
    pub lease_duration: Duration,
}

impl ClusterSettings {
    /// 250 ms renewals against a 1 s lease tolerate three lost renewals before a
    /// node is dropped, keeping failover near 1 s at one small write per node per
    /// interval.
    pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_millis(250);
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(1);

    pub fn new(node_name: impl Into<String>, namespace: impl Into<String>) -> Self {
        ClusterSettings {
            node_name: node_name.into(),
            namespace: namespace.into(),
            lb_class: None,
            node_selector: None,
            renew_interval: Self::DEFAULT_RENEW_INTERVAL,
            lease_duration: Self::DEFAULT_LEASE_DURATION,
        }
    }
}

/// What the Kubernetes side needs to know of this node's interfaces: the
/// attached ones' names for Events, what it can answer for (advertised in its
/// Lease, so Services only go to nodes that can serve them), and every
/// address configured on it, none of which may be a VIP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub names: Vec<String>,
    pub reach: Reach,
    pub local_addresses: BTreeSet<IpAddr>,
}

/// What a node can answer for right now: the IP families of its serving
/// interfaces (attached, with carrier) and the subnets they have addresses
/// in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub families: Families,
    /// A VIP inside one of these is placed on the interfaces that have it,
    /// and goes to a node that has it when one does.
    pub prefixes: Vec<IpNet>,
}

impl Reach {
    /// What a Lease of an agent that predates the annotations is taken to
    /// mean: both families, no subnet known.
    pub const UNKNOWN: Reach = Reach {
        families: Families::BOTH,
        prefixes: Vec::new(),
    };

    pub fn serves(&self, addr: &IpAddr) -> bool {
        self.families.serves(addr)
    }

    pub fn on_link(&self, addr: &IpAddr) -> bool {
        self.prefixes.iter().any(|net| net.contains(addr))
    }
}

/// The IP families a node can answer for right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Families {
    /// What a Lease without the annotation (an older agent) is taken to mean.
    pub const BOTH: Families = Families {
        ipv4: true,
        ipv6: true,
    };

    pub fn serves(&self, addr: &IpAddr) -> bool {
        match addr {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }
}

/// What the Kubernetes source publishes for the agent: the VIPs this node
/// answers for, and the state of the view they were decided from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Each VIP with the Service it is answered for.
    pub vips: BTreeMap<IpAddr, ServiceRef>,
    pub view: View,
}

/// How current the view behind an [`Ownership`] is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// No complete view yet: nothing has been decided.
    #[default]
    Starting,
    /// Complete and current. `epoch` grows each time the view becomes
    /// complete again (the first sync, recovery from an outage): while it
    /// was not, other nodes may have announced these VIPs, so the agent
    /// announces every one of them again.
    Fresh { epoch: u64 },
    /// Broken (API server unreachable, own Lease not seen renewed): `vips`
    /// is the last decision, kept (fail-static). Another MAC claiming one of
    /// them now more likely has a working view than this node.
    Frozen { epoch: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    NodeSelector(#[from] SelectorError),
    #[error(
        "renew interval {renew:?} must be non-zero and shorter than the lease duration {lease:?}"
    )]
    LeaseTiming { renew: Duration, lease: Duration },
    #[error("node name must not be empty")]
    EmptyNodeName,
    #[error("the watch of {0} ended")]
    WatchEnded(&'static str),
}

/// Runs until cancelled (drop the future or abort its task), publishing into
/// `owned` the VIPs this node must answer for now. `attached` follows the
/// attached interfaces: named in Events, what they reach advertised in the
/// Lease. `announced_before` are the addresses the data plane answered for
/// when the agent started (a restart keeps owning them without an Event).
///
/// While the API server is unreachable the last published set stays in place.
pub async fn run(
    client: kube::Client,
    settings: ClusterSettings,
    attached: watch::Receiver<Attached>,
    announced_before: BTreeSet<IpAddr>,
    owned: watch::Sender<Ownership>,
    metrics: Arc<Metrics>,
) -> Result<(), ClusterError> {
    let selector: LabelSelector = settings
        .node_selector
        .as_deref()
        .unwrap_or_default()
        .parse()?;
    if settings.renew_interval.is_zero() || settings.renew_interval >= settings.lease_duration {
        return Err(ClusterError::LeaseTiming {
            renew: settings.renew_interval,
            lease: settings.lease_duration,
        });
    }
    if settings.node_name.is_empty() {
        return Err(ClusterError::EmptyNodeName);
    }
    let leases = kube::Api::namespaced(client.clone(), &settings.namespace);
    let (event_sender, event_queue) = events::channel();
    let outputs = assigner::Outputs {
        announced_before,
        events: event_sender,
        owned,
        metrics: Arc::clone(&metrics),
    };
    // Event publishing ends once the assigner drops its sender, after the last Events.
    let assigner_and_events = async {
        let (result, ()) = tokio::join!(
            assigner::assign_forever(
                client.clone(),
                settings.clone(),
                selector,
                attached.clone(),
                outputs,
            ),
            events::publish_events(
                client.clone(),
                settings.node_name.clone(),
                attached.clone(),
                event_queue
            ),
        );
        result
    };
    let holding = membership::hold_lease(
        leases,
        kube::Api::all(client.clone()),
        settings.node_name.clone(),
        attached.clone(),
        settings.renew_interval,
        settings.lease_duration,
        metrics,
    );
    tokio::select! {
        never = holding => match never {},
        result = assigner_and_events => result,
    }
}

/// Writes into this node's Lease how its agent leaves (see [`Departure`]):
/// for a restart, `grace` long, unless the Node is cordoned (drained before
/// maintenance), in which case the Lease is released so its Services move at
/// once. Bounded in time: a stopping agent must not hang on the API server.
pub async fn depart(
    client: kube::Client,
    settings: &ClusterSettings,
    grace: Option<Duration>,
) -> Departure {
    const BOUND: Duration = Duration::from_secs(3);
    let leaving = async {
        let nodes: kube::Api<Node> = kube::Api::all(client.clone());
        let cordoned = match nodes.get_opt(&settings.node_name).await {
            Ok(node) => node
                .and_then(|node| node.spec)
                .and_then(|spec| spec.unschedulable)
                .unwrap_or(false),
            Err(error) => {
                tracing::debug!(%error, "reading this Node before leaving");
                false
            }
        };
        let departure = match grace {
            Some(grace) if !cordoned => Departure::Restart { grace },
            _ => Departure::Leave,
        };
        let leases = kube::Api::namespaced(client, &settings.namespace);
        membership::depart(&leases, &settings.node_name, departure).await;
        departure
    };
    match tokio::time::timeout(BOUND, leaving).await {
        Ok(departure) => departure,
        Err(_) => {
            tracing::warn!("leaving the cluster membership took longer than {BOUND:?}; the Lease expires instead");
            match grace {
                Some(grace) => Departure::Restart { grace },
                None => Departure::Leave,
            }
        }
    }
}
