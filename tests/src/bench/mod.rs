//! `cargo xtask bench`: what the responder costs, always as a ratio to
//! something measured side by side in the same run, because the machines
//! this runs on are shared and noisy.
//!
//! Measuring (`measure_*`, needs root) produces a [`schema::Report`], which
//! is written as BENCHMARKS.json; reporting (`report`, `chart`) turns a
//! report into BENCHMARKS.md and benchmarks.png and needs nothing else, so
//! `--render-only` redoes it from the committed JSON.
//!
//! 1. Per-frame cost with BPF_PROG_TEST_RUN next to an empty XDP program.
//! 2. Capacity over veth between namespaces, under a generator that
//!    outruns every responder: replies per second at saturation and the
//!    node's CPU time per reply for the responder in driver and skb mode,
//!    the Linux kernel, farpd, ndppd and a MetalLB-style userspace
//!    responder; and what an ARP storm of misses costs each.
//! 3. Agent convergence/failover and the initial sync of one agent with many
//!    Services, when `cluster_measure` and `sync_measure` were built.
//! 4. The membership at scale: simulated members' Lease renewals against
//!    real agents, when `membership_measure` was built.
mod chart;
mod first_reply;
mod generator;
mod loaded_object;
mod measure_agent;
mod measure_capacity;
mod measure_frames;
mod peers;
mod report;
pub mod schema;
pub mod schema_false_failover;
mod syslog_sink;
pub(crate) mod threads;
pub mod tiny_xdp;

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use schema::{Machine, Report};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("read {0}: {1}")]
    Read(PathBuf, io::Error),
    #[error("{0} is not a bench report: {1}")]
    Parse(PathBuf, serde_json::Error),
    #[error("serialize the report: {0}")]
    Serialize(serde_json::Error),
    #[error("write {0}: {1}")]
    Write(PathBuf, io::Error),
    #[error("draw {0}: {1}")]
    Chart(PathBuf, String),
}

/// How long and how often to measure.
pub struct Settings {
    quick: bool,
    /// Rounds of the per-frame measurement; every subject is measured once per round.
    frame_rounds: usize,
    /// BPF_PROG_TEST_RUN calls per subject and round.
    calls: usize,
    /// `repeat` of the kernel-loop cross-check.
    kernel_repeat: u32,
    /// Rounds of the capacity measurement; every responder runs once per
    /// round with each kind of request it handles.
    load_rounds: usize,
    /// How long the generator runs per responder and request.
    load_time: Duration,
    /// LoadBalancer Services the agent syncs in `sync_measure`.
    sync_services: usize,
}

impl Settings {
    /// Fewer rounds and shorter runs: a few minutes.
    pub fn quick() -> Settings {
        Settings {
            quick: true,
            frame_rounds: 7,
            calls: 20_000,
            kernel_repeat: 100_000,
            load_rounds: 2,
            load_time: Duration::from_secs(1),
            sync_services: 1_000,
        }
    }

    /// What the committed report is made with.
    pub fn full() -> Settings {
        Settings {
            quick: false,
            frame_rounds: 15,
            calls: 100_000,
            kernel_repeat: 1_000_000,
            load_rounds: 5,
            load_time: Duration::from_secs(3),
            sync_services: 10_000,
        }
    }
}

/// Runs every measurement (needs root, the responder's object, and for
/// section 3 the measuring programs next to the running one).
pub fn measure(settings: &Settings) -> Report {
    let started = Instant::now();
    eprintln!("bench: per-frame cost (BPF_PROG_TEST_RUN)");
    let per_frame = measure_frames::per_frame_costs(settings);
    eprintln!("bench: capacity over veth");
    let capacity = measure_capacity::capacity(settings);
    eprintln!("bench: agent convergence and failover");
    let cluster = measure_agent::cluster_measure(settings.quick);
    eprintln!(
        "bench: initial sync with {} Services",
        settings.sync_services
    );
    let sync = measure_agent::sync_measure(settings.sync_services);
    eprintln!("bench: membership at scale");
    let membership = Some(measure_agent::membership_measure(settings.quick));
    // Before roles, for the before → now table. (Without a write budget,
    // `membership_unbudgeted`, is kept from the run that measured it.)
    let membership_before = match settings.quick {
        true => None,
        false => {
            eprintln!("bench: membership at scale before roles");
            Some(measure_agent::membership_before())
        }
    };
    eprintln!("bench: false failovers");
    let false_failover = Some(measure_agent::false_failover(settings.quick));
    Report {
        quick: settings.quick,
        elapsed_s: started.elapsed().as_secs_f64(),
        machine: machine(),
        per_frame,
        capacity,
        cluster,
        sync,
        membership,
        membership_unbudgeted: None,
        membership_before,
        remeasured: Vec::new(),
        false_failover,
    }
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    Machine {
        cpu,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        kernel,
    }
}

/// Section 4 in Markdown from `membership_measure`'s reports (with and,
/// optionally, without a write budget).
pub fn membership_markdown(
    membership: &Path,
    unbudgeted: Option<&Path>,
) -> Result<String, BenchError> {
    let read = |path: &Path| -> Result<schema::MembershipResult, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::Read(path.into(), e))?;
        serde_json::from_str(&text).map_err(|e| BenchError::Parse(path.into(), e))
    };
    let membership = schema::Measured::Done(read(membership)?);
    let unbudgeted = unbudgeted
        .map(read)
        .transpose()?
        .map(schema::Measured::Done);
    Ok(report::membership_markdown(
        &membership,
        unbudgeted.as_ref(),
    ))
}

pub fn read_json(path: &Path) -> Result<Report, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::Read(path.into(), e))?;
    serde_json::from_str(&text).map_err(|e| BenchError::Parse(path.into(), e))
}

pub fn write_json(report: &Report, path: &Path) -> Result<(), BenchError> {
    let text = schema::to_json_text(report).map_err(BenchError::Serialize)?;
    std::fs::write(path, text).map_err(|e| BenchError::Write(path.into(), e))
}

/// Writes the Markdown report to `markdown` and the chart it shows to `chart`.
pub fn write_reports(report: &Report, markdown: &Path, chart: &Path) -> Result<(), BenchError> {
    chart::draw(&report.capacity, chart)?;
    let chart_name = chart
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| BenchError::Chart(chart.into(), "no file name".to_owned()))?;
    std::fs::write(markdown, report::markdown(report, &chart_name))
        .map_err(|e| BenchError::Write(markdown.into(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key and value of the committed report survives the typed
    /// schema. Compared as JSON values: serde_json's default float parser
    /// may land one ulp off on reading, the same on both sides here.
    #[test]
    fn committed_report_round_trips() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.json");
        let text = std::fs::read_to_string(&path).expect("read BENCHMARKS.json");
        let committed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let report = read_json(&path).expect("parse BENCHMARKS.json");
        let written = serde_json::to_value(&report).expect("serialize");
        assert!(
            written == committed,
            "BENCHMARKS.json changed on a round trip"
        );
    }

    /// The committed Markdown is what the report code makes of the committed
    /// JSON: after changing the wording, `cargo xtask bench --render-only`.
    #[test]
    fn committed_markdown_is_rendered_from_the_committed_json() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let report = read_json(&root.join("BENCHMARKS.json")).expect("parse BENCHMARKS.json");
        let committed =
            std::fs::read_to_string(root.join("BENCHMARKS.md")).expect("read BENCHMARKS.md");
        assert!(
            report::markdown(&report, "benchmarks.png") == committed,
            "BENCHMARKS.md differs from what --render-only writes"
        );
    }
}
