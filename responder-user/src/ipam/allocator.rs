//! The allocator: Services in, addresses out, deterministically. It keeps every
//! address that is still right for its Service, picks the first free address in pool
//! order for what is missing, and changes nothing when it refuses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::error::{AllocationError, StaleAddress, StaleReason};
use super::family::{IpFamily, IpFamilyPolicy};
use super::ledger::Ledger;
use super::pool::{Located, Pool, PoolSet};
use super::range::reserved_anycast;
use super::request::{Intent, ServiceRequest};
use crate::k8s::ServiceRef;

/// The result of `Allocator::assign`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// In `spec.ipFamilies` order.
    pub addresses: Vec<AssignedAddress>,
    /// PreferDualStack only: why a family got no address (the Service still got the
    /// other). Worth an Event, not a failure.
    pub unfilled: Vec<AllocationError>,
}

impl Assignment {
    pub fn ips(&self) -> Vec<IpAddr> {
        self.addresses.iter().map(|a| a.address).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedAddress {
    pub address: IpAddr,
    pub pool: String,
}

#[derive(Clone, Debug)]
struct Holding {
    request: ServiceRequest,
    /// `None` only for Services restored by `rebuild` whose request does not read.
    intent: Option<Intent>,
    addresses: Vec<IpAddr>,
}

#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: PoolSet,
    holdings: BTreeMap<ServiceRef, Holding>,
    ledger: Ledger,
}

impl Allocator {
    pub fn new(pools: PoolSet) -> Self {
        Allocator {
            pools,
            ..Default::default()
        }
    }

    /// Restores the state after a restart from the addresses in Services' statuses, so
    /// no address moves. Each address that lies in a pool is kept for its Service —
    /// even one no longer right for it, which is reported, so nobody else takes it
    /// before the Service is reallocated. Addresses in no pool (or skipped by
    /// avoidBuggyIPs), a second address of one family, and addresses another Service
    /// holds incompatibly are dropped and reported. Pass Services oldest first: an
    /// earlier Service keeps a contested address.
    pub fn rebuild(
        pools: PoolSet,
        statuses: impl IntoIterator<Item = (ServiceRequest, Vec<IpAddr>)>,
    ) -> (Allocator, Vec<StaleAddress>) {
        let mut allocator = Allocator::new(pools);
        let mut stale = Vec::new();
        for (request, addresses) in statuses {
            let key = request.key.clone();
            // A Service listed twice: the later status wins.
            allocator.release(&key);
            let intent = request.intent().ok();
            let sharing = request.sharing();
            let mut kept: Vec<IpAddr> = Vec::new();
            for address in addresses {
                let family = IpFamily::of(address);
                let problem = if kept.iter().any(|k| IpFamily::of(*k) == family) {
                    Some(StaleReason::SurplusFamily { family })
                } else {
                    match allocator.pools.locate(address) {
                        Located::Outside => Some(StaleReason::NotInAnyPool),
                        Located::Avoided(pool) => Some(StaleReason::AvoidedByPool {
                            pool: pool.name().to_owned(),
                        }),
                        Located::Reserved(_, reserved) => {
                            Some(StaleReason::ReservedAnycast(reserved))
                        }
                        Located::In(_) => allocator
                            .ledger
                            .check(address, &key, &sharing)
                            .err()
                            .map(|c| StaleReason::Conflict(Box::new(c))),
                    }
                };
                if let Some(reason) = problem {
                    stale.push(StaleAddress {
                        service: key.clone(),
                        address,
                        reason,
                    });
                    continue;
                }
                allocator.ledger.add(address, &key, &sharing);
                kept.push(address);
                if let Some(reason) = allocator.stale_reason(&request, intent.as_ref(), address) {
                    stale.push(StaleAddress {
                        service: key.clone(),
                        address,
                        reason,
                    });
                }
            }
            if !kept.is_empty() {
                allocator.holdings.insert(
                    key,
                    Holding {
                        request,
                        intent,
                        addresses: kept,
                    },
                );
            }
        }
        (allocator, stale)
    }

    pub fn pools(&self) -> &PoolSet {
        &self.pools
    }

    /// The Services holding addresses.
    pub fn holders(&self) -> impl Iterator<Item = &ServiceRef> {
        self.holdings.keys()
    }

    /// The addresses a Service holds, in the order last assigned.
    pub fn addresses(&self, service: &ServiceRef) -> Option<&[IpAddr]> {
        self.holdings.get(service).map(|h| h.addresses.as_slice())
    }

    /// Replaces the pools. Nothing moves here: every address still right for its
    /// Service stays; those that are not are returned, and the controller calls
    /// `assign` for their Services.
    pub fn set_pools(&mut self, pools: PoolSet) -> Vec<StaleAddress> {
        self.pools = pools;
        self.holdings
            .iter()
            .flat_map(|(key, holding)| {
                holding.addresses.iter().filter_map(|&address| {
                    self.stale_reason(&holding.request, holding.intent.as_ref(), address)
                        .map(|reason| StaleAddress {
                            service: key.clone(),
                            address,
                            reason,
                        })
                })
            })
            .collect()
    }

    /// Frees a Service's addresses (it was deleted or stopped being a LoadBalancer).
    pub fn release(&mut self, service: &ServiceRef) -> Option<Vec<IpAddr>> {
        let holding = self.holdings.remove(service)?;
        for &address in &holding.addresses {
            self.ledger.remove(address, service);
        }
        Some(holding.addresses)
    }

    /// Gives the Service its addresses: idempotent, and the call to make whenever the
    /// Service, its Namespace's labels or the pools change. Each family keeps its
    /// current address while that is still right; otherwise the requested address is
    /// checked, or the first free address taken from the first pool (in selection
    /// order) that has one. On error nothing changes, the Service keeps what it held.
    pub fn assign(&mut self, request: &ServiceRequest) -> Result<Assignment, AllocationError> {
        let intent = request.intent()?;
        let candidates = self.candidates(request, &intent)?;
        let current = self
            .holdings
            .get(&request.key)
            .map(|h| h.addresses.clone())
            .unwrap_or_default();

        let mut picked: Vec<AssignedAddress> = Vec::new();
        let mut unfilled = Vec::new();
        for &family in &intent.families {
            let kept = current.iter().find_map(|&address| {
                let pool = self.judge(request, Some(&intent), address).ok()?;
                let shareable = self.ledger.check(address, &request.key, &intent.sharing);
                (IpFamily::of(address) == family && shareable.is_ok()).then_some((address, pool))
            });
            let found = match (kept, intent.requested_for(family)) {
                (Some(kept), _) => Some(kept),
                (None, Some(address)) => {
                    Some((address, self.check_requested(request, &intent, address)?))
                }
                // A request for some families only gets exactly those.
                (None, None) if !intent.requested.is_empty() => continue,
                (None, None) => self.pick(request, &intent, &candidates, family),
            };
            match found {
                Some((address, pool)) => picked.push(AssignedAddress {
                    address,
                    pool: pool.name().to_owned(),
                }),
                None => unfilled.push(family),
            }
        }

        let no_free = |families: Vec<IpFamily>| AllocationError::NoFreeAddress {
            service: request.key.clone(),
            pools: candidates
                .iter()
                .filter(|p| families.iter().any(|f| p.has_family(*f)))
                .map(|p| p.name().to_owned())
                .collect(),
            families,
            policy: intent.policy,
        };
        if picked.is_empty() {
            return Err(no_free(unfilled));
        }
        if intent.policy == IpFamilyPolicy::RequireDualStack && !unfilled.is_empty() {
            return Err(no_free(unfilled));
        }
        let unfilled = unfilled.into_iter().map(|f| no_free(vec![f])).collect();

        self.commit(request, intent, picked.iter().map(|a| a.address).collect());
        Ok(Assignment {
            addresses: picked,
            unfilled,
        })
    }

    /// The pools automatic allocation may use for this Service, in the order tried:
    /// the named pool alone (whatever its autoAssign), or every pool with autoAssign
    /// that serves the Service.
    fn candidates(
        &self,
        request: &ServiceRequest,
        intent: &Intent,
    ) -> Result<Vec<&Pool>, AllocationError> {
        let service = || request.key.clone();
        let Some(named) = &intent.pool else {
            return Ok(self
                .pools
                .in_selection_order()
                .filter(|p| p.auto_assign() && p.admits(request).is_ok())
                .collect());
        };
        let Some(pool) = self.pools.get(named) else {
            return Err(match self.pools.refusal(named) {
                Some(refusal) => AllocationError::RefusedPool {
                    service: service(),
                    pool: named.clone(),
                    reason: refusal
                        .problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                },
                None => AllocationError::UnknownPool {
                    service: service(),
                    pool: named.clone(),
                },
            });
        };
        pool.admits(request)
            .map_err(|reason| AllocationError::NamedPoolNotAdmitted {
                service: service(),
                pool: named.clone(),
                reason,
            })?;
        Ok(vec![pool])
    }

    fn pick<'a>(
        &self,
        request: &ServiceRequest,
        intent: &Intent,
        candidates: &[&'a Pool],
        family: IpFamily,
    ) -> Option<(IpAddr, &'a Pool)> {
        candidates.iter().find_map(|&pool| {
            pool.ranges(family).find_map(|range| {
                let address = self.ledger.first_available(
                    range,
                    pool.avoid_buggy_ips(),
                    &request.key,
                    &intent.sharing,
                )?;
                Some((address, pool))
            })
        })
    }

    /// A requested address must not be a reserved anycast address, must lie in a pool
    /// that serves the Service (autoAssign does not matter), in the named pool if one
    /// is named, and be free or shareable.
    fn check_requested(
        &self,
        request: &ServiceRequest,
        intent: &Intent,
        address: IpAddr,
    ) -> Result<&Pool, AllocationError> {
        let service = || request.key.clone();
        // In a pool or not: an anycast address is never a LoadBalancer's.
        if let Some(reserved) = reserved_anycast(address) {
            return Err(AllocationError::RequestedReserved {
                service: service(),
                address,
                reserved,
            });
        }
        let pool = match self.pools.locate(address) {
            // (A reserved one was refused above.)
            Located::In(pool) | Located::Reserved(pool, _) => pool,
            Located::Avoided(pool) => {
                return Err(AllocationError::RequestedAvoided {
                    service: service(),
                    address,
                    pool: pool.name().to_owned(),
                })
            }
            Located::Outside => {
                return Err(AllocationError::RequestedNotInPool {
                    service: service(),
                    address,
                })
            }
        };
        if let Some(named) = intent.pool.as_ref().filter(|n| *n != pool.name()) {
            return Err(AllocationError::RequestedOutsideNamedPool {
                service: service(),
                address,
                pool: pool.name().to_owned(),
                named: named.clone(),
            });
        }
        pool.admits(request)
            .map_err(|reason| AllocationError::RequestedPoolNotAdmitted {
                service: service(),
                address,
                pool: pool.name().to_owned(),
                reason,
            })?;
        self.ledger
            .check(address, &request.key, &intent.sharing)
            .map_err(|conflict| AllocationError::RequestedInUse {
                service: service(),
                conflict: Box::new(conflict),
            })?;
        Ok(pool)
    }

    fn stale_reason(
        &self,
        request: &ServiceRequest,
        intent: Option<&Intent>,
        address: IpAddr,
    ) -> Option<StaleReason> {
        self.judge(request, intent, address).err()
    }

    /// The pool of `address` if it is still right for the Service, judged on the pools
    /// and on the Service's request (sharing is checked separately: it depends on the
    /// other holders). Without an intent (a request that does not read) only the pools
    /// are judged.
    fn judge(
        &self,
        request: &ServiceRequest,
        intent: Option<&Intent>,
        address: IpAddr,
    ) -> Result<&Pool, StaleReason> {
        let pool = match self.pools.locate(address) {
            Located::In(pool) => pool,
            Located::Avoided(pool) => {
                return Err(StaleReason::AvoidedByPool {
                    pool: pool.name().to_owned(),
                })
            }
            Located::Reserved(_, reserved) => return Err(StaleReason::ReservedAnycast(reserved)),
            Located::Outside => return Err(StaleReason::NotInAnyPool),
        };
        if let Some(named) = request.named_pool().filter(|n| *n != pool.name()) {
            return Err(StaleReason::OutsideNamedPool {
                pool: pool.name().to_owned(),
                named: named.to_owned(),
            });
        }
        pool.admits(request)
            .map_err(|reason| StaleReason::PoolNotAdmitted {
                pool: pool.name().to_owned(),
                reason,
            })?;
        let Some(intent) = intent else {
            return Ok(pool);
        };
        let family = IpFamily::of(address);
        if !intent.families.contains(&family) {
            return Err(StaleReason::FamilyNotWanted { family });
        }
        if !intent.requested.is_empty() && !intent.requested.contains(&address) {
            return Err(StaleReason::NotRequested);
        }
        Ok(pool)
    }

    fn commit(&mut self, request: &ServiceRequest, intent: Intent, addresses: Vec<IpAddr>) {
        self.release(&request.key);
        for &address in &addresses {
            self.ledger.add(address, &request.key, &intent.sharing);
        }
        self.holdings.insert(
            request.key.clone(),
            Holding {
                request: request.clone(),
                intent: Some(intent),
                addresses,
            },
        );
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}
