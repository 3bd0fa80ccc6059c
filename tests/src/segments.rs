//! Two L2 segments, "public" and "internal", and three nodes with a NIC on
//! each: a dual-stack kube-apiserver with the CRDs of `deploy/crds/`, a
//! `responder controller`, and one `responder run --kube` agent per node in
//! the root namespace (they must reach the API server on 127.0.0.1) attached to
//! two veths, whose peers are ports of the bridge of each segment's namespace,
//! where that segment's client lives. For L2Advertisements that tie pools to
//! interfaces and nodes.
//!
//! Everything made here is named after the test process and removed on drop.
use std::{
    collections::BTreeSet,
    fs::File,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kube::{
    api::{Api, PostParams},
    Client,
};
use serde_json::json;

use crate::{
    apiserver::ApiServer,
    controller_lab::{deploy_dir, WAIT_FOR_CRDS},
    lab::{attach_pass_through, cleanup_pins, responder_bin, PassThrough},
    netns::{quiet_ipv6, run_ok, wait_for, ChildGuard, NetNs, TempPath},
};

pub const NAMESPACE: &str = "responder-system";
pub const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
pub const BRIDGE: &str = "br0";
/// The clients, one per segment (separate namespaces: the same subnet on
/// both is fine and keeps ARP from either simple).
pub const CLIENT_V4: &str = "192.0.2.2";
pub const CLIENT_V6: &str = "2001:db8:2::2";
/// Generous for a 2-core machine running other tests: no assertion is timed.
pub const WAIT: Duration = Duration::from_secs(60);

static NEXT: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Public,
    Internal,
}

/// One node: its agent and its two root-namespace veths.
pub struct NodeAgent {
    pub node: &'static str,
    pub public_if: String,
    pub internal_if: String,
    pub public_mac: String,
    pub internal_mac: String,
    pub pin_path: PathBuf,
    log_path: PathBuf,
    child: Option<ChildGuard>,
}

impl NodeAgent {
    pub fn interface(&self, side: Side) -> &str {
        match side {
            Side::Public => &self.public_if,
            Side::Internal => &self.internal_if,
        }
    }

    pub fn mac(&self, side: Side) -> &str {
        match side {
            Side::Public => &self.public_mac,
            Side::Internal => &self.internal_mac,
        }
    }

    /// Each pinned VIP key: address and interface name.
    pub fn pinned(&self) -> BTreeSet<(String, String)> {
        responder::bpf::read_pinned_vips(&self.pin_path)
            .map(|rows| {
                rows.into_iter()
                    .map(|row| (row.ip.to_string(), row.interface))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        drop(self.child.take());
        cleanup_pins(&self.pin_path);
        if std::thread::panicking() {
            eprintln!("--- agent {} log ---\n{}", self.node, self.log());
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

struct RootVeth(String);

impl Drop for RootVeth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

struct ControllerProcess {
    log_path: PathBuf,
    child: Option<ChildGuard>,
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        drop(self.child.take());
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            eprintln!("--- controller log ---\n{log}");
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

pub struct Segments {
    // Drop order: agents (and pins) before their veths, all before the server.
    pub agents: Vec<NodeAgent>,
    _controller: ControllerProcess,
    _veths: Vec<RootVeth>,
    _port_xdp: Vec<PassThrough>,
    pub public: NetNs,
    pub internal: NetNs,
    client: Client,
    runtime: tokio::runtime::Runtime,
    pub server: ApiServer,
    tag: String,
}

impl Segments {
    /// `labels` per node (same order as [`NODES`]) go on the Node objects.
    pub fn start(name: &str, labels: [serde_json::Value; 3]) -> Self {
        let server = ApiServer::start_dual_stack(&format!("seg-{name}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime.block_on(server.client());
        let kubectl_ok = |args: &[&str]| {
            let out = server.kubectl(args);
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        kubectl_ok(&["apply", "-k", &deploy_dir("crds")]);
        kubectl_ok(WAIT_FOR_CRDS);
        kubectl_ok(&["apply", "-f", &format!("{}/namespace.yaml", deploy_dir(""))]);

        let tag = format!(
            "rs{}{}",
            std::process::id() % 10_000,
            NEXT.fetch_add(1, Ordering::Relaxed) % 100
        );
        let segment = |prefix: &str| {
            let ns = NetNs::new(&format!("{prefix}-{name}"));
            ns.ip(&[
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ]);
            ns.ip(&["link", "set", BRIDGE, "up"]);
            ns.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", BRIDGE]);
            ns.ip(&[
                "addr",
                "add",
                &format!("{CLIENT_V6}/64"),
                "dev",
                BRIDGE,
                "nodad",
            ]);
            ns
        };
        let public = segment("rsp");
        let internal = segment("rsi");

        let mut veths = Vec::new();
        let mut port_xdp = Vec::new();
        let mut agents = Vec::new();
        for (i, node) in NODES.into_iter().enumerate() {
            let mut plug = |side: &str, ns: &NetNs| {
                let interface = format!("{tag}n{i}{side}");
                let port = format!("port{i}");
                run_ok(Command::new("ip").args([
                    "link",
                    "add",
                    &interface,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &port,
                    "netns",
                    ns.name(),
                ]));
                veths.push(RootVeth(interface.clone()));
                quiet_ipv6(&interface);
                run_ok(
                    Command::new("sysctl")
                        .args(["-qw", &format!("net.ipv4.conf.{interface}.forwarding=0")]),
                );
                ns.ip(&["link", "set", &port, "master", BRIDGE, "up"]);
                run_ok(Command::new("ip").args(["link", "set", "dev", &interface, "up"]));
                port_xdp.push(attach_pass_through(ns, &port));
                let mac = root_mac(&interface);
                (interface, mac)
            };
            let (public_if, public_mac) = plug("p", &public);
            let (internal_if, internal_mac) = plug("i", &internal);
            agents.push(NodeAgent {
                node,
                public_if,
                internal_if,
                public_mac,
                internal_mac,
                pin_path: PathBuf::from(format!("/sys/fs/bpf/{tag}n{i}")),
                log_path: std::env::temp_dir().join(format!("{tag}n{i}-{node}.log")),
                child: None,
            });
        }

        let nodes = Api::<Node>::all(client.clone());
        for (node, labels) in NODES.into_iter().zip(labels) {
            let object: Node =
                serde_json::from_value(json!({ "metadata": { "name": node, "labels": labels } }))
                    .expect("node");
            runtime
                .block_on(nodes.create(&PostParams::default(), &object))
                .expect("create Node");
        }
        for agent in &mut agents {
            let log = File::create(&agent.log_path).expect("create agent log");
            let mut cmd = Command::new(responder_bin());
            cmd.arg("run")
                .arg("--kube")
                .arg("--kubeconfig")
                .arg(server.kubeconfig())
                .args(["--node-name", agent.node, "--namespace", NAMESPACE])
                .args(["--interface", &agent.public_if])
                .args(["--interface", &agent.internal_if])
                .args(["--xdp-mode", "driver"])
                .args([
                    "--metrics-addr",
                    "127.0.0.1:0",
                    "--health-addr",
                    "127.0.0.1:0",
                ])
                .arg("--pin-path")
                .arg(&agent.pin_path)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log);
            agent.child = Some(ChildGuard::spawn(
                cmd,
                &format!("responder agent of {}", agent.node),
            ));
        }

        let log_path = std::env::temp_dir().join(format!("{tag}-controller.log"));
        let log = File::create(&log_path).expect("create controller log");
        let mut cmd = Command::new(responder_bin());
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["--namespace", NAMESPACE, "--identity", "ctl"])
            .args(["--metrics-addr", "127.0.0.1:0", "--health-addr", "off"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let controller = ControllerProcess {
            log_path,
            child: Some(ChildGuard::spawn(cmd, "responder controller")),
        };

        let lab = Segments {
            agents,
            _controller: controller,
            _veths: veths,
            _port_xdp: port_xdp,
            public,
            internal,
            client,
            runtime,
            server,
            tag,
        };
        let leases = Api::<Lease>::namespaced(lab.client.clone(), NAMESPACE);
        for node in NODES {
            let lease = format!("responder-{node}");
            let ready = wait_for(WAIT, || {
                lab.block(leases.get_opt(&lease)).ok().flatten().map(drop)
            });
            assert!(ready.is_some(), "no Lease {lease} within {WAIT:?}");
        }
        lab
    }

    pub fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `kubectl apply -f` of `yaml`.
    pub fn apply(&self, yaml: &str) {
        let file = TempPath(std::env::temp_dir().join(format!(
            "responder-{}-{}.yaml",
            self.tag,
            NEXT.fetch_add(1, Ordering::Relaxed)
        )));
        std::fs::write(&file.0, yaml).expect("write manifest");
        let out = self
            .server
            .kubectl(&["apply", "-f", file.0.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn agent(&self, node: &str) -> &NodeAgent {
        self.agents
            .iter()
            .find(|a| a.node == node)
            .unwrap_or_else(|| panic!("no agent for {node}"))
    }

    /// Every interface name of `side`, for an advertisement.
    pub fn interfaces(&self, side: Side) -> Vec<String> {
        self.agents
            .iter()
            .map(|a| a.interface(side).to_owned())
            .collect()
    }

    /// Nodes whose pinned map has `address` on some interface, with those
    /// interfaces.
    pub fn holders(&self, address: &str) -> Vec<(&'static str, BTreeSet<String>)> {
        self.agents
            .iter()
            .filter_map(|a| {
                let on: BTreeSet<String> = a
                    .pinned()
                    .into_iter()
                    .filter(|(ip, _)| ip == address)
                    .map(|(_, interface)| interface)
                    .collect();
                (!on.is_empty()).then_some((a.node, on))
            })
            .collect()
    }

    fn segment(&self, side: Side) -> &NetNs {
        match side {
            Side::Public => &self.public,
            Side::Internal => &self.internal,
        }
    }

    /// MACs answering `arping` for `address` from `side`'s client.
    pub fn arp_answerers(&self, side: Side, address: &str) -> BTreeSet<String> {
        let out = self
            .segment(side)
            .command("arping")
            .args(["-b", "-c", "3", "-w", "5", "-I", BRIDGE, address])
            .output()
            .expect("run arping");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.contains("reply from"))
            .filter_map(|line| Some(line.split('[').nth(1)?.split(']').next()?.to_lowercase()))
            .collect()
    }

    /// MACs answering `ndisc6` for `address` from `side`'s client.
    pub fn nd_answerers(&self, side: Side, address: &str) -> BTreeSet<String> {
        let out = self
            .segment(side)
            .command("ndisc6")
            .args(["-m", "-n", "-r", "2", "-w", "1000", address, BRIDGE])
            .output()
            .expect("run ndisc6");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Target link-layer address:"))
            .map(|mac| mac.trim().to_lowercase())
            .collect()
    }
}

fn root_mac(interface: &str) -> String {
    let out = run_ok(Command::new("ip").args(["-br", "link", "show", "dev", interface]));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .expect("mac column")
        .to_lowercase()
}
