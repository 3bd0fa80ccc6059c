//! Pure ownership logic: which Services are ours to announce, which nodes may
//! announce them, and which single node does. Every agent runs this on the same
//! watched objects, so it must be deterministic and independent of iteration order,
//! process, architecture and crate versions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::advertising::{admits_node, interfaces_for, Advertising};
use super::membership::Member;
use super::selector::LabelSelector;
use super::service_facts::ServiceFacts;
use super::{Reach, ServiceRef};
use crate::ipam::reserved_anycast;

pub(crate) const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

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

pub(crate) fn service_ref(service: &Service) -> ServiceRef {
    ServiceRef::new(
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// LoadBalancer Services of our class; with no class configured only classless
/// ones, because a classed Service is explicitly meant for another implementation.
pub(crate) fn is_ours(service: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    is_ours_by(
        is_load_balancer(service),
        spec.load_balancer_class.as_deref(),
        lb_class,
    )
}

pub(crate) fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// [`is_ours`] from whether a Service is of type LoadBalancer and its
/// `spec.loadBalancerClass`.
pub(crate) fn is_ours_by(load_balancer: bool, class: Option<&str>, lb_class: Option<&str>) -> bool {
    load_balancer && class == lb_class
}

/// The addresses in `status.loadBalancer.ingress`, sorted and deduplicated, and a
/// description of every entry that is not a usable IP (hostname-only, malformed).
pub(crate) fn ingress_ips(service: &Service) -> (Vec<IpAddr>, Vec<String>) {
    let entries = service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    let mut ips = BTreeSet::new();
    let mut problems = Vec::new();
    for entry in entries {
        if entry.ip_mode.as_deref() == Some("Proxy") {
            // Kubernetes 1.29+: kube-proxy installs no rules for the address,
            // the load balancer proxies instead, so drawing its traffic to a
            // node would black-hole it.
            problems.push(format!(
                "ingress ip {:?} has ipMode Proxy: kube-proxy does not handle it on the nodes",
                entry.ip.as_deref().unwrap_or_default()
            ));
            continue;
        }
        match (&entry.ip, &entry.hostname) {
            (Some(ip), _) => match ip.parse::<IpAddr>() {
                Ok(addr) => {
                    ips.insert(addr);
                }
                Err(_) => problems.push(format!("ingress ip {ip:?} is not an IP address")),
            },
            (None, Some(hostname)) => {
                problems.push(format!("ingress hostname {hostname:?} has no ip"))
            }
            (None, None) => problems.push("ingress entry has neither ip nor hostname".to_owned()),
        }
    }
    (ips.into_iter().collect(), problems)
}

/// Mirrors the service controller's rules for load-balancer backends.
pub(crate) fn node_eligible(node: &Node, selector: &LabelSelector) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    !labels.contains_key(EXCLUDE_LB_LABEL) && !network_unavailable && selector.matches(labels)
}

/// The Service of a slice, and the nodes hosting one of its ready or serving
/// (e.g. terminating but still draining) endpoints. Absent conditions mean
/// ready, as the EndpointSlice API specifies. `None` for a slice of no
/// Service.
pub(crate) fn slice_nodes(slice: &EndpointSlice) -> Option<(ServiceRef, BTreeSet<String>)> {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))?;
    let key = ServiceRef::new(
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        service.as_str(),
    );
    let mut nodes = BTreeSet::new();
    for endpoint in slice.endpoints.iter().flatten() {
        let conditions = endpoint.conditions.as_ref();
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
        if let (true, Some(node)) = (ready || serving, &endpoint.node_name) {
            nodes.insert(node.clone());
        }
    }
    Some((key, nodes))
}

/// The nodes with endpoints of each Service, over `slices` (the assigner
/// keeps this up to date slice by slice, see `indexes`).
#[cfg(test)]
pub(crate) fn endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> HashMap<ServiceRef, BTreeSet<String>> {
    let mut index: HashMap<ServiceRef, BTreeSet<String>> = HashMap::new();
    for (service, nodes) in slices.into_iter().filter_map(slice_nodes) {
        index.entry(service).or_default().extend(nodes);
    }
    index
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
    pub forbidden: &'a BTreeMap<IpAddr, String>,
    /// `None` without any L2Advertisement: every member may announce every
    /// address on its default interfaces.
    pub advertising: Option<&'a Advertising>,
    /// The labels of the members' Nodes, for advertisements' `nodeSelectors`.
    pub node_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// Every address in the Nodes' `status.addresses`, with whose it is.
pub(crate) fn node_addresses<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
) -> BTreeMap<IpAddr, String> {
    let mut addresses = BTreeMap::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let listed = node
            .status
            .as_ref()
            .and_then(|status| status.addresses.as_deref())
            .unwrap_or_default();
        for address in listed {
            if let Ok(ip) = address.address.parse::<IpAddr>() {
                addresses
                    .entry(ip)
                    .or_insert_with(|| format!("it is {} of Node {name}", address.type_));
            }
        }
    }
    addresses
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

/// Why an ingress address of a Service is not answered for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Problem {
    /// Not a usable VIP here: hostname-only, malformed, ipMode Proxy, or
    /// shared with a Service that keeps it.
    Skipped(String),
    /// Refused for safety: answering for it would hijack a node's address,
    /// or an anycast address the link's routers answer for.
    Refused(String),
    /// No L2Advertisement covers it: no node answers for it.
    Unadvertised(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Skipped(text) | Problem::Refused(text) | Problem::Unadvertised(text) => {
                f.write_str(text)
            }
        }
    }
}

/// Owner of every Service of ours that has at least one usable ingress IP.
/// `on_problem` hears about ingress entries left out. (The assigner does the
/// same Service by Service, for the Services a change affects.)
#[cfg(test)]
pub(crate) fn assign<'s>(
    services: impl IntoIterator<Item = &'s Arc<ServiceFacts>>,
    inputs: &Inputs<'_>,
    mut on_problem: impl FnMut(&ServiceRef, Problem),
) -> Assignments {
    let raw: Assignments = services
        .into_iter()
        .filter_map(|service| {
            let assignment = assign_one(service, inputs, |p| on_problem(&service.key, p))?;
            Some((service.key.clone(), Arc::new(assignment)))
        })
        .collect();
    settle_shared(&raw, on_problem)
}

/// The owner of one Service before addresses several Services list are
/// settled ([`settle_shared`]); `None` when the Service is not ours or has
/// no usable address.
pub(crate) fn assign_one(
    service: &Arc<ServiceFacts>,
    inputs: &Inputs<'_>,
    mut on_problem: impl FnMut(Problem),
) -> Option<Assignment> {
    if !service.is_ours(inputs.lb_class) {
        return None;
    }
    let key = &service.key;
    let mut ips = service.ips().to_vec();
    for problem in service.skipped() {
        on_problem(Problem::Skipped(problem.clone()));
    }
    ips.retain(|ip| {
        // A reserved anycast address (RFC 4291 §2.6.1, RFC 2526), which no pool of
        // ours hands out but another controller may have written, belongs to the
        // link's routers: refused by every agent alike.
        let reason = match (inputs.forbidden.get(ip), reserved_anycast(*ip)) {
            (Some(reason), _) => reason.clone(),
            (None, Some(reserved)) => format!("it is {reserved}"),
            (None, None) => return true,
        };
        on_problem(Problem::Refused(format!(
            "ingress ip {ip} is not answered for: {reason}"
        )));
        false
    });
    let covering: Option<BTreeMap<IpAddr, Vec<_>>> = inputs.advertising.map(|advertising| {
        ips.iter()
            .map(|ip| (*ip, advertising.covering(service, *ip)))
            .collect()
    });
    if let (Some(covering), Some(advertising)) = (&covering, inputs.advertising) {
        ips.retain(|ip| match covering[ip].is_empty() {
            true => {
                on_problem(Problem::Unadvertised(
                    advertising.uncovered_reason(service, *ip),
                ));
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
    let members: Vec<(&String, &Member)> = inputs
        .members
        .iter()
        .filter(|(node, _)| with_endpoints.is_none_or(|nodes| nodes.contains(*node)))
        .collect();
    // Advertisements restrict first: members admitted for every address,
    // failing that for some (one owner per Service even when a dual-stack
    // Service's pools are advertised on different nodes).
    let all: Vec<(&String, &Member)> = members
        .iter()
        .filter(|(node, member)| admitted(node, member).len() == ips.len())
        .copied()
        .collect();
    let members = match all.is_empty() {
        false => all,
        true => members
            .into_iter()
            .filter(|(node, member)| !admitted(node, member).is_empty())
            .collect(),
    };
    let eligible = candidates(members.iter().copied(), &ips);
    let owner = pick_owner(eligible, key).map(str::to_owned);
    let mut interfaces = BTreeMap::new();
    if let (Some(owner), Some(covering)) = (&owner, &covering) {
        let member = &inputs.members[owner];
        let answered = admitted(owner, member);
        ips.retain(|ip| match answered.contains(ip) {
            true => true,
            false => {
                on_problem(Problem::Skipped(format!(
                    "ingress ip {ip} is not answered for: the L2Advertisements covering it \
                     select none of the nodes that may own the Service (owner {owner})"
                )));
                false
            }
        });
        for ip in &ips {
            if let Some(names) = interfaces_for(&covering[ip], labels_of(owner), &member.reach) {
                interfaces.insert(*ip, names);
            }
        }
    }
    Some(Assignment {
        ips,
        owner,
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
                    Problem::Skipped(format!(
                        "ingress ip {ip} is shared with {holder}, whose owner answers for it"
                    )),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeCondition, NodeStatus,
        ServiceSpec, ServiceStatus,
    };

    use crate::cluster::Families;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use kube::api::ObjectMeta;

    pub(crate) fn svc(namespace: &str, name: &str) -> ServiceRef {
        ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub(crate) fn facts(service: Service) -> Arc<ServiceFacts> {
        Arc::new(ServiceFacts::of(&service))
    }

    pub(crate) fn lb_service(
        name: &str,
        class: Option<&str>,
        policy: &str,
        ingress: &[(Option<&str>, Option<&str>)],
    ) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(Into::into),
                external_traffic_policy: Some(policy.into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|(ip, hostname)| LoadBalancerIngress {
                                ip: ip.map(Into::into),
                                hostname: hostname.map(Into::into),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
        }
    }

    pub(crate) fn slice(
        service: &str,
        endpoints: &[(&str, Option<bool>, Option<bool>)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(format!("{service}-abcde")),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|(node, ready, serving)| Endpoint {
                        addresses: vec!["198.51.100.10".into()],
                        node_name: Some((*node).into()),
                        conditions: Some(EndpointConditions {
                            ready: *ready,
                            serving: *serving,
                            terminating: None,
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: None,
        }
    }

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn owner_of(service: &ServiceRef, members: &BTreeSet<String>) -> String {
        pick_owner(members.iter().map(String::as_str), service)
            .expect("non-empty members have an owner")
            .to_owned()
    }

    #[test]
    fn weight_is_a_fixed_function() {
        // Pinned so a change to the hash, which would silently split-brain a
        // rolling upgrade, fails here instead.
        assert_eq!(
            rendezvous_weight("node-a", &svc("default", "web")),
            0x2464_718b_9ae3_950c
        );
    }

    #[test]
    fn owner_does_not_depend_on_candidate_order() {
        let service = svc("default", "web");
        let forward = ["n1", "n2", "n3", "n4", "n5"];
        let mut backward = forward;
        backward.reverse();
        assert_eq!(
            pick_owner(forward, &service),
            pick_owner(backward, &service)
        );
        assert_eq!(pick_owner(Vec::<&str>::new(), &service), None);
    }

    #[test]
    fn services_spread_evenly() {
        let members = nodes(&["n1", "n2", "n3", "n4", "n5"]);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..10_000 {
            *counts
                .entry(owner_of(&svc("ns", &format!("svc-{i}")), &members))
                .or_default() += 1;
        }
        for (node, count) in &counts {
            assert!(
                (1700..=2300).contains(count),
                "{node} owns {count} of 10000 services: {counts:?}"
            );
        }
        assert_eq!(counts.len(), 5, "every node owns something: {counts:?}");
    }

    #[test]
    fn leaving_node_moves_only_its_services() {
        let before = nodes(&["n1", "n2", "n3", "n4", "n5"]);
        let after = nodes(&["n1", "n2", "n4", "n5"]);
        for i in 0..2_000 {
            let service = svc("ns", &format!("svc-{i}"));
            let (old, new) = (owner_of(&service, &before), owner_of(&service, &after));
            if old != "n3" {
                assert_eq!(old, new, "{service:?} moved although its owner stayed");
            }
        }
    }

    #[test]
    fn joining_node_takes_services_only_for_itself() {
        let before = nodes(&["n1", "n2", "n3"]);
        let after = nodes(&["n1", "n2", "n3", "n4"]);
        let mut taken = 0;
        for i in 0..2_000 {
            let service = svc("ns", &format!("svc-{i}"));
            let (old, new) = (owner_of(&service, &before), owner_of(&service, &after));
            if old != new {
                assert_eq!(new, "n4", "{service:?} moved between existing nodes");
                taken += 1;
            }
        }
        assert!(
            (300..=700).contains(&taken),
            "the new node took {taken} of 2000, expected about 500"
        );
    }

    #[test]
    fn class_filter() {
        let classless = lb_service("a", None, "Cluster", &[]);
        let classed = lb_service("b", Some("example.com/responder"), "Cluster", &[]);
        let mut cluster_ip = lb_service("c", None, "Cluster", &[]);
        cluster_ip.spec.as_mut().expect("spec").type_ = Some("ClusterIP".into());
        assert!(is_ours(&classless, None));
        assert!(!is_ours(&classed, None));
        assert!(is_ours(&classed, Some("example.com/responder")));
        assert!(!is_ours(&classless, Some("example.com/responder")));
        assert!(!is_ours(&classed, Some("example.com/other")));
        assert!(!is_ours(&cluster_ip, None));
        assert!(!is_ours(&Service::default(), None));
    }

    #[test]
    fn ingress_parsing_keeps_good_entries_and_reports_bad_ones() {
        let service = lb_service(
            "a",
            None,
            "Cluster",
            &[
                (Some("2001:db8::1"), None),
                (None, Some("lb.example.com")),
                (Some("192.0.2.10"), Some("lb.example.com")),
                (Some("not-an-ip"), None),
                (Some("192.0.2.300"), None),
                (None, None),
                (Some("192.0.2.10"), None),
            ],
        );
        let (ips, problems) = ingress_ips(&service);
        assert_eq!(
            ips,
            [
                "192.0.2.10".parse::<IpAddr>().expect("ip"),
                "2001:db8::1".parse().expect("ip")
            ]
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("lb.example.com"), "{problems:?}");
        assert!(ingress_ips(&Service::default()).0.is_empty());
    }

    fn node(labels: &[(&str, &str)], network_unavailable: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: network_unavailable.map(|status| {
                    vec![NodeCondition {
                        type_: "NetworkUnavailable".into(),
                        status: status.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn eligibility_rules() {
        let any: LabelSelector = "".parse().expect("empty selector");
        let edge: LabelSelector = "role=edge".parse().expect("selector");
        assert!(node_eligible(&node(&[], None), &any));
        assert!(node_eligible(&node(&[], Some("False")), &any));
        assert!(!node_eligible(&node(&[], Some("True")), &any));
        assert!(!node_eligible(&node(&[(EXCLUDE_LB_LABEL, "")], None), &any));
        assert!(
            !node_eligible(&node(&[(EXCLUDE_LB_LABEL, "false")], None), &any),
            "presence excludes"
        );
        assert!(!node_eligible(&node(&[("role", "core")], None), &edge));
        assert!(node_eligible(&node(&[("role", "edge")], None), &edge));
        assert!(node_eligible(&Node::default(), &any));
    }

    #[test]
    fn endpoint_conditions() {
        let slices = [
            slice(
                "web",
                &[
                    ("a", Some(true), None),
                    ("b", Some(false), Some(true)),
                    ("c", Some(false), Some(false)),
                ],
            ),
            slice("web", &[("d", None, None), ("e", Some(false), None)]),
        ];
        let index = endpoint_nodes(&slices);
        assert_eq!(index[&svc("default", "web")], nodes(&["a", "b", "d"]));
    }

    fn dual_stack(names: &[&str]) -> BTreeMap<String, Member> {
        names
            .iter()
            .map(|n| (n.to_string(), settled(Reach::UNKNOWN)))
            .collect()
    }

    fn settled(reach: Reach) -> Member {
        Member {
            reach,
            settled: true,
        }
    }

    fn reach(ipv4: bool, ipv6: bool, prefixes: &[&str]) -> Reach {
        Reach {
            families: Families { ipv4, ipv6 },
            prefixes: prefixes
                .iter()
                .map(|p| p.parse().expect("prefix"))
                .collect(),
            interfaces: None,
        }
    }

    const NO_FORBIDDEN: &BTreeMap<IpAddr, String> = &BTreeMap::new();
    const NO_LABELS: &BTreeMap<String, BTreeMap<String, String>> = &BTreeMap::new();

    #[test]
    fn services_go_to_nodes_that_can_answer_for_all_their_families() {
        // Service names whose rendezvous winner among a, b, c is `a`, the
        // node that lacks IPv6, so the family rule is what moves them.
        let all = nodes(&["a", "b", "c"]);
        let won_by_a = |prefix: &str| {
            (0..)
                .map(|i| format!("{prefix}-{i}"))
                .find(|name| owner_of(&svc("default", name), &all) == "a")
                .expect("some name is won by a")
        };
        let (v4, dual, v6) = (won_by_a("v4"), won_by_a("dual"), won_by_a("v6"));
        let services = [
            facts(lb_service(
                &v4,
                None,
                "Cluster",
                &[(Some("192.0.2.1"), None)],
            )),
            facts(lb_service(
                &dual,
                None,
                "Cluster",
                &[(Some("192.0.2.2"), None), (Some("2001:db8::2"), None)],
            )),
            facts(lb_service(
                &v6,
                None,
                "Cluster",
                &[(Some("2001:db8::3"), None)],
            )),
        ];
        let owner = |members: &BTreeMap<String, Member>, name: &str| {
            let inputs = Inputs {
                lb_class: None,
                members,
                endpoints: None,
                forbidden: NO_FORBIDDEN,
                advertising: None,
                node_labels: NO_LABELS,
            };
            assign(&services, &inputs, |_, _| {})[&svc("default", name)]
                .owner
                .clone()
        };

        let mut members = dual_stack(&["a", "b", "c"]);
        members.insert("a".into(), settled(reach(true, false, &[])));
        let without_a = nodes(&["b", "c"]);
        assert_eq!(owner(&members, &v4).as_deref(), Some("a"));
        for name in [&dual, &v6] {
            assert_eq!(
                owner(&members, name),
                Some(owner_of(&svc("default", name), &without_a)),
                "{name} must skip the node without IPv6"
            );
        }

        // Nobody has IPv6: the IPv4 half of a dual-stack Service is still
        // served, an IPv6-only Service cannot be.
        let members: BTreeMap<String, Member> = [
            ("a".into(), settled(reach(true, false, &[]))),
            ("b".into(), settled(reach(false, false, &[]))),
        ]
        .into();
        assert_eq!(owner(&members, &dual).as_deref(), Some("a"));
        assert_eq!(owner(&members, &v6), None);
        assert_eq!(
            owner(&members, &v4).as_deref(),
            Some("a"),
            "b has no interface"
        );
    }

    #[test]
    fn a_shared_address_is_answered_by_one_node_only() {
        let members = nodes(&["a", "b", "c"]);
        // Two Services whose rendezvous owners differ, so sharing would split.
        let (first, second) = (0..)
            .map(|i| (format!("shared-{i}-x"), format!("shared-{i}-y")))
            .find(|(x, y)| {
                owner_of(&svc("default", x), &members) != owner_of(&svc("default", y), &members)
            })
            .expect("some pair of names has different owners");
        let services = [
            facts(lb_service(
                &first,
                None,
                "Cluster",
                &[(Some("192.0.2.1"), None)],
            )),
            facts(lb_service(
                &second,
                None,
                "Cluster",
                &[(Some("192.0.2.1"), None), (Some("192.0.2.2"), None)],
            )),
        ];
        let families = dual_stack(&["a", "b", "c"]);
        let inputs = Inputs {
            lb_class: None,
            members: &families,
            endpoints: None,
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let mut problems = Vec::new();
        let assignments = assign(&services, &inputs, |service, problem| {
            problems.push((service.clone(), problem.to_string()))
        });
        let shared: IpAddr = "192.0.2.1".parse().expect("ip");
        let holders: Vec<&str> = ["a", "b", "c"]
            .into_iter()
            .filter(|node| owned_by(&assignments, node).contains_key(&shared))
            .collect();
        assert_eq!(
            holders,
            vec![owner_of(&svc("default", &first), &members).as_str()],
            "the first Service's owner alone answers for the shared address"
        );
        assert_eq!(
            assignments[&svc("default", &second)].ips,
            vec!["192.0.2.2".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, svc("default", &second));
        assert!(
            problems[0].1.contains("shared with default/"),
            "{problems:?}"
        );
    }

    #[test]
    fn local_services_follow_endpoints() {
        let members = nodes(&["a", "b", "c"]);
        let services = [
            facts(lb_service(
                "local",
                None,
                "Local",
                &[(Some("192.0.2.1"), None)],
            )),
            facts(lb_service(
                "nowhere",
                None,
                "Local",
                &[(Some("192.0.2.2"), None)],
            )),
            facts(lb_service(
                "cluster",
                None,
                "Cluster",
                &[(Some("192.0.2.3"), None)],
            )),
        ];
        let index = endpoint_nodes(&[
            slice("local", &[("b", Some(true), None), ("z", Some(true), None)]),
            slice("nowhere", &[("a", Some(false), Some(false))]),
        ]);
        let with_families = dual_stack(&["a", "b", "c"]);
        let with_slices = Inputs {
            lb_class: None,
            members: &with_families,
            endpoints: Some(&index),
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let assignments = assign(&services, &with_slices, |_, _| {});
        assert_eq!(
            assignments[&svc("default", "local")].owner.as_deref(),
            Some("b")
        );
        assert_eq!(assignments[&svc("default", "nowhere")].owner, None);
        assert!(assignments[&svc("default", "cluster")].owner.is_some());

        let without_slices = Inputs {
            endpoints: None,
            ..with_slices
        };
        let assignments = assign(&services, &without_slices, |_, _| {});
        assert_eq!(
            assignments[&svc("default", "nowhere")].owner,
            Some(owner_of(&svc("default", "nowhere"), &members)),
            "without EndpointSlices every member counts as having endpoints"
        );
    }

    #[test]
    fn owned_by_collects_dual_stack_addresses() {
        let members = dual_stack(&["a"]);
        let services = [facts(lb_service(
            "web",
            None,
            "Cluster",
            &[
                (Some("192.0.2.1"), None),
                (Some("2001:db8::1"), None),
                (None, Some("x.example")),
            ],
        ))];
        let mut problems = Vec::new();
        let inputs = Inputs {
            lb_class: None,
            members: &members,
            endpoints: None,
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let assignments = assign(&services, &inputs, |service, problem| {
            problems.push((service.clone(), problem.to_string()))
        });
        let owned = owned_by(&assignments, "a");
        assert_eq!(owned.len(), 2, "{owned:?}");
        assert!(owned.values().all(|s| *s == svc("default", "web")));
        assert!(owned_by(&assignments, "b").is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn a_vip_goes_to_a_node_on_its_subnet_when_one_is_live() {
        let services = [
            facts(lb_service(
                "public",
                None,
                "Cluster",
                &[(Some("203.0.113.10"), None)],
            )),
            facts(lb_service(
                "anywhere",
                None,
                "Cluster",
                &[(Some("192.0.2.10"), None)],
            )),
        ];
        let members: BTreeMap<String, Member> = [
            ("a".into(), settled(reach(true, true, &["198.51.100.0/24"]))),
            ("b".into(), settled(reach(true, true, &["198.51.100.0/24"]))),
            ("c".into(), settled(reach(true, true, &["203.0.113.0/24"]))),
        ]
        .into();
        let inputs = Inputs {
            lb_class: None,
            members: &members,
            endpoints: None,
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let assignments = assign(&services, &inputs, |_, _| {});
        assert_eq!(
            assignments[&svc("default", "public")].owner.as_deref(),
            Some("c"),
            "only c has 203.0.113.0/24"
        );
        assert_eq!(
            assignments[&svc("default", "anywhere")].owner,
            Some(owner_of(
                &svc("default", "anywhere"),
                &nodes(&["a", "b", "c"])
            )),
            "no node has 192.0.2.0/24: every node is a candidate"
        );
        // c is gone: the VIP still gets an owner, off its subnet.
        let without_c: BTreeMap<String, Member> = members
            .iter()
            .filter(|(node, _)| *node != "c")
            .map(|(node, member)| (node.clone(), member.clone()))
            .collect();
        let inputs = Inputs {
            members: &without_c,
            ..inputs
        };
        assert!(
            assign(&services, &inputs, |_, _| {})[&svc("default", "public")]
                .owner
                .is_some()
        );
    }

    #[test]
    fn node_addresses_and_proxied_entries_are_never_answered_for() {
        let mut service = lb_service(
            "web",
            None,
            "Cluster",
            &[
                (Some("198.51.100.3"), None),
                (Some("192.0.2.10"), None),
                (Some("192.0.2.11"), None),
            ],
        );
        service
            .status
            .as_mut()
            .and_then(|status| status.load_balancer.as_mut())
            .and_then(|lb| lb.ingress.as_mut())
            .expect("ingress")[2]
            .ip_mode = Some("Proxy".into());
        let services = [facts(service)];
        let forbidden = node_addresses(&[Node {
            metadata: ObjectMeta {
                name: Some("node-a".into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "198.51.100.3".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let members = dual_stack(&["a"]);
        let inputs = Inputs {
            lb_class: None,
            members: &members,
            endpoints: None,
            forbidden: &forbidden,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let mut problems = Vec::new();
        let assignments = assign(&services, &inputs, |_, problem| problems.push(problem));
        assert_eq!(
            assignments[&svc("default", "web")].ips,
            vec!["192.0.2.10".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            matches!(&problems[0], Problem::Skipped(text) if text.contains("ipMode Proxy")),
            "{problems:?}"
        );
        assert!(
            matches!(&problems[1], Problem::Refused(text) if text.contains("InternalIP of Node node-a")),
            "{problems:?}"
        );
    }

    #[test]
    fn reserved_anycast_addresses_are_refused_whoever_wrote_them() {
        // Another controller (or an older version of ours) wrote the
        // Subnet-Router anycast address and an RFC 2526 one.
        let services = [facts(lb_service(
            "web",
            None,
            "Cluster",
            &[
                (Some("2001:db8:e100::"), None),
                (Some("2001:db8:e100::fdff:ffff:ffff:fffe"), None),
                (Some("2001:db8:e100::1"), None),
                (Some("192.0.2.0"), None),
            ],
        ))];
        let members = dual_stack(&["a"]);
        let inputs = Inputs {
            lb_class: None,
            members: &members,
            endpoints: None,
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let mut problems = Vec::new();
        let assignments = assign(&services, &inputs, |_, problem| problems.push(problem));
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert_eq!(
            assignments[&svc("default", "web")].ips,
            [ip("192.0.2.0"), ip("2001:db8:e100::1")],
            "IPv4 has no such addresses; an IPv6 neighbour of one is fine"
        );
        let texts: Vec<String> = problems
            .iter()
            .map(|problem| match problem {
                Problem::Refused(text) => text.clone(),
                other => panic!("a refusal, not {other:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "ingress ip 2001:db8:e100:: is not answered for: it is the Subnet-Router \
                 anycast address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every router \
                 on that link answers for",
                "ingress ip 2001:db8:e100:0:fdff:ffff:ffff:fffe is not answered for: it is \
                 reserved subnet anycast address 126 of 2001:db8:e100::/64 (RFC 2526: the \
                 highest 128 interface identifiers of a subnet are anycast addresses; 126 is \
                 the Mobile IPv6 Home-Agents anycast address)",
            ]
        );
    }

    #[test]
    fn a_member_held_down_after_rejoining_owns_only_what_nobody_settled_can() {
        let all = nodes(&["a", "b", "c"]);
        let won_by_a = (0..)
            .map(|i| format!("svc-{i}"))
            .find(|name| owner_of(&svc("default", name), &all) == "a")
            .expect("some name is won by a");
        let services = [
            facts(lb_service(
                &won_by_a,
                None,
                "Cluster",
                &[(Some("192.0.2.1"), None)],
            )),
            facts(lb_service(
                "v6-only",
                None,
                "Cluster",
                &[(Some("2001:db8::1"), None)],
            )),
        ];
        let mut members = dual_stack(&["a", "b", "c"]);
        members.get_mut("a").expect("a").settled = false;
        for node in ["b", "c"] {
            members.get_mut(node).expect(node).reach = reach(true, false, &[]);
        }
        let inputs = Inputs {
            lb_class: None,
            members: &members,
            endpoints: None,
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        let assignments = assign(&services, &inputs, |_, _| {});
        assert_eq!(
            assignments[&svc("default", &won_by_a)].owner,
            Some(owner_of(&svc("default", &won_by_a), &nodes(&["b", "c"]))),
            "a wins the hash but is held down"
        );
        assert_eq!(
            assignments[&svc("default", "v6-only")].owner.as_deref(),
            Some("a"),
            "only a has IPv6: held down beats nobody"
        );
    }

    mod advertised {
        //! The decision under L2Advertisements: two segments, "public" on
        //! eth0 and "internal" on eth1, three nodes.
        use super::*;
        use crate::cluster::advertising::tests::{advertisement, labels_of, pool};
        use crate::cluster::advertising::Advertising;
        use crate::crd::ANNOTATION_ALLOCATED_FROM_POOL;

        fn ip(text: &str) -> IpAddr {
            text.parse().expect("ip")
        }

        fn with_interfaces(names: &[&str]) -> Member {
            settled(Reach {
                interfaces: Some(names.iter().map(|n| n.to_string()).collect()),
                ..Reach::UNKNOWN
            })
        }

        /// a and b have both NICs, c only the internal one; only b is
        /// labelled `edge`.
        fn members() -> BTreeMap<String, Member> {
            [
                ("a".to_owned(), with_interfaces(&["eth0", "eth1"])),
                ("b".to_owned(), with_interfaces(&["eth0", "eth1"])),
                ("c".to_owned(), with_interfaces(&["eth1"])),
            ]
            .into()
        }

        fn node_labels() -> BTreeMap<String, BTreeMap<String, String>> {
            const HOST: &str = "kubernetes.io/hostname";
            [
                ("a".to_owned(), labels_of(&[(HOST, "a")])),
                ("b".to_owned(), labels_of(&[(HOST, "b"), ("edge", "true")])),
                ("c".to_owned(), labels_of(&[(HOST, "c")])),
            ]
            .into()
        }

        fn advertising(adverts: Vec<serde_json::Value>) -> Advertising {
            let pools = [
                Arc::new(pool(
                    "public",
                    &["203.0.113.0/28", "2001:db8:1::10-2001:db8:1::ff"],
                    &[],
                )),
                Arc::new(pool("internal", &["198.51.100.0/28"], &[])),
                // A second pool under the internal advertisement.
                Arc::new(pool("internal-extra", &["198.51.100.16/28"], &[])),
            ];
            let adverts: Vec<_> = adverts
                .into_iter()
                .enumerate()
                .map(|(i, spec)| Arc::new(advertisement(&format!("adv-{i}"), spec)))
                .collect();
            let (advertising, bad) = Advertising::build(&pools, &adverts);
            assert!(bad.is_empty(), "{bad:?}");
            advertising.expect("advertisements exist")
        }

        fn two_segments() -> Advertising {
            advertising(vec![
                serde_json::json!({"ipAddressPools": ["public"], "interfaces": ["eth0"]}),
                serde_json::json!({"ipAddressPools": ["internal", "internal-extra"], "interfaces": ["eth1"]}),
            ])
        }

        fn service(name: &str, ips: &[&str]) -> Arc<ServiceFacts> {
            let ingress: Vec<(Option<&str>, Option<&str>)> =
                ips.iter().map(|ip| (Some(*ip), None)).collect();
            facts(lb_service(name, None, "Cluster", &ingress))
        }

        fn decide(
            advertising: Option<&Advertising>,
            services: &[Arc<ServiceFacts>],
        ) -> (Assignments, Vec<(ServiceRef, Problem)>) {
            let members = members();
            let labels = node_labels();
            let inputs = Inputs {
                lb_class: None,
                members: &members,
                endpoints: None,
                forbidden: NO_FORBIDDEN,
                advertising,
                node_labels: &labels,
            };
            let mut problems = Vec::new();
            let assignments = assign(services, &inputs, |service, problem| {
                problems.push((service.clone(), problem))
            });
            (assignments, problems)
        }

        /// The first `prefix-N` whose rendezvous winner among `all` is
        /// `wanted`.
        fn name_won_by(prefix: &str, all: &[&str], wanted: &str) -> String {
            (0..)
                .map(|i| format!("{prefix}-{i}"))
                .find(|name| pick_owner(all.iter().copied(), &svc("default", name)) == Some(wanted))
                .expect("some name hashes to the wanted node")
        }

        #[test]
        fn without_advertisements_nothing_changes() {
            let name = name_won_by("web", &["a", "b", "c"], "c");
            let services = [service(&name, &["203.0.113.1"])];
            let (assignments, problems) = decide(None, &services);
            let web = &assignments[&svc("default", &name)];
            assert_eq!(web.owner.as_deref(), Some("c"), "every member, c included");
            assert!(web.interfaces.is_empty(), "default interfaces");
            assert!(problems.is_empty());
        }

        #[test]
        fn a_pool_named_on_interfaces_goes_to_nodes_that_have_them_and_only_there() {
            // c would win the hash but has no eth0.
            let name = name_won_by("public", &["a", "b", "c"], "c");
            let internal = name_won_by("internal", &["a", "b", "c"], "c");
            let services = [
                service(&name, &["203.0.113.1"]),
                service(&internal, &["198.51.100.1"]),
            ];
            let advertising = two_segments();
            let (assignments, problems) = decide(Some(&advertising), &services);
            let public = &assignments[&svc("default", &name)];
            let owner = public.owner.clone().expect("an owner");
            assert_ne!(owner, "c", "c has no public NIC");
            assert_eq!(
                public.interfaces,
                BTreeMap::from([(ip("203.0.113.1"), BTreeSet::from(["eth0".to_owned()]))])
            );
            assert_eq!(
                interfaces_owned_by(&assignments, &owner)[&ip("203.0.113.1")],
                BTreeSet::from(["eth0".to_owned()])
            );
            let internal = &assignments[&svc("default", &internal)];
            assert_eq!(internal.owner.as_deref(), Some("c"), "c has eth1");
            assert_eq!(
                internal.interfaces[&ip("198.51.100.1")],
                BTreeSet::from(["eth1".to_owned()])
            );
            assert!(problems.is_empty(), "{problems:?}");
        }

        #[test]
        fn node_selectors_restrict_the_candidates_for_their_pools_only() {
            let advertising = advertising(vec![
                serde_json::json!({"ipAddressPools": ["public"],
                                   "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
                serde_json::json!({"ipAddressPools": ["internal"]}),
            ]);
            let public = name_won_by("public", &["a", "b", "c"], "a");
            let internal = name_won_by("internal", &["a", "b", "c"], "a");
            let services = [
                service(&public, &["203.0.113.1"]),
                service(&internal, &["198.51.100.1"]),
            ];
            let (assignments, _) = decide(Some(&advertising), &services);
            assert_eq!(
                assignments[&svc("default", &public)].owner.as_deref(),
                Some("b"),
                "only b is an edge node"
            );
            assert_eq!(
                assignments[&svc("default", &internal)].owner.as_deref(),
                Some("a"),
                "a is no edge node, yet a candidate for the internal pool"
            );
            assert!(
                assignments[&svc("default", &internal)]
                    .interfaces
                    .is_empty(),
                "no interface named: the default set"
            );
        }

        #[test]
        fn the_annotation_decides_the_pool() {
            // The address lies in "public"; the annotation says "internal",
            // which does not hold it, so "public" (located) counts.
            let name = name_won_by("annotated", &["a", "b", "c"], "c");
            let mut object = lb_service(&name, None, "Cluster", &[(Some("203.0.113.2"), None)]);
            object.metadata.annotations = Some(
                [(
                    ANNOTATION_ALLOCATED_FROM_POOL.to_owned(),
                    "internal,public".to_owned(),
                )]
                .into(),
            );
            let advertising = two_segments();
            let (assignments, _) = decide(Some(&advertising), &[facts(object)]);
            let assignment = &assignments[&svc("default", &name)];
            assert_ne!(assignment.owner.as_deref(), Some("c"));
            assert_eq!(
                assignment.interfaces[&ip("203.0.113.2")],
                BTreeSet::from(["eth0".to_owned()])
            );
        }

        #[test]
        fn a_dual_stack_service_prefers_nodes_covered_for_both_and_keeps_one_owner() {
            // v6 of the public pool advertised only from edge nodes (b),
            // v4 everywhere: b is covered for both.
            let advertising = advertising(vec![
                serde_json::json!({"ipAddressPools": ["public"], "interfaces": ["eth0"],
                                   "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
                serde_json::json!({"ipAddressPools": ["internal"], "interfaces": ["eth1"]}),
            ]);
            let name = name_won_by("dual", &["a", "b", "c"], "c");
            let services = [service(&name, &["198.51.100.3", "2001:db8:1::10"])];
            let (assignments, problems) = decide(Some(&advertising), &services);
            let dual = &assignments[&svc("default", &name)];
            assert_eq!(
                dual.owner.as_deref(),
                Some("b"),
                "the only node covered for both"
            );
            assert_eq!(dual.ips.len(), 2);
            assert_eq!(
                dual.interfaces,
                BTreeMap::from([
                    (ip("198.51.100.3"), BTreeSet::from(["eth1".to_owned()])),
                    (ip("2001:db8:1::10"), BTreeSet::from(["eth0".to_owned()])),
                ])
            );
            assert!(problems.is_empty(), "{problems:?}");

            // No node covered for both: one owner, for what it is covered for.
            let split = advertising_split();
            let (assignments, problems) = decide(Some(&split), &services);
            let dual = &assignments[&svc("default", &name)];
            let owner = dual.owner.clone().expect("one owner");
            assert_eq!(dual.ips.len(), 1, "{dual:?}");
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0]
                    .1
                    .to_string()
                    .contains(&format!("owner {owner}")),
                "{problems:?}"
            );
        }

        /// internal only on c, public only on b.
        fn advertising_split() -> Advertising {
            advertising(vec![
                serde_json::json!({"ipAddressPools": ["public"],
                                   "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
                serde_json::json!({"ipAddressPools": ["internal"],
                                   "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "c"}}]}),
            ])
        }

        #[test]
        fn an_address_no_advertisement_covers_is_skipped_with_a_problem() {
            let advertising = advertising(vec![serde_json::json!({"ipAddressPools": ["public"]})]);
            let services = [
                service("mixed", &["203.0.113.5", "198.51.100.5"]),
                service("outside", &["192.0.2.9"]),
            ];
            let (assignments, problems) = decide(Some(&advertising), &services);
            assert_eq!(
                assignments[&svc("default", "mixed")].ips,
                vec![ip("203.0.113.5")],
                "the internal address is covered by nothing"
            );
            assert!(!assignments.contains_key(&svc("default", "outside")));
            let unadvertised: Vec<&ServiceRef> = problems
                .iter()
                .filter(|(_, p)| matches!(p, Problem::Unadvertised(_)))
                .map(|(s, _)| s)
                .collect();
            assert_eq!(
                unadvertised,
                [&svc("default", "mixed"), &svc("default", "outside")]
            );
        }

        #[test]
        fn an_agent_that_publishes_no_interfaces_is_taken_to_have_them() {
            let mut members = members();
            members.insert("c".into(), settled(Reach::UNKNOWN));
            let name = name_won_by("public", &["a", "b", "c"], "c");
            let advertising = two_segments();
            let labels = node_labels();
            let inputs = Inputs {
                lb_class: None,
                members: &members,
                endpoints: None,
                forbidden: NO_FORBIDDEN,
                advertising: Some(&advertising),
                node_labels: &labels,
            };
            let assignments = assign(&[service(&name, &["203.0.113.1"])], &inputs, |_, _| {});
            assert_eq!(
                assignments[&svc("default", &name)].owner.as_deref(),
                Some("c")
            );
        }
    }
}
