//! BENCHMARKS.json, typed: what the measuring side writes and the report
//! reads. `cluster_measure` and `sync_measure` write their parts of it too.
//!
//! Field names are the JSON keys, so renaming a field changes the file
//! format: `--render-only` must keep reading the committed report.
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The whole report of one `cargo xtask bench` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub quick: bool,
    pub elapsed_s: f64,
    pub machine: Machine,
    pub per_frame: PerFrame,
    pub capacity: Capacity,
    pub cluster: Measured<ClusterResult>,
    pub sync: Measured<SyncResult>,
    /// Section 4; absent from reports made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Measured<MembershipResult>>,
    /// The same without a write budget (every member at 250 ms), as before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_unbudgeted: Option<Measured<MembershipResult>>,
    /// The same before roles (every member announcing: `membership_measure
    /// … before`), measured in the same run as `membership`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_before: Option<Measured<MembershipResult>>,
    /// Sections measured again on their own after the run (their measuring
    /// program run by hand, its report put in place of the run's), and why;
    /// a full run leaves it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remeasured: Vec<String>,
    /// Section 4's false failovers (`false_failover`); absent from reports
    /// made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_failover: Option<Measured<super::schema_false_failover::FalseFailoverResult>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
}

/// Median, quartiles and range of one figure over the rounds of a run.
/// A figure that has no value (a rate over zero replies) is NaN here and
/// null in the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    #[serde(deserialize_with = "nan_if_null")]
    pub median: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub min: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub max: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub q1: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub q3: f64,
    pub n: usize,
}

impl Spread {
    /// The spread of `values`, which must not be empty.
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Spread {
            median: at(0.5),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            q1: at(0.25),
            q3: at(0.75),
            n: sorted.len(),
        }
    }
}

/// serde_json writes a NaN as null; this reads it back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Section 1: per-frame cost under BPF_PROG_TEST_RUN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerFrame {
    pub method: String,
    pub rounds: usize,
    pub calls_per_round: usize,
    pub kernel_repeat: u32,
    pub empty_ns: Spread,
    pub empty_kernel_loop_ns: Spread,
    pub empty_syscall_wall_ns: Spread,
    pub cases: Vec<FrameCost>,
}

/// What the responder must do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "XDP_PASS")]
    Pass,
    #[serde(rename = "XDP_TX")]
    Tx,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Pass => "XDP_PASS",
            Action::Tx => "XDP_TX",
        }
    }
}

/// One frame's cost with 10 and with 100,000 VIPs in the map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameCost {
    pub case: String,
    pub action: Action,
    /// Ordinary traffic (goal: within 3 ns of the empty program) rather
    /// than a request answered.
    pub ordinary: bool,
    pub frame_bytes: usize,
    pub ns_10: Spread,
    pub ns_100k: Spread,
    pub minus_empty_ns_10: Spread,
    pub minus_empty_ns_100k: Spread,
    pub ratio_to_empty_10: Spread,
    pub ratio_to_empty_100k: Spread,
    pub ratio_100k_to_10: Spread,
    /// Only for frames the program leaves unchanged (see the report).
    pub kernel_loop_ns_10: Option<Spread>,
    pub kernel_loop_ns_100k: Option<Spread>,
    pub kernel_loop_minus_empty_ns_10: Option<Spread>,
}

/// Section 2: where each responder saturates and what one frame costs the
/// node that answers, under a generator that outruns every responder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub rounds: usize,
    pub seconds_per_run: f64,
    pub vips_in_map: usize,
    /// The CPU the generator and the client's receive path were pinned to.
    pub generator_cpu: usize,
    /// The CPU the node's receive path and daemons were pinned to.
    pub node_cpu: usize,
    pub runs: Vec<CapacityRun>,
}

/// Who answers on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Responder {
    #[serde(rename = "XDP driver mode")]
    Driver,
    #[serde(rename = "XDP skb mode")]
    Skb,
    #[serde(rename = "Linux kernel")]
    Kernel,
    #[serde(rename = "farpd")]
    Farpd,
    #[serde(rename = "ndppd")]
    Ndppd,
    #[serde(rename = "userspace (MetalLB-style)")]
    Userspace,
    /// An XDP program that drops every frame: the node's receive floor.
    #[serde(rename = "XDP_DROP (receive floor)")]
    Floor,
}

impl Responder {
    pub fn name(self) -> &'static str {
        match self {
            Responder::Driver => "XDP driver mode",
            Responder::Skb => "XDP skb mode",
            Responder::Kernel => "Linux kernel",
            Responder::Farpd => "farpd",
            Responder::Ndppd => "ndppd",
            Responder::Userspace => "userspace (MetalLB-style)",
            Responder::Floor => "XDP_DROP (receive floor)",
        }
    }

    /// Whether a process of its own answers (its CPU is counted too).
    pub fn is_daemon(self) -> bool {
        matches!(
            self,
            Responder::Farpd | Responder::Ndppd | Responder::Userspace
        )
    }
}

/// What the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Broadcast ARP request for the IPv4 VIP.
    #[serde(rename = "ARP request")]
    Arp,
    /// Multicast Neighbor Solicitation (with SLLAO) for the IPv6 VIP.
    #[serde(rename = "NS")]
    Ns,
    /// Broadcast ARP request for an address that is no VIP.
    #[serde(rename = "ARP miss")]
    ArpMiss,
}

impl Request {
    pub fn name(self) -> &'static str {
        match self {
            Request::Arp => "ARP request",
            Request::Ns => "NS",
            Request::ArpMiss => "ARP miss",
        }
    }
}

/// One responder under one kind of request, over all rounds. Rates are
/// per second of generator run time; CPU shares are of one CPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityRun {
    pub responder: Responder,
    pub request: Request,
    /// Frames the generator handed to the client interface.
    pub injected_per_s: Spread,
    /// Frames the node's receive ring took (the rest it had no room for).
    pub node_received_per_s: Spread,
    /// Replies that reached the client.
    pub replies_per_s: Spread,
    /// Replies per frame the node took.
    pub answered_fraction: Spread,
    /// Replies per second relative to XDP driver mode for the same request,
    /// round by round.
    pub relative_to_driver: Spread,
    /// On-CPU time of the node's receive thread plus the daemon's, per
    /// frame the node took.
    pub node_ns_per_frame: Spread,
    /// The same per reply; NaN without replies.
    pub node_ns_per_reply: Spread,
    /// Share of a CPU: the node's receive thread (threaded NAPI).
    pub receive_thread_cpu: Spread,
    /// Share of a CPU: the daemon's threads, for daemons.
    pub daemon_cpu: Option<Spread>,
    /// Busy share of the node CPU from /proc/stat, whoever used it.
    pub node_cpu_busy: Spread,
    /// Share of a CPU: the generator's thread.
    pub generator_cpu: Spread,
    /// Share of a CPU: the client's receive thread.
    pub client_cpu: Spread,
    /// Replies the node sent that never reached the client, per reply sent.
    pub lost_before_client: Spread,
}

/// A section measured by a program of its own, which may not have run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "MeasuredJson<T>",
    into = "MeasuredJson<T>",
    bound(
        serialize = "T: Serialize + Clone",
        deserialize = "T: Deserialize<'de>"
    )
)]
pub enum Measured<T> {
    Done(T),
    NotMeasured { reason: String },
}

/// `Measured` as the JSON spells it: `{"measured": true, "result": …}` or
/// `{"measured": false, "reason": "…"}`.
#[derive(Serialize, Deserialize)]
struct MeasuredJson<T> {
    measured: bool,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn none<T>() -> Option<T> {
    None
}

impl<T> TryFrom<MeasuredJson<T>> for Measured<T> {
    type Error = &'static str;

    fn try_from(json: MeasuredJson<T>) -> Result<Self, Self::Error> {
        match (json.measured, json.result, json.reason) {
            (true, Some(result), _) => Ok(Measured::Done(result)),
            (true, None, _) => Err("\"measured\": true without a \"result\""),
            (false, _, reason) => Ok(Measured::NotMeasured {
                reason: reason.unwrap_or_else(|| "unknown".to_owned()),
            }),
        }
    }
}

impl<T> From<Measured<T>> for MeasuredJson<T> {
    fn from(measured: Measured<T>) -> Self {
        match measured {
            Measured::Done(result) => MeasuredJson {
                measured: true,
                result: Some(result),
                reason: None,
            },
            Measured::NotMeasured { reason } => MeasuredJson {
                measured: false,
                result: None,
                reason: Some(reason),
            },
        }
    }
}

/// Section 3, written by `cluster_measure`: failover and patch → map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterResult {
    pub failover_ms: Percentiles,
    pub failover_note: String,
    pub patch_to_map_ms: Percentiles,
    pub patch_to_map_note: String,
}

/// Nearest-rank percentiles of some samples, in milliseconds; without
/// samples only `n` (0) is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub n: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

impl Percentiles {
    pub fn of(samples: &[Duration]) -> Percentiles {
        let mut sorted: Vec<f64> = samples
            .iter()
            .map(|sample| sample.as_secs_f64() * 1000.0)
            .collect();
        if sorted.is_empty() {
            return Percentiles {
                n: 0,
                p50: None,
                p99: None,
                min: None,
                max: None,
                samples: sorted,
            };
        }
        sorted.sort_by(f64::total_cmp);
        let rank =
            |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Percentiles {
            n: sorted.len(),
            p50: Some(rank(0.50)),
            p99: Some(rank(0.99)),
            min: Some(sorted[0]),
            max: Some(sorted[sorted.len() - 1]),
            samples: sorted,
        }
    }
}

/// Section 3, written by `sync_measure`: one agent's initial sync.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncResult {
    pub services: usize,
    pub sync_ms: f64,
    pub at_sync: Usage,
    pub settled: Usage,
    pub setup_s: f64,
    pub note: String,
}

/// Section 4, written by `membership_measure`: the membership at scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MembershipResult {
    pub services: usize,
    /// Real agents (the only eligible nodes) beside the simulated members.
    pub real_agents: usize,
    pub write_budget: f64,
    /// `now` (roles), `before` (every member announcing, as before roles).
    #[serde(default)]
    pub regime: String,
    pub hold_down_ms: f64,
    pub rows: Vec<MembershipRow>,
    pub note: String,
}

/// One membership size, measured over one window plus failover rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MembershipRow {
    /// Simulated members (the generator's Leases).
    pub simulated: usize,
    /// The renew interval and Lease duration the budget gives every member.
    pub renew_ms: f64,
    pub lease_ms: f64,
    pub window_s: f64,
    /// Lease writes (create, patch, update) the API server answered, per second.
    pub api_lease_writes_per_s: f64,
    /// Of which the generator's.
    pub generator_writes_per_s: f64,
    pub generator_failures: u64,
    /// `responder_lease_watch_events_total` of one real agent, per second.
    pub watch_events_per_s: f64,
    /// That agent's CPU (utime + stime over the window) and memory at its end.
    pub agent_cpu_percent: f64,
    pub agent_rss_mib: f64,
    pub agent_rss_anon_mib: f64,
    pub apiserver_cpu_percent: f64,
    pub etcd_cpu_percent: f64,
    /// The measuring process (generator and probes).
    pub generator_cpu_percent: f64,
    /// Failover rounds tried; `failover_ms.n` of them were taken over in time.
    #[serde(default)]
    pub failover_rounds: usize,
    pub failover_ms: Percentiles,
    /// Members announcing (real and simulated); 0 in reports before roles.
    #[serde(default)]
    pub announcers: usize,
}

/// The agent's memory and CPU time at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub vm_rss_mib: f64,
    /// VmRSS split: anonymous memory (heap, stacks) and file-backed pages
    /// (the binary's own code and data).
    #[serde(default)]
    pub rss_anon_mib: f64,
    #[serde(default)]
    pub rss_file_mib: f64,
    pub vm_hwm_mib: f64,
    pub cpu_ms: f64,
    pub wall_ms: f64,
}

/// Pretty JSON with a final newline and keys sorted, as every report so far
/// was written (through `serde_json::Value`, whose maps are sorted): a new
/// run then diffs against the committed one value by value.
pub fn to_json_text<T: Serialize>(report: &T) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(report)?;
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_measured_round_trips_without_a_result() {
        let section: Measured<SyncResult> = Measured::NotMeasured {
            reason: "sync_measure was not built".to_owned(),
        };
        let text = to_json_text(&section).expect("serialize");
        assert_eq!(
            text,
            "{\n  \"measured\": false,\n  \"reason\": \"sync_measure was not built\"\n}\n"
        );
        let back: Measured<SyncResult> = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, section);
    }

    #[test]
    fn a_spread_without_values_is_null_and_reads_back_as_nan() {
        let spread = Spread::of(&[f64::NAN, f64::NAN]);
        let text = serde_json::to_string(&spread).expect("serialize");
        assert!(text.contains("\"median\":null"), "{text}");
        let back: Spread = serde_json::from_str(&text).expect("parse");
        assert!(back.median.is_nan());
        assert_eq!(back.n, 2);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let percentiles = Percentiles::of(&samples);
        assert_eq!(percentiles.p50, Some(50.0));
        assert_eq!(percentiles.p99, Some(99.0));
        assert_eq!(Percentiles::of(&[]).n, 0);
        assert_eq!(
            to_json_text(&Percentiles::of(&[])).expect("serialize"),
            "{\n  \"n\": 0\n}\n"
        );
    }
}
