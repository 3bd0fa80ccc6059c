//! `cargo xtask image`: an OCI image archive of the release agent, built
//! without a registry or a container daemon, byte for byte reproducible.
//!
//! The image has one layer: the binary at `/usr/local/bin/<name>` and
//! exactly the shared libraries `ldd` names for it plus the ELF interpreter,
//! each at the absolute path the loader opens (symlinks resolved to their
//! content). No shell, no package manager, no other file.
//!
//! The archive is both an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) and a `docker load` archive (`manifest.json` naming the
//! same blobs), as `docker save` of Docker 25 and later writes it, so
//! `ctr images import`, `docker load`, `podman load` and skopeo's
//! `oci-archive:` and `docker-archive:` transports all read it.
//!
//! Reproducible: every tar entry has uid/gid 0, no user or group name, a fixed
//! mode and the same mtime (SOURCE_DATE_EPOCH, else the commit time of HEAD,
//! else 0); entries are sorted; gzip has a fixed header and level. The release
//! build remaps the absolute paths rustc would bake into the binary and into
//! the XDP object inside it (see [`remaps`]).
use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    fs,
    io::Write as _,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, ensure, Context as _, Result};
use flate2::{Compression, GzBuilder};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{run, setup};

/// Where `--binary` and the agent are put in the image.
const BIN_DIR: &str = "/usr/local/bin";
/// The image name `cargo xtask image` tags by default (with the workspace
/// version); deploy/kustomization.yaml and deploy/controller/kustomization.yaml
/// name the same (a unit test checks).
pub const DEFAULT_IMAGE_NAME: &str = "localhost/responder";

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// zlib level of the layer; fixed, as the layer digest depends on it.
const GZIP_LEVEL: u32 = 9;

/// The environment variable through which `cargo xtask image` hands the
/// path remaps to itself running as the rustc wrapper.
const WRAPPER_ENV: &str = "RESPONDER_XTASK_RUSTC_REMAP";

#[derive(clap::Args)]
pub struct ImageArgs {
    /// Image reference [default: localhost/responder:<workspace version>,
    /// or localhost/<binary file name>:<workspace version> with --binary].
    #[arg(long, value_name = "REF")]
    reference: Option<String>,
    /// Archive to write [default: target/image/<name>-<workspace version>.oci.tar].
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Pack this binary (at /usr/local/bin/<file name>, the entrypoint)
    /// instead of building the agent.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

/// What [`build_image`] packs.
pub struct ImageSpec {
    /// The executable, put at `/usr/local/bin/<file name>` together with the
    /// shared libraries and loader it needs (none if it is static).
    pub binary: PathBuf,
    /// More files: (host path, absolute path in the image). The mode is 0755
    /// where the host file has an execute bit, else 0644.
    pub extra_files: Vec<(PathBuf, String)>,
    pub entrypoint: Vec<String>,
    /// `name:tag`, e.g. `localhost/responder:0.1.0`.
    pub reference: String,
    /// The archive to write.
    pub output: PathBuf,
    /// `org.opencontainers.image.title`.
    pub title: String,
    /// `org.opencontainers.image.version`.
    pub version: String,
    /// `org.opencontainers.image.revision`, when known.
    pub revision: Option<String>,
    /// Seconds since the epoch: every tar entry's mtime and
    /// `org.opencontainers.image.created`.
    pub created: u64,
}

/// What [`build_image`] wrote.
#[derive(Debug)]
pub struct ImageOut {
    pub archive: PathBuf,
    pub reference: String,
    /// `sha256:…` of the image manifest: the image's digest.
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    /// `sha256:…` of the uncompressed layer.
    pub diff_id: String,
    pub archive_bytes: u64,
    pub layer_bytes: u64,
    pub layer_gzip_bytes: u64,
    /// Absolute paths in the image, files only.
    pub files: Vec<String>,
}

pub fn image(args: ImageArgs) -> Result<()> {
    let out = pack(args.binary, args.reference, args.output)?;
    println!("archive: {}", out.archive.display());
    println!("reference: {}", out.reference);
    println!("digest: {}", out.manifest_digest);
    Ok(())
}

/// Builds the release agent (or takes `binary`) and packs it: what
/// `cargo xtask image` does, for `cargo xtask test` too.
pub fn pack(
    binary: Option<PathBuf>,
    reference: Option<String>,
    output: Option<PathBuf>,
) -> Result<ImageOut> {
    let args = ImageArgs {
        reference,
        output,
        binary,
    };
    let meta = cargo_metadata()?;
    let (created, revision) = source_time_and_revision(&meta.workspace_root)?;
    let (binary, name) = match &args.binary {
        Some(binary) => {
            let name = binary
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} has no UTF-8 file name", binary.display()))?
                .to_owned();
            (binary.clone(), name)
        }
        None => (build_release(&meta)?, "responder".to_owned()),
    };
    let reference = match args.reference {
        Some(r) => r,
        None if args.binary.is_none() => default_reference(&meta.version),
        None => format!("localhost/{name}:{}", meta.version),
    };
    let output = args.output.unwrap_or_else(|| {
        meta.target_directory
            .join("image")
            .join(format!("{name}-{}.oci.tar", meta.version))
    });
    let spec = ImageSpec {
        entrypoint: vec![format!("{BIN_DIR}/{name}")],
        binary,
        extra_files: Vec::new(),
        reference,
        output: std::path::absolute(&output)?,
        title: name,
        version: meta.version.clone(),
        revision,
        created,
    };
    let out = build_image(&spec)?;
    eprintln!(
        "image: {} files, layer {} bytes ({} gzipped), archive {} bytes",
        out.files.len(),
        out.layer_bytes,
        out.layer_gzip_bytes,
        out.archive_bytes
    );
    eprintln!(
        "image: config {}, layer {}, diff_id {}",
        out.config_digest, out.layer_digest, out.diff_id
    );
    Ok(out)
}

/// `localhost/responder:<version>`.
pub fn default_reference(version: &str) -> String {
    format!("{DEFAULT_IMAGE_NAME}:{version}")
}

struct Metadata {
    workspace_root: PathBuf,
    target_directory: PathBuf,
    /// The agent's version (`version.workspace = true`).
    version: String,
}

fn cargo_metadata() -> Result<Metadata> {
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
fn source_time_and_revision(root: &Path) -> Result<(u64, Option<String>)> {
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
fn build_release(meta: &Metadata) -> Result<PathBuf> {
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
fn remaps(meta: &Metadata, build_dir: &Path) -> Result<Vec<String>> {
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

/// One regular file of the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFile {
    /// Absolute path in the image.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Packs `spec` and writes the archive; see the module documentation.
pub fn build_image(spec: &ImageSpec) -> Result<ImageOut> {
    let name = spec
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", spec.binary.display()))?;
    let mut sources: Vec<(PathBuf, String)> =
        vec![(spec.binary.clone(), format!("{BIN_DIR}/{name}"))];
    for lib in shared_libraries(&spec.binary)? {
        let path = lib.display().to_string();
        sources.push((lib, path));
    }
    sources.extend(spec.extra_files.iter().cloned());
    let mut files = Vec::new();
    for (host, path) in sources {
        let data = fs::read(&host).with_context(|| format!("read {}", host.display()))?;
        let host_mode = fs::metadata(&host)?.permissions().mode();
        files.push(LayerFile {
            path,
            mode: if host_mode & 0o111 != 0 { 0o755 } else { 0o644 },
            data,
        });
    }
    for f in &files {
        eprintln!("image: {} ({} bytes)", f.path, f.data.len());
    }
    let layer = layer_tar(&files, spec.created)?;
    let blobs = oci_blobs(spec, &layer)?;
    let archive = archive_tar(&blobs, spec.created)?;

    if let Some(dir) = spec.output.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut tmp = spec.output.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&archive).and_then(|()| f.sync_all()))
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, &spec.output)
        .with_context(|| format!("rename to {}", spec.output.display()))?;

    let mut paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
    paths.sort();
    Ok(ImageOut {
        archive: spec.output.clone(),
        reference: spec.reference.clone(),
        manifest_digest: blobs.manifest_digest,
        config_digest: blobs.config_digest,
        layer_digest: blobs.layer_digest,
        diff_id: blobs.diff_id,
        archive_bytes: archive.len() as u64,
        layer_bytes: layer.len() as u64,
        layer_gzip_bytes: blobs.layer_gzip_len,
        files: paths,
    })
}

/// The shared libraries `binary` loads, as `ldd` resolves them, and its ELF
/// interpreter; none for a static executable.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let data = fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    let Some(interp) = elf_interpreter(&data)
        .with_context(|| format!("{} is not an x86-64 ELF executable", binary.display()))?
    else {
        return Ok(Vec::new());
    };
    let out = Command::new("ldd")
        .arg(binary)
        .stderr(Stdio::inherit())
        .output()
        .context("failed to run ldd")?;
    ensure!(
        out.status.success(),
        "ldd {} failed: {}",
        binary.display(),
        out.status
    );
    let mut libs = BTreeSet::from([PathBuf::from(&interp)]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, the loader as
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`, the vDSO without a path.
        let path = match line.split_once(" => ") {
            Some((name, rest)) => {
                let path = rest.split(" (").next().unwrap_or_default();
                ensure!(
                    path.starts_with('/'),
                    "ldd {}: {name} not found",
                    binary.display()
                );
                path
            }
            None => line.split(" (").next().unwrap_or_default(),
        };
        if path.starts_with('/') {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs.into_iter().collect())
}

/// PT_INTERP of a little-endian ELF64 image: `Ok(None)` when it has none (a
/// static executable).
fn elf_interpreter(data: &[u8]) -> Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    ensure!(
        data.len() >= 64 && data[..4] == *b"\x7fELF",
        "not an ELF file"
    );
    ensure!(
        data[4] == 2 && data[5] == 1,
        "not a little-endian 64-bit ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    ensure!(u16_at(18) == 62, "not an x86-64 ELF file");
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        ensure!(ph + 56 <= data.len(), "truncated program headers");
        if u32_at(ph) == PT_INTERP {
            let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
            let bytes = data.get(off..off + size).context("truncated PT_INTERP")?;
            let s = std::str::from_utf8(bytes.split(|b| *b == 0).next().unwrap_or_default())?;
            return Ok(Some(s.to_owned()));
        }
    }
    Ok(None)
}

/// A ustar header; its user and group names stay empty.
fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

/// A tar of `files` and every directory above them (mode 0755), sorted, with
/// uid/gid 0, no user or group names and mtime `mtime`: the same bytes for the
/// same files whatever their order.
pub fn layer_tar(files: &[LayerFile], mtime: u64) -> Result<Vec<u8>> {
    let mut entries: BTreeMap<String, Option<&LayerFile>> = BTreeMap::new();
    for f in files {
        let rel = f
            .path
            .strip_prefix('/')
            .with_context(|| format!("{} is not absolute", f.path))?;
        ensure!(
            !rel.is_empty()
                && !rel
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == ".."),
            "{} is not a plain absolute path",
            f.path
        );
        let mut dir = String::new();
        let components: Vec<&str> = rel.split('/').collect();
        for c in &components[..components.len() - 1] {
            dir.push_str(c);
            dir.push('/');
            entries.entry(dir.clone()).or_insert(None);
        }
        if entries.insert(rel.to_owned(), Some(f)).is_some() {
            bail!("{} is in the layer twice (or is also a directory)", f.path);
        }
    }
    for (path, file) in &entries {
        ensure!(
            file.is_none() || !entries.contains_key(&format!("{path}/")),
            "/{path} is a file and a directory"
        );
    }
    // A directory's entry ends in '/', so it sorts before everything in it.
    let mut tar = tar::Builder::new(Vec::new());
    for (path, file) in &entries {
        match file {
            None => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                tar.append_data(&mut h, path, std::io::empty())?;
            }
            Some(f) => {
                let mut h = header(tar::EntryType::Regular, f.mode, f.data.len() as u64, mtime);
                tar.append_data(&mut h, path, f.data.as_slice())?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

/// gzip with a fixed header (no name, mtime 0, OS "unknown") and level.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(GZIP_LEVEL));
    gz.write_all(data)?;
    Ok(gz.finish()?)
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An image reference's tag (`latest` when it names none).
pub fn reference_tag(reference: &str) -> Result<&str> {
    ensure!(
        !reference.contains('@'),
        "{reference}: a reference by digest cannot be written"
    );
    let name_end = reference.rfind('/').map_or(0, |i| i + 1);
    Ok(match reference[name_end..].rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        Some(_) => bail!("{reference}: empty tag"),
        None => "latest",
    })
}

/// Seconds since the epoch as RFC 3339 in UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
    annotations: &'a BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig<'a> {
    entrypoint: &'a [String],
    labels: &'a BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct Rootfs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
}

#[derive(Serialize)]
struct Config<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: ContainerConfig<'a>,
    rootfs: Rootfs<'a>,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest<'a> {
    config: String,
    repo_tags: Vec<&'a str>,
    layers: Vec<String>,
}

/// The archive's files but the directories: path → content.
pub struct Blobs {
    pub files: BTreeMap<String, Vec<u8>>,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    pub diff_id: String,
    pub layer_gzip_len: u64,
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// The layer blob, config, manifest, `index.json`, `manifest.json` and
/// `oci-layout` of an image with the one uncompressed layer `layer`.
pub fn oci_blobs(spec: &ImageSpec, layer: &[u8]) -> Result<Blobs> {
    let tag = reference_tag(&spec.reference)?;
    let created = rfc3339(spec.created);
    let mut annotations = BTreeMap::from([
        ("org.opencontainers.image.created", created.as_str()),
        ("org.opencontainers.image.title", spec.title.as_str()),
        ("org.opencontainers.image.version", spec.version.as_str()),
    ]);
    if let Some(rev) = &spec.revision {
        annotations.insert("org.opencontainers.image.revision", rev);
    }

    let diff_id = sha256(layer);
    let gz = gzip(layer)?;
    let layer_digest = sha256(&gz);
    let config = serde_json::to_vec(&Config {
        created: &created,
        architecture: "amd64",
        os: "linux",
        config: ContainerConfig {
            entrypoint: &spec.entrypoint,
            labels: &annotations,
        },
        rootfs: Rootfs {
            kind: "layers",
            diff_ids: vec![&diff_id],
        },
        history: vec![History {
            created: &created,
            created_by: "cargo xtask image",
        }],
    })?;
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST,
        config: Descriptor {
            media_type: MEDIA_CONFIG,
            digest: &config_digest,
            size: config.len() as u64,
            annotations: None,
        },
        layers: vec![Descriptor {
            media_type: MEDIA_LAYER,
            digest: &layer_digest,
            size: gz.len() as u64,
            annotations: None,
        }],
        annotations: &annotations,
    })?;
    let manifest_digest = sha256(&manifest);
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: MEDIA_INDEX,
        manifests: vec![Descriptor {
            media_type: MEDIA_MANIFEST,
            digest: &manifest_digest,
            size: manifest.len() as u64,
            annotations: Some(BTreeMap::from([
                ("io.containerd.image.name", spec.reference.as_str()),
                ("org.opencontainers.image.ref.name", tag),
            ])),
        }],
    })?;
    let docker_manifest = serde_json::to_vec(&[DockerManifest {
        config: blob_path(&config_digest),
        repo_tags: vec![&spec.reference],
        layers: vec![blob_path(&layer_digest)],
    }])?;

    let layer_gzip_len = gz.len() as u64;
    let files = BTreeMap::from([
        (blob_path(&layer_digest), gz),
        (blob_path(&config_digest), config),
        (blob_path(&manifest_digest), manifest),
        ("index.json".to_owned(), index),
        ("manifest.json".to_owned(), docker_manifest),
        (
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
    ]);
    Ok(Blobs {
        files,
        manifest_digest,
        config_digest,
        layer_digest,
        diff_id,
        layer_gzip_len,
    })
}

/// The archive: `blobs/`, `blobs/sha256/` and the files of `blobs`, sorted,
/// with the layer's ownership, modes 0755/0644 and mtime.
pub fn archive_tar(blobs: &Blobs, mtime: u64) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    for (path, data) in &blobs.files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64, mtime);
        tar.append_data(&mut h, path, data.as_slice())?;
    }
    Ok(tar.into_inner()?)
}

/// Reads back a tar written here: (path, mode, uid, gid, mtime, content).
#[cfg(test)]
fn read_tar(data: &[u8]) -> Vec<(String, u32, u64, u64, u64, Vec<u8>)> {
    use std::io::Read as _;
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        assert!(h.username_bytes().is_none_or(|u| u.is_empty()));
        assert!(h.groupname_bytes().is_none_or(|g| g.is_empty()));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.push((
            String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            content,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn file(path: &str, mode: u32, data: &[u8]) -> LayerFile {
        LayerFile {
            path: path.into(),
            mode,
            data: data.to_vec(),
        }
    }

    fn spec(output: PathBuf) -> ImageSpec {
        ImageSpec {
            binary: PathBuf::from("/bin/true"),
            extra_files: Vec::new(),
            entrypoint: vec!["/usr/local/bin/true".into()],
            reference: "localhost/test:1.2.3".into(),
            output,
            title: "true".into(),
            version: "1.2.3".into(),
            revision: Some("0123456789abcdef".into()),
            created: 1_700_000_000,
        }
    }

    fn json(data: &[u8]) -> serde_json::Value {
        serde_json::from_slice(data).unwrap()
    }

    #[test]
    fn layer_tar_is_deterministic_and_sorted() {
        let files = vec![
            file("/usr/local/bin/responder", 0o755, b"\x7fELF binary"),
            file("/lib64/ld-linux-x86-64.so.2", 0o755, b"loader"),
            file("/lib/x86_64-linux-gnu/libc.so.6", 0o755, b"libc"),
            file("/lib/x86_64-linux-gnu/libgcc_s.so.1", 0o644, b"libgcc"),
        ];
        let a = layer_tar(&files, 1_700_000_000).unwrap();
        let mut reversed = files.clone();
        reversed.reverse();
        let b = layer_tar(&reversed, 1_700_000_000).unwrap();
        assert_eq!(a, b, "the order of the inputs shows in the tar");
        assert_eq!(a, layer_tar(&files, 1_700_000_000).unwrap());
        assert_ne!(a, layer_tar(&files, 1).unwrap(), "mtime is not written");

        let entries = read_tar(&a);
        let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "lib/",
                "lib/x86_64-linux-gnu/",
                "lib/x86_64-linux-gnu/libc.so.6",
                "lib/x86_64-linux-gnu/libgcc_s.so.1",
                "lib64/",
                "lib64/ld-linux-x86-64.so.2",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/responder",
            ]
        );
        for (path, mode, uid, gid, mtime, content) in &entries {
            assert_eq!((*uid, *gid, *mtime), (0, 0, 1_700_000_000), "{path}");
            if path.ends_with('/') {
                assert_eq!(*mode, 0o755, "{path}");
                assert!(content.is_empty());
            } else {
                let f = files.iter().find(|f| f.path[1..] == *path).unwrap();
                assert_eq!((*mode, content), (f.mode, &f.data), "{path}");
            }
        }
        assert!(layer_tar(&[file("relative", 0o644, b"")], 0).is_err());
        assert!(layer_tar(&[file("/a/../b", 0o644, b"")], 0).is_err());
        assert!(layer_tar(&[file("/a", 0o644, b""), file("/a/b", 0o644, b"")], 0).is_err());
    }

    #[test]
    fn gzip_is_fixed() {
        let a = gzip(b"some layer").unwrap();
        assert_eq!(a, gzip(b"some layer").unwrap());
        // Magic, deflate, no flags (no name), mtime 0, level 9, OS unknown.
        assert_eq!(&a[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
    }

    #[test]
    fn blobs_agree_with_each_other() {
        let layer = layer_tar(
            &[file("/usr/local/bin/true", 0o755, b"binary")],
            1_700_000_000,
        )
        .unwrap();
        let spec = spec(PathBuf::from("/nonexistent"));
        let blobs = oci_blobs(&spec, &layer).unwrap();
        let f = &blobs.files;
        for (path, data) in f {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256(data), format!("sha256:{hex}"), "{path}");
            }
        }

        // diff_id is the digest of the uncompressed layer; the blob is gzip.
        let gz = &f[&blob_path(&blobs.layer_digest)];
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, layer);
        assert_eq!(blobs.diff_id, sha256(&layer));
        assert_ne!(blobs.diff_id, blobs.layer_digest);

        let config = json(&f[&blob_path(&blobs.config_digest)]);
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!([blobs.diff_id])
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/usr/local/bin/true"])
        );
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.version"], "1.2.3");
        assert_eq!(
            labels["org.opencontainers.image.revision"],
            "0123456789abcdef"
        );
        assert_eq!(
            labels["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(labels["org.opencontainers.image.title"], "true");
        assert!(labels.get("org.opencontainers.image.source").is_none());
        assert_eq!(config["history"].as_array().unwrap().len(), 1);

        let manifest_bytes = &f[&blob_path(&blobs.manifest_digest)];
        let manifest = json(manifest_bytes);
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MEDIA_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], MEDIA_CONFIG);
        assert_eq!(manifest["config"]["digest"], blobs.config_digest);
        assert_eq!(
            manifest["config"]["size"],
            f[&blob_path(&blobs.config_digest)].len()
        );
        assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_LAYER);
        assert_eq!(manifest["layers"][0]["digest"], blobs.layer_digest);
        assert_eq!(manifest["layers"][0]["size"], gz.len());
        assert_eq!(manifest["annotations"], *labels);

        let index = json(&f["index.json"]);
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], MEDIA_INDEX);
        let desc = &index["manifests"][0];
        assert_eq!(desc["mediaType"], MEDIA_MANIFEST);
        assert_eq!(desc["digest"], blobs.manifest_digest);
        assert_eq!(desc["size"], manifest_bytes.len());
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            "localhost/test:1.2.3"
        );
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.ref.name"],
            "1.2.3"
        );

        let docker = json(&f["manifest.json"]);
        assert_eq!(
            docker,
            serde_json::json!([{
                "Config": blob_path(&blobs.config_digest),
                "RepoTags": ["localhost/test:1.2.3"],
                "Layers": [blob_path(&blobs.layer_digest)],
            }])
        );
        assert_eq!(json(&f["oci-layout"])["imageLayoutVersion"], "1.0.0");

        let archive = archive_tar(&blobs, 1_700_000_000).unwrap();
        let entries = read_tar(&archive);
        let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let mut expected = vec!["blobs/", "blobs/sha256/"];
        expected.extend(f.keys().map(String::as_str));
        assert_eq!(paths, expected);
        assert_eq!(archive, archive_tar(&blobs, 1_700_000_000).unwrap());
    }

    /// Packs the host's /bin/true twice: the same archive, with the libraries
    /// and loader ldd names at their absolute paths.
    #[test]
    fn build_image_packs_a_dynamic_binary_reproducibly() {
        let dir = std::env::temp_dir().join(format!("xtask-image-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = build_image(&spec(dir.join("a.tar"))).unwrap();
        let b = build_image(&spec(dir.join("b.tar"))).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        let bytes = fs::read(&a.archive).unwrap();
        assert_eq!(bytes, fs::read(&b.archive).unwrap());
        assert_eq!(bytes.len() as u64, a.archive_bytes);
        assert!(
            a.files.contains(&"/usr/local/bin/true".to_owned()),
            "{:?}",
            a.files
        );
        let interp = elf_interpreter(&fs::read("/bin/true").unwrap())
            .unwrap()
            .unwrap();
        assert!(a.files.contains(&interp), "{:?}", a.files);
        assert!(
            a.files.iter().any(|f| f.contains("/libc.so")),
            "{:?}",
            a.files
        );

        // The layer in the archive holds the host's bytes at those paths.
        let entries = read_tar(&bytes);
        let layer = &entries
            .iter()
            .find(|e| e.0 == blob_path(&a.layer_digest))
            .unwrap()
            .5;
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(layer.as_slice())
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(sha256(&unzipped), a.diff_id);
        let layer_entries = read_tar(&unzipped);
        for path in &a.files {
            let entry = layer_entries.iter().find(|e| e.0 == path[1..]).unwrap();
            let host = if path == "/usr/local/bin/true" {
                "/bin/true"
            } else {
                path
            };
            assert_eq!(entry.5, fs::read(host).unwrap(), "{path}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn elf_interpreter_of_a_non_elf_file_is_an_error() {
        assert!(elf_interpreter(b"#!/bin/sh\necho hi\n").is_err());
    }

    #[test]
    fn timestamps_and_tags() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(reference_tag("localhost/responder:0.1.0").unwrap(), "0.1.0");
        assert_eq!(reference_tag("localhost:5000/responder").unwrap(), "latest");
        assert_eq!(reference_tag("responder").unwrap(), "latest");
        assert!(reference_tag("responder@sha256:00").is_err());
    }

    /// deploy/kustomization.yaml and deploy/controller/kustomization.yaml
    /// rename the `responder` image to what `cargo xtask image` tags.
    #[test]
    fn kustomizations_name_the_default_image() {
        let expected = default_reference(&cargo_metadata().unwrap().version);
        assert_eq!(expected, default_reference(env!("CARGO_PKG_VERSION")));
        for file in [
            "deploy/kustomization.yaml",
            "deploy/controller/kustomization.yaml",
        ] {
            let text = fs::read_to_string(crate::workspace_root().join(file)).unwrap();
            let (mut name, mut new_name, mut new_tag) = (None, None, None);
            let mut in_images = false;
            for line in text.lines() {
                let line = line.split(" #").next().unwrap_or_default().trim_end();
                if line.trim_start().starts_with('#') || line.is_empty() {
                    continue;
                }
                if !line.starts_with(' ') && !line.starts_with('-') {
                    in_images = line == "images:";
                    continue;
                }
                if !in_images {
                    continue;
                }
                let item = line.trim_start().trim_start_matches("- ");
                let unquote = |v: &str| v.trim().trim_matches('"').trim_matches('\'').to_owned();
                if let Some(v) = item.strip_prefix("name:") {
                    name = Some(unquote(v));
                } else if let Some(v) = item.strip_prefix("newName:") {
                    new_name = Some(unquote(v));
                } else if let Some(v) = item.strip_prefix("newTag:") {
                    new_tag = Some(unquote(v));
                }
            }
            assert_eq!(name.as_deref(), Some("responder"), "{file}");
            let (Some(new_name), Some(new_tag)) = (new_name, new_tag) else {
                panic!("{file}: no newName and newTag for the responder image");
            };
            assert_eq!(format!("{new_name}:{new_tag}"), expected, "{file}");
        }
    }
}
