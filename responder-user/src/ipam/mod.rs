//! Address management for LoadBalancer Services, compatible with MetalLB's
//! `IPAddressPool` and Service annotations: pure and IO-free, so the controller maps
//! Kubernetes objects to these plain structs and applies the results.
//!
//! - `PoolSet::build` checks pools one by one (a bad pool is refused with reasons, the
//!   others work);
//! - `Allocator::assign` gives a Service its addresses (idempotent; keeps what is
//!   still right; first free address in pool order otherwise);
//! - `Allocator::set_pools` / `Allocator::rebuild` report addresses that must move
//!   and never move any themselves;
//! - `Allocator::pool_status` gives the counters for the pool status.
//!
//! Nothing here enumerates addresses: ranges are integer intervals and used addresses
//! are kept as ordered runs, so a /64 pool costs the same as a /30.
//!
//! No IPv6 pool hands out the anycast addresses every /64 reserves (interface
//! identifier zero, RFC 4291 §2.6.1, and the highest 128, RFC 2526): skipped when
//! allocating, left out of the counts, refused when requested (`reserved_anycast`).

mod allocator;
mod error;
mod family;
mod ledger;
mod policy;
mod pool;
mod port;
mod range;
mod request;
mod sharing;
mod status;
mod used;

#[cfg(test)]
mod allocator_tests;

pub use allocator::{Allocator, AssignedAddress, Assignment};
pub use error::{
    AllocationError, NotAdmitted, PoolError, PoolProblem, SharingConflict, StaleAddress,
    StaleReason,
};
pub use family::{IpFamily, IpFamilyPolicy};
pub use policy::{ServiceAllocation, ServiceAllocationSpec};
pub use pool::{Located, Pool, PoolEntry, PoolSet, PoolSpec};
pub use port::{Protocol, ServicePort};
pub use range::{is_buggy, reserved_anycast, AddressRange, RangeError, ReservedAnycast};
pub use request::{
    ServiceRequest, ANNOTATION_ADDRESS_POOL, ANNOTATION_ALLOW_SHARED_IP,
    ANNOTATION_LOAD_BALANCER_IPS, LEGACY_ANNOTATION_ADDRESS_POOL,
    LEGACY_ANNOTATION_ALLOW_SHARED_IP, LEGACY_ANNOTATION_LOAD_BALANCER_IPS,
};
pub use status::{saturating_i64, FamilyCounts, PoolStatus};
