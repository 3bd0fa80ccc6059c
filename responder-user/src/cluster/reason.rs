//! Why an address of a Service is not announced: a fixed list, each reason
//! with a stable code (shown by `responder status`, carried by Events), and
//! the problem that names it for one address, with the object that causes
//! it. Ownership ([`super::ownership`]) produces them while it decides, so
//! the explanation cannot drift from the decision.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// Why an address is not announced. `docs/operating.md` lists them with
/// what to do; a test keeps that list and this one the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// The Service has another `spec.loadBalancerClass`: another
    /// implementation handles it.
    OtherClass,
    /// No address in `status.loadBalancer.ingress` yet: the controller has
    /// not assigned one (its Events on the Service say why).
    NoAddress,
    /// The ingress entry is hostname-only or not an IP address.
    UnusableEntry,
    /// The ingress entry has `ipMode: Proxy`: kube-proxy does not handle it
    /// on the nodes.
    ProxyMode,
    /// The address is a node's own (in a Node's `status.addresses`, or on
    /// an agent's interfaces): answering would hijack it.
    NodeAddress,
    /// An IPv6 anycast address the link's routers answer for (RFC 4291
    /// §2.6.1, RFC 2526).
    ReservedAnycast,
    /// With L2Advertisements: no pool contains the address (never did, or
    /// its pool was deleted), and no advertisement covers every pool.
    NotInPool,
    /// No L2Advertisement covers the address's pool and selects the Service
    /// (`ipAddressPools`, `ipAddressPoolSelectors`, `serviceSelectors`).
    NotAdvertised,
    /// The covering advertisements' `nodeSelectors` match no live, eligible
    /// node.
    NoNodeSelected,
    /// The covering advertisements name interfaces that no live node they
    /// select has up and attached.
    InterfaceMissing,
    /// `externalTrafficPolicy: Local` and no live, eligible node has a ready
    /// endpoint of the Service.
    NoLocalEndpoint,
    /// No node is live and eligible: each is excluded (label, condition,
    /// taint, `--node-selector`) or has no live agent (no Lease).
    NoEligibleNode,
    /// No live node has a serving interface of the address's family.
    NoServingInterface,
    /// Another MAC claims the address and the owner yielded it.
    Yielded,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::OtherClass,
        Reason::NoAddress,
        Reason::UnusableEntry,
        Reason::ProxyMode,
        Reason::NodeAddress,
        Reason::ReservedAnycast,
        Reason::NotInPool,
        Reason::NotAdvertised,
        Reason::NoNodeSelected,
        Reason::InterfaceMissing,
        Reason::NoLocalEndpoint,
        Reason::NoEligibleNode,
        Reason::NoServingInterface,
        Reason::Yielded,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::OtherClass => "OtherClass",
            Reason::NoAddress => "NoAddress",
            Reason::UnusableEntry => "UnusableEntry",
            Reason::ProxyMode => "ProxyMode",
            Reason::NodeAddress => "NodeAddress",
            Reason::ReservedAnycast => "ReservedAnycast",
            Reason::NotInPool => "NotInPool",
            Reason::NotAdvertised => "NotAdvertised",
            Reason::NoNodeSelected => "NoNodeSelected",
            Reason::InterfaceMissing => "InterfaceMissing",
            Reason::NoLocalEndpoint => "NoLocalEndpoint",
            Reason::NoEligibleNode => "NoEligibleNode",
            Reason::NoServingInterface => "NoServingInterface",
            Reason::Yielded => "Yielded",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why one ingress entry of a Service is not answered for, or is answered
/// for through another Service ([`ProblemKind::SharedWith`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Problem {
    pub(crate) kind: ProblemKind,
    /// `None` for an entry that is no address.
    pub(crate) address: Option<IpAddr>,
    /// The object that causes it, as `Kind/name` (`IPAddressPool/public`,
    /// `L2Advertisement/edge`, `Node/n1`), when one does.
    pub(crate) object: Option<String>,
    pub(crate) detail: String,
    /// Known to this agent only (an address of its own interfaces): it
    /// tells about it itself, as no other agent can.
    pub(crate) local_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ProblemKind {
    NotAnnounced(Reason),
    /// Another Service lists the same address and its owner answers for it
    /// (MetalLB's allow-shared-ip): answered, from one node only.
    SharedWith(String),
}

impl Problem {
    pub(crate) fn new(reason: Reason, address: Option<IpAddr>, detail: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::NotAnnounced(reason),
            address,
            object: None,
            detail: detail.into(),
            local_only: false,
        }
    }

    pub(crate) fn caused_by(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    pub(crate) fn reason(&self) -> Option<Reason> {
        match self.kind {
            ProblemKind::NotAnnounced(reason) => Some(reason),
            ProblemKind::SharedWith(_) => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ProblemKind::NotAnnounced(reason) => write!(f, "{reason}: {}", self.detail),
            ProblemKind::SharedWith(_) => f.write_str(&self.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_documented_for_operators() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md"));
        let table = doc
            .split("## Why an address is not answered")
            .nth(1)
            .expect("the section");
        for reason in Reason::ALL {
            assert!(
                table.contains(&format!("| `{}` |", reason.code())),
                "docs/operating.md has no row for {reason}"
            );
        }
        let rows = table
            .lines()
            .take_while(|line| !line.starts_with("## "))
            .filter(|line| line.starts_with("| `"))
            .count();
        assert_eq!(
            rows,
            Reason::ALL.len(),
            "no row for a reason that is not one"
        );
    }
}
