//! What the ownership loop tells the operator: a log line and one Event
//! (from one node) per pool or advertisement left out and per refused or
//! unadvertised address, and the ownership changes of each recomputation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use tracing::{info, warn};

use super::super::advertising::{Advertising, BadKind, BadObject};
use super::super::events::{conflict_note, event_reason_of, OwnershipEvent};
use super::super::membership::Member;
use super::super::ownership::{self, Assignments};
use super::super::reason::Problem;
use super::Assigner;
use crate::conflicts::{ClaimReport, Defence};
use crate::k8s::ServiceRef;

impl Assigner {
    /// Rebuilds what the pools and advertisements say; logs each object left
    /// out once, and has one node (the top of a rendezvous over the live
    /// members) record an Event on it.
    pub(super) fn rebuild_advertising(&mut self) {
        let Some(metallb) = &self.metallb else {
            return;
        };
        let (advertising, bad) =
            Advertising::build(&metallb.pools.state(), &metallb.advertisements.state());
        if advertising.is_some() != self.advertising.is_some() {
            match advertising.is_some() {
                true => info!("L2Advertisements exist: they decide which nodes announce which addresses, on which interfaces"),
                false => info!("no L2Advertisement: every eligible node may announce every address on its interfaces"),
            }
        }
        self.advertising = advertising;
        let bad: BTreeSet<BadObject> = bad.into_iter().collect();
        for object in bad.difference(&self.reported_bad) {
            warn!(kind = ?object.kind, name = %object.name, reason = %object.reason, "left out; the others carry on");
            let key = ServiceRef::new(
                self.settings.namespace.as_str(),
                format!("{:?}/{}", object.kind, object.name),
            );
            let reporter =
                ownership::pick_owner(self.last_members.keys().map(String::as_str), &key);
            if reporter != Some(self.settings.node_name.as_str()) {
                continue;
            }
            let namespace = &self.settings.namespace;
            let regarding = match object.kind {
                BadKind::Pool => metallb
                    .pools
                    .get(&ObjectRef::new(&object.name).within(namespace))
                    .map(|o| o.object_ref(&())),
                BadKind::Advertisement => metallb
                    .advertisements
                    .get(&ObjectRef::new(&object.name).within(namespace))
                    .map(|o| o.object_ref(&())),
            };
            if let Some(regarding) = regarding {
                let _ = self.events.send(OwnershipEvent::Invalid {
                    regarding: Box::new(regarding),
                    reason: object.reason.clone(),
                });
            }
        }
        self.reported_bad = bad;
    }

    /// Logs each problem once, and records an Event on the Service for each
    /// address left unannounced: from one node only, the Service's top
    /// candidate, unless only this node knows the problem (an address of its
    /// own interfaces).
    pub(super) fn report_problems(
        &mut self,
        problems: BTreeSet<(ServiceRef, Problem)>,
        members: &BTreeMap<String, Member>,
    ) {
        for (service, problem) in problems.difference(&self.reported_problems) {
            warn!(%service, %problem, object = problem.object.as_deref().unwrap_or_default(), "not answering for a load-balancer ingress entry");
            let Some(event_reason) = problem.reason().and_then(event_reason_of) else {
                continue;
            };
            let reporter = ownership::pick_owner(members.keys().map(String::as_str), service);
            if problem.local_only || reporter == Some(self.settings.node_name.as_str()) {
                if let Some(object) = self.services.get(service) {
                    // The receiver only goes away when the agent stops.
                    let _ = self.events.send(OwnershipEvent::NotAnswered {
                        service: object,
                        event_reason,
                        problem: Box::new(problem.clone()),
                    });
                }
            }
        }
        self.reported_problems = problems;
    }

    /// Records an Event on the Service whose VIP another MAC claims, when
    /// this node owns it and did something about it (a defence repeated
    /// within its interval, or a yield kept, is in the log only).
    pub(super) fn tell_claim(&self, report: &ClaimReport) {
        let told = matches!(
            report.defence,
            Defence::Defended | Defence::TookBack | Defence::Yielded
        );
        let node = self.settings.node_name.as_str();
        let owning = self.assignments.values().find(|assignment| {
            assignment.owner.as_deref() == Some(node) && assignment.ips.contains(&report.ip)
        });
        if let (true, Some(assignment)) = (told, owning) {
            let note = conflict_note(
                &report.claimant(),
                report.ip,
                &report.interface,
                node,
                &report.defence.to_string(),
            );
            // The receiver only goes away when the agent stops.
            let _ = self.events.send(OwnershipEvent::Conflict {
                service: Arc::clone(&assignment.service),
                note,
            });
        }
    }

    pub(super) fn report_changes(&self, assignments: &Assignments) {
        let node = self.settings.node_name.as_str();
        let services: BTreeSet<&ServiceRef> =
            self.assignments.keys().chain(assignments.keys()).collect();
        for service in services {
            let old = self.assignments.get(service);
            let new = assignments.get(service);
            let old_owner = old.and_then(|a| a.owner.as_deref());
            let new_owner = new.and_then(|a| a.owner.as_deref());
            let new_ips = new.map(|a| a.ips.as_slice()).unwrap_or_default();
            // A restarted agent that already announced a Service's addresses
            // before the restart keeps it: not a change worth an Event.
            let kept = old.is_none()
                && !new_ips.is_empty()
                && new_ips.iter().all(|ip| self.announced_before.contains(ip));
            let old_ips = match kept {
                true => new_ips,
                false => old.map(|a| a.ips.as_slice()).unwrap_or_default(),
            };
            if old_owner != new_owner {
                info!(%service, ips = ?new_ips, old_owner = old_owner.unwrap_or("none"), new_owner = new_owner.unwrap_or("none"), "ownership changed");
            } else if old_ips != new_ips {
                info!(%service, old_ips = ?old_ips, new_ips = ?new_ips, owner = new_owner.unwrap_or("none"), "addresses changed");
            }
            let was_ours = old_owner == Some(node) || kept;
            let is_ours = new_owner == Some(node);
            if was_ours != is_ours {
                self.metrics.ownership_change();
            }
            // The receiver only goes away when the agent stops, when Events no longer matter.
            let _ = match (old, new) {
                (Some(old), _) if was_ours && !is_ours => {
                    self.events.send(OwnershipEvent::Stopped {
                        service: Arc::clone(&old.service),
                        ips: old.ips.clone(),
                    })
                }
                (_, Some(new)) if is_ours && (!was_ours || old_ips != new_ips) => {
                    self.events.send(OwnershipEvent::Started {
                        service: Arc::clone(&new.service),
                        ips: new.ips.clone(),
                    })
                }
                _ => Ok(()),
            };
        }
    }
}
