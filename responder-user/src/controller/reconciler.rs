//! The controller's decisions, free of IO: Services, Namespaces' labels and pools
//! in; status writes and Events out. The allocation itself is the IPAM core's; this
//! maps objects to it, keeps what was already told or written so nothing is said
//! or written twice, and gives up addresses the pools no longer allow.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::runtime::events::EventType;
use kube::Resource;
use tracing::{info, warn};

use super::service::{allocated_from, ingress, is_ours, request};
use crate::crd::pool_set_of;
use crate::crd::{IPAddressPool, IPAddressPoolStatus};
use crate::ipam::{Allocator, Located, PoolSet, ServiceRequest, StaleAddress};
use crate::k8s::ServiceRef;

/// Event reasons, as MetalLB's controller records them where it has one.
pub(crate) const REASON_ALLOCATED: &str = "IPAllocated";
pub(crate) const REASON_FAILED: &str = "AllocationFailed";
/// PreferDualStack got one family only.
pub(crate) const REASON_PARTIAL: &str = "IPFamilyNotAllocated";
pub(crate) const REASON_INVALID_POOL: &str = "InvalidPool";

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    WriteStatus(StatusWrite),
    WritePoolStatus {
        pool: String,
        status: IPAddressPoolStatus,
    },
    Notice(Notice),
}

/// A Service's `status.loadBalancer.ingress` and pool annotation, to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusWrite {
    pub(crate) key: ServiceRef,
    /// In `spec.ipFamilies` order; empty clears the ingress.
    pub(crate) ingress: Vec<IpAddr>,
    /// The annotation's value; `None` removes it.
    pub(crate) pools: Option<String>,
    /// Whether the annotation already holds `pools` (its patch is skipped).
    pub(crate) annotation_current: bool,
}

/// A Kubernetes Event to record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Notice {
    pub(crate) regarding: ObjectReference,
    pub(crate) type_: EventType,
    pub(crate) reason: &'static str,
    pub(crate) note: String,
}

/// A write not yet seen back through the watch. While the watch shows a version
/// from before it — the one it was decided on, or one the write itself made on
/// its way (the annotation patch before the status patch) — deciding again on that
/// view must not repeat it. (Versions are only compared for equality: their order
/// is the API server's business.)
#[derive(Clone, Debug, PartialEq, Eq)]
struct InFlight<T> {
    before: BTreeSet<Option<String>>,
    value: T,
}

impl<T: PartialEq> InFlight<T> {
    fn new(based_on: Option<String>, value: T) -> Self {
        InFlight {
            before: [based_on].into(),
            value,
        }
    }

    fn covers(&self, version: &Option<String>, value: &T) -> bool {
        self.value == *value && self.before.contains(version)
    }
}

/// A Service's ingress addresses and pool annotation.
type StatusValue = (Vec<IpAddr>, Option<String>);

pub(crate) struct Reconciler {
    lb_class: Option<String>,
    allocator: Allocator,
    /// The last problem told per Service, so each is told once.
    told: BTreeMap<ServiceRef, String>,
    /// The last refusal told per pool.
    told_pools: BTreeMap<String, String>,
    /// Addresses the pools no longer allow, by Service, until it is allocated anew.
    moving: BTreeMap<ServiceRef, Vec<StaleAddress>>,
    /// Services of ours left without any address.
    pending: BTreeSet<ServiceRef>,
    status_writes: BTreeMap<ServiceRef, InFlight<StatusValue>>,
    pool_writes: BTreeMap<String, InFlight<IPAddressPoolStatus>>,
}

impl Reconciler {
    /// The state after a (re)start, from the Services' statuses, so no address
    /// moves: pass `services` oldest first, so an earlier Service keeps a contested
    /// address. Returns the Events about refused pools.
    pub(crate) fn rebuild(
        lb_class: Option<String>,
        pools: &[Arc<IPAddressPool>],
        services: &[Arc<Service>],
        namespace_labels: impl Fn(&str) -> BTreeMap<String, String>,
    ) -> (Self, Vec<Action>) {
        let mut reconciler = Reconciler {
            lb_class,
            allocator: Allocator::default(),
            told: BTreeMap::new(),
            told_pools: BTreeMap::new(),
            moving: BTreeMap::new(),
            pending: BTreeSet::new(),
            status_writes: BTreeMap::new(),
            pool_writes: BTreeMap::new(),
        };
        let (set, actions) = reconciler.pool_set(pools);
        let statuses = services
            .iter()
            .filter(|s| is_ours(s, reconciler.lb_class.as_deref()))
            .filter_map(|s| {
                let labels = namespace_labels(s.metadata.namespace.as_deref().unwrap_or_default());
                // A Service that does not read keeps its addresses by key alone.
                let request = request(s, &labels).unwrap_or_else(|_| ServiceRequest {
                    key: ServiceRef::of(s),
                    ..ServiceRequest::default()
                });
                let addresses = ingress(s);
                (!addresses.is_empty()).then_some((request, addresses))
            });
        let (allocator, stale) = Allocator::rebuild(set, statuses);
        reconciler.allocator = allocator;
        let kept: usize = reconciler
            .allocator
            .holders()
            .filter_map(|key| reconciler.allocator.addresses(key))
            .map(<[IpAddr]>::len)
            .sum();
        info!(
            addresses = kept,
            "allocation state rebuilt from Service statuses"
        );
        reconciler.note_stale(stale);
        (reconciler, actions)
    }

    /// New pools: nothing moves here, the addresses they no longer allow are noted
    /// and move when their Services are reconciled (reconcile them all next).
    pub(crate) fn set_pools(&mut self, pools: &[Arc<IPAddressPool>]) -> Vec<Action> {
        let (set, actions) = self.pool_set(pools);
        let stale = self.allocator.set_pools(set);
        self.note_stale(stale);
        actions
    }

    fn note_stale(&mut self, stale: Vec<StaleAddress>) {
        self.moving.clear();
        for address in stale {
            warn!(service = %address.service, address = %address.address, reason = %address.reason, "address must move");
            self.moving
                .entry(address.service.clone())
                .or_default()
                .push(address);
        }
    }

    /// Builds the pool set and tells each new refusal once (log and Event).
    fn pool_set(&mut self, pools: &[Arc<IPAddressPool>]) -> (PoolSet, Vec<Action>) {
        let (set, refused_now) = pool_set_of(pools);
        let mut actions = Vec::new();
        for (name, text) in &refused_now {
            if self.told_pools.get(name) == Some(text) {
                continue;
            }
            warn!(pool = %name, "{text}; the other pools carry on");
            if let Some(object) = pools.iter().find(|p| p.name() == name) {
                actions.push(Action::Notice(Notice {
                    regarding: object.object_ref(&()),
                    type_: EventType::Warning,
                    reason: REASON_INVALID_POOL,
                    note: text.clone(),
                }));
            }
        }
        for name in self.told_pools.keys() {
            if !refused_now.contains_key(name) && set.get(name).is_some() {
                info!(pool = %name, "address pool accepted");
            }
        }
        self.told_pools = refused_now;
        (set, actions)
    }

    /// Decides for one Service (`None`: deleted). Idempotent: a Service whose status
    /// is already right gets no action.
    pub(crate) fn reconcile(
        &mut self,
        key: &ServiceRef,
        service: Option<&Service>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> Vec<Action> {
        let Some(service) = service else {
            self.forget(key);
            return Vec::new();
        };
        if !is_ours(service, self.lb_class.as_deref()) {
            self.forget(key);
            // A Service that stopped being a LoadBalancer keeps no address of ours.
            // (A Service of another class is never touched: loadBalancerClass cannot
            // change while the type stays LoadBalancer.)
            let still_lb =
                service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
            if !still_lb && allocated_from(service).is_some() {
                return self
                    .write_if_needed(key, service, Vec::new(), None)
                    .into_iter()
                    .collect();
            }
            return Vec::new();
        }
        let mut actions = Vec::new();
        let regarding = service.object_ref(&());
        let outcome = request(service, namespace_labels)
            .and_then(|request| self.allocator.assign(&request).map_err(|e| e.to_string()));
        let previous = ingress(service);
        match outcome {
            Ok(assignment) => {
                self.pending.remove(key);
                let partial: Vec<String> = assignment
                    .unfilled
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if partial.is_empty() {
                    self.told.remove(key);
                } else {
                    let text = format!(
                        "only {} allocated: {}",
                        join(&assignment.ips()),
                        partial.join("; ")
                    );
                    actions.extend(self.tell(
                        key,
                        &regarding,
                        EventType::Normal,
                        REASON_PARTIAL,
                        text,
                    ));
                }
            }
            Err(text) => {
                // Keep what is still allowed (a bad edit of the Service must not take
                // its address away), but not what the pools took back.
                if self.moving.contains_key(key) {
                    self.allocator.release(key);
                }
                if self.allocator.addresses(key).is_none() {
                    self.pending.insert(key.clone());
                } else {
                    self.pending.remove(key);
                }
                actions.extend(self.tell(key, &regarding, EventType::Warning, REASON_FAILED, text));
            }
        }
        let held: Vec<IpAddr> = self
            .allocator
            .addresses(key)
            .map(<[IpAddr]>::to_vec)
            .unwrap_or_default();
        let pools = self.pools_of(&held);
        if let Some(write) = self.write_if_needed(key, service, held.clone(), pools.clone()) {
            if !held.is_empty() && held != previous {
                let mut note = format!(
                    "assigned {} from pool {}",
                    join(&held),
                    pools.unwrap_or_default()
                );
                for stale in self.moving.get(key).into_iter().flatten() {
                    note.push_str(&format!("; {} moved: {}", stale.address, stale.reason));
                }
                actions.push(Action::Notice(Notice {
                    regarding,
                    type_: EventType::Normal,
                    reason: REASON_ALLOCATED,
                    note,
                }));
            }
            actions.push(write);
        }
        self.moving.remove(key);
        actions
    }

    /// A write unless the status is right or the same write is still in flight.
    fn write_if_needed(
        &mut self,
        key: &ServiceRef,
        service: &Service,
        desired: Vec<IpAddr>,
        pools: Option<String>,
    ) -> Option<Action> {
        let annotation_current = allocated_from(service) == pools.as_deref();
        let version = service.metadata.resource_version.clone();
        if ingress(service) == desired && annotation_current {
            self.status_writes.remove(key);
            return None;
        }
        let wanted = (desired, pools);
        if let Some(in_flight) = self.status_writes.get(key) {
            if in_flight.covers(&version, &wanted) {
                return None;
            }
        }
        self.status_writes
            .insert(key.clone(), InFlight::new(version, wanted.clone()));
        let (ingress, pools) = wanted;
        Some(Action::WriteStatus(StatusWrite {
            key: key.clone(),
            ingress,
            pools,
            annotation_current,
        }))
    }

    /// The write landed, through these versions of the object (the last one is
    /// what the watch will show once it has caught up).
    pub(crate) fn write_done(&mut self, key: &ServiceRef, versions: Vec<String>) {
        if let (Some(in_flight), Some((_, on_the_way))) =
            (self.status_writes.get_mut(key), versions.split_last())
        {
            in_flight
                .before
                .extend(on_the_way.iter().cloned().map(Some));
        }
    }

    /// The write failed: the next reconcile decides it again.
    pub(crate) fn write_failed(&mut self, key: &ServiceRef) {
        self.status_writes.remove(key);
    }

    pub(crate) fn pool_write_failed(&mut self, pool: &str) {
        self.pool_writes.remove(pool);
    }

    fn forget(&mut self, key: &ServiceRef) {
        self.allocator.release(key);
        self.told.remove(key);
        self.moving.remove(key);
        self.pending.remove(key);
        self.status_writes.remove(key);
    }

    fn tell(
        &mut self,
        key: &ServiceRef,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &'static str,
        note: String,
    ) -> Option<Action> {
        let told = format!("{reason}: {note}");
        if self.told.get(key) == Some(&told) {
            return None;
        }
        match type_ {
            EventType::Warning => warn!(service = %key, reason, "{note}"),
            EventType::Normal => info!(service = %key, reason, "{note}"),
        }
        self.told.insert(key.clone(), told);
        Some(Action::Notice(Notice {
            regarding: regarding.clone(),
            type_,
            reason,
            note,
        }))
    }

    /// The annotation's value: the pool of each address, in order, without repeats.
    fn pools_of(&self, addresses: &[IpAddr]) -> Option<String> {
        let mut names: Vec<&str> = Vec::new();
        for &address in addresses {
            if let Located::In(pool) = self.allocator.pools().locate(address) {
                if !names.contains(&pool.name()) {
                    names.push(pool.name());
                }
            }
        }
        (!names.is_empty()).then(|| names.join(","))
    }

    /// Status writes for the pools whose counters changed.
    pub(crate) fn pool_statuses(&mut self, pools: &[Arc<IPAddressPool>]) -> Vec<Action> {
        let mut actions = Vec::new();
        for object in pools {
            let Some(status) = self.allocator.pool_status(object.name()) else {
                continue;
            };
            let wanted = IPAddressPoolStatus::from(&status);
            let shown = object.status.as_ref().and_then(|s| s.get().ok().copied());
            let version = object.metadata.resource_version.clone();
            if shown == Some(wanted) {
                self.pool_writes.remove(object.name());
                continue;
            }
            if self
                .pool_writes
                .get(object.name())
                .is_some_and(|w| w.covers(&version, &wanted))
            {
                continue;
            }
            self.pool_writes
                .insert(object.name().to_owned(), InFlight::new(version, wanted));
            actions.push(Action::WritePoolStatus {
                pool: object.name().to_owned(),
                status: wanted,
            });
        }
        actions
    }

    pub(crate) fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Services of ours without any address.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn refused_pools(&self) -> usize {
        self.told_pools.len()
    }

    /// Services holding addresses: with the watched ones, what a full pass visits
    /// (a Service deleted while the watch was down is only here).
    pub(crate) fn holders(&self) -> Vec<ServiceRef> {
        self.allocator.holders().cloned().collect()
    }
}

fn join(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
