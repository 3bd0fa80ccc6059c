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
//! the XDP object inside it (see [`remaps`](release::remaps)).
use std::path::PathBuf;

use anyhow::{Context as _, Result};

pub use self::release::rustc_wrapper;
use self::{
    oci::build_image,
    release::{build_release, cargo_metadata, source_time_and_revision},
};

mod layer;
mod oci;
mod release;
#[cfg(test)]
mod tests;

/// Where `--binary` and the agent are put in the image.
const BIN_DIR: &str = "/usr/local/bin";
/// The image name `cargo xtask image` tags by default (with the workspace
/// version); deploy/kustomization.yaml and deploy/controller/kustomization.yaml
/// name the same (a unit test checks).
pub const DEFAULT_IMAGE_NAME: &str = "localhost/responder";

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
