//! The responder agent: loads the XDP program, owns the VIP map, announces.
//!
//! Modules the `responder` binary or the integration tests use are public;
//! everything else is crate-private, so unused API shows up as dead code.
#![warn(unreachable_pub)]

pub mod agent;
pub mod bpf;
pub mod cluster;
pub mod conflicts;
pub mod controller;
pub(crate) mod cpu_bound;
pub mod crd;
pub(crate) mod dataplane;
pub mod duration;
pub mod error;
pub(crate) mod event_record;
#[cfg(test)]
mod fakes;
pub(crate) mod garp;
pub(crate) mod interface_names;
pub mod ipam;
pub mod k8s;
pub mod memory;
pub mod metrics;
pub mod netif;
pub mod nic;
pub mod sources;
pub mod vip;

/// The XDP object built by aya-build from `responder-ebpf`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/responder-xdp"));
