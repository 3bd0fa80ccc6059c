//! The DaemonSet install (`deploy/`): the real API server accepts it, and it
//! keeps the security properties the README promises.
use std::collections::BTreeSet;

use responder_tests::apiserver::ApiServer;
use serde_json::Value;

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

#[test]
fn manifests_apply_and_keep_least_privilege() {
    let server = ApiServer::start("deploy");
    let objects = server_dry_run(&server);

    let pod = &find(&objects, "DaemonSet", "responder")["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"], true,
        "the agent must see the node's interfaces"
    );
    assert_eq!(pod["serviceAccountName"], "responder");
    assert!(
        pod["tolerations"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["operator"] == "Exists")),
        "must run on every node"
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true, "must not be privileged");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        BTreeSet::from(["ALL".to_owned()])
    );
    // Exactly the four `least_privilege.rs` shows are each needed.
    let added = strings(&sc["capabilities"]["add"]);
    let needed: BTreeSet<String> = ["BPF", "NET_ADMIN", "NET_RAW", "PERFMON"]
        .map(str::to_owned)
        .into();
    assert_eq!(added, needed, "capabilities: {added:?}");
    assert!(
        !added.contains("SYS_ADMIN"),
        "CAP_SYS_ADMIN is never needed"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(c[probe]["httpGet"]["path"].is_string(), "{probe} missing");
        assert_eq!(
            c[probe]["httpGet"]["port"], 9851,
            "{probe} goes to the probe listener, not the metrics port"
        );
    }
    for kind in ["requests", "limits"] {
        assert!(
            c["resources"][kind]["memory"].is_string(),
            "resources.{kind}.memory missing"
        );
        assert!(
            c["resources"][kind]["cpu"].is_string(),
            "resources.{kind}.cpu missing"
        );
    }
    let env: BTreeSet<String> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        env.contains("NODE_NAME") && env.contains("POD_NAMESPACE"),
        "downward API env missing: {env:?}"
    );
    // Only the pin directory comes from the host's bpffs (so pins survive
    // restarts), not the whole of /sys/fs/bpf, and where the agent looks.
    const PIN_DIR: &str = "/sys/fs/bpf/responder";
    let volumes = pod["volumes"].as_array().expect("volumes");
    let pins = volumes
        .iter()
        .find(|v| v["hostPath"]["path"] == PIN_DIR)
        .unwrap_or_else(|| panic!("{PIN_DIR} must come from the host"));
    assert!(
        volumes
            .iter()
            .all(|v| v["hostPath"].is_null() || v["hostPath"]["path"] == PIN_DIR),
        "no other host paths"
    );
    let mounted_at = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == pins["name"])
        .map(|m| m["mountPath"].clone());
    assert_eq!(
        mounted_at,
        Some(serde_json::json!(PIN_DIR)),
        "mounted at the default --pin-path"
    );

    // RBAC: read-only on what decides ownership, write only Events and own Leases.
    let cluster_rules = find(&objects, "ClusterRole", "responder")["rules"]
        .as_array()
        .expect("rules")
        .clone();
    for rule in &cluster_rules {
        let verbs = strings(&rule["verbs"]);
        let resources = strings(&rule["resources"]);
        assert!(
            !verbs.contains("*") && !resources.contains("*"),
            "wildcard in {rule}"
        );
        assert!(!resources.contains("secrets"), "no secrets: {rule}");
        if resources.contains("events") {
            assert_eq!(
                verbs,
                ["create", "patch"].map(str::to_owned).into(),
                "events: {rule}"
            );
        } else {
            assert_eq!(
                verbs,
                ["get", "list", "watch"].map(str::to_owned).into(),
                "read-only: {rule}"
            );
        }
    }
    let granted: BTreeSet<String> = cluster_rules
        .iter()
        .flat_map(|r| strings(&r["resources"]))
        .collect();
    assert_eq!(
        granted,
        ["endpointslices", "events", "nodes", "services"]
            .map(str::to_owned)
            .into()
    );
    let role = find(&objects, "Role", "responder-leases");
    assert_eq!(
        role["metadata"]["namespace"], "responder-system",
        "Leases only in the agent's namespace"
    );
    assert_eq!(
        strings(&role["rules"][0]["resources"]),
        BTreeSet::from(["leases".to_owned()])
    );
}
