//! Unit tests of the image: the layer, the blobs and archive, a real pack of
//! /bin/true, and the default reference the kustomizations name.
use std::{fs, io::Read as _, path::PathBuf};

use super::{
    default_reference,
    layer::{elf_interpreter, gzip, layer_tar, LayerFile},
    oci::{
        archive_tar, blob_path, build_image, oci_blobs, reference_tag, rfc3339, sha256,
        MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER, MEDIA_MANIFEST,
    },
    release::cargo_metadata,
    ImageSpec,
};

/// Reads back a tar written here: (path, mode, uid, gid, mtime, content).
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
