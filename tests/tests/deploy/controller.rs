//! `deploy/controller/`: the address controller, with least privilege.
use super::*;

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
