//! `deploy/` itself: the DaemonSet and its RBAC, with least privilege.
use super::*;

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
        [
            "customresourcedefinitions",
            "endpointslices",
            "events",
            "nodes",
            "services"
        ]
        .map(str::to_owned)
        .into()
    );
    let crds = cluster_rules
        .iter()
        .find(|r| strings(&r["resources"]).contains("customresourcedefinitions"))
        .expect("the CRD rule");
    assert_eq!(
        strings(&crds["resourceNames"]),
        BTreeSet::from(["l2advertisements.metallb.io".to_owned()]),
        "one CRD, by name: {crds}"
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
