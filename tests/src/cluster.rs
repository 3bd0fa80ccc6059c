//! A simulated cluster on one machine: one real kube-apiserver, three "nodes"
//! whose agents (`responder run --kube`) run in the root namespace (they must
//! reach the API server on 127.0.0.1), each attached to a veth of its own, and
//! every veth's peer enslaved to one bridge in a "segment" namespace, which is
//! also where the client lives (on the bridge itself).
//!
//! Everything made here is named after the test process and removed on drop:
//! agents are killed and their pins cleaned up, exactly the veths made here are
//! deleted, the segment namespace and the API server go away.
use std::{
    collections::BTreeSet,
    fs::File,
    net::IpAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Event, Node, Service},
};
use kube::{
    api::{Api, DeleteParams, Patch, PatchParams, PostParams},
    Client,
};
use serde_json::json;

pub use crate::prober::{ArpProber, Tally};
use crate::{
    apiserver::ApiServer,
    lab::{attach_pass_through, responder_bin, PassThrough},
    netns::{quiet_ipv6, run_ok, wait_for, ChildGuard, NetNs},
};

pub const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
pub const BRIDGE: &str = "br0";
/// Fixed so it does not follow the lowest port MAC as ports come and go.
pub const BRIDGE_MAC: &str = "02:00:5e:00:53:02";
pub const CLIENT_V4: &str = "198.51.100.2";
pub const CLIENT_V6: &str = "2001:db8:100::2";
pub const NAMESPACE: &str = "default";
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Long enough for a Lease to expire (1 s by default) and a new owner to act.
pub const WAIT: Duration = Duration::from_secs(30);

/// Longer than a Lease (1 s): an owner that survives it is not a transient.
pub const SETTLED: Duration = Duration::from_millis(1500);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One node: its agent process and the root-namespace veth it answers on.
pub struct Agent {
    pub node: &'static str,
    pub interface: String,
    pub mac: String,
    pub pin_path: PathBuf,
    log_path: PathBuf,
    kubeconfig: PathBuf,
    /// Appended to `responder run` (see [`ClusterOptions`]).
    extra_args: Vec<String>,
    rust_log: String,
    child: Option<ChildGuard>,
}

impl Agent {
    fn spawn(&mut self) {
        let log = File::create(&self.log_path).expect("create agent log");
        let mut cmd = Command::new(responder_bin());
        cmd.arg("run")
            .arg("--kube")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--node-name", self.node, "--namespace", NAMESPACE])
            .args(["--interface", &self.interface, "--xdp-mode", "driver"])
            // Three agents share the root netns: no two may take the default port.
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
            ])
            .arg("--pin-path")
            .arg(&self.pin_path)
            .args(&self.extra_args)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        self.child = Some(ChildGuard::spawn(
            cmd,
            &format!("responder agent of {}", self.node),
        ));
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// The addresses in this agent's pinned VIP map, read in-process (the map
    /// outlives a killed agent, so callers check `is_running` first).
    pub fn pinned_addresses(&self) -> BTreeSet<IpAddr> {
        responder::bpf::read_pinned_vips(&self.pin_path)
            .map(|rows| rows.into_iter().map(|row| row.ip).collect())
            .unwrap_or_default()
    }

    /// `responder vips --json` (root namespace, where the agent runs).
    pub fn vips_json(&self) -> Vec<serde_json::Value> {
        let out = Command::new(responder_bin())
            .args(["vips", "--json", "--pin-path"])
            .arg(&self.pin_path)
            .output()
            .expect("run responder vips");
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice(&out.stdout).expect("vips --json is a JSON array")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn xdp_attached(&self) -> bool {
        let out = run_ok(Command::new("ip").args(["link", "show", "dev", &self.interface]));
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }

    /// What a dead node looks like on the wire: its agent is gone without a
    /// chance to withdraw, and its link is down (the XDP program a SIGKILLed
    /// agent leaves pinned would otherwise keep answering).
    fn fail(&mut self) {
        let mut child = self.child.take().expect("agent running");
        child.signal(nix::sys::signal::Signal::SIGKILL);
        child.wait_exit(Duration::from_secs(10));
        set_link(&self.interface, "down");
    }

    fn cleanup_pins(&self) {
        crate::lab::cleanup_pins(&self.pin_path);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        drop(self.child.take());
        // A killed agent leaves its program, maps and links pinned.
        self.cleanup_pins();
        if std::thread::panicking() {
            eprintln!(
                "--- agent {} log ({}) ---\n{}",
                self.node,
                self.log_path.display(),
                self.log()
            );
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// A root-namespace veth made here; deleting it deletes its peer too.
struct RootVeth(String);

impl Drop for RootVeth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

fn set_link(interface: &str, state: &str) {
    run_ok(Command::new("ip").args(["link", "set", "dev", interface, state]));
}

fn root_mac(interface: &str) -> String {
    let out = run_ok(Command::new("ip").args(["-br", "link", "show", "dev", interface]));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .expect("mac column")
        .to_owned()
}

fn sysctl(key: &str, value: &str) {
    run_ok(Command::new("sysctl").args(["-qw", &format!("{key}={value}")]));
}

pub struct Cluster {
    // Drop order matters: agents (and their pins) go before their veths.
    pub agents: Vec<Agent>,
    _veths: Vec<RootVeth>,
    _port_xdp: Vec<PassThrough>,
    pub segment: NetNs,
    client: Client,
    runtime: tokio::runtime::Runtime,
    pub server: ApiServer,
}

/// What a benchmark may change about the cluster; the tests use the default.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Environment of `apiserver.sh start` (e.g. a bigger cluster IP range).
    pub server_env: Vec<(&'static str, &'static str)>,
    /// Labels of every agent's Node.
    pub node_labels: serde_json::Value,
    /// Appended to every agent's `responder run` command line.
    pub agent_args: Vec<String>,
    /// The agents' RUST_LOG.
    pub rust_log: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            server_env: Vec::new(),
            node_labels: json!({}),
            agent_args: Vec::new(),
            rust_log: "info".to_owned(),
        }
    }
}

impl Cluster {
    /// `name` (a few letters) says which test owns the cluster.
    pub fn start(name: &str) -> Self {
        Self::start_excluding(name, &[])
    }

    /// Like `start`, with the Nodes in `excluded` labelled excluded from
    /// load balancers before their agents start: those agents run, but take
    /// no part (no Lease).
    pub fn start_excluding(name: &str, excluded: &[&str]) -> Self {
        Self::start_with(name, excluded, &ClusterOptions::default(), |_| ()).0
    }

    /// Like `start_excluding`, with `options`, and `before_agents` run once
    /// the API server, the segment and the Nodes exist but no agent has
    /// started (to load the API server first); returns what it returned.
    pub fn start_with<T>(
        name: &str,
        excluded: &[&str],
        options: &ClusterOptions,
        before_agents: impl FnOnce(&Cluster) -> T,
    ) -> (Self, T) {
        let server = ApiServer::start_with(&format!("cluster-{name}"), &options.server_env);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime.block_on(server.client());

        let segment = NetNs::new(&format!("rk-{name}"));
        segment.ip(&[
            "link",
            "add",
            BRIDGE,
            "address",
            BRIDGE_MAC,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        segment.ip(&["link", "set", BRIDGE, "up"]);
        segment.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", BRIDGE]);
        segment.ip(&[
            "addr",
            "add",
            &format!("{CLIENT_V6}/64"),
            "dev",
            BRIDGE,
            "nodad",
        ]);

        let tag = format!(
            "rk{}{}",
            std::process::id() % 10_000,
            NEXT.fetch_add(1, Ordering::Relaxed) % 100
        );
        let mut veths = Vec::new();
        let mut port_xdp = Vec::new();
        let mut agents = Vec::new();
        for (i, node) in NODES.into_iter().enumerate() {
            let interface = format!("{tag}n{i}");
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
                segment.name(),
            ]));
            veths.push(RootVeth(interface.clone()));
            // The root namespace must neither route what the client sends to a
            // VIP nor chatter (DAD, RS, MLD) on the segment.
            quiet_ipv6(&interface);
            sysctl(&format!("net.ipv4.conf.{interface}.forwarding"), "0");
            segment.ip(&["link", "set", &port, "master", BRIDGE, "up"]);
            set_link(&interface, "up");
            port_xdp.push(attach_pass_through(&segment, &port));
            agents.push(Agent {
                node,
                mac: root_mac(&interface),
                pin_path: PathBuf::from(format!("/sys/fs/bpf/{interface}")),
                log_path: std::env::temp_dir().join(format!("{interface}-{node}.log")),
                kubeconfig: server.kubeconfig(),
                interface,
                extra_args: options.agent_args.clone(),
                rust_log: options.rust_log.clone(),
                child: None,
            });
        }

        let mut cluster = Cluster {
            agents,
            _veths: veths,
            _port_xdp: port_xdp,
            segment,
            client,
            runtime,
            server,
        };
        let nodes = Api::<Node>::all(cluster.client.clone());
        for node in NODES {
            let mut labels = options.node_labels.clone();
            if excluded.contains(&node) {
                labels[EXCLUDE_LB_LABEL] = json!("");
            }
            let object: Node =
                serde_json::from_value(json!({ "metadata": { "name": node, "labels": labels } }))
                    .expect("node");
            cluster
                .block(nodes.create(&PostParams::default(), &object))
                .expect("create Node");
        }
        let before = before_agents(&cluster);
        for i in 0..cluster.agents.len() {
            cluster.agents[i].spawn();
        }
        for i in 0..cluster.agents.len() {
            match excluded.contains(&cluster.agents[i].node) {
                true => cluster.wait_attached(i),
                false => cluster.wait_ready(i),
            }
        }
        (cluster, before)
    }

    fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Waits until agent `i` has attached XDP and its Lease exists.
    /// Waits until agent `i` has attached XDP.
    fn wait_attached(&self, i: usize) {
        let agent = &self.agents[i];
        let attached = wait_for(WAIT, || agent.xdp_attached().then_some(()));
        assert!(
            attached.is_some(),
            "agent {} did not attach XDP to {} within {WAIT:?}",
            agent.node,
            agent.interface
        );
    }

    /// Whether `node`'s membership Lease exists.
    pub fn has_lease(&self, node: &str) -> bool {
        let leases = Api::<Lease>::namespaced(self.client.clone(), NAMESPACE);
        self.block(leases.get_opt(&format!("responder-{node}")))
            .ok()
            .flatten()
            .is_some()
    }

    fn wait_ready(&self, i: usize) {
        let agent = &self.agents[i];
        let leases = Api::<Lease>::namespaced(self.client.clone(), NAMESPACE);
        let lease = format!("responder-{}", agent.node);
        let ready = wait_for(WAIT, || {
            (agent.xdp_attached() && self.block(leases.get_opt(&lease)).ok().flatten().is_some())
                .then_some(())
        });
        assert!(
            ready.is_some(),
            "agent {} not ready (XDP on {} and Lease {lease}) within {WAIT:?}",
            agent.node,
            agent.interface
        );
    }

    pub fn create_lb_service(&self, name: &str, addresses: &[&str]) {
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] },
        }))
        .expect("service manifest");
        self.block(self.services().create(&PostParams::default(), &service))
            .expect("create Service");
        self.set_ingress(name, addresses);
    }

    /// Replaces the Service's status.loadBalancer.ingress with `addresses`.
    pub fn set_ingress(&self, name: &str, addresses: &[&str]) {
        let ingress: Vec<_> = addresses.iter().map(|a| json!({ "ip": a })).collect();
        let status = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
        self.block(self.services().patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        ))
        .expect("patch Service status");
    }

    /// Takes a Service out of our hands. Kubernetes 1.20 prunes
    /// spec.loadBalancerClass, so a class change cannot be expressed; turning
    /// it into a ClusterIP Service takes the same "not ours any more" path.
    pub fn make_cluster_ip(&self, name: &str) {
        let patch = json!({
            "spec": { "type": "ClusterIP", "externalTrafficPolicy": null, "ports": [{ "port": 80, "protocol": "TCP" }] },
        });
        self.block(
            self.services()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .expect("make the Service a ClusterIP Service");
    }

    /// Replaces status.loadBalancer.ingress with arbitrary entries (hostnames,
    /// malformed ips); the API server's verdict is returned, not asserted.
    pub fn try_set_ingress_entries(
        &self,
        name: &str,
        entries: serde_json::Value,
    ) -> Result<(), kube::Error> {
        let status = json!({ "status": { "loadBalancer": { "ingress": entries } } });
        self.block(self.services().patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        ))
        .map(drop)
    }

    /// Where the API server keeps Service `name` in etcd.
    pub fn service_etcd_key(name: &str) -> String {
        format!("/registry/services/specs/{NAMESPACE}/{name}")
    }

    pub fn delete_service(&self, name: &str) {
        self.block(self.services().delete(name, &DeleteParams::default()))
            .expect("delete Service");
    }

    /// Turns IPv6 off or on for `node`'s interface (`disable_ipv6`), as an
    /// operator or a host profile would.
    pub fn set_ipv6(&self, node: &str, enabled: bool) {
        let interface = &self.agent(node).interface;
        sysctl(
            &format!("net.ipv6.conf.{interface}.disable_ipv6"),
            if enabled { "0" } else { "1" },
        );
    }

    pub fn include_node(&self, node: &str) {
        let patch = json!({ "metadata": { "labels": { EXCLUDE_LB_LABEL: null } } });
        let nodes = Api::<Node>::all(self.client.clone());
        self.block(nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)))
            .expect("label Node included");
    }

    pub fn exclude_node(&self, node: &str) {
        let patch = json!({ "metadata": { "labels": { EXCLUDE_LB_LABEL: "" } } });
        let nodes = Api::<Node>::all(self.client.clone());
        self.block(nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)))
            .expect("label Node excluded");
    }

    pub fn agent(&self, node: &str) -> &Agent {
        self.agents
            .iter()
            .find(|a| a.node == node)
            .unwrap_or_else(|| panic!("no agent for {node}"))
    }

    fn index(&self, node: &str) -> usize {
        self.agents
            .iter()
            .position(|a| a.node == node)
            .unwrap_or_else(|| panic!("no agent for {node}"))
    }

    /// Running agents whose map holds `address`.
    pub fn holders(&self, address: &str) -> Vec<&'static str> {
        let address: IpAddr = address.parse().expect("test address");
        self.agents
            .iter()
            .filter(|a| a.is_running() && a.pinned_addresses().contains(&address))
            .map(|a| a.node)
            .collect()
    }

    /// The one running agent holding every one of `addresses` while no other
    /// agent holds any of them, unchanged for `SETTLED` (agents that have just
    /// started or seen a change can disagree for a moment).
    pub fn sole_owner(&self, addresses: &[&str], what: &str) -> &'static str {
        self.settled_owner(addresses, &[], what)
    }

    /// Like `sole_owner`, for an owner other than `previous` (after a change
    /// that has to move the addresses away from it).
    pub fn new_owner(&self, addresses: &[&str], previous: &str, what: &str) -> &'static str {
        self.settled_owner(addresses, &[previous], what)
    }

    fn settled_owner(&self, addresses: &[&str], not: &[&str], what: &str) -> &'static str {
        let deadline = Instant::now() + WAIT;
        let mut candidate: Option<(&'static str, Instant)> = None;
        loop {
            let holders: Vec<Vec<&'static str>> =
                addresses.iter().map(|a| self.holders(a)).collect();
            let single = match holders.first() {
                Some(first)
                    if first.len() == 1
                        && holders.iter().all(|h| h == first)
                        && !not.contains(&first[0]) =>
                {
                    Some(first[0])
                }
                _ => None,
            };
            candidate = match (single, candidate) {
                (Some(node), Some((held, since))) if node == held => Some((held, since)),
                (Some(node), _) => Some((node, Instant::now())),
                (None, _) => None,
            };
            if let Some((node, since)) = candidate {
                if since.elapsed() >= SETTLED {
                    return node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; holders: {:?}",
                addresses.iter().zip(holders).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn nobody_holds(&self, addresses: &[&str], what: &str) {
        let gone = wait_for(WAIT, || {
            addresses
                .iter()
                .all(|a| self.holders(a).is_empty())
                .then_some(())
        });
        if gone.is_none() {
            let holders: Vec<_> = addresses.iter().map(|a| (a, self.holders(a))).collect();
            panic!("timed out after {WAIT:?} waiting for {what}; holders: {holders:?}");
        }
    }

    /// SIGKILLs the node's agent and takes its link down.
    pub fn fail_node(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].fail();
    }

    /// Brings a failed node back: pins cleaned, link up, agent restarted.
    pub fn restore_node(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].cleanup_pins();
        set_link(&self.agents[i].interface, "up");
        self.agents[i].spawn();
        self.wait_ready(i);
    }

    /// Stops the node's agent the way a DaemonSet rolling update does
    /// (SIGTERM), leaving its program attached; returns once it exited.
    pub fn terminate_agent(&mut self, node: &str) {
        let i = self.index(node);
        let mut child = self.agents[i].child.take().expect("agent running");
        child.signal(nix::sys::signal::Signal::SIGTERM);
        let code = child.wait_exit(WAIT);
        assert_eq!(code, Some(0), "agent of {node} exits cleanly on SIGTERM");
    }

    /// SIGKILLs the node's agent alone: its link stays up and its pinned
    /// program answers until the stale gate or a new owner stops it.
    pub fn kill_agent(&mut self, node: &str) {
        let i = self.index(node);
        let mut child = self.agents[i].child.take().expect("agent running");
        child.signal(nix::sys::signal::Signal::SIGKILL);
        child.wait_exit(WAIT);
    }

    /// Starts the node's agent again, adopting whatever its predecessor left
    /// pinned, and waits until it is attached with its Lease.
    pub fn start_agent(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].spawn();
        self.wait_ready(i);
    }

    /// Events recorded on Services in the test namespace with one of
    /// `reasons`, as (reason, note, count).
    pub fn events(&self, reasons: &[&str]) -> Vec<(String, String, i32)> {
        let events = Api::<Event>::namespaced(self.client.clone(), NAMESPACE);
        let list = self
            .block(events.list(&Default::default()))
            .expect("list Events");
        list.items
            .into_iter()
            .filter_map(|event| {
                let reason = event.reason?;
                reasons.contains(&reason.as_str()).then(|| {
                    (
                        reason,
                        event.message.unwrap_or_default(),
                        event.count.unwrap_or(1),
                    )
                })
            })
            .collect()
    }

    /// Writes `addresses` into the Node's `status.addresses` as InternalIPs,
    /// as the kubelet would.
    pub fn set_node_addresses(&self, node: &str, addresses: &[&str]) {
        let listed: Vec<_> = addresses
            .iter()
            .map(|a| json!({ "type": "InternalIP", "address": a }))
            .collect();
        let status = json!({ "status": { "addresses": listed } });
        let nodes = Api::<Node>::all(self.client.clone());
        self.block(nodes.patch_status(node, &PatchParams::default(), &Patch::Merge(&status)))
            .expect("patch Node status");
    }

    /// Adds `cidr` to the node's interface (the root-namespace veth), as its
    /// subnet on the segment.
    pub fn add_interface_address(&self, node: &str, cidr: &str) {
        let interface = &self.agent(node).interface;
        run_ok(Command::new("ip").args(["addr", "add", cidr, "dev", interface, "nodad"]));
    }

    /// The Kubernetes client of the test, for objects the helpers do not cover.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `future` on the cluster's runtime.
    pub fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        self.block(future)
    }

    /// The agent owning a MAC, for readable messages.
    pub fn node_of_mac(&self, mac: &str) -> Option<&'static str> {
        self.agents
            .iter()
            .find(|a| a.mac.eq_ignore_ascii_case(mac))
            .map(|a| a.node)
    }

    /// MACs answering `arping` (broadcast every request, so every node sees
    /// each one) for an IPv4 address from the client.
    pub fn arp_answerers(&self, address: &str, count: u32) -> BTreeSet<String> {
        let out = self
            .segment
            .command("arping")
            .args([
                "-b",
                "-c",
                &count.to_string(),
                "-w",
                &(count + 2).to_string(),
                "-I",
                BRIDGE,
                address,
            ])
            .output()
            .expect("run arping");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.contains("reply from"))
            .filter_map(|line| Some(line.split('[').nth(1)?.split(']').next()?.to_lowercase()))
            .collect()
    }

    /// MACs answering `ndisc6 -m` (every advertisement within the wait) for an
    /// IPv6 address from the client.
    pub fn nd_answerers(&self, address: &str) -> BTreeSet<String> {
        let out = self
            .segment
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

    /// Makes the client's kernel resolve `address` (nothing answers the echo
    /// itself: the root namespace drops it).
    pub fn client_resolve(&self, address: &str) {
        let _ = self
            .segment
            .command("ping")
            .args(["-c", "1", "-W", "1", "-I", BRIDGE, address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The client's neighbor entry for `address`: its lladdr, if it has one.
    pub fn client_neighbor(&self, address: &str) -> Option<String> {
        let out = self.segment.ip(&["neigh", "show", address, "dev", BRIDGE]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_lowercase())
    }

    /// An ARP prober on the client's bridge, for the failover measurement.
    pub fn arp_prober(&self) -> ArpProber {
        ArpProber::on(
            &self.segment,
            BRIDGE,
            CLIENT_V4.parse().expect("client address"),
        )
    }
}
