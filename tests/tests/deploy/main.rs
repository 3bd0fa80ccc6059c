//! The DaemonSet install (`deploy/`): the real API server accepts it, and it
//! keeps the security properties docs/install.md promises.
use std::collections::BTreeSet;

use responder_tests::lab::apiserver::ApiServer;
use serde_json::Value;

mod controller;
mod crds;
mod daemonset;
mod monitoring;

fn deploy_dir() -> String {
    format!("{}/../deploy", env!("CARGO_MANIFEST_DIR"))
}

/// The objects of `kubectl apply -k deploy/ --dry-run=server`, as the server returned them.
fn server_dry_run(server: &ApiServer) -> Vec<Value> {
    // A namespaced dry-run needs its namespace to exist.
    let ns = server.kubectl(&["apply", "-f", &format!("{}/namespace.yaml", deploy_dir())]);
    assert!(
        ns.status.success(),
        "namespace: {}",
        String::from_utf8_lossy(&ns.stderr)
    );
    let out = server.kubectl(&[
        "apply",
        "--dry-run=server",
        "-k",
        &deploy_dir(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "kubectl apply --dry-run=server -k deploy/ failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl -o json");
    list["items"].as_array().expect("a List").clone()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not in deploy/"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn component_dir(component: &str) -> String {
    format!("{}/{component}", deploy_dir())
}

fn kubectl_ok(server: &ApiServer, args: &[&str]) -> String {
    let out = server.kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply --dry-run=server -k deploy/<component>`, as the server returned it.
fn component_dry_run(server: &ApiServer, component: &str) -> Vec<Value> {
    let out = kubectl_ok(
        server,
        &[
            "apply",
            "--dry-run=server",
            "-k",
            &component_dir(component),
            "-o",
            "json",
        ],
    );
    let list: Value = serde_json::from_str(&out).expect("kubectl -o json");
    match list["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![list],
    }
}

fn install_crds(server: &ApiServer, args: &[&str], crds: &[&str]) {
    kubectl_ok(server, args);
    let mut wait = vec!["wait", "--for", "condition=established", "--timeout=60s"];
    wait.extend(crds.iter().copied());
    kubectl_ok(server, &wait);
}
