//! Developer tasks: `cargo xtask <setup|build-ebpf|test|demo|fuzz|bench|image>`.
mod bench;
mod doc_links;
mod fuzz;
mod image;
mod module_cycles;
mod setup;

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, test and demo tasks for the XDP neighbor responder")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what a fresh machine lacks (idempotent): nightly rust-src,
    /// bpf-linker, Debian packages, bpffs.
    Setup {
        /// Only what building needs (rust-src, bpf-linker), e.g. in a container build.
        #[arg(long)]
        build_only: bool,
    },
    /// Build the XDP object on its own and print its path.
    BuildEbpf,
    /// Set up, then run every test layer (needs root).
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Set up, build, and show the responder answering arping and ndisc6
    /// between two network namespaces.
    Demo,
    /// Set up, then measure the responder side by side with an empty XDP
    /// program, the kernel and userspace daemons (farpd, ndppd, a
    /// MetalLB-style responder); writes BENCHMARKS.md, BENCHMARKS.json and
    /// benchmarks.png (needs root, two CPUs or more).
    Bench {
        /// Fewer rounds and shorter runs: about two minutes of measuring.
        #[arg(long)]
        quick: bool,
        /// Measure nothing: rewrite BENCHMARKS.md and benchmarks.png from
        /// the existing BENCHMARKS.json (after changing the report's text).
        #[arg(long, conflicts_with = "quick")]
        render_only: bool,
    },
    /// Set up, then run generated frames through the XDP program and the
    /// reference model, or the Linux kernel, and compare them (needs root).
    Fuzz {
        /// Frames to generate.
        #[arg(long, default_value_t = 200_000)]
        frames: u64,
        /// Repeat a run; by default the seed comes from the clock.
        #[arg(long)]
        seed: Option<u64>,
        /// What the program is held against.
        #[arg(long, value_enum, default_value_t = fuzz::Oracle::Model)]
        oracle: fuzz::Oracle,
    },
    /// Build the release agent and pack it, with exactly the shared
    /// libraries it loads, into a reproducible OCI image archive that
    /// `ctr images import`, `docker load` and `podman load` read. Prints the
    /// archive's path, the image reference and the manifest digest.
    Image(image::ImageArgs),
}

fn main() -> Result<()> {
    // `cargo xtask image` runs this program as the rustc wrapper of its build.
    image::rustc_wrapper()?;
    match Cli::parse().task {
        Task::Setup { build_only: true } => setup::build_tools(),
        Task::Setup { build_only: false } => setup::all(),
        Task::BuildEbpf => {
            setup::all()?;
            let object = build_ebpf()?;
            println!("{}", object.display());
            Ok(())
        }
        Task::Test { cargo_args } => test(&cargo_args),
        Task::Demo => demo(),
        Task::Bench { quick, render_only } => bench::bench(quick, render_only),
        Task::Fuzz {
            frames,
            seed,
            oracle,
        } => fuzz::run_fuzzer(oracle, frames, seed),
        Task::Image(args) => image::image(args),
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cmd`, failing with its rendering when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Builds the eBPF crate the way aya-build does (same flags), so the object
/// printed here is byte-compatible with the one embedded in the agent.
fn build_ebpf() -> Result<PathBuf> {
    let root = workspace_root();
    let target_dir = root.join("target").join("ebpf");
    let rustflags = [
        "--cfg=bpf_target_arch=\"x86_64\"",
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
    ]
    .join("\x1f");
    run(Command::new("rustup")
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--package",
            "responder-ebpf",
            "--bins",
            "--release",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .current_dir(&root))?;
    Ok(target_dir
        .join("bpfel-unknown-none")
        .join("release")
        .join("responder-xdp"))
}

fn require_root(task: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        bail!("`cargo xtask {task}` loads XDP programs and creates network namespaces: run it as root");
    }
    Ok(())
}

extern "C" {
    fn geteuid() -> u32;
}

/// Frames `cargo xtask test` runs through each fuzzer: about a second of
/// the model fuzzer, ten of the kernel oracle.
const MODEL_FUZZER_FRAMES: u64 = 200_000;
const KERNEL_ORACLE_FRAMES: u64 = 100_000;

fn test(cargo_args: &[String]) -> Result<()> {
    require_root("test")?;
    setup::all()?;
    setup::kube_apiserver()?;
    let root = workspace_root();
    // The namespace tests run the real `responder` binary, which `cargo test`
    // alone does not build; the real-node tests run the images.
    run(Command::new("cargo")
        .args(["build", "--package", "responder-user", "--bin", "responder"])
        .args(["--package", "responder-tests", "--bin", "pause"])
        .current_dir(&root))?;
    let product = image::pack(None, None, None)?;
    let pause = image::pack(
        Some(root.join("target/debug/pause")),
        Some("localhost/responder-test/pause:1".into()),
        Some(root.join("target/image/pause.oci.tar")),
    )?;
    run(Command::new("cargo")
        .args([
            "test",
            "--workspace",
            "--exclude",
            "responder-ebpf",
            "--no-fail-fast",
        ])
        .args(cargo_args)
        .env("RESPONDER_BIN", root.join("target/debug/responder"))
        .env("RESPONDER_IMAGE_ARCHIVE", &product.archive)
        .env("RESPONDER_IMAGE_REF", &product.reference)
        .env("RESPONDER_PAUSE_ARCHIVE", &pause.archive)
        .current_dir(&root))?;
    fuzz::run_fuzzer(fuzz::Oracle::Model, MODEL_FUZZER_FRAMES, None)?;
    fuzz::run_fuzzer(fuzz::Oracle::Kernel, KERNEL_ORACLE_FRAMES, None)?;
    Ok(())
}

fn demo() -> Result<()> {
    require_root("demo")?;
    setup::all()?;
    let root = workspace_root();
    run(Command::new("cargo")
        .args([
            "build",
            "--quiet",
            "--package",
            "responder-user",
            "--bin",
            "responder",
        ])
        .current_dir(&root))?;
    run(Command::new("cargo")
        .args([
            "run",
            "--quiet",
            "--package",
            "responder-tests",
            "--bin",
            "demo",
            "--",
        ])
        .arg(root.join("target").join("debug").join("responder"))
        .current_dir(&root))
}
