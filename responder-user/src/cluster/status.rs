//! `responder status`'s judgement: for every LoadBalancer Service and every
//! address in its status, which node announces it on which interfaces, or
//! the reason none does. Pure: it runs the agents' own ownership decision
//! ([`ownership::assign_one`], [`ownership::settle_shared`]) over objects
//! read once, so its reasons are the ones the agents act on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::advertising::Advertising;
use super::indexes::slice_nodes;
use super::membership::{before_roles, lease_name, member_at, roles_in_force, Member, Role};
use super::nodes::{exclusion, node_addresses};
use super::ownership::{self, Assignments, Inputs};
use super::reason::{Problem, ProblemKind, Reason};
use super::service_facts::ServiceFacts;
use super::ClusterSettings;
use crate::crd::{IPAddressPool, L2Advertisement, ServiceL2Status};
use crate::k8s::{is_load_balancer, LabelSelector, ServiceRef};

/// The objects the decision reads, listed once.
#[derive(Default)]
pub struct Snapshot {
    pub services: Vec<Service>,
    pub nodes: Vec<Node>,
    /// The membership Leases.
    pub leases: Vec<Lease>,
    pub pools: Vec<Arc<IPAddressPool>>,
    pub advertisements: Vec<Arc<L2Advertisement>>,
    /// `None` when EndpointSlices are not served (the agents then take
    /// every node to have endpoints).
    pub slices: Option<Vec<EndpointSlice>>,
    pub l2_statuses: Vec<ServiceL2Status>,
    /// Claims of other MACs the agents told about.
    pub claims: Vec<Claim>,
}

/// Another MAC claimed an address, as an agent's Event told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub service: ServiceRef,
    pub address: IpAddr,
    pub mac: String,
    /// The owner yielded the address to it (rather than defended it or
    /// took it back).
    pub yielded: bool,
    /// When the agent told it.
    pub at: Timestamp,
}

/// How the agents are configured, as far as the decision goes.
pub struct Settings {
    pub lb_class: Option<String>,
    pub node_selector: LabelSelector,
    /// What a Lease without its duration annotation lasts.
    pub lease_duration: Duration,
    pub hold_down: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lb_class: None,
            node_selector: LabelSelector::default(),
            lease_duration: ClusterSettings::DEFAULT_LEASE_DURATION,
            hold_down: ClusterSettings::DEFAULT_HOLD_DOWN,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub addresses: Vec<AddressStatus>,
    /// Every Node: `announcing` or why it does not.
    pub nodes: Vec<NodeStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// `None` when it may announce (live and eligible).
    pub excluded: Option<String>,
    /// `announcer` or `standby` as its Lease declares it (see
    /// docs/agents.md, "Announcers and standbys"); `None` when excluded or
    /// from an agent before roles.
    pub role: Option<String>,
}

/// One address of one Service (or one ingress entry that is no address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressStatus {
    pub service: String,
    /// The address, or the entry as written when it is none.
    pub address: String,
    pub announced: bool,
    /// The node that answers for it, when one does.
    pub node: Option<String>,
    /// Its interfaces, as the node reports them in its ServiceL2Status, else
    /// as the advertisements restrict them; empty means the node's default
    /// set (its interfaces on the address's subnet).
    pub interfaces: Vec<String>,
    /// The nodes whose ServiceL2Status says they announce the Service.
    pub reported_by: Vec<String>,
    pub reason: Option<Reason>,
    /// The object that causes the reason, as `Kind/name`.
    pub object: Option<String>,
    pub detail: String,
    /// The MAC that last claimed the address, as the owner's Events tell
    /// it, whatever the owner did about it.
    pub claimant: Option<String>,
}

pub fn judge(snapshot: &Snapshot, settings: &Settings, now: Timestamp) -> Report {
    let leases: HashMap<String, &Lease> = snapshot
        .leases
        .iter()
        .filter_map(|lease| Some((lease.metadata.name.clone()?, lease)))
        .collect();
    let mut nodes = Vec::new();
    let mut members = BTreeMap::new();
    for node in &snapshot.nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let verdict = match exclusion(node, &settings.node_selector) {
            Some(excluded) => Err(excluded),
            None => match leases.get(&lease_name(&name)) {
                None => Err("no live agent: it has no membership Lease".to_owned()),
                Some(lease) => member_at(lease, now, settings.lease_duration, settings.hold_down),
            },
        };
        let (excluded, role) = match verdict {
            Ok(member) => {
                let role = member.role.map(|role| match role {
                    Role::Announcer => "announcer".to_owned(),
                    Role::Standby => "standby".to_owned(),
                });
                members.insert(name.clone(), member);
                (None, role)
            }
            Err(why) => (Some(why), None),
        };
        nodes.push(NodeStatus {
            node: name,
            excluded,
            role,
        });
    }
    let legacy = before_roles(members.values());
    let members = roles_in_force(members, legacy);
    let forbidden = node_addresses(&snapshot.nodes);
    let node_labels: BTreeMap<String, BTreeMap<String, String>> = snapshot
        .nodes
        .iter()
        .filter_map(|node| {
            let name = node.metadata.name.clone()?;
            members
                .contains_key(&name)
                .then(|| (name, node.metadata.labels.clone().unwrap_or_default()))
        })
        .collect();
    let endpoints = snapshot.slices.as_ref().map(|slices| {
        let mut index: HashMap<ServiceRef, BTreeSet<String>> = HashMap::new();
        for (service, nodes) in slices.iter().filter_map(slice_nodes) {
            index.entry(service).or_default().extend(nodes);
        }
        index
    });
    let (advertising, _) = Advertising::build(&snapshot.pools, &snapshot.advertisements);
    let inputs = Inputs {
        lb_class: settings.lb_class.as_deref(),
        members: &members,
        endpoints: endpoints.as_ref(),
        forbidden: &forbidden,
        advertising: advertising.as_ref(),
        node_labels: &node_labels,
    };
    let decided = decide(snapshot, &inputs);
    let mut addresses = Vec::new();
    for service in snapshot.services.iter().filter(|s| is_load_balancer(s)) {
        let facts = ServiceFacts::of(service);
        addresses.extend(statuses_of(&facts, snapshot, settings, &decided, &members));
    }
    Report { addresses, nodes }
}

/// What the agents decide, and every problem on the way.
struct Decided {
    assignments: Assignments,
    problems: BTreeMap<ServiceRef, Vec<Problem>>,
}

fn decide(snapshot: &Snapshot, inputs: &Inputs<'_>) -> Decided {
    let mut problems: BTreeMap<ServiceRef, Vec<Problem>> = BTreeMap::new();
    let mut raw = Assignments::new();
    for service in &snapshot.services {
        let facts = Arc::new(ServiceFacts::of(service));
        let key = facts.key.clone();
        let assignment = ownership::assign_one(&facts, inputs, |problem| {
            problems.entry(key.clone()).or_default().push(problem)
        });
        if let Some(assignment) = assignment {
            raw.insert(key, Arc::new(assignment));
        }
    }
    let assignments = ownership::settle_shared(&raw, |service, problem| {
        problems.entry(service.clone()).or_default().push(problem)
    });
    Decided {
        assignments,
        problems,
    }
}

fn statuses_of(
    facts: &ServiceFacts,
    snapshot: &Snapshot,
    settings: &Settings,
    decided: &Decided,
    members: &BTreeMap<String, Member>,
) -> Vec<AddressStatus> {
    let key = &facts.key;
    let reported = reported_by(snapshot, key);
    let row = |address: String, problem: Option<&Problem>| AddressStatus {
        service: key.to_string(),
        address,
        announced: false,
        node: None,
        interfaces: Vec::new(),
        reported_by: reported.keys().cloned().collect(),
        reason: problem.and_then(Problem::reason),
        object: problem.and_then(|p| p.object.clone()),
        detail: problem.map(|p| p.detail.clone()).unwrap_or_default(),
        claimant: None,
    };
    if !facts.is_ours(settings.lb_class.as_deref()) {
        let problem = Problem::new(
            Reason::OtherClass,
            None,
            "its spec.loadBalancerClass is not the one these agents handle",
        );
        return vec![row(addresses_text(facts), Some(&problem))];
    }
    if facts.ips().is_empty() && facts.skipped().is_empty() {
        let problem = Problem::new(
            Reason::NoAddress,
            None,
            "no address in status.loadBalancer.ingress yet: see the controller's Events on \
             the Service",
        );
        return vec![row(String::new(), Some(&problem))];
    }
    let problems = decided
        .problems
        .get(key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut rows: Vec<AddressStatus> = problems
        .iter()
        .filter(|problem| problem.address.is_none())
        .map(|problem| row(problem.detail.clone(), Some(problem)))
        .collect();
    let assignment = decided.assignments.get(key);
    for ip in facts.ips() {
        let answered = assignment.filter(|a| a.ips.contains(ip));
        let problem = problems.iter().find(|p| p.address == Some(*ip));
        let mut status = row(ip.to_string(), None);
        match (answered.and_then(|a| a.owner.clone()), problem) {
            (Some(owner), _) => {
                status.interfaces = reported.get(&owner).cloned().unwrap_or_else(|| {
                    answered
                        .and_then(|a| a.interfaces.get(ip))
                        .map(|names| names.iter().cloned().collect())
                        .unwrap_or_default()
                });
                status.announced = true;
                status.node = Some(owner);
            }
            (None, Some(problem)) if matches!(problem.kind, ProblemKind::SharedWith(_)) => {
                let holder = decided.assignments.iter().find(|(_, a)| {
                    a.owner.is_some() && a.ips.contains(ip) && a.service.key != *key
                });
                status.announced = holder.is_some();
                status.node = holder.and_then(|(_, a)| a.owner.clone());
                status.object = problem.object.clone();
                status.detail = problem.detail.clone();
            }
            (None, Some(problem)) => status = row(ip.to_string(), Some(problem)),
            (None, None) => {
                // Not reached: ownership names a problem for every address
                // it leaves out. Said plainly rather than hidden.
                status.detail = "not announced, and ownership gave no reason".to_owned();
            }
        }
        // The latest claim on the address says where it stands: a yield
        // is followed by a "took back" once the owner's view recovers.
        let latest = snapshot
            .claims
            .iter()
            .filter(|c| c.address == *ip && c.service == *key)
            .max_by_key(|c| c.at);
        status.claimant = latest.map(|c| c.mac.clone());
        if let Some(claim) = latest.filter(|c| c.yielded) {
            status.announced = false;
            status.reason = Some(Reason::Yielded);
            status.object = None;
            status.detail = format!(
                "{} claims {ip} and its owner {} yielded it",
                claim.mac,
                status.node.as_deref().unwrap_or("(none)")
            );
        }
        if status
            .node
            .as_ref()
            .is_some_and(|n| !members.contains_key(n))
        {
            status.node = None;
        }
        rows.push(status);
    }
    rows
}

/// The nodes whose ServiceL2Status names `service`, with the interfaces
/// each reports.
fn reported_by(snapshot: &Snapshot, service: &ServiceRef) -> BTreeMap<String, Vec<String>> {
    snapshot
        .l2_statuses
        .iter()
        .filter_map(|object| object.status.as_ref()?.get().ok())
        .filter(|status| {
            status.service_name == *service.name && status.service_namespace == *service.namespace
        })
        .map(|status| {
            let interfaces = status.interfaces.iter().map(|i| i.name.clone()).collect();
            (status.node.clone(), interfaces)
        })
        .collect()
}

fn addresses_text(facts: &ServiceFacts) -> String {
    facts
        .ips()
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
