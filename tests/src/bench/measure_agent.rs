//! Section 3: the agent's failover, convergence and initial sync, measured
//! by `cluster_measure` and `sync_measure`, programs built next to the
//! benchmark's, which write their part of the report as JSON.
use std::process::Command;

use serde::de::DeserializeOwned;

use super::schema::{ClusterResult, Measured, MembershipResult, SyncResult};

pub(super) fn cluster_measure(quick: bool) -> Measured<ClusterResult> {
    // Failover trials and status patches: few in a quick run.
    let args: &[&str] = if quick { &["3", "20"] } else { &[] };
    run_measure("cluster_measure", args)
}

pub(super) fn sync_measure(services: usize) -> Measured<SyncResult> {
    run_measure("sync_measure", &[&services.to_string()])
}

/// Section 4: `membership_measure` with SERVICES ROUNDS WINDOW_S N,N,….
pub(super) fn membership_measure(quick: bool) -> Measured<MembershipResult> {
    let args: &[&str] = if quick {
        &["1000", "2", "8", "10,100"]
    } else {
        &["10000", "5", "20", "10,100,300,1000"]
    };
    run_measure("membership_measure", args)
}

/// Section 4 before roles, for the before → now table: every member
/// announcing within 50 writes/s at 250 ms / 1 s. Not in a quick run (80 s
/// Leases at 1,000 members make it the longest part of the benchmark).
pub(super) fn membership_before() -> Measured<MembershipResult> {
    run_measure(
        "membership_measure",
        &["10000", "5", "20", "10,100,300,1000", "before"],
    )
}

/// Runs a measuring program built next to this one as `NAME REPORT.json ARGS…`
/// and returns its report, or why there is none.
fn run_measure<T: DeserializeOwned>(name: &str, args: &[&str]) -> Measured<T> {
    let not_measured = |reason: String| Measured::NotMeasured { reason };
    let exe = std::env::current_exe().expect("current exe");
    let measure = exe.with_file_name(name);
    if !measure.exists() {
        return not_measured(format!("{} was not built", measure.display()));
    }
    let report = std::env::temp_dir().join(format!("{name}-{}.json", std::process::id()));
    let outcome = Command::new(&measure).arg(&report).args(args).output();
    let written = std::fs::read(&report);
    let _ = std::fs::remove_file(&report);
    match outcome {
        Ok(out) if out.status.success() => {
            match serde_json::from_slice::<T>(&written.unwrap_or_default()) {
                Ok(result) => Measured::Done(result),
                Err(e) => not_measured(format!("its report does not parse: {e}")),
            }
        }
        Ok(out) => not_measured(format!(
            "it failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(2000)
                .collect::<String>()
        )),
        Err(e) => not_measured(format!("it did not start: {e}")),
    }
}

/// Section 4's false failovers: `false_failover` with DURATION_S per case.
pub(super) fn false_failover(
    quick: bool,
) -> Measured<super::schema_false_failover::FalseFailoverResult> {
    run_measure("false_failover", &[if quick { "10" } else { "60" }])
}
