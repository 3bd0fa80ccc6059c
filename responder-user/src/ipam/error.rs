//! Why a pool is refused, why a Service gets no address, why an existing address must
//! move. Every message names the object and reads as a Kubernetes Event.

use std::fmt;
use std::net::IpAddr;

use super::family::{IpFamily, IpFamilyPolicy};
use super::port::ServicePort;
use super::range::RangeError;
use super::range::ReservedAnycast;
use crate::k8s::ServiceRef;

/// One reason an `IPAddressPool` is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolProblem {
    #[error("the pool has no name")]
    MissingName,
    #[error("another pool is already named so")]
    DuplicateName,
    #[error("spec.addresses is empty")]
    NoAddresses,
    #[error("invalid address entry {0}")]
    InvalidEntry(RangeError),
    #[error("entry {entry:?} overlaps entry {other_entry:?} of the same pool")]
    OverlapWithinPool { entry: String, other_entry: String },
    #[error("entry {entry:?} overlaps entry {other_entry:?} of pool {other_pool:?}")]
    OverlapsPool {
        entry: String,
        other_pool: String,
        other_entry: String,
    },
    #[error("serviceAllocation.priority {0} is negative (1 is tried first, 0 means no priority)")]
    NegativePriority(i32),
    #[error("serviceAllocation.{field}: {reason}")]
    InvalidSelector { field: String, reason: String },
}

/// A refused pool: it takes no part in allocation, the other pools carry on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("address pool {pool:?} refused: {}", join(problems, "; "))]
pub struct PoolError {
    pub pool: String,
    pub problems: Vec<PoolProblem>,
}

/// Why a pool does not serve a Service (`serviceAllocation`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAdmitted {
    #[error(
        "namespace {namespace:?} is neither in serviceAllocation.namespaces nor matched by \
         serviceAllocation.namespaceSelectors"
    )]
    Namespace { namespace: String },
    #[error("the Service's labels match none of serviceAllocation.serviceSelectors")]
    ServiceLabels,
}

/// Why a Service may not use an address another Service already holds; the message
/// around it names the Service.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharingConflict {
    #[error(
        "{address} is already used by {holder}, and this Service has no allow-shared-ip annotation"
    )]
    ClaimantDoesNotShare { address: IpAddr, holder: ServiceRef },
    #[error("{address} is already used by {holder}, which does not allow sharing")]
    HolderDoesNotShare { address: IpAddr, holder: ServiceRef },
    #[error(
        "{address} is used by {holder} with sharing key {theirs:?}, but this Service has sharing key {ours:?}"
    )]
    KeyMismatch {
        address: IpAddr,
        holder: ServiceRef,
        ours: String,
        theirs: String,
    },
    #[error(
        "{address} is used by {holder}, which selects other pods ({theirs:?}, not {ours:?}): \
         Services with externalTrafficPolicy Local share an address only with the same selector"
    )]
    BackendMismatch {
        address: IpAddr,
        holder: ServiceRef,
        ours: String,
        theirs: String,
    },
    #[error("port {port} on {address} is already used by {holder}")]
    PortInUse {
        address: IpAddr,
        port: ServicePort,
        holder: ServiceRef,
    },
}

/// Why a Service gets no (or not all of its) addresses: the text of an
/// `AllocationFailed` Event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error(
        "{service} sets both spec.loadBalancerIP and {annotation}; \
         set only the annotation"
    )]
    ConflictingRequests {
        service: ServiceRef,
        annotation: &'static str,
    },
    #[error("{service}: {field} has an invalid address {value:?}")]
    MalformedRequest {
        service: ServiceRef,
        field: &'static str,
        value: String,
    },
    #[error("{service}: {field} lists more than one {family} address")]
    RequestedFamilyTwice {
        service: ServiceRef,
        field: &'static str,
        family: IpFamily,
    },
    #[error(
        "{service}: requested address {address} is {family}, but the Service's IP families \
         are {}",
        join(families, ", ")
    )]
    RequestedFamilyNotInService {
        service: ServiceRef,
        address: IpAddr,
        family: IpFamily,
        families: Vec<IpFamily>,
    },
    #[error("{service} is RequireDualStack but {field} has no {missing} address")]
    RequestedFamilyMissing {
        service: ServiceRef,
        field: &'static str,
        missing: IpFamily,
    },
    #[error("{service}: spec.ipFamilies lists {family} twice")]
    DuplicateIpFamily {
        service: ServiceRef,
        family: IpFamily,
    },
    #[error("address pool {pool:?} named by {service} does not exist")]
    UnknownPool { service: ServiceRef, pool: String },
    #[error("address pool {pool:?} named by {service} is refused: {reason}")]
    RefusedPool {
        service: ServiceRef,
        pool: String,
        reason: String,
    },
    #[error("address pool {pool:?} named by {service} does not serve it: {reason}")]
    NamedPoolNotAdmitted {
        service: ServiceRef,
        pool: String,
        reason: NotAdmitted,
    },
    #[error("requested address {address} for {service} is not in any address pool")]
    RequestedNotInPool {
        service: ServiceRef,
        address: IpAddr,
    },
    #[error(
        "requested address {address} for {service} ends in .0 or .255, which pool {pool:?} \
         avoids (avoidBuggyIPs)"
    )]
    RequestedAvoided {
        service: ServiceRef,
        address: IpAddr,
        pool: String,
    },
    #[error("requested address {address} for {service} is refused: it is {reserved}")]
    RequestedReserved {
        service: ServiceRef,
        address: IpAddr,
        reserved: ReservedAnycast,
    },
    #[error(
        "requested address {address} for {service} is in pool {pool:?}, not in the named pool {named:?}"
    )]
    RequestedOutsideNamedPool {
        service: ServiceRef,
        address: IpAddr,
        pool: String,
        named: String,
    },
    #[error("requested address {address} for {service} is in pool {pool:?}, which does not serve it: {reason}")]
    RequestedPoolNotAdmitted {
        service: ServiceRef,
        address: IpAddr,
        pool: String,
        reason: NotAdmitted,
    },
    #[error("requested address unavailable for {service}: {conflict}")]
    RequestedInUse {
        service: ServiceRef,
        conflict: Box<SharingConflict>,
    },
    #[error(
        "no {} pool has a free address for {service} ({policy}){}",
        join(families, " or "),
        Tried(pools)
    )]
    NoFreeAddress {
        service: ServiceRef,
        families: Vec<IpFamily>,
        policy: IpFamilyPolicy,
        /// Pools of the family that serve the Service, in the order tried.
        pools: Vec<String>,
    },
}

/// Why an address a Service holds is no longer right for it: the Service must be
/// allocated again (the controller calls `Allocator::assign`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StaleReason {
    #[error("it is not in any address pool")]
    NotInAnyPool,
    #[error("pool {pool:?} now avoids addresses ending in .0 or .255")]
    AvoidedByPool { pool: String },
    #[error("it is {0}")]
    ReservedAnycast(ReservedAnycast),
    #[error("it is in pool {pool:?}, which does not serve the Service: {reason}")]
    PoolNotAdmitted { pool: String, reason: NotAdmitted },
    #[error("it is in pool {pool:?}, but the Service names pool {named:?}")]
    OutsideNamedPool { pool: String, named: String },
    #[error("the Service requests other addresses")]
    NotRequested,
    #[error("the Service no longer has the {family} family")]
    FamilyNotWanted { family: IpFamily },
    #[error("the Service already holds another {family} address")]
    SurplusFamily { family: IpFamily },
    #[error("{0}")]
    Conflict(Box<SharingConflict>),
}

/// An address of a Service that must move, found by `Allocator::set_pools` or
/// `Allocator::rebuild`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{address} of {service} needs reallocation: {reason}")]
pub struct StaleAddress {
    pub service: ServiceRef,
    pub address: IpAddr,
    pub reason: StaleReason,
}

struct Tried<'a>(&'a [String]);

impl fmt::Display for Tried<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("; no pool with such addresses serves it")
        } else {
            write!(f, "; pools tried: {}", self.0.join(", "))
        }
    }
}

fn join<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}
