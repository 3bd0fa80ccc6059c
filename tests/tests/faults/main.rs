//! Faults the agent must survive: an unreachable API server (fail-static,
//! then reconciliation), rapid VIP churn, two nodes claiming one VIP (split
//! brain), and bad input (Service status, VIP files, pin paths, SIGHUP, an IP
//! family the interface lacks).
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::Path,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use responder_tests::{
    lab::cluster::{Cluster, WAIT},
    lab::{
        pair::{arping, lab_vip_args, ndisc6, Lab, CLIENT_IF, CLIENT_V4, NODE_IF, VIP_V4, VIP_V6},
        responder::{responder_bin, PinCleanup, Responder},
        segment::Segment,
    },
    netns::{wait_for, NetNs, TempPath},
    prober::ArpProber,
};
use serde_json::json;

mod api_outage;
mod bad_input;
mod split_brain;
mod vip_churn;

/// Clusters side by side on a small CI machine would starve Lease renewals
/// (see tests/cluster.rs); the split-brain segment is light and runs freely.
fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn v4(address: &str) -> Ipv4Addr {
    address.parse().expect("test IPv4 address")
}

/// The first log line containing every one of `needles`.
fn log_line(log: &str, needles: &[&str]) -> Option<String> {
    log.lines()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
}
