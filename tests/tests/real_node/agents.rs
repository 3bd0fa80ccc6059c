//! The agent pods as the kubelet and the kernel see them: readiness, Leases,
//! containers, security context.
use super::*;

/// The agent pods, by node name.
pub(super) fn agent_pods(cluster: &RealCluster) -> Vec<(String, String, Value)> {
    let pods = cluster.kubectl_json(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=responder",
    ]);
    pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            (
                p["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                p.clone(),
            )
        })
        .collect()
}

pub(super) fn ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits until every node runs one Ready agent pod; returns their names by node.
pub(super) fn agents_ready(cluster: &RealCluster) -> Vec<(String, String, Value)> {
    cluster.wait("an agent pod Running and Ready on every node", WAIT, || {
        let pods = agent_pods(cluster);
        let all = cluster.nodes.iter().all(|n| {
            pods.iter()
                .filter(|(node, _, p)| node == &n.name && ready(p))
                .count()
                == 1
        });
        (all && pods.iter().all(|(_, _, p)| ready(p))).then_some(pods)
    })
}

/// Waits until `node`'s agent has renewed its Lease as usual (no restart
/// mark of a predecessor left); the Lease duration in seconds.
pub(super) fn settled_lease(cluster: &RealCluster, node: &str) -> u64 {
    cluster.wait(
        &format!("the Lease of {node} renewed by its agent"),
        WAIT,
        || {
            let lease = cluster.kubectl_json(&[
                "-n",
                NAMESPACE,
                "get",
                "lease",
                &format!("responder-{node}"),
            ]);
            let marked = lease["metadata"]["annotations"]
                .as_object()
                .is_some_and(|a| a.keys().any(|k| k.contains("restart-grace")));
            let seconds = lease["spec"]["leaseDurationSeconds"].as_u64()?;
            (!marked && seconds <= 5).then_some(seconds)
        },
    )
}

/// The containerd ID of `node`'s running agent container.
pub(super) fn agent_container(cluster: &RealCluster, node: &str) -> String {
    let pods = agents_ready(cluster);
    let (_, _, pod) = pods
        .iter()
        .find(|(n, _, _)| n == node)
        .expect("the node's agent pod");
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("containerd://"))
        .expect("a containerd container ID")
        .to_owned()
}

pub(super) fn kill_container(cluster: &RealCluster, node: &str, container: &str) {
    let out = cluster.ctr(node, &["tasks", "kill", "-s", "SIGKILL", container]);
    assert!(
        out.status.success(),
        "ctr kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The agent processes run with exactly the manifest's capabilities, under
/// seccomp, without new privileges, on a read-only root.
pub(super) fn check_security_context(cluster: &RealCluster, pods: &[(String, String, Value)]) {
    // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_PERFMON 38, CAP_BPF 39.
    let wanted: u64 = (1 << 12) | (1 << 13) | (1 << 38) | (1 << 39);
    for (node, pod, spec) in pods {
        let id = spec["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .and_then(|id| id.strip_prefix("containerd://"))
            .unwrap_or_else(|| panic!("{pod}: container ID"));
        let tasks = cluster.ctr(node, &["tasks", "ls"]);
        let tasks = String::from_utf8_lossy(&tasks.stdout);
        let pid = tasks
            .lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{pod}: task of {id} in {tasks}"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
                .to_owned()
        };
        let hex = |name: &str| u64::from_str_radix(&field(name), 16).expect("hex capability set");
        assert_eq!(hex("CapEff:"), wanted, "{pod}: effective capabilities");
        assert_eq!(hex("CapBnd:"), wanted, "{pod}: bounding set");
        assert_eq!(
            field("Seccomp:"),
            "2",
            "{pod}: a seccomp filter (RuntimeDefault)"
        );
        assert_eq!(
            field("NoNewPrivs:"),
            "1",
            "{pod}: allowPrivilegeEscalation: false"
        );
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).expect("mounts");
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("/"))
            .expect("a root mount");
        assert!(
            root.split_whitespace()
                .nth(3)
                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            "{pod}: read-only root: {root}"
        );
        assert!(
            mounts.lines().any(
                |l| l.split_whitespace().nth(1) == Some("/run/responder/pins")
                    && l.split_whitespace().nth(2) == Some("bpf")
            ),
            "{pod}: the pin directory is bpffs at /run/responder/pins:\n{mounts}"
        );
    }
}
