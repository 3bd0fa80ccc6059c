//! `cargo xtask fuzz`: generated frames through the XDP program, held
//! against the reference model of `responder-model` (under
//! BPF_PROG_TEST_RUN) or against the Linux kernel (over veth, in network
//! namespaces: the kernel oracle).
use std::process::Command;

use anyhow::Result;

use crate::{require_root, run, setup, workspace_root};

/// What the program's answers are held against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Oracle {
    /// The reference model: verdict, bytes and counters must agree.
    Model,
    /// The Linux kernel owning the same VIPs: answers must agree field by
    /// field, but for the intended differences.
    Kernel,
}

/// Runs `frames` generated frames; without a seed the run picks one from
/// the clock and prints it, so a failing run can be repeated.
pub fn run_fuzzer(oracle: Oracle, frames: u64, seed: Option<u64>) -> Result<()> {
    require_root("fuzz")?;
    setup::all()?;
    let binary = match oracle {
        Oracle::Model => "fuzz",
        Oracle::Kernel => "oracle",
    };
    let mut cmd = Command::new("cargo");
    cmd.args([
        "run",
        "--release",
        "-p",
        "responder-tests",
        "--bin",
        binary,
        "--",
    ])
    .args(["--frames", &frames.to_string()]);
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    run(cmd.current_dir(workspace_root()))
}
