//! The kernel oracle: generated ARP and Neighbor Discovery frames go both to
//! a Linux interface that owns the fuzzer's untagged VIPs and to the XDP
//! responder answering for the same VIPs with the same MAC, and the answers
//! are compared field by field. The reference model was written beside the
//! program and shares its choices; the kernel is an implementation nobody
//! on the project wrote, and the one every client on a segment runs.
//!
//! - [`segment`]: the namespaces, veths, sysctls, addresses and programs;
//! - [`link`]: AF_PACKET on the two client ends;
//! - [`identity`]: a requester of its own per frame, and the markers that
//!   delimit each frame's answers;
//! - [`request`] and [`answer`]: frames and answers read field by field;
//! - [`intended`]: the differences the project chose, with reasons;
//! - [`run`]: batches, matching, comparison and the report.

mod answer;
mod identity;
mod intended;
mod link;
mod request;
mod run;
mod segment;

use std::io;

pub use intended::INTENDED;
pub use run::{run, Settings, Summary};

use crate::testrun::TestRunError;

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;
const ICMPV6: u8 = 58;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
const ALL_NODES6: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// The addresses both sides own: the kernel has them on its interface, the
/// responder has them in its VIP map.
#[derive(Clone, Debug, Default)]
pub struct Vips {
    pub v4: Vec<[u8; 4]>,
    pub v6: Vec<[u8; 16]>,
}

#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("{0}: {1}")]
    Socket(&'static str, io::Error),
    #[error("interface {0} not found")]
    NoInterface(String),
    #[error("the responder program: {0}")]
    Program(#[from] TestRunError),
    #[error("{side} side: {what}")]
    Stream { side: &'static str, what: String },
    #[error("pinning to one CPU: {0}")]
    Affinity(nix::Error),
    #[error("a batch needs 1 to {max} frames, not {batch}")]
    Batch { batch: usize, max: u64 },
}
