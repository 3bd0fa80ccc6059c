//! The simulated members: Leases renewed at the cadence real agents would
//! use, and the Nodes and Services they stand for.

use super::*;

/// The generator's simulated members: `sim-NNNN`, one Node and one Lease
/// each, renewed by one task per member at the agents' cadence.
pub(super) struct Generator {
    runtime: tokio::runtime::Runtime,
    client: Client,
    budget: f64,
    members: Arc<AtomicUsize>,
    started: AtomicUsize,
    stopping: Arc<AtomicBool>,
    pub(super) writes: Arc<AtomicU64>,
    pub(super) failures: Arc<AtomicU64>,
}

/// The cadence every member uses with `simulated` members and the real agents live.
pub(super) fn live_cadence(simulated: usize, budget: f64) -> (Duration, Duration) {
    membership_cadence(
        simulated + NODES.len(),
        budget,
        ClusterSettings::DEFAULT_RENEW_INTERVAL,
        ClusterSettings::DEFAULT_LEASE_DURATION,
    )
}

pub(super) struct Member {
    api: Api<Lease>,
    budget: f64,
    members: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

pub(super) async fn create_nodes(client: Client, from: usize, to: usize) -> Vec<Node> {
    let nodes = Arc::new(Api::<Node>::all(client));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let nodes = Arc::clone(&nodes);
            tokio::spawn(async move {
                let mut made = Vec::new();
                for index in (from + worker..to).step_by(CONCURRENCY) {
                    let node: Node = serde_json::from_value(
                        json!({ "metadata": { "name": format!("sim-{index:04}") } }),
                    )
                    .expect("node");
                    let node = nodes
                        .create(&PostParams::default(), &node)
                        .await
                        .unwrap_or_else(|e| panic!("create Node sim-{index:04}: {e}"));
                    made.push(node);
                }
                made
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("Node creation task"));
    }
    all
}

/// The probe first (on the client's segment), then documentation addresses.
pub(super) fn ingress_ip(index: usize) -> IpAddr {
    match index {
        0 => PROBE_VIP.parse().expect("probe VIP"),
        i => documentation_ip(i - 1),
    }
}

pub(super) async fn create_services(client: Client, count: usize) {
    create_lb_services(Api::namespaced(client, NAMESPACE), count, ingress_ip).await;
}

impl Generator {
    pub(super) fn new(client: Client, budget: f64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("generator runtime");
        Generator {
            runtime,
            client,
            budget,
            members: Arc::new(AtomicUsize::new(0)),
            started: AtomicUsize::new(0),
            stopping: Arc::new(AtomicBool::new(false)),
            writes: Arc::new(AtomicU64::new(0)),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds members up to `count`: their Nodes first, then their renewals,
    /// whose first writes are spread over one renew interval.
    pub(super) fn grow_to(&self, count: usize) {
        let from = self.started.load(Ordering::Relaxed);
        if count <= from {
            return;
        }
        let nodes: Vec<Node> =
            self.runtime
                .block_on(create_nodes(self.client.clone(), from, count));
        self.members.store(count, Ordering::Relaxed);
        let (renew, _) = self.cadence();
        for (offset, node) in nodes.into_iter().enumerate() {
            let phase = renew.mul_f64(offset as f64 / (count - from) as f64);
            let member = Member {
                api: Api::namespaced(self.client.clone(), NAMESPACE),
                budget: self.budget,
                members: Arc::clone(&self.members),
                stopping: Arc::clone(&self.stopping),
                writes: Arc::clone(&self.writes),
                failures: Arc::clone(&self.failures),
            };
            self.runtime.spawn(member.renew_forever(node, phase));
        }
        self.started.store(count, Ordering::Relaxed);
    }

    pub(super) fn cadence(&self) -> (Duration, Duration) {
        live_cadence(self.members.load(Ordering::Relaxed), self.budget)
    }

    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

impl Member {
    /// What an agent's `hold_lease` does: a merge patch per renew interval,
    /// the Lease created when the patch finds none, a new session first.
    pub(super) async fn renew_forever(self, node: Node, phase: Duration) {
        let name = node.metadata.name.clone().expect("node name");
        let owner = node.controller_owner_ref(&()).map(|mut owner| {
            owner.controller = None;
            owner.block_owner_deletion = None;
            owner
        });
        let reach = Reach {
            families: Families::BOTH,
            prefixes: vec![
                "198.51.100.0/24".parse().expect("prefix"),
                "2001:db8:100::/64".parse().expect("prefix"),
            ],
            // As a node with one uplink writes it.
            interfaces: Some(vec!["eth0".to_owned()]),
        };
        let lease_name = lease_name(&name);
        tokio::time::sleep(phase).await;
        let mut new_session = true;
        while !self.stopping.load(Ordering::Relaxed) {
            let started = tokio::time::Instant::now();
            let (renew, lease) = live_cadence(self.members.load(Ordering::Relaxed), self.budget);
            let patch = renewal_patch(&name, &reach, owner.as_ref(), lease, new_session);
            let written = match self
                .api
                .patch(&lease_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => true,
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    let object = first_lease(&name, &reach, owner.as_ref(), lease);
                    self.api
                        .create(&PostParams::default(), &object)
                        .await
                        .is_ok()
                }
                Err(_) => false,
            };
            match written {
                true => {
                    new_session = false;
                    self.writes.fetch_add(1, Ordering::Relaxed);
                }
                false => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep_until(started + renew).await;
        }
    }
}
