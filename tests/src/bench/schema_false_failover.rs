//! Section 4's false-failover table, written by `false_failover`: what a
//! client and the agents' maps saw while the owner of a VIP was hurt
//! (starved, lossy) without being dead (issue #23).
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FalseFailoverResult {
    pub lease_duration_ms: f64,
    pub renew_interval_ms: f64,
    pub probe_interval_ms: f64,
    pub cases: Vec<FalseFailoverCase>,
    pub note: String,
}

/// One fault applied to the owner for `duration_s`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FalseFailoverCase {
    pub name: String,
    /// The node holding the probed VIP when the fault was applied.
    pub owner: String,
    pub duration_s: f64,
    /// ARP requests sent, and those nobody answered within the interval.
    pub probes: usize,
    pub unanswered: usize,
    /// Answered requests whose answering MACs differed from the previous one's.
    pub mac_changes: usize,
    /// Changes of the agents holding the VIP in their pinned maps.
    pub ownership_changes: usize,
    /// The most agents holding the VIP at one sample.
    pub max_holders: usize,
    pub two_mac_intervals: usize,
    pub longest_two_mac_ms: f64,
    /// Requests answered by two MACs or more.
    pub multi_mac_probes: usize,
    /// The nodes whose MACs answered, in order of first answer.
    pub answering_nodes: Vec<String>,
    /// Who held the VIP, from when (seconds into the case; at most 50).
    pub holders_timeline: Vec<String>,
    /// What exactly was emulated.
    pub note: String,
}
