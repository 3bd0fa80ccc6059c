//! Faults the agent must survive: an unreachable API server (fail-static,
//! then reconciliation), rapid VIP churn, two nodes claiming one VIP (split
//! brain), and bad input (Service status, VIP files, pin paths, SIGHUP, an IP
//! family the interface lacks).
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::Path,
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use responder::cluster::ClusterSettings;
use responder_tests::{
    lab::cluster::{Cluster, WAIT},
    lab::one_cluster_at_a_time,
    lab::{
        pair::{arping, lab_vip_args, ndisc6, Lab, CLIENT_IF, CLIENT_V4, NODE_IF, VIP_V4, VIP_V6},
        responder::{responder_bin, PinCleanup, Responder},
        segment::Segment,
    },
    netns::{wait_for, NetNs, TempPath},
    prober::ArpProber,
    stream_prober::{ProbeRun, StreamProber},
};
use serde_json::json;

mod api_outage;
mod bad_input;
mod owner_dies_in_outage;
mod split_brain;
mod vip_churn;

fn v4(address: &str) -> Ipv4Addr {
    address.parse().expect("test IPv4 address")
}

/// The first log line containing every one of `needles`.
fn log_line(log: &str, needles: &[&str]) -> Option<String> {
    log.lines()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
}

// What the API outage tests (api_outage, owner_dies_in_outage) share: the
// client's probing and the agents' timing.

/// A client request every 10 ms for every VIP, as in the issue.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a request waits for its answers. The data plane answers within
/// a millisecond; latency is taken from the kernel's receive timestamp, so
/// only a real loss (or an answer later than this) counts as unanswered.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// The agents' renew interval and Lease duration (the defaults: with 3
/// nodes every one announces at the fastest cadence).
const RENEW: Duration = ClusterSettings::DEFAULT_RENEW_INTERVAL;
const LEASE: Duration = ClusterSettings::DEFAULT_LEASE_DURATION;
/// The longest a failed watch waits before it retries (`WatchBackoff::LAST`,
/// jitter only shortens it).
const WATCH_RETRY_MAX: Duration = Duration::from_secs(8);

/// Probes `targets` on a thread of its own until `stop` is set, while
/// `actions` runs; returns the run and what `actions` returned.
fn probing<T>(
    prober: &StreamProber,
    limit: Duration,
    actions: impl FnOnce(Instant) -> T,
) -> (ProbeRun, T) {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let probes = scope.spawn(|| prober.run(PROBE_INTERVAL, PROBE_TIMEOUT, limit, &stop));
        // The prober's clock starts within a moment of this one.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actions(Instant::now())));
        stop.store(true, Ordering::Relaxed);
        let run = probes.join().expect("prober thread");
        match result {
            Ok(value) => (run, value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
