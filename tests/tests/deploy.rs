//! The DaemonSet install (`deploy/`): the real API server accepts it, and it
//! keeps the security properties docs/install.md promises.
use std::collections::BTreeSet;

use responder_tests::lab::apiserver::ApiServer;
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
    // Outside /sys, where a runtime can make a mount point (it mounts sysfs
    // at /sys first), and where the agent looks: $RESPONDER_PIN_PATH.
    let mounted_at = mounted_at
        .as_ref()
        .and_then(|m| m.as_str())
        .expect("the pin volume is mounted");
    assert!(
        !mounted_at.starts_with("/sys/"),
        "mounted outside /sys: {mounted_at}"
    );
    let pin_path_env = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "RESPONDER_PIN_PATH")
        .map(|e| e["value"].clone());
    assert_eq!(
        pin_path_env,
        Some(serde_json::json!(mounted_at)),
        "RESPONDER_PIN_PATH names the mount"
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
    // And, read-only, its own pod and DaemonSet: a stopping agent tells an
    // uninstall from a restart by them.
    let own: BTreeSet<(String, String)> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .skip(1)
        .flat_map(|r| {
            let verbs = strings(&r["verbs"]);
            assert_eq!(
                verbs,
                BTreeSet::from(["get".to_owned()]),
                "read one object: {r}"
            );
            let groups = strings(&r["apiGroups"]);
            strings(&r["resources"])
                .into_iter()
                .flat_map(move |res| groups.clone().into_iter().map(move |g| (g, res.clone())))
        })
        .collect();
    assert_eq!(
        own,
        BTreeSet::from([
            (String::new(), "pods".to_owned()),
            ("apps".to_owned(), "daemonsets".to_owned())
        ])
    );
    // MetalLB's kinds: pools and advertisements read, ServiceL2Status
    // written, only in the agent's namespace.
    let metallb = find(&objects, "Role", "responder-metallb");
    assert_eq!(metallb["metadata"]["namespace"], "responder-system");
    let rules: BTreeSet<(BTreeSet<String>, BTreeSet<String>, BTreeSet<String>)> = metallb["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect();
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        rules,
        BTreeSet::from([
            (
                set(&["metallb.io"]),
                set(&["ipaddresspools", "l2advertisements"]),
                set(&["get", "list", "watch"]),
            ),
            (
                set(&["metallb.io"]),
                set(&["servicel2statuses"]),
                set(&["create", "delete", "get", "list", "patch", "watch"]),
            ),
            (
                set(&["metallb.io"]),
                set(&["servicel2statuses/status"]),
                set(&["patch"]),
            ),
        ])
    );
    let binding = find(&objects, "RoleBinding", "responder-metallb");
    assert_eq!(binding["roleRef"]["name"], "responder-metallb");
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

#[test]
fn controller_component_applies_with_least_privilege() {
    let server = ApiServer::start("deploy-controller");
    kubectl_ok(&server, &["apply", "-f", &component_dir("namespace.yaml")]);
    let objects = component_dry_run(&server, "controller");

    let deployment = find(&objects, "Deployment", "responder-controller");
    assert_eq!(deployment["metadata"]["namespace"], "responder-system");
    assert_eq!(deployment["spec"]["replicas"], 2, "a standby takes over");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_ne!(
        pod["hostNetwork"], true,
        "the controller needs no host network"
    );
    assert_eq!(pod["serviceAccountName"], "responder-controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["args"][0], "controller");
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        BTreeSet::from(["ALL".to_owned()])
    );
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert!(pod["volumes"].is_null(), "no volumes, no host paths");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], 9853, "{probe}");
    }
    let env: BTreeSet<String> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        env.contains("POD_NAMESPACE") && env.contains("POD_NAME"),
        "{env:?}"
    );

    // RBAC: exactly what it uses.
    let rules = |kind: &str| -> Vec<(BTreeSet<String>, BTreeSet<String>, BTreeSet<String>)> {
        find(&objects, kind, "responder-controller")["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                for field in ["verbs", "resources", "apiGroups"] {
                    assert!(!strings(&r[field]).contains("*"), "wildcard in {r}");
                }
                (
                    strings(&r["resources"]),
                    strings(&r["verbs"]),
                    strings(&r["resourceNames"]),
                )
            })
            .collect()
    };
    let set =
        |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
    let cluster = rules("ClusterRole");
    assert_eq!(
        cluster,
        vec![
            (
                set(&["services"]),
                set(&["get", "list", "watch", "patch"]),
                set(&[])
            ),
            (set(&["services/status"]), set(&["patch"]), set(&[])),
            (
                set(&["namespaces"]),
                set(&["get", "list", "watch"]),
                set(&[])
            ),
            (set(&["events"]), set(&["create", "patch"]), set(&[])),
        ]
    );
    let role = find(&objects, "Role", "responder-controller");
    assert_eq!(role["metadata"]["namespace"], "responder-system");
    let namespaced = rules("Role");
    assert!(namespaced.contains(&(
        set(&["leases"]),
        set(&["get", "update"]),
        set(&["responder.controller"])
    )));
    assert!(namespaced.contains(&(set(&["leases"]), set(&["create"]), set(&[]))));
    assert!(namespaced.contains(&(
        set(&["ipaddresspools"]),
        set(&["get", "list", "watch"]),
        set(&[])
    )));
    for (resources, verbs, _) in &namespaced {
        assert!(!resources.contains("secrets"));
        if resources.contains("bgppeers") {
            assert_eq!(verbs, &set(&["list"]), "BGP kinds are only looked at");
        }
    }
}

#[test]
fn monitoring_component_applies() {
    let server = ApiServer::start("deploy-monitoring");
    kubectl_ok(&server, &["apply", "-f", &component_dir("namespace.yaml")]);
    install_crds(
        &server,
        &[
            "apply",
            "-f",
            &format!(
                "{}/k8s/prometheus-operator-crds.yaml",
                env!("CARGO_MANIFEST_DIR")
            ),
        ],
        &[
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
    );
    let objects = component_dry_run(&server, "monitoring");
    let monitor = find(&objects, "ServiceMonitor", "responder");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let rule = find(&objects, "PrometheusRule", "responder");
    let alerts = rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .count();
    assert!(alerts >= 6, "{alerts} alerts");
    let dashboard = find(&objects, "ConfigMap", "responder-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["responder.json"]
        .as_str()
        .expect("dashboard");
    let parsed: Value = serde_json::from_str(json).expect("dashboard JSON");
    assert_eq!(parsed["uid"], "responder");
    for service in ["responder-metrics", "responder-controller-metrics"] {
        let object = find(&objects, "Service", service);
        assert_eq!(
            object["spec"]["clusterIP"], "None",
            "{service}: every endpoint scraped"
        );
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "responder"
        );
    }
}
