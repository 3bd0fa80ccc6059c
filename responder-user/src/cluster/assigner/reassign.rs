//! One recomputation: the owners of the Services a change affects, shared
//! addresses settled, problems reported, and this node's VIPs published.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::debug;

use super::super::indexes::EndpointIndex;
use super::super::membership::{before_roles, roles_in_force, Member};
use super::super::nodes;
use super::super::nodes::OwnAddress;
use super::super::ownership::{self, Inputs};
use super::super::reason::Problem;
use super::super::service_facts::ServiceFacts;
use super::{Assigner, Dirty};
use crate::k8s::ServiceRef;

impl Assigner {
    /// Recomputes the owners of the Services `dirty` names (all of them
    /// when it says so), settles shared addresses, and publishes.
    pub(super) fn reassign(&mut self, dirty: Dirty, now: Instant) {
        if std::mem::take(&mut self.advertising_stale) {
            self.rebuild_advertising();
        }
        let nodes = self.nodes.state();
        let members = roles_in_force(
            self.eligible_members(),
            before_roles(self.last_members.values()),
        );
        // The Nodes' addresses are refused by every agent alike; this node's
        // own ones only here (no other agent knows them), which keeps this
        // node from answering for them wherever the Service goes.
        let mut forbidden = nodes::node_addresses(nodes.iter().map(Arc::as_ref));
        for ip in &self.attached.borrow().local_addresses {
            forbidden.entry(*ip).or_insert_with(|| OwnAddress {
                node: self.settings.node_name.clone(),
                what: format!("an address of node {}", self.settings.node_name),
                local_only: true,
            });
        }
        let node_labels: BTreeMap<String, BTreeMap<String, String>> = nodes
            .iter()
            .filter_map(|node| {
                let name = node.metadata.name.as_ref()?;
                members.contains_key(name).then(|| {
                    (
                        name.clone(),
                        node.metadata.labels.clone().unwrap_or_default(),
                    )
                })
            })
            .collect();
        let inputs = Inputs {
            lb_class: self.settings.lb_class.as_deref(),
            members: &members,
            endpoints: self.endpoints.as_ref().map(EndpointIndex::nodes),
            forbidden: &forbidden,
            advertising: self.advertising.as_ref(),
            node_labels: &node_labels,
        };
        let services: Vec<Arc<ServiceFacts>> = match dirty.all {
            true => {
                self.raw.clear();
                self.problems.clear();
                self.domain_of.clear();
                self.domains.clear();
                self.services.state()
            }
            false => dirty
                .services
                .iter()
                .filter_map(|service| {
                    self.raw.remove(service);
                    self.problems.remove(service);
                    if let Some(domain) = self.domain_of.remove(service) {
                        self.domains.release(domain);
                    }
                    self.services.get(service)
                })
                .collect(),
        };
        let me = self.settings.node_name.clone();
        let me = me.as_str();
        // For the hand-over pause: the recomputed Services' addresses other
        // nodes held, and of the nodes this one may take them from (their
        // owner so far, and those still waited for) the ones that could
        // keep them. A Service not recomputed kept its owner.
        let waited_for = self.handovers.holders();
        let mut held_elsewhere: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut may_keep: BTreeMap<ServiceRef, Vec<String>> = BTreeMap::new();
        for service in services {
            let key = service.key.clone();
            let mut problems = BTreeSet::new();
            let domains = &mut self.domains;
            let domain_of = &mut self.domain_of;
            let before = self.assignments.get(&key);
            let owner_so_far = before
                .and_then(|a| a.owner.as_deref())
                .filter(|owner| *owner != me);
            if let (Some(owner), Some(before)) = (owner_so_far, before) {
                for ip in &before.ips {
                    held_elsewhere.insert(*ip, owner.to_owned());
                }
            }
            let assignment = ownership::assign_among(
                &service,
                &inputs,
                |p| {
                    problems.insert(p);
                },
                |candidates| {
                    if !candidates.is_empty() {
                        domain_of.insert(key.clone(), domains.hold(candidates));
                    }
                    let keepers: Vec<String> = owner_so_far
                        .into_iter()
                        .chain(waited_for.iter().map(String::as_str))
                        .filter(|node| candidates.binary_search(node).is_ok())
                        .map(str::to_owned)
                        .collect();
                    may_keep.insert(key.clone(), keepers);
                },
            );
            if let Some(assignment) = assignment {
                self.raw.insert(key.clone(), Arc::new(assignment));
            }
            if !problems.is_empty() {
                self.problems.insert(key, problems);
            }
        }
        let mut problems: BTreeSet<(ServiceRef, Problem)> = self
            .problems
            .iter()
            .flat_map(|(service, problems)| problems.iter().map(|p| (service.clone(), p.clone())))
            .collect();
        let assignments = ownership::settle_shared(&self.raw, |service, problem| {
            problems.insert((service.clone(), problem));
        });
        self.report_problems(problems, &members);

        self.report_changes(&assignments);
        self.announced_before.clear();
        self.assignments = assignments;
        let owned = ownership::owned_by(&self.assignments, &self.settings.node_name);
        let may_hold = |service: &ServiceRef, node: &str| {
            may_keep
                .get(service)
                .map(|keepers| keepers.iter().any(|k| k == node))
        };
        let paused = self
            .handovers
            .after_pass(now, &owned, &held_elsewhere, may_hold);
        if paused > 0 {
            self.metrics.handover_paused(paused);
            debug!(
                addresses = paused,
                pause = ?self.settings.handover_pause,
                "taking over addresses from nodes that still answer for them after a pause"
            );
        }
        self.publish_owned(&owned);
    }

    /// Publishes this node's addresses (`owned`, from the assignments),
    /// less those whose hand-over it still waits for.
    pub(super) fn publish_owned(&self, owned: &BTreeMap<IpAddr, ServiceRef>) {
        let vips = self.handovers.answered(owned);
        let mut interfaces =
            ownership::interfaces_owned_by(&self.assignments, &self.settings.node_name);
        interfaces.retain(|ip, _| vips.contains_key(ip));
        let view = self.view();
        self.owned.send_if_modified(|current| {
            let changed =
                current.vips != vips || current.interfaces != interfaces || current.view != view;
            current.vips = vips;
            current.interfaces = interfaces;
            current.view = view;
            changed
        });
    }

    /// The live members that are eligible nodes, with what each declares.
    pub(super) fn eligible_members(&self) -> BTreeMap<String, Member> {
        self.nodes
            .state()
            .iter()
            .filter(|node| nodes::node_eligible(node, &self.selector))
            .filter_map(|node| node.metadata.name.clone())
            .filter_map(|name| {
                let member = self.last_members.get(&name)?.clone();
                Some((name, member))
            })
            .collect()
    }
}
