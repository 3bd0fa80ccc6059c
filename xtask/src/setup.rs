//! Idempotent installation of everything the build and tests need. Each step
//! checks first, so a second run costs a few process spawns.
use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use crate::{run, workspace_root};

/// Debian packages for the tests and the demo.
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "bpftool",
    "iputils-arping",
    "iputils-ping",
    "ndisc6",
    "ethtool",
    "tcpdump",
    "util-linux",
    // The font of the benchmark chart.
    "fonts-dejavu-core",
    // Userspace ARP and NDP daemons the benchmark compares the responder with.
    "farpd",
    "ndppd",
    // The real nodes of tests/k8s/node.sh: the container runtime, the pod
    // network, kube-proxy's iptables; curl scrapes the agents' metrics.
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "curl",
    // Reads the image archive as Docker and OCI tools do (tests/tests/image.rs).
    "skopeo",
];

/// bpf-linker release known to build against nightly's LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn all() -> Result<()> {
    build_tools()?;
    debian_packages(DEBIAN_PACKAGES)?;
    bpffs()
}

pub fn build_tools() -> Result<()> {
    rust_src()?;
    bpf_linker()
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("RESPONDER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/responder")
        })
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
        .context("the nightly toolchain is needed to build the XDP program (rustup toolchain install nightly)")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to nightly");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// bpf-linker links against nightly's own libLLVM: no system LLVM of the
/// right major version exists on Debian 12. The prefix directory must stay,
/// because the installed binary's rpath points into it.
fn bpf_linker() -> Result<()> {
    let works = Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Ok(());
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let libllvm = fs::read_dir(&sysroot_lib)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", sysroot_lib.display()))?;
    let verbose = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm_major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("rustc +nightly -vV did not report an LLVM version")?
        .to_owned();

    let prefix = cache_dir().join("llvm-prefix");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = lib.join(name);
        let _ = fs::remove_file(&link);
        symlink(sysroot_lib.join(&libllvm), &link)
            .with_context(|| format!("symlink {}", link.display()))?;
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM {llvm_major} (about 2 minutes)");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
        ])
        .args(["--features", &format!("llvm-{llvm_major}")])
        .env("LLVM_PREFIX", &prefix))
}

pub fn debian_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/sys/fs/bpf") && l.split(' ').nth(2) == Some("bpf"))
    {
        return Ok(());
    }
    eprintln!("setup: mounting bpffs at /sys/fs/bpf");
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

/// Builds (once, cached) the real Kubernetes binaries the tests run (the
/// control plane, kubectl, the kubelet and kube-proxy) and installs etcd.
pub fn kube_apiserver() -> Result<()> {
    let script = workspace_root().join("tests/k8s/apiserver.sh");
    run(Command::new("bash").arg(script).arg("build"))
}
