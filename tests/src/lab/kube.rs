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

mod builder;
mod holders;
mod nodes;

pub use builder::{KubeLabBuilder, SegmentSpec};

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
