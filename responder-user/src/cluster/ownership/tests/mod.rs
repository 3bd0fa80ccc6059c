//! The unit tests of ownership, by subject, and the helpers they share.
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::*;
use crate::cluster::indexes::slice_nodes;
use crate::cluster::nodes::OwnAddress;
use crate::cluster::reason::{Problem, Reason};
use crate::cluster::service_facts::ServiceFacts;
use crate::cluster::Families;
use crate::k8s::fixtures::{lb_service, slice, svc};

mod addresses;
mod advertised;
mod candidates;
mod endpoints;
mod rendezvous;
mod roles;

fn facts(service: Service) -> Arc<ServiceFacts> {
    Arc::new(ServiceFacts::of(&service))
}

/// The nodes with endpoints of each Service, over `slices` (the assigner
/// keeps this up to date slice by slice, see `indexes`).
fn endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> HashMap<ServiceRef, BTreeSet<String>> {
    let mut index: HashMap<ServiceRef, BTreeSet<String>> = HashMap::new();
    for (service, nodes) in slices.into_iter().filter_map(slice_nodes) {
        index.entry(service).or_default().extend(nodes);
    }
    index
}

/// Owner of every Service of ours that has at least one usable ingress IP,
/// as the assigner decides it Service by Service for the Services a change
/// affects. `on_problem` hears about ingress entries left out.
fn assign<'s>(
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

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn owner_of(service: &ServiceRef, members: &BTreeSet<String>) -> String {
    pick_owner(members.iter().map(String::as_str), service)
        .expect("non-empty members have an owner")
        .to_owned()
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
        role: None,
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

const NO_FORBIDDEN: &BTreeMap<IpAddr, OwnAddress> = &BTreeMap::new();
const NO_LABELS: &BTreeMap<String, BTreeMap<String, String>> = &BTreeMap::new();
