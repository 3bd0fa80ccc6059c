//! The responder agent: loads the XDP program, owns the VIP map, announces.

pub mod kube;

pub mod agent;
pub mod announce;
pub mod bpf;
pub mod dataplane;
pub mod duration;
pub mod error;
pub mod ipam;
pub mod metrics;
pub mod netif;
pub mod sources;
pub mod vip;

pub mod netwatch;

/// The XDP object built by aya-build from `responder-ebpf`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/responder-xdp"));
