//! The responder agent: loads the XDP program, owns the VIP map, announces.

/// The XDP object built by aya-build from `responder-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/responder"));
