//! The rendezvous decision: which members may announce each Service, and
//! which single one does. Every agent runs this on the same
//! watched objects, so it must be deterministic and independent of iteration order,
//! process, architecture and crate versions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::advertising::{admits_node, interfaces_for, Advertising};
use super::membership::Member;
use super::nodes::OwnAddress;
use super::reason::{Problem, ProblemKind, Reason};
use super::service_facts::ServiceFacts;
use super::Reach;
use crate::k8s::ServiceRef;

/// FNV-1a 64 of node and service key, finished with splitmix64: FNV alone clusters
/// for inputs sharing long prefixes (node-1, node-2, …), the finalizer spreads them.
/// Written out here because std's hashers are neither stable across releases nor
/// across processes.
pub(crate) fn rendezvous_weight(node: &str, service: &ServiceRef) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = [
        node.as_bytes(),
        &[0],
        service.namespace.as_bytes(),
        b"/",
        service.name.as_bytes(),
    ]
    .into_iter()
    .flatten()
    .fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    let mut z = fnv.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Highest-random-weight choice: a node leaving only moves the Services it owned,
/// a node joining only takes Services for which it now has the highest weight.
/// Ties (astronomically rare) go to the greater name so the answer stays total.
pub(crate) fn pick_owner<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    service: &ServiceRef,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .max_by_key(|node| (rendezvous_weight(node, service), *node))
}

/// Each Service's assignment. Shared: settling shared addresses changes few
/// of them, and the rest are the same before and after.
pub(crate) type Assignments = BTreeMap<ServiceRef, Arc<Assignment>>;

#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    pub ips: Vec<IpAddr>,
    pub owner: Option<String>,
    pub service: Arc<ServiceFacts>,
    /// The addresses L2Advertisements restrict to named interfaces of the
    /// owner, with the names; the others go on the owner's default set.
    pub interfaces: BTreeMap<IpAddr, BTreeSet<String>>,
}

pub(crate) struct Inputs<'a> {
    pub lb_class: Option<&'a str>,
    /// Live members that are eligible nodes, with what each can answer for.
    pub members: &'a BTreeMap<String, Member>,
    /// `None` when EndpointSlices are not served: Local Services then treat every
    /// member as having endpoints.
    pub endpoints: Option<&'a HashMap<ServiceRef, BTreeSet<String>>>,
    /// Addresses that must never be VIPs (the Nodes' own addresses), each
    /// with the reason. (Reserved anycast addresses are refused besides: a
    /// rule, not a list.)
    pub forbidden: &'a BTreeMap<IpAddr, OwnAddress>,
    /// `None` without any L2Advertisement: every member may announce every
    /// address on its default interfaces.
    pub advertising: Option<&'a Advertising>,
    /// The labels of the members' Nodes, for advertisements' `nodeSelectors`.
    pub node_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// The members that may own a Service with `ips`: settled members before
/// those still held down after (re)joining, and among them, best first,
/// those that can answer for every address and have each address that is
/// on-link anywhere on-link themselves (so the VIP lands on its own subnet);
/// failing that, those that can answer for every address; failing that,
/// those that can answer for some (serving some beats serving none).
fn candidates<'m>(
    members: impl Iterator<Item = (&'m String, &'m Member)> + Clone,
    ips: &[IpAddr],
) -> Vec<&'m str> {
    let settled = members.clone().filter(|(_, member)| member.settled);
    let chosen = candidates_by_reach(settled.map(|(node, member)| (node, &member.reach)), ips);
    if !chosen.is_empty() {
        return chosen;
    }
    candidates_by_reach(members.map(|(node, member)| (node, &member.reach)), ips)
}

fn candidates_by_reach<'m>(
    members: impl Iterator<Item = (&'m String, &'m Reach)> + Clone,
    ips: &[IpAddr],
) -> Vec<&'m str> {
    let on_link_somewhere: Vec<&IpAddr> = ips
        .iter()
        .filter(|ip| members.clone().any(|(_, reach)| reach.on_link(ip)))
        .collect();
    let tiers: [&dyn Fn(&Reach) -> bool; 3] = [
        &|reach| {
            ips.iter().all(|ip| reach.serves(ip))
                && on_link_somewhere.iter().all(|ip| reach.on_link(ip))
        },
        &|reach| ips.iter().all(|ip| reach.serves(ip)),
        &|reach| ips.iter().any(|ip| reach.serves(ip)),
    ];
    for tier in tiers {
        let chosen: Vec<&str> = members
            .clone()
            .filter(|(_, reach)| tier(reach))
            .map(|(node, _)| node.as_str())
            .collect();
        if !chosen.is_empty() {
            return chosen;
        }
    }
    Vec::new()
}

/// The owner of one Service before addresses several Services list are
/// settled ([`settle_shared`]); `None` when the Service is not ours or has
/// no usable address.
pub(crate) fn assign_one(
    service: &Arc<ServiceFacts>,
    inputs: &Inputs<'_>,
    on_problem: impl FnMut(Problem),
) -> Option<Assignment> {
    assign_among(service, inputs, on_problem, |_| {})
}

/// [`assign_one`], telling `on_candidates` the members that may own the
/// Service whatever their role (sorted by name): its domain, for choosing
/// announcers (see `announcers`). Announcers among them come first; a
/// standby owns it only when none of them announces.
pub(crate) fn assign_among(
    service: &Arc<ServiceFacts>,
    inputs: &Inputs<'_>,
    mut on_problem: impl FnMut(Problem),
    on_candidates: impl FnOnce(&[&str]),
) -> Option<Assignment> {
    if !service.is_ours(inputs.lb_class) {
        return None;
    }
    let key = &service.key;
    let mut ips = service.ips().to_vec();
    for entry in service.skipped() {
        let reason = match entry.proxied {
            true => Reason::ProxyMode,
            false => Reason::UnusableEntry,
        };
        on_problem(Problem::new(reason, None, entry.detail.clone()));
    }
    ips.retain(|ip| match why::refused(*ip, inputs.forbidden) {
        Some(problem) => {
            on_problem(problem);
            false
        }
        None => true,
    });
    let covering: Option<BTreeMap<IpAddr, Vec<_>>> = inputs.advertising.map(|advertising| {
        ips.iter()
            .map(|ip| (*ip, advertising.covering(service, *ip)))
            .collect()
    });
    if let (Some(covering), Some(advertising)) = (&covering, inputs.advertising) {
        ips.retain(|ip| match covering[ip].is_empty() {
            true => {
                on_problem(advertising.uncovered(service, *ip));
                false
            }
            false => true,
        });
    }
    if ips.is_empty() {
        return None;
    }
    let no_endpoints = BTreeSet::new();
    let with_endpoints = match inputs.endpoints {
        Some(endpoints) if service.is_local_policy() => {
            Some(endpoints.get(key).unwrap_or(&no_endpoints))
        }
        _ => None,
    };
    let no_labels = BTreeMap::new();
    let labels_of = |node: &str| inputs.node_labels.get(node).unwrap_or(&no_labels);
    // How many of the addresses the advertisements let each member announce.
    let admitted = |node: &str, member: &Member| -> Vec<IpAddr> {
        match &covering {
            None => ips.clone(),
            Some(covering) => ips
                .iter()
                .filter(|ip| {
                    covering[ip]
                        .iter()
                        .any(|adv| admits_node(adv, labels_of(node), &member.reach))
                })
                .copied()
                .collect(),
        }
    };
    let with_endpoint: Vec<(&String, &Member)> = inputs
        .members
        .iter()
        .filter(|(node, _)| with_endpoints.is_none_or(|nodes| nodes.contains(*node)))
        .collect();
    // Advertisements restrict first: members admitted for every address,
    // failing that for some (one owner per Service even when a dual-stack
    // Service's pools are advertised on different nodes).
    let all: Vec<(&String, &Member)> = with_endpoint
        .iter()
        .filter(|(node, member)| admitted(node, member).len() == ips.len())
        .copied()
        .collect();
    let members = match all.is_empty() {
        false => all,
        true => with_endpoint
            .iter()
            .filter(|(node, member)| !admitted(node, member).is_empty())
            .copied()
            .collect(),
    };
    let eligible = candidates(members.iter().copied(), &ips);
    on_candidates(&eligible);
    let announcing = eligible
        .iter()
        .copied()
        .filter(|node| inputs.members[*node].announces());
    let owner = pick_owner(announcing, key)
        .or_else(|| pick_owner(eligible.iter().copied(), key))
        .map(str::to_owned);
    let Some(owner) = owner else {
        // Why nobody: the first filter that left no member.
        for ip in &ips {
            on_problem(if inputs.members.is_empty() {
                why::no_eligible_node(*ip)
            } else if with_endpoint.is_empty() {
                why::no_local_endpoint(*ip)
            } else if members.is_empty() {
                let covering = covering
                    .as_ref()
                    .map(|c| c[ip].as_slice())
                    .unwrap_or_default();
                why::not_admitted(*ip, covering, &with_endpoint, labels_of, None)
            } else {
                why::no_serving_interface(*ip)
            });
        }
        return Some(Assignment {
            ips,
            owner: None,
            service: Arc::clone(service),
            interfaces: BTreeMap::new(),
        });
    };
    let mut interfaces = BTreeMap::new();
    if let Some(covering) = &covering {
        let member = &inputs.members[&owner];
        let answered = admitted(&owner, member);
        ips.retain(|ip| match answered.contains(ip) {
            true => true,
            false => {
                on_problem(why::not_admitted(
                    *ip,
                    &covering[ip],
                    &with_endpoint,
                    labels_of,
                    Some(&owner),
                ));
                false
            }
        });
        for ip in &ips {
            if let Some(names) = interfaces_for(&covering[ip], labels_of(&owner), &member.reach) {
                interfaces.insert(*ip, names);
            }
        }
    }
    Some(Assignment {
        ips,
        owner: Some(owner),
        service: Arc::clone(service),
        interfaces,
    })
}

/// Two Services may list one address (MetalLB's allow-shared-ip, or an IPAM
/// mistake), and rendezvous per Service may give them different owners: two
/// nodes would answer for one IP. The first Service (by namespace/name) with
/// an owner keeps the address; the others drop it.
pub(crate) fn settle_shared(
    raw: &Assignments,
    mut on_problem: impl FnMut(&ServiceRef, Problem),
) -> Assignments {
    let mut holder_of: BTreeMap<IpAddr, &ServiceRef> = BTreeMap::new();
    for (service, assignment) in raw {
        if assignment.owner.is_some() {
            for ip in &assignment.ips {
                holder_of.entry(*ip).or_insert(service);
            }
        }
    }
    let mut assignments = BTreeMap::new();
    for (service, assignment) in raw {
        let held_elsewhere = |ip: &IpAddr| holder_of.get(ip).is_some_and(|h| *h != service);
        if !assignment.ips.iter().any(held_elsewhere) {
            assignments.insert(service.clone(), Arc::clone(assignment));
            continue;
        }
        let mut assignment = Assignment::clone(assignment);
        assignment.ips.retain(|ip| match holder_of.get(ip) {
            Some(holder) if *holder != service => {
                on_problem(
                    service,
                    Problem {
                        kind: ProblemKind::SharedWith(holder.to_string()),
                        address: Some(*ip),
                        object: Some(format!("Service/{holder}")),
                        detail: format!(
                            "ingress ip {ip} is shared with {holder}, whose owner answers for it"
                        ),
                        local_only: false,
                    },
                );
                false
            }
            _ => true,
        });
        if !assignment.ips.is_empty() {
            assignments.insert(service.clone(), Arc::new(assignment));
        }
    }
    assignments
}

/// The interfaces advertisements restrict `node`'s VIPs to (see
/// [`Assignment::interfaces`]).
pub(crate) fn interfaces_owned_by(
    assignments: &Assignments,
    node: &str,
) -> BTreeMap<IpAddr, BTreeSet<String>> {
    assignments
        .values()
        .filter(|assignment| assignment.owner.as_deref() == Some(node))
        .flat_map(|assignment| {
            assignment
                .interfaces
                .iter()
                .filter(|(ip, _)| assignment.ips.contains(ip))
                .map(|(ip, names)| (*ip, names.clone()))
        })
        .collect()
}

/// The VIPs `node` answers for, each with the Service it answers for
/// ([`assign`] gives every address to one Service).
pub(crate) fn owned_by(assignments: &Assignments, node: &str) -> BTreeMap<IpAddr, ServiceRef> {
    let mut owned = BTreeMap::new();
    for (service, assignment) in assignments {
        if assignment.owner.as_deref() == Some(node) {
            for ip in &assignment.ips {
                owned.entry(*ip).or_insert_with(|| service.clone());
            }
        }
    }
    owned
}

mod why;

#[cfg(test)]
mod tests;
