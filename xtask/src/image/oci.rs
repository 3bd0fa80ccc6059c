//! The archive around the layer: the OCI config, manifest and index, the
//! `docker load` manifest, and the tar holding them; [`build_image`] writes it.
use std::{
    collections::BTreeMap, fs, io::Write as _, os::unix::fs::PermissionsExt as _, path::PathBuf,
};

use anyhow::{bail, ensure, Context as _, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{
    layer::{gzip, header, layer_tar, shared_libraries, LayerFile},
    ImageOut, ImageSpec, BIN_DIR,
};

pub(super) const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(super) const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(super) const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Packs `spec` and writes the archive; see the `image` module documentation.
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

pub(super) fn blob_path(digest: &str) -> String {
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
