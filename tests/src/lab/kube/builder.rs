//! How a [`KubeLab`] is described and started: its segments, nodes,
//! agents' flags and controllers.

use super::*;

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
    pub(super) name: String,
    pub(super) server_env: Vec<(&'static str, &'static str)>,
    pub(super) crds: bool,
    pub(super) namespace: &'static str,
    pub(super) segments: Vec<SegmentSpec>,
    pub(super) nodes: Vec<(&'static str, serde_json::Value)>,
    pub(super) agent_args: Vec<String>,
    pub(super) rust_log: String,
    pub(super) controllers: Vec<&'static str>,
    pub(super) wait: Duration,
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
                log_path: fresh_log(std::env::temp_dir().join(format!("{tag}n{i}-{node}.log"))),
                log_start: 0,
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

/// An agent's log appends each run: one left by an earlier lab of the same
/// name (a reused process ID) goes first.
fn fresh_log(path: PathBuf) -> PathBuf {
    let _ = std::fs::remove_file(&path);
    path
}
