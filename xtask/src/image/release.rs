//! The release agent for the image: built reproducibly, with the absolute
//! paths rustc would embed remapped, and the rustc wrapper that carries the
//! remaps into the nested eBPF build.
use std::{
    ffi::OsString,
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{ensure, Context as _, Result};

use crate::{run, setup};

/// The environment variable through which `cargo xtask image` hands the
/// path remaps to itself running as the rustc wrapper.
const WRAPPER_ENV: &str = "RESPONDER_XTASK_RUSTC_REMAP";

pub(super) struct Metadata {
    pub(super) workspace_root: PathBuf,
    pub(super) target_directory: PathBuf,
    /// The agent's version (`version.workspace = true`).
    pub(super) version: String,
}

pub(super) fn cargo_metadata() -> Result<Metadata> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate::workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .context("failed to run cargo metadata")?;
    ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let path = |key: &str| {
        v[key]
            .as_str()
            .map(PathBuf::from)
            .with_context(|| format!("cargo metadata has no {key}"))
    };
    let version = v["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "responder-user")
        .and_then(|p| p["version"].as_str())
        .context("cargo metadata has no responder-user package")?
        .to_owned();
    Ok(Metadata {
        workspace_root: path("workspace_root")?,
        target_directory: path("target_directory")?,
        version,
    })
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The fixed timestamp (SOURCE_DATE_EPOCH, else HEAD's commit time, else 0)
/// and HEAD's hash; warns when the tree has changes HEAD does not have.
pub(super) fn source_time_and_revision(root: &Path) -> Result<(u64, Option<String>)> {
    let revision = git(root, &["rev-parse", "HEAD"]);
    let created = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?,
        Err(_) => git(root, &["log", "-1", "--format=%ct"])
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    };
    match (&revision, git(root, &["status", "--porcelain", "--untracked-files=no"])) {
        (None, _) => eprintln!("image: warning: not a git checkout, no revision label"),
        (Some(rev), Some(status)) if !status.is_empty() => eprintln!(
            "image: warning: the tree has uncommitted changes; the image is labelled with HEAD ({rev}) all the same"
        ),
        _ => {}
    }
    Ok((created, revision))
}

/// The release agent, built with the absolute paths rustc would embed
/// remapped, in a target directory of its own (`<target>/image/build`), so
/// that its flags do not invalidate the ordinary release build and back.
pub(super) fn build_release(meta: &Metadata) -> Result<PathBuf> {
    setup::build_tools()?;
    let build_dir = meta.target_directory.join("image").join("build");
    let remaps = remaps(meta, &build_dir)?;
    // The nested eBPF build does not see a change of the remaps (aya-build
    // replaces its rustflags), so a build directory made with others starts over.
    let stamp = build_dir.join("remaps");
    let joined = remaps.join("\n");
    if build_dir.exists() && fs::read_to_string(&stamp).ok().as_deref() != Some(joined.as_str()) {
        eprintln!(
            "image: path remaps changed, removing {}",
            build_dir.display()
        );
        fs::remove_dir_all(&build_dir)?;
    }
    fs::create_dir_all(&build_dir)?;
    fs::write(&stamp, &joined)?;
    let flags: Vec<String> = remaps
        .iter()
        .map(|r| format!("--remap-path-prefix={r}"))
        .collect();
    // A copy of this program, which a concurrent `cargo build` of xtask
    // cannot replace while the release build runs it.
    let wrapper = build_dir.join("xtask-rustc-wrapper");
    let tmp = build_dir.join("xtask-rustc-wrapper.tmp");
    fs::copy(std::env::current_exe()?, &tmp)?;
    fs::rename(&tmp, &wrapper)?;
    eprintln!(
        "image: cargo build --release (remapping {})",
        remaps.join(", ")
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--release", "--locked"])
        .args(["--package", "responder-user", "--bin", "responder"])
        .arg("--target-dir")
        .arg(&build_dir)
        // The outer build: crates of the workspace and the registry. Cargo
        // fingerprints these, so a change rebuilds.
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env_remove("RUSTFLAGS")
        // aya-build runs a nested `cargo build` of the XDP program with
        // CARGO_ENCODED_RUSTFLAGS of its own (which silences RUSTFLAGS and
        // every config rustflags) and without RUSTC and
        // RUSTC_WORKSPACE_WRAPPER, but RUSTC_WRAPPER passes: this program,
        // adding the same remaps (see `rustc_wrapper`). It replaces a
        // RUSTC_WRAPPER of the caller's (sccache) for this build.
        .env("RUSTC_WRAPPER", &wrapper)
        .env(WRAPPER_ENV, flags.join("\x1f"))
        .current_dir(&meta.workspace_root))?;
    let binary = build_dir.join("release").join("responder");
    leaked_paths(&binary, meta)?;
    Ok(binary)
}

/// `from=to` prefixes for `--remap-path-prefix`, in order (rustc applies the
/// last that matches): the workspace to `/src`, the cargo home (registry
/// sources, git checkouts) to `/cargo`, this build's target directory (build
/// scripts' OUT_DIR) to `/build`, and each toolchain's rust-src (which
/// `-Z build-std` compiles `core` from, for the XDP program) to
/// `/rustc/<commit>`, the path rustc's own std carries.
pub(super) fn remaps(meta: &Metadata, build_dir: &Path) -> Result<Vec<String>> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let mut remaps = vec![
        format!("{}=/src", meta.workspace_root.display()),
        format!("{}=/cargo", cargo_home.display()),
        format!("{}=/build", build_dir.display()),
    ];
    // The toolchain cargo builds with (rust-toolchain files, overrides
    // apply), then the nightly aya-build builds the XDP program with.
    for nightly in [false, true] {
        let rustc = |arg: &str| -> Result<String> {
            let mut cmd = Command::new(if nightly { "rustup" } else { "rustc" });
            if nightly {
                cmd.args(["run", "nightly", "rustc"]);
            }
            cmd.arg(arg).current_dir(&meta.workspace_root);
            let out = cmd.stderr(Stdio::inherit()).output()?;
            ensure!(out.status.success(), "{cmd:?} failed: {}", out.status);
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let sysroot = rustc("--print=sysroot")?;
        let commit = rustc("-vV")?
            .lines()
            .find_map(|l| l.strip_prefix("commit-hash: "))
            .map(str::to_owned)
            .context("rustc -vV names no commit-hash")?;
        remaps.push(format!(
            "{}/lib/rustlib/src/rust=/rustc/{commit}",
            sysroot.trim()
        ));
    }
    Ok(remaps)
}

/// Says which build paths the binary still holds (it should hold none).
fn leaked_paths(binary: &Path, meta: &Metadata) -> Result<()> {
    let data = fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for path in [meta.workspace_root.display().to_string(), home] {
        let count = data
            .windows(path.len())
            .filter(|w| *w == path.as_bytes())
            .count();
        if count > 0 {
            eprintln!(
                "image: warning: {} contains {path} {count} times: the image depends on where it was built",
                binary.display()
            );
        }
    }
    Ok(())
}

/// When `cargo xtask image` runs this program as RUSTC_WRAPPER
/// (`xtask <rustc> <args>…`), it execs rustc with the remaps added, unless
/// the arguments have remaps already (the outer build's rustflags). Returns
/// only when not running as the wrapper.
pub fn rustc_wrapper() -> Result<()> {
    let Some(flags) = std::env::var_os(WRAPPER_ENV) else {
        return Ok(());
    };
    let mut args = std::env::args_os().skip(1);
    let rustc = args.next().context("rustc wrapper: no rustc to run")?;
    let args: Vec<OsString> = args.collect();
    let mut cmd = Command::new(rustc);
    cmd.args(&args);
    if !args
        .iter()
        .any(|a| a.to_string_lossy().starts_with("--remap-path-prefix"))
    {
        cmd.args(flags.to_string_lossy().split('\x1f'));
    }
    Err(cmd.exec()).context("rustc wrapper: exec")
}
