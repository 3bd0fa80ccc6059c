//! A real Kubernetes cluster on one machine, as users run the product: a
//! control plane and kubelet nodes with containerd, runc and CNI, started by
//! `tests/k8s/node.sh`, and the images `cargo xtask image` builds imported
//! into each node's runtime.
//!
//! One L2 segment (a bridge in a namespace of its own) joins the control
//! plane, the nodes and a client. Each node is a network namespace whose
//! uplink `eth0` carries its default route, and a mount namespace of its own
//! (see node.sh). Everything is named after the test process and stopped or
//! removed on drop: the processes by PID, then the namespaces.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use super::{link::format_mac, segment::Segment};
use crate::netns::{run_ok, wait_for, NetNs, TempPath};

pub const CONTROL_PLANE_V4: &str = "192.0.2.1";
pub const CLIENT_V4: &str = "192.0.2.100";
pub const CLIENT_V6: &str = "2001:db8:1::100";
pub const NODE_IF: &str = "eth0";
pub const CLIENT_IF: &str = "lan";

/// What `cargo xtask test` hands the tests: the image archives and the
/// product's reference.
pub struct Images {
    pub responder: PathBuf,
    pub reference: String,
    pub pause: PathBuf,
}

impl Images {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: the real-node tests run through `cargo xtask test`, which builds the images with `cargo xtask image`")
            })
        };
        Images {
            responder: var("RESPONDER_IMAGE_ARCHIVE").into(),
            reference: var("RESPONDER_IMAGE_REF"),
            pause: var("RESPONDER_PAUSE_ARCHIVE").into(),
        }
    }
}

pub fn node_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/node.sh")
}

pub struct RealNode {
    pub name: String,
    pub netns: NetNs,
    pub ip: String,
    pub ip6: String,
    pub mac: String,
}

/// Stops every process node.sh recorded (containers included) before the
/// namespaces go.
struct Processes {
    state: PathBuf,
}

impl Drop for Processes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_logs(&self.state);
        }
        let _ = Command::new("bash")
            .arg(node_script())
            .arg("stop")
            .arg(&self.state)
            .stdin(Stdio::null())
            .status();
    }
}

/// `kubectl` of node.sh, for what a failing test prints.
fn kubectl_text(state: &Path, args: &[&str]) -> String {
    Command::new("bash")
        .arg(node_script())
        .arg("kubectl")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn dump_logs(state: &Path) {
    let pods = kubectl_text(
        state,
        &[
            "get",
            "pods",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
        ],
    );
    for pod in pods.split_whitespace() {
        let (namespace, name) = pod.split_once('/').unwrap_or(("default", pod));
        for previous in [false, true] {
            let mut args = vec![
                "-n",
                namespace,
                "logs",
                name,
                "--all-containers",
                "--tail",
                "80",
            ];
            if previous {
                args.push("--previous");
            }
            let text = kubectl_text(state, &args);
            if !text.is_empty() {
                eprintln!(
                    "--- kubectl logs {pod}{} ---\n{text}",
                    if previous { " --previous" } else { "" }
                );
            }
        }
    }
    let mut logs = vec![
        state.join("cp/apiserver.log"),
        state.join("kube-controller-manager.log"),
    ];
    if let Ok(nodes) = std::fs::read_dir(state.join("nodes")) {
        for node in nodes.flatten() {
            for name in ["kubelet.log", "containerd.log", "kube-proxy.log"] {
                logs.push(node.path().join(name));
            }
        }
    }
    for log in logs {
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- tail of {} ---", log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub struct RealCluster {
    // Drop order: processes, then the switch (its ports and their XDP
    // programs), then the namespaces, then the state directory.
    _processes: Processes,
    _switch: Segment,
    pub nodes: Vec<RealNode>,
    pub client: NetNs,
    control_plane: NetNs,
    state: TempPath,
}

impl RealCluster {
    /// A control plane and `nodes` Ready nodes with `images` imported; the
    /// client's address is [`CLIENT_V4`]/[`CLIENT_V6`] on [`CLIENT_IF`].
    pub fn start(name: &str, nodes: &[&str], images: &Images) -> Self {
        let state = std::env::temp_dir().join(format!("real-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("state directory");
        let state = TempPath(state);
        let processes = Processes {
            state: state.0.clone(),
        };

        // XDP_TX replies from a node reach the bridge only through a port
        // with an XDP program of its own (veth driver mode): the segment
        // gives every port one.
        let mut switch = Segment::new(&format!("sw-{name}"), None);

        let control_plane = NetNs::new(&format!("cp-{name}"));
        switch.plug(&control_plane, "lan");
        control_plane.ip(&[
            "addr",
            "add",
            &format!("{CONTROL_PLANE_V4}/24"),
            "dev",
            "lan",
        ]);
        control_plane.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "lan", "nodad"]);

        let client = NetNs::new(&format!("cl-{name}"));
        switch.plug(&client, CLIENT_IF);
        client.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", CLIENT_IF]);
        client.ip(&[
            "addr",
            "add",
            &format!("{CLIENT_V6}/64"),
            "dev",
            CLIENT_IF,
            "nodad",
        ]);

        let mut real_nodes = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let netns = NetNs::new(&format!("{node}-{name}"));
            switch.plug(&netns, NODE_IF);
            let ip = format!("192.0.2.{}", 11 + i);
            let ip6 = format!("2001:db8:1::{}", 11 + i);
            netns.ip(&["addr", "add", &format!("{ip}/24"), "dev", NODE_IF]);
            netns.ip(&["addr", "add", &format!("{ip6}/64"), "dev", NODE_IF, "nodad"]);
            // The node's uplink carries its default route, as on a real node.
            netns.ip(&["route", "add", "default", "via", CONTROL_PLANE_V4]);
            netns.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
            let mac = format_mac(&netns.mac(NODE_IF));
            real_nodes.push(RealNode {
                name: node.to_string(),
                netns,
                ip,
                ip6,
                mac,
            });
        }

        let script = |args: &[&str]| {
            let out = Command::new("bash")
                .arg(node_script())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run node.sh");
            assert!(
                out.status.success(),
                "node.sh {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let state_dir = state.0.to_string_lossy().into_owned();
        script(&[
            "control-plane",
            &state_dir,
            control_plane.name(),
            CONTROL_PLANE_V4,
        ]);
        for (i, node) in real_nodes.iter().enumerate() {
            let pod_cidr = format!("203.0.113.{}/26", 64 * i);
            script(&[
                "node",
                &state_dir,
                &node.name,
                node.netns.name(),
                &node.ip,
                &pod_cidr,
                &images.pause.to_string_lossy(),
            ]);
            script(&[
                "import",
                &state_dir,
                &node.name,
                &images.responder.to_string_lossy(),
            ]);
        }
        RealCluster {
            _processes: processes,
            _switch: switch,
            nodes: real_nodes,
            client,
            control_plane,
            state,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state.0
    }

    /// `kubectl` as admin, inside the control plane's namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(node_script())
            .arg("kubectl")
            .arg(&self.state.0)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// `kubectl`, panicking with its stderr unless it succeeds; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl printed JSON")
    }

    /// `ctr -n k8s.io` against `node`'s containerd.
    pub fn ctr(&self, node: &str, args: &[&str]) -> Output {
        self.node_sh("ctr", node, args)
    }

    /// A command inside `node`'s network and mount namespaces.
    pub fn in_node(&self, node: &str, args: &[&str]) -> Output {
        self.node_sh("in-node", node, args)
    }

    fn node_sh(&self, verb: &str, node: &str, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(node_script())
            .args([verb, &self.state.0.to_string_lossy(), node])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("node.sh {verb}: {e}"))
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) `node`'s kubelet: a node
    /// whose kubelet cannot restart a killed container.
    pub fn freeze_kubelet(&self, node: &str, frozen: bool) {
        let pids = std::fs::read_to_string(self.state.0.join("pids")).expect("pids");
        let pid: i32 = pids
            .lines()
            .find_map(|l| l.strip_prefix(&format!("kubelet-{node} ")))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no kubelet recorded for {node}"));
        let signal = if frozen {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("{signal} to the kubelet of {node}: {e}"));
    }

    pub fn node(&self, name: &str) -> &RealNode {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_by_mac(&self, mac: &str) -> Option<&RealNode> {
        self.nodes.iter().find(|n| n.mac.eq_ignore_ascii_case(mac))
    }

    pub fn control_plane(&self) -> &NetNs {
        &self.control_plane
    }

    /// Waits until `f` holds, polling every 50 ms, or panics naming `what`.
    pub fn wait<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        wait_for(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?}: {what}"))
    }

    pub fn client_v4(&self) -> Ipv4Addr {
        CLIENT_V4.parse().expect("address")
    }
}

/// `run_ok` for a command in a namespace, its stdout as text.
pub fn output_of(ns: &NetNs, program: &str, args: &[&str]) -> String {
    let out = run_ok(ns.command(program).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
