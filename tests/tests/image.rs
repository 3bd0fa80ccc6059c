//! The archive `cargo xtask image` writes, read the way other tools read it:
//! skopeo as an OCI archive and as a `docker save` archive (what `podman
//! load` and `docker load` take), with its labels, entrypoint and the files
//! of its one layer. `real_node.rs` imports it into containerd and runs it.
use std::process::Command;

use responder_tests::lab::real_cluster::Images;
use serde_json::Value;

fn skopeo(args: &[&str]) -> Value {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

fn archive_member(archive: &str, member: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["-xOf", archive, member])
        .output()
        .expect("run tar");
    assert!(out.status.success(), "{member} in {archive}");
    out.stdout
}

#[test]
fn the_archive_reads_as_oci_and_as_docker_with_labels_and_no_shell() {
    let images = Images::from_env();
    let archive = images.responder.to_string_lossy().into_owned();
    for transport in ["oci-archive", "docker-archive"] {
        let image = format!("{transport}:{archive}");
        let inspect = skopeo(&["inspect", &image]);
        assert_eq!(inspect["Architecture"], "amd64", "{transport}");
        assert_eq!(inspect["Os"], "linux", "{transport}");
        let labels = &inspect["Labels"];
        assert_eq!(
            labels["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION"),
            "{transport}: {labels}"
        );
        assert_eq!(labels["org.opencontainers.image.title"], "responder");
        let revision = labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(revision.len(), 40, "{transport}: a commit hash: {labels}");
        let config = skopeo(&["inspect", "--config", &image]);
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/usr/local/bin/responder"]),
            "{transport}"
        );
    }

    // Docker's manifest names the image and the one layer.
    let manifest: Value =
        serde_json::from_slice(&archive_member(&archive, "manifest.json")).expect("manifest.json");
    assert_eq!(manifest[0]["RepoTags"][0], images.reference.as_str());
    let layer = manifest[0]["Layers"][0].as_str().expect("a layer");
    let listing = Command::new("sh")
        .arg("-c")
        .arg(r#"tar -xOf "$1" "$2" | tar -tz"#)
        .args(["sh", &archive, layer])
        .output()
        .expect("list the layer");
    let files: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|f| !f.ends_with('/'))
        .map(str::to_owned)
        .collect();
    assert!(
        files.iter().any(|f| f == "usr/local/bin/responder"),
        "the agent: {files:?}"
    );
    // The binary, its C libraries and the loader; nothing to run a shell or
    // install packages with.
    for file in &files {
        let allowed = file == "usr/local/bin/responder"
            || file.starts_with("lib/x86_64-linux-gnu/lib")
            || file.starts_with("lib64/ld-linux")
            || file.starts_with("usr/lib/x86_64-linux-gnu/lib");
        assert!(
            allowed,
            "only the agent and its libraries: {file} in {files:?}"
        );
    }
    assert!(files.len() <= 6, "{files:?}");
}
