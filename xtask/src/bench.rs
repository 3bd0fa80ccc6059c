//! `cargo xtask bench`: set up, then run the benchmark program, which writes
//! BENCHMARKS.md, BENCHMARKS.json and benchmarks.png at the workspace root.
use std::process::Command;

use anyhow::Result;

use crate::{require_root, run, setup, workspace_root};

pub fn bench(quick: bool, render_only: bool) -> Result<()> {
    let root = workspace_root();
    let mut bench = Command::new("cargo");
    bench
        .args(["run", "--release", "--package", "responder-tests"])
        .args(["--bin", "bench", "--"])
        .args(["--out", "BENCHMARKS.md", "--json", "BENCHMARKS.json"])
        .args(["--chart", "benchmarks.png"])
        .current_dir(&root);
    if render_only {
        return run(bench.arg("--render-only"));
    }
    require_root("bench")?;
    setup::all()?;
    // cluster_measure runs the agents against a real kube-apiserver.
    setup::kube_apiserver()?;
    // Every binary of the tests package and the agent, so the benchmark
    // finds `cluster_measure` and `responder` next to itself.
    run(Command::new("cargo")
        .args([
            "build",
            "--release",
            "--package",
            "responder-tests",
            "--bins",
        ])
        .args(["--package", "responder-user", "--bin", "responder"])
        .current_dir(&root))?;
    if quick {
        bench.arg("--quick");
    }
    run(&mut bench)
}
