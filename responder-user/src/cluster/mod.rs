//! Kubernetes source of VIPs: every agent watches LoadBalancer Services, Nodes,
//! EndpointSlices and the agents' membership Leases, and all agents derive the same
//! single owner per Service by rendezvous hashing, so exactly one node answers
//! ARP/NDP for each VIP without any per-Service coordination.

mod advertising;
mod announcers;
mod assigner;
mod eligibility;
mod events;
mod handover;
mod indexes;
mod l2status;
mod membership;
mod nodes;
mod ownership;
mod participation;
mod projections;
mod reason;
mod service_facts;
mod status;
mod uninstall;
mod watches;

#[cfg(test)]
mod mock_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use std::time::Duration;

use ipnet::IpNet;

use crate::k8s::{SelectorError, ServiceRef};

pub use membership::Departure;
// For the benchmark's membership load generator, which writes what agents write.
pub use events::claim_of;
pub use membership::{
    announcer_slots, first_lease, lease_name, lease_selector, membership_cadence, renewal_patch,
    Announcers, Cadence, Plan, Role, LEASE_LABEL_KEY, LEASE_LABEL_VALUE,
};
pub use participation::{depart, run};
pub use reason::Reason;
pub use status::{judge, AddressStatus, Claim, NodeStatus, Report, Settings, Snapshot};

#[derive(Clone, Debug, PartialEq)]
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
    /// The shortest renew interval, used while the write budget allows it.
    pub renew_interval: Duration,
    /// How long a member stays alive after this agent last saw its Lease
    /// renewed, at the shortest renew interval: the failover time. Both grow
    /// together, keeping their ratio, when the budget requires it.
    pub lease_duration: Duration,
    /// Membership writes per second the whole cluster may spend: standbys
    /// use at most a fifth, renewing slowly; announcers the rest, at
    /// `renew_interval` while it affords them, less often (their Lease
    /// lasting longer) when more must announce than it affords.
    pub lease_write_budget: f64,
    /// How many nodes announce (see `announcers`).
    pub announcers: Announcers,
    /// How long a member that (re)joins must stay live before Services move
    /// to it, so a flapping node does not pull them back and forth.
    pub hold_down: Duration,
    /// How long a node gaining an address from a holder that could keep it
    /// waits before answering, so the two never answer together (see
    /// `handover`); zero answers at once.
    pub handover_pause: Duration,
    /// The agent's own pod (`$POD_NAME`): when it stops, its DaemonSet says
    /// whether it is a restart or an uninstall. Without it, always a restart.
    pub pod_name: Option<String>,
}

impl ClusterSettings {
    /// 200 ms renewals against an 800 ms lease tolerate three lost renewals
    /// before an announcer is dropped, and put failover (the Lease less the
    /// time since the last renewal, plus the reaction) under a second.
    pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_millis(200);
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_millis(800);
    /// Below the write rate of kube-node-lease in a 1,000-node cluster (a
    /// Lease per node every 10 s), which API servers are sized for: 14
    /// announcers at the fastest cadence and a thousand standbys.
    pub const DEFAULT_LEASE_WRITE_BUDGET: f64 = 90.0;
    /// Ten times the default Lease: a node must prove itself for a while.
    pub const DEFAULT_HOLD_DOWN: Duration = Duration::from_secs(10);
    /// Forty times the 2.5 ms measured between two agents acting on one
    /// change, and short against an ARP client's one-second retry.
    pub const DEFAULT_HANDOVER_PAUSE: Duration = Duration::from_millis(100);

    /// How the write budget is spent (see [`Plan`]).
    pub fn plan(&self) -> Plan {
        Plan {
            budget: self.lease_write_budget,
            fastest: Cadence {
                renew: self.renew_interval,
                lease: self.lease_duration,
            },
        }
    }

    pub fn new(node_name: impl Into<String>, namespace: impl Into<String>) -> Self {
        ClusterSettings {
            node_name: node_name.into(),
            namespace: namespace.into(),
            lb_class: None,
            node_selector: None,
            renew_interval: Self::DEFAULT_RENEW_INTERVAL,
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            lease_write_budget: Self::DEFAULT_LEASE_WRITE_BUDGET,
            announcers: Announcers::Budgeted,
            hold_down: Self::DEFAULT_HOLD_DOWN,
            handover_pause: Self::DEFAULT_HANDOVER_PAUSE,
            pod_name: None,
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
    /// The names of the serving interfaces, for L2Advertisements that name
    /// interfaces; `None` from an agent that predates the annotation, taken
    /// to have any interface an advertisement names.
    pub interfaces: Option<Vec<String>>,
}

impl Reach {
    /// What a Lease of an agent that predates the annotations is taken to
    /// mean: both families, no subnet known, any interface.
    pub const UNKNOWN: Reach = Reach {
        families: Families::BOTH,
        prefixes: Vec::new(),
        interfaces: None,
    };

    /// Whether the node has one of `names` attached (always, when it did not
    /// say which it has).
    pub fn has_any_interface(&self, names: &[String]) -> bool {
        match &self.interfaces {
            None => true,
            Some(own) => own.iter().any(|name| names.contains(name)),
        }
    }

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
    /// The VIPs that L2Advertisements restrict to named interfaces, with
    /// those names; any other VIP is placed on its subnet's interfaces.
    pub interfaces: BTreeMap<IpAddr, BTreeSet<String>>,
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

impl From<ClusterError> for crate::error::Error {
    fn from(error: ClusterError) -> Self {
        Self::Cluster(Box::new(error))
    }
}
