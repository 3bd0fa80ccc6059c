//! The product as users install it: the image `cargo xtask image` builds,
//! imported into containerd on two real kubelet nodes, and `deploy/` applied
//! with `kubectl apply -k` exactly as shipped (its `images:` entry names that
//! image). The agents run under the DaemonSet's security context, the address
//! controller with its own ServiceAccount token; a client on the nodes'
//! segment resolves a dual-stack Service's addresses while the agents are
//! rolled, deleted and killed; then everything is uninstalled.
use std::{
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use responder_tests::{
    lab::kube::{deploy_dir, WAIT_FOR_CRDS},
    lab::real_cluster::{output_of, Images, RealCluster, CLIENT_IF, CLIENT_V4, NODE_IF},
    lab::responder::responder_bin,
    prober::{ArpProber, Tally},
};
use serde_json::Value;

mod agents;
mod probe;
use agents::*;
use probe::*;

const NAMESPACE: &str = "responder-system";
/// Generous for a 2-core machine: pods start, images unpack, nothing here is
/// a timed assertion.
const WAIT: Duration = Duration::from_secs(180);
const PROBE_EVERY: Duration = Duration::from_millis(10);

const LAYER2: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: segment
  namespace: responder-system
spec:
  addresses:
    - 192.0.2.240/28
    - 2001:db8:1::f0/124
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: segment
  namespace: responder-system
spec:
  ipAddressPools:
    - segment
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector:
    app: web
  ports:
    - port: 80
"#;

fn apply_stdin(cluster: &RealCluster, manifest: &str) {
    let path = cluster.state_dir().join("layer2.yaml");
    std::fs::write(&path, manifest).expect("write manifest");
    cluster.kubectl_ok(&["apply", "-f", &path.to_string_lossy()]);
}

fn service_addresses(cluster: &RealCluster) -> Vec<String> {
    cluster.wait(
        "the controller assigns both families to the Service",
        WAIT,
        || {
            let svc = cluster.kubectl_json(&["-n", "default", "get", "service", "web"]);
            let ips: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()?
                .iter()
                .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                .collect();
            (ips.len() == 2).then_some(ips)
        },
    )
}

#[test]
fn deploy_as_shipped_on_real_kubelet_nodes() {
    let images = Images::from_env();
    let cluster = RealCluster::start("rn", &["node-a", "node-b"], &images);

    // --- install, exactly as shipped -----------------------------------
    cluster.kubectl_ok(&["apply", "-k", &deploy_dir("crds")]);
    cluster.kubectl_ok(WAIT_FOR_CRDS);
    cluster.kubectl_ok(&["apply", "-k", &deploy_dir("")]);
    cluster.kubectl_ok(&["apply", "-k", &deploy_dir("controller")]);

    let pods = agents_ready(&cluster);
    for (_, _, pod) in &pods {
        let image = pod["spec"]["containers"][0]["image"].as_str().unwrap_or("");
        assert_eq!(
            image, images.reference,
            "the DaemonSet runs the image xtask built"
        );
    }
    check_security_context(&cluster, &pods);

    cluster.wait("the controller Deployment available", WAIT, || {
        let d =
            cluster.kubectl_json(&["-n", NAMESPACE, "get", "deployment", "responder-controller"]);
        (d["status"]["availableReplicas"].as_u64() == Some(2)).then_some(())
    });
    // Its pods are not on the host network and hold no kubeconfig: only the
    // ServiceAccount token the kubelet mounts.
    let controllers = cluster.kubectl_json(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=responder-controller",
    ]);
    for pod in controllers["items"].as_array().expect("items") {
        assert!(pod["spec"]["hostNetwork"].is_null() || pod["spec"]["hostNetwork"] == false);
        assert_eq!(pod["spec"]["serviceAccountName"], "responder-controller");
        let env = pod["spec"]["containers"][0]["env"].to_string();
        assert!(!env.contains("KUBECONFIG"), "no kubeconfig: {env}");
    }

    // --- a MetalLB layer-2 configuration and a dual-stack Service ------
    apply_stdin(&cluster, LAYER2);
    let addresses = service_addresses(&cluster);
    let v4: Ipv4Addr = addresses
        .iter()
        .find_map(|a| a.parse().ok())
        .expect("an IPv4 address");
    let v6 = addresses
        .iter()
        .find(|a| a.contains(':'))
        .expect("an IPv6 address")
        .clone();
    let owner = owner_of(&cluster, v4);
    let owner_mac = cluster.node(&owner).mac.clone();
    let ndp = cluster.wait(&format!("{v6} resolved by NDP"), WAIT, || {
        let out = cluster
            .client
            .command("ndisc6")
            .args(["-1", "-r", "3", "-w", "300", &v6, CLIENT_IF])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        text.contains("target link-layer address").then_some(text)
    });
    assert!(
        cluster
            .nodes
            .iter()
            .any(|n| ndp.contains(&n.mac.to_lowercase())),
        "a node's MAC answers NDP for {v6}: {ndp}"
    );
    cluster.wait("a ServiceL2Status naming the owner", WAIT, || {
        let list = cluster.kubectl_json(&["-n", NAMESPACE, "get", "servicel2statuses"]);
        let items = list["items"].as_array()?;
        let [only] = items.as_slice() else {
            return None;
        };
        (only["status"]["node"] == owner.as_str()
            && only["status"]["serviceName"] == "web"
            && only["status"]["interfaces"][0]["name"] == NODE_IF)
            .then_some(())
    });

    // --- `responder status`, from the control plane with a kubeconfig ---
    let status = cluster
        .control_plane()
        .command(&responder_bin().to_string_lossy())
        .arg("status")
        .arg("--kubeconfig")
        .arg(cluster.state_dir().join("kubeconfig"))
        .args(["--namespace", NAMESPACE, "--json"])
        .output()
        .expect("run responder status");
    assert!(
        status.status.success(),
        "responder status: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let rows: Vec<&Value> = report["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .filter(|row| row["service"] == "default/web")
        .collect();
    assert_eq!(rows.len(), 2, "both addresses of web: {report}");
    for row in rows {
        assert_eq!(row["announced"], true, "{row}");
        assert_eq!(row["node"], owner.as_str(), "the node that answers: {row}");
        assert_eq!(row["interfaces"], serde_json::json!([NODE_IF]), "{row}");
    }
    for node in report["nodes"].as_array().expect("nodes") {
        assert!(node["excluded"].is_null(), "every node announces: {node}");
    }

    // --- logs and metrics, as an operator reads them -------------------
    let (_, owner_pod, _) = pods
        .iter()
        .find(|(n, _, _)| n == &owner)
        .expect("owner pod");
    let logs = cluster.kubectl_ok(&["-n", NAMESPACE, "logs", owner_pod]);
    assert!(
        logs.contains(NODE_IF) && logs.to_lowercase().contains("attach"),
        "kubectl logs shows the agent attaching to {NODE_IF}:\n{logs}"
    );
    let metrics = output_of(
        &cluster.client,
        "curl",
        &[
            "-sf",
            "-m",
            "5",
            &format!("http://{}:9850/metrics", cluster.node(&owner).ip),
        ],
    );
    assert!(
        metrics.contains("responder_"),
        "the pod's metrics port answers:\n{metrics}"
    );

    // --- a rolling restart moves nothing and loses nothing -------------
    let probe = Probe::start(&cluster, v4);
    thread::sleep(Duration::from_millis(500));
    let before = agent_pods(&cluster);
    cluster.kubectl_ok(&["-n", NAMESPACE, "rollout", "restart", "daemonset/responder"]);
    cluster.kubectl_ok(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "daemonset/responder",
        "--timeout=300s",
    ]);
    let after = agents_ready(&cluster);
    thread::sleep(Duration::from_secs(2));
    let tally = probe.finish();
    assert!(
        after
            .iter()
            .all(|(_, name, _)| before.iter().all(|(_, old, _)| old != name)),
        "every agent pod was replaced"
    );
    assert_unbroken("kubectl rollout restart", &tally, &owner_mac);

    // --- kubectl delete pod: SIGTERM within the grace period -----------
    let (_, owner_pod, _) = after
        .iter()
        .find(|(n, _, _)| n == &owner)
        .expect("owner pod");
    let probe = Probe::start(&cluster, v4);
    thread::sleep(Duration::from_millis(500));
    cluster.kubectl_ok(&["-n", NAMESPACE, "delete", "pod", owner_pod, "--wait=true"]);
    agents_ready(&cluster);
    thread::sleep(Duration::from_secs(2));
    let tally = probe.finish();
    assert_unbroken("kubectl delete pod", &tally, &owner_mac);

    // --- the owner's agent container SIGKILLed through the runtime -----
    // With its kubelet frozen, as on a node that is dying: nothing restarts
    // the agent, and the other node takes over once the Lease expires.
    let lease_seconds = settled_lease(&cluster, &owner);
    let container = agent_container(&cluster, &owner);
    let prober = ArpProber::on(&cluster.client, CLIENT_IF, cluster.client_v4());
    cluster.freeze_kubelet(&owner, true);
    let killed = Instant::now();
    kill_container(&cluster, &owner, &container);
    let takeover = prober.first_reply_not_from(v4, &owner_mac, PROBE_EVERY, WAIT);
    let (answered, by) = takeover.expect("another node answers after the owner's agent is killed");
    let took = answered - killed;
    assert!(
        cluster.node_by_mac(&by).is_some_and(|n| n.name != owner),
        "the survivor answers ({by})"
    );
    eprintln!(
        "SIGKILL of the owner's agent container (kubelet frozen): the other node answered after {took:?} (Lease {lease_seconds} s)"
    );
    // The survivor takes over once the dead agent's Lease has expired: the
    // duration, counted from the renewal the survivor last saw, and its
    // reaction.
    assert!(
        took <= Duration::from_secs(lease_seconds) + Duration::from_secs(3),
        "taken over within the Lease duration ({lease_seconds} s): {took:?}"
    );
    // The dead agent's program is still attached (its node lives on), and
    // would answer until --stale-after (75 s in the DaemonSet): it yields to
    // the successor's announcements once its heartbeat is --yield-after
    // (1.5 s) old, which the successor's second announcement, one
    // --announce-interval (1.1 s) after its first, always finds. So after
    // that, only the successor answers. (Here each node has its own network
    // namespace: the successor's MAC is not one of the dead node's own, as
    // in the simulated labs.)
    let yielded_by = answered + Duration::from_millis(1100 + 300);
    thread::sleep(yielded_by.saturating_duration_since(Instant::now()));
    let after = prober.tally(v4, PROBE_EVERY, Duration::from_secs(2));
    cluster.freeze_kubelet(&owner, false);
    eprintln!("after the successor's second announcement: {after:?}");
    assert!(
        !after.replies.contains_key(&owner_mac) && after.replies.contains_key(&by),
        "the dead agent's program yielded to the successor within one announcement interval: {after:?}"
    );
    agents_ready(&cluster);

    // With its kubelet running, the killed agent's container is restarted at
    // once, often before its Lease expires: whether the node keeps the
    // address or the other takes it over (and gives it back after the
    // hold-down), no probe goes unanswered. Before the hold-down agreement,
    // the restarted agent counted the other node settled while that node
    // held itself down, and neither answered for 8 s.
    let owner = owner_of(&cluster, v4);
    settled_lease(&cluster, &owner);
    let container = agent_container(&cluster, &owner);
    let probe = Probe::start(&cluster, v4);
    thread::sleep(Duration::from_millis(500));
    kill_container(&cluster, &owner, &container);
    thread::sleep(Duration::from_secs(lease_seconds) + Duration::from_secs(6));
    let tally = probe.finish();
    eprintln!("SIGKILL with the kubelet running: {tally:?}");
    let answered: u64 = tally.replies.values().sum();
    assert!(
        tally.sent > 100 && answered >= tally.sent,
        "SIGKILL with the kubelet running: every probe answered: {tally:?}"
    );
    agents_ready(&cluster);

    // --- uninstall -----------------------------------------------------
    cluster.kubectl_ok(&[
        "delete",
        "-f",
        &cluster.state_dir().join("layer2.yaml").to_string_lossy(),
    ]);
    cluster.kubectl_ok(&["delete", "-k", &deploy_dir("controller"), "--wait=true"]);
    cluster.kubectl_ok(&["delete", "-k", &deploy_dir(""), "--wait=true"]);
    cluster.wait("every agent pod gone", WAIT, || {
        agent_pods(&cluster).is_empty().then_some(())
    });
    for node in &cluster.nodes {
        let link = node.netns.ip(&["link", "show", "dev", NODE_IF]);
        assert!(
            !link.contains("xdp"),
            "{}: no XDP program left on {NODE_IF}:\n{link}",
            node.name
        );
        // The hostPath directory itself stays (the kubelet made it).
        let pins = cluster.in_node(
            &node.name,
            &["find", "/sys/fs/bpf/responder", "-mindepth", "1"],
        );
        let pins = String::from_utf8_lossy(&pins.stdout);
        assert!(
            pins.trim().is_empty(),
            "{}: nothing pinned after uninstall: {pins}",
            node.name
        );
        let offloads = output_of(&node.netns, "ethtool", &["-k", NODE_IF]);
        assert!(
            offloads.contains("rx-vlan-offload: on"),
            "{}: receive VLAN offload restored:\n{offloads}",
            node.name
        );
    }
    let _ = CLIENT_V4;
}
