//! `deploy/crds/`: the CRDs install and accept a MetalLB layer-2 configuration.
use super::*;

#[test]
fn crds_install_and_accept_a_metallb_layer2_configuration() {
    let server = ApiServer::start("deploy-crds");
    let objects = component_dry_run(&server, "crds");
    let names: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        [
            "ipaddresspools.metallb.io",
            "l2advertisements.metallb.io",
            "servicel2statuses.metallb.io"
        ]
        .map(str::to_owned)
        .into()
    );
    install_crds(
        &server,
        &["apply", "-k", &component_dir("crds")],
        &[
            "crd/ipaddresspools.metallb.io",
            "crd/l2advertisements.metallb.io",
            "crd/servicel2statuses.metallb.io",
        ],
    );
    kubectl_ok(&server, &["apply", "-f", &component_dir("namespace.yaml")]);
    let config = format!("{}/k8s/metallb-layer2.yaml", env!("CARGO_MANIFEST_DIR"));
    kubectl_ok(&server, &["apply", "--dry-run=server", "-f", &config]);
    // The server checks the schema (not only kubectl): a pool without addresses
    // is refused.
    let refused = server.kubectl(&[
        "apply",
        "--validate=false",
        "--dry-run=server",
        "-f",
        &format!("{}/k8s/invalid-pool.yaml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert!(
        !refused.status.success(),
        "a pool without addresses was accepted"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("spec.addresses"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
