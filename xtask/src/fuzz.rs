//! `cargo xtask fuzz`: the differential fuzzer (XDP program under
//! BPF_PROG_TEST_RUN against the reference model of `responder-model`).
use std::process::Command;

use anyhow::Result;

use crate::{require_root, run, setup, workspace_root};

/// Runs `frames` generated frames; without a seed the fuzzer picks one from
/// the clock and prints it, so a failing run can be repeated.
pub fn run_fuzzer(frames: u64, seed: Option<u64>) -> Result<()> {
    require_root("fuzz")?;
    setup::all()?;
    let mut cmd = Command::new("cargo");
    cmd.args([
        "run",
        "--release",
        "-p",
        "responder-tests",
        "--bin",
        "fuzz",
        "--",
    ])
    .args(["--frames", &frames.to_string()]);
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    run(cmd.current_dir(workspace_root()))
}
