//! The one builder of the simulated clusters: a real kube-apiserver of the
//! test's own, any number of L2 segments, nodes with one interface on each
//! segment and an agent each, and controller replicas. [`super::cluster`],
//! [`super::segments`] and [`super::controller_lab`] are settings of it.
//!
//! Everything made here is named after the test process and removed on drop:
//! agents are killed and their pins cleaned up, exactly the veths made here
//! are deleted, the segment namespaces and the API server go away.
use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kube::{
    api::{Api, Patch, PatchParams, PostParams},
    Client,
};
use serde_json::json;

use super::{
    agent::{Agent, Nic},
    apiserver::ApiServer,
    controller::Controller,
    segment::Segment,
};
use crate::netns::{wait_for, TempPath};

pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The taint of Kubernetes' non-graceful node shutdown, put on a Node known
/// to be down (with effect NoExecute and, by convention, value
/// `nodeshutdown`).
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// Longer than a Lease (1 s): an owner that survives it is not a transient.
pub const SETTLED: Duration = Duration::from_millis(1500);

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn deploy_dir(component: &str) -> String {
    format!("{}/../deploy/{component}", env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl` arguments that wait until the CRDs of `deploy/crds/` are served.
pub const WAIT_FOR_CRDS: &[&str] = &[
    "wait",
    "--for",
    "condition=established",
    "--timeout=60s",
    "crd/ipaddresspools.metallb.io",
    "crd/l2advertisements.metallb.io",
    "crd/servicel2statuses.metallb.io",
];

/// One segment to build: its namespace's prefix, the bridge's MAC if fixed,
/// and the addresses of the client on its bridge.
#[derive(Clone, Debug)]
pub struct SegmentSpec {
    pub prefix: &'static str,
    pub bridge_mac: Option<&'static str>,
    pub client_v4: &'static str,
    pub client_v6: &'static str,
}

pub struct KubeLabBuilder {
    name: String,
    server_env: Vec<(&'static str, &'static str)>,
    crds: bool,
    namespace: &'static str,
    segments: Vec<SegmentSpec>,
    nodes: Vec<(&'static str, serde_json::Value)>,
    agent_args: Vec<String>,
    rust_log: String,
    controllers: Vec<&'static str>,
    wait: Duration,
}

impl KubeLabBuilder {
    /// Environment of `apiserver.sh start` (e.g. a bigger cluster IP range).
    pub fn server_env(mut self, env: &[(&'static str, &'static str)]) -> Self {
        self.server_env.extend_from_slice(env);
        self
    }

    /// Dual-stack Services (v1.20 needs the IPv6DualStack gate; see
    /// [`ApiServer::DUAL_STACK_ENV`]).
    pub fn dual_stack(self) -> Self {
        self.server_env(ApiServer::DUAL_STACK_ENV)
    }

    /// The CRDs of `deploy/crds/` and `deploy/namespace.yaml`, served before
    /// anything starts.
    pub fn crds(mut self) -> Self {
        self.crds = true;
        self
    }

    /// Where the agents keep their Leases and the controllers their state.
    pub fn namespace(mut self, namespace: &'static str) -> Self {
        self.namespace = namespace;
        self
    }

    pub fn segment(mut self, segment: SegmentSpec) -> Self {
        self.segments.push(segment);
        self
    }

    /// A Node with `labels`, and its agent with one interface per segment.
    /// An agent whose Node is excluded from load balancers runs but takes no
    /// part (no Lease): the lab waits for its XDP program alone.
    pub fn node(mut self, name: &'static str, labels: serde_json::Value) -> Self {
        self.nodes.push((name, labels));
        self
    }

    /// Appended to every agent's `responder run` command line.
    pub fn agent_args(mut self, args: &[String]) -> Self {
        self.agent_args.extend_from_slice(args);
        self
    }

    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// A `responder controller` replica started with the agents.
    pub fn controller(mut self, identity: &'static str) -> Self {
        self.controllers.push(identity);
        self
    }

    /// How long the lab and its helpers wait for anything.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    pub fn start(self) -> KubeLab {
        self.start_with(|_| ()).0
    }

    /// Like `start`, with `before_agents` run once the API server, the
    /// segments and the Nodes exist but no agent has started (to load the
    /// API server first); returns what it returned.
    pub fn start_with<T>(self, before_agents: impl FnOnce(&KubeLab) -> T) -> (KubeLab, T) {
        let server = ApiServer::start_with(&format!("lab-{}", self.name), &self.server_env);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime.block_on(server.client());
        let tag = format!(
            "rl{}{}",
            std::process::id() % 10_000,
            NEXT.fetch_add(1, Ordering::Relaxed) % 100
        );
        let mut segments: Vec<Segment> = self
            .segments
            .iter()
            .map(|spec| {
                Segment::new(&format!("{}-{}", spec.prefix, self.name), spec.bridge_mac)
                    .with_client(spec.client_v4, spec.client_v6)
            })
            .collect();
        let mut agents = Vec::new();
        for (i, (node, _)) in self.nodes.iter().enumerate() {
            let nics = segments
                .iter_mut()
                .enumerate()
                .map(|(j, segment)| {
                    let name = format!("{tag}n{i}s{j}");
                    let mac = segment.plug_root(&name);
                    Nic { name, mac }
                })
                .collect();
            agents.push(Agent {
                node,
                nics,
                pin_path: PathBuf::from(format!("/sys/fs/bpf/{tag}n{i}")),
                log_path: std::env::temp_dir().join(format!("{tag}n{i}-{node}.log")),
                kubeconfig: server.kubeconfig(),
                namespace: self.namespace,
                extra_args: self.agent_args.clone(),
                rust_log: self.rust_log.clone(),
                child: None,
            });
        }
        let mut lab = KubeLab {
            agents,
            controllers: Vec::new(),
            segments,
            client,
            runtime,
            server,
            namespace: self.namespace,
            wait: self.wait,
            tag,
        };
        if self.crds {
            lab.install_crds();
        }
        let nodes = Api::<Node>::all(lab.client());
        for (node, labels) in &self.nodes {
            let object: Node =
                serde_json::from_value(json!({ "metadata": { "name": node, "labels": labels } }))
                    .expect("node");
            lab.block(nodes.create(&PostParams::default(), &object))
                .expect("create Node");
        }
        let before = before_agents(&lab);
        for agent in &mut lab.agents {
            agent.spawn();
        }
        for identity in self.controllers {
            lab.spawn_controller(identity);
        }
        for (i, (_, labels)) in self.nodes.iter().enumerate() {
            match labels.get(EXCLUDE_LB_LABEL) {
                Some(_) => lab.wait_attached(i),
                None => lab.wait_ready(i),
            }
        }
        (lab, before)
    }
}

/// Makes `$setting`, a newtype of [`KubeLab`] with its own constructors and
/// helpers, a `KubeLab` everywhere else.
macro_rules! kube_lab_setting {
    ($setting:ident) => {
        impl std::ops::Deref for $setting {
            type Target = $crate::lab::kube::KubeLab;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $setting {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}
pub(crate) use kube_lab_setting;

pub struct KubeLab {
    // Drop order matters: agents (and their pins) go before their veths,
    // everything before the API server.
    pub agents: Vec<Agent>,
    pub controllers: Vec<Controller>,
    pub segments: Vec<Segment>,
    client: Client,
    runtime: tokio::runtime::Runtime,
    pub server: ApiServer,
    namespace: &'static str,
    wait: Duration,
    tag: String,
}

impl KubeLab {
    /// `name` (a few letters) says which test owns the lab. Agents keep
    /// their Leases in `default` unless told otherwise.
    pub fn builder(name: &str) -> KubeLabBuilder {
        KubeLabBuilder {
            name: name.to_owned(),
            server_env: Vec::new(),
            crds: false,
            namespace: "default",
            segments: Vec::new(),
            nodes: Vec::new(),
            agent_args: Vec::new(),
            rust_log: "info".to_owned(),
            controllers: Vec::new(),
            wait: Duration::from_secs(30),
        }
    }

    pub fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The Kubernetes client of the test, for objects the helpers do not cover.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// kubectl; panics with its stderr unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.server.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `deploy/crds/` and `deploy/namespace.yaml`, applied as an operator
    /// would; returns once the CRDs are served.
    pub fn install_crds(&self) {
        self.kubectl_ok(&["apply", "-k", &deploy_dir("crds")]);
        self.kubectl_ok(WAIT_FOR_CRDS);
        self.kubectl_ok(&["apply", "-f", &format!("{}/namespace.yaml", deploy_dir(""))]);
    }

    /// `responder status --json` against the lab's API server, for the
    /// agents' namespace, as an operator runs it (its own process, the
    /// lab's admin kubeconfig); panics unless it succeeds.
    pub fn status_json(&self) -> serde_json::Value {
        let out = std::process::Command::new(super::responder::responder_bin())
            .arg("status")
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .args(["--namespace", self.namespace, "--json"])
            .env_remove("POD_NAMESPACE")
            .output()
            .expect("run responder status");
        assert!(
            out.status.success(),
            "responder status failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "responder status --json printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `kubectl apply -f` of `yaml`, as an operator would.
    pub fn apply(&self, yaml: &str) -> String {
        let file = TempPath(std::env::temp_dir().join(format!(
            "responder-{}-{}.yaml",
            self.tag,
            NEXT.fetch_add(1, Ordering::Relaxed)
        )));
        std::fs::write(&file.0, yaml).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", file.0.to_str().expect("utf-8 path")])
    }

    /// Starts a controller replica; returns its index.
    pub fn spawn_controller(&mut self, identity: &str) -> usize {
        let log_path = std::env::temp_dir().join(format!("responder-{}-{identity}.log", self.tag));
        let controller = Controller::spawn(
            &self.server.kubeconfig(),
            self.namespace,
            identity,
            log_path,
        );
        self.controllers.push(controller);
        self.controllers.len() - 1
    }

    /// SIGKILL: no chance to hand the Lease over.
    pub fn kill_controller(&mut self, i: usize) {
        self.controllers[i].signal_and_wait(nix::sys::signal::Signal::SIGKILL, self.wait);
    }

    /// SIGTERM: the leader hands its Lease over; returns the exit code.
    pub fn stop_controller(&mut self, i: usize) -> Option<i32> {
        self.controllers[i].signal_and_wait(nix::sys::signal::Signal::SIGTERM, self.wait)
    }

    pub fn agent(&self, node: &str) -> &Agent {
        &self.agents[self.index(node)]
    }

    fn index(&self, node: &str) -> usize {
        self.agents
            .iter()
            .position(|a| a.node == node)
            .unwrap_or_else(|| panic!("no agent for {node}"))
    }

    /// The agent owning a MAC, for readable messages.
    pub fn node_of_mac(&self, mac: &str) -> Option<&'static str> {
        self.agents
            .iter()
            .find(|a| a.nics.iter().any(|nic| nic.mac.eq_ignore_ascii_case(mac)))
            .map(|a| a.node)
    }

    /// Whether `node`'s membership Lease exists.
    pub fn has_lease(&self, node: &str) -> bool {
        let leases = Api::<Lease>::namespaced(self.client(), self.namespace);
        self.block(leases.get_opt(&format!("responder-{node}")))
            .ok()
            .flatten()
            .is_some()
    }

    /// Whether `node`'s membership Lease exists and is held by it (a node
    /// that leaves releases it: `holderIdentity` cleared).
    pub fn holds_lease(&self, node: &str) -> bool {
        let leases = Api::<Lease>::namespaced(self.client(), self.namespace);
        self.block(leases.get_opt(&format!("responder-{node}")))
            .ok()
            .flatten()
            .and_then(|lease| lease.spec?.holder_identity)
            .is_some_and(|holder| holder == node)
    }

    /// Waits until agent `i` has attached XDP.
    fn wait_attached(&self, i: usize) {
        let agent = &self.agents[i];
        let attached = wait_for(self.wait, || agent.xdp_attached().then_some(()));
        assert!(
            attached.is_some(),
            "agent {} did not attach XDP to {:?} within {:?}",
            agent.node,
            agent.nics,
            self.wait
        );
    }

    /// Waits until agent `i` has attached XDP and its Lease exists.
    fn wait_ready(&self, i: usize) {
        let agent = &self.agents[i];
        let ready = wait_for(self.wait, || {
            (agent.xdp_attached() && self.has_lease(agent.node)).then_some(())
        });
        assert!(
            ready.is_some(),
            "agent {} not ready (XDP on {:?} and Lease responder-{}) within {:?}",
            agent.node,
            agent.nics,
            agent.node,
            self.wait
        );
    }

    pub fn include_node(&self, node: &str) {
        self.label_node(node, json!(null), "included");
    }

    pub fn exclude_node(&self, node: &str) {
        self.label_node(node, json!(""), "excluded");
    }

    fn label_node(&self, node: &str, value: serde_json::Value, what: &str) {
        let patch = json!({ "metadata": { "labels": { EXCLUDE_LB_LABEL: value } } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)))
            .unwrap_or_else(|e| panic!("label Node {what}: {e}"));
    }

    /// Sets the Node's condition `kind` (e.g. `NetworkUnavailable`) to
    /// `status` (`"True"`, `"False"`), as a CNI plugin or the route
    /// controller would, through the status subresource; other conditions
    /// are kept (strategic merge by type).
    pub fn set_node_condition(&self, node: &str, kind: &str, status: &str) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let patch = json!({ "status": { "conditions": [{
            "type": kind,
            "status": status,
            "reason": "ResponderTest",
            "message": format!("set by the test to {status}"),
            "lastTransitionTime": now,
            "lastHeartbeatTime": now,
        }] } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch)))
            .unwrap_or_else(|e| panic!("set condition {kind}={status} on Node {node}: {e}"));
    }

    /// Puts the out-of-service taint on the Node (effect NoExecute, value
    /// `nodeshutdown`), as an operator does for a node known to be shut
    /// down; replaces the Node's taints (the lab's Nodes have no others).
    pub fn taint_out_of_service(&self, node: &str) {
        let taint =
            json!({ "key": OUT_OF_SERVICE_TAINT, "value": "nodeshutdown", "effect": "NoExecute" });
        self.set_taints(node, json!([taint]));
    }

    /// Removes every taint of the Node.
    pub fn untaint(&self, node: &str) {
        self.set_taints(node, json!(null));
    }

    fn set_taints(&self, node: &str, taints: serde_json::Value) {
        let patch = json!({ "spec": { "taints": taints } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)))
            .unwrap_or_else(|e| panic!("set the taints of Node {node}: {e}"));
    }

    /// Writes `addresses` into the Node's `status.addresses` as InternalIPs,
    /// as the kubelet would.
    pub fn set_node_addresses(&self, node: &str, addresses: &[&str]) {
        let listed: Vec<_> = addresses
            .iter()
            .map(|a| json!({ "type": "InternalIP", "address": a }))
            .collect();
        let status = json!({ "status": { "addresses": listed } });
        let nodes = Api::<Node>::all(self.client());
        self.block(nodes.patch_status(node, &PatchParams::default(), &Patch::Merge(&status)))
            .expect("patch Node status");
    }

    /// Running agents whose map holds `address`, with the interfaces it is
    /// pinned on.
    pub fn holders_on(&self, address: &str) -> Vec<(&'static str, BTreeSet<String>)> {
        let address: IpAddr = address.parse().expect("test address");
        self.agents
            .iter()
            .filter(|a| a.is_running())
            .filter_map(|a| {
                let on: BTreeSet<String> = a
                    .pinned()
                    .into_iter()
                    .filter(|(ip, _)| *ip == address)
                    .map(|(_, interface)| interface)
                    .collect();
                (!on.is_empty()).then_some((a.node, on))
            })
            .collect()
    }

    /// Running agents whose map holds `address`.
    pub fn holders(&self, address: &str) -> Vec<&'static str> {
        self.holders_on(address)
            .into_iter()
            .map(|(node, _)| node)
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
        let deadline = Instant::now() + self.wait;
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
                "timed out after {:?} waiting for {what}; holders: {:?}",
                self.wait,
                addresses.iter().zip(holders).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn nobody_holds(&self, addresses: &[&str], what: &str) {
        let gone = wait_for(self.wait, || {
            addresses
                .iter()
                .all(|a| self.holders(a).is_empty())
                .then_some(())
        });
        if gone.is_none() {
            let holders: Vec<_> = addresses.iter().map(|a| (a, self.holders(a))).collect();
            panic!(
                "timed out after {:?} waiting for {what}; holders: {holders:?}",
                self.wait
            );
        }
    }

    /// SIGKILLs the node's agent and takes its links down.
    pub fn fail_node(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].fail();
    }

    /// Brings a failed node back: pins cleaned, links up, agent restarted.
    pub fn restore_node(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].cleanup_pins();
        self.agents[i].set_links("up");
        self.agents[i].spawn();
        self.wait_ready(i);
    }

    /// Stops the node's agent the way a DaemonSet rolling update does
    /// (SIGTERM), leaving its program attached; returns once it exited.
    pub fn terminate_agent(&mut self, node: &str) {
        let i = self.index(node);
        let code = self.agents[i].signal_and_wait(nix::sys::signal::Signal::SIGTERM, self.wait);
        assert_eq!(code, Some(0), "agent of {node} exits cleanly on SIGTERM");
    }

    /// SIGKILLs the node's agent alone: its links stay up and its pinned
    /// program answers until the stale gate or a new owner stops it.
    pub fn kill_agent(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].signal_and_wait(nix::sys::signal::Signal::SIGKILL, self.wait);
    }

    /// SIGSTOPs the node's agent, as a hung process or a frozen VM: it stops
    /// renewing its Lease and its heartbeat, while its pinned program keeps
    /// answering; `thaw_agent` resumes it.
    pub fn freeze_agent(&self, node: &str) {
        self.agent(node).signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT: the frozen agent carries on from where it stopped.
    pub fn thaw_agent(&self, node: &str) {
        self.agent(node).signal(nix::sys::signal::Signal::SIGCONT);
    }

    /// Starts the node's agent again, adopting whatever its predecessor left
    /// pinned, and waits until it is attached with its Lease.
    pub fn start_agent(&mut self, node: &str) {
        let i = self.index(node);
        self.agents[i].spawn();
        self.wait_ready(i);
    }
}
