//! The simulated members: Leases renewed at the cadence real agents would
//! use, and the Nodes and Services they stand for.

use super::*;

/// How the members renew: as the agents of `Regime::Before` did (every
/// member announcing at 250 ms / 1 s within 50 writes/s), or with roles:
/// as many announcers as the budget affords, the rest standing by.
#[derive(Clone, Copy, Debug)]
pub(super) struct Regime {
    pub(super) all_announce: bool,
    pub(super) budget: f64,
    pub(super) fastest: (Duration, Duration),
}

impl Regime {
    /// The membership before roles: `--announcers all --lease-duration 1s
    /// --renew-interval 250ms --lease-write-budget 50`.
    pub(super) const BEFORE: Regime = Regime {
        all_announce: true,
        budget: 50.0,
        fastest: (Duration::from_millis(250), Duration::from_secs(1)),
    };

    pub(super) fn now(budget: f64) -> Regime {
        Regime {
            all_announce: false,
            budget,
            fastest: (
                ClusterSettings::DEFAULT_RENEW_INTERVAL,
                ClusterSettings::DEFAULT_LEASE_DURATION,
            ),
        }
    }

    /// The agents' flags for this regime.
    pub(super) fn agent_args(&self) -> Vec<String> {
        let mut args = vec![
            "--lease-write-budget".to_owned(),
            self.budget.to_string(),
            "--renew-interval".to_owned(),
            format!("{}ms", self.fastest.0.as_millis()),
            "--lease-duration".to_owned(),
            format!("{}ms", self.fastest.1.as_millis()),
        ];
        if self.all_announce {
            args.extend(["--announcers".to_owned(), "all".to_owned()]);
        }
        args
    }

    /// How many of `live` members announce: all, or the budget's slots (the
    /// real agents always among them: they are the only eligible nodes, and
    /// two of them are the coverage of their one domain).
    pub(super) fn announcers(&self, live: usize) -> usize {
        match self.all_announce {
            true => live,
            false => announcer_slots(live, self.budget, self.fastest)
                .max(NODES.len())
                .min(live),
        }
    }

    /// The role and cadence (renew, lease) of simulated member `index` when
    /// `simulated` of them are live beside the real agents: the first ones
    /// fill the announcer slots the real agents leave.
    pub(super) fn member(&self, index: usize, simulated: usize) -> (Role, Duration, Duration) {
        let live = simulated + NODES.len();
        let announcers = self.announcers(live);
        let role = match index < announcers - NODES.len() {
            true => Role::Announcer,
            false => Role::Standby,
        };
        let (renew, lease) = membership_cadence(
            role,
            (announcers, live - announcers),
            self.budget,
            self.fastest,
        );
        (role, renew, lease)
    }
}

/// The generator's simulated members: `sim-NNNN`, one Node and one Lease
/// each, renewed by one task per member at the agents' cadence.
pub(super) struct Generator {
    runtime: tokio::runtime::Runtime,
    client: Client,
    regime: Regime,
    members: Arc<AtomicUsize>,
    started: AtomicUsize,
    stopping: Arc<AtomicBool>,
    pub(super) writes: Arc<AtomicU64>,
    pub(super) failures: Arc<AtomicU64>,
}

pub(super) struct Member {
    api: Api<Lease>,
    index: usize,
    regime: Regime,
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
    pub(super) fn new(client: Client, regime: Regime) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("generator runtime");
        Generator {
            runtime,
            client,
            regime,
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
        for (offset, node) in nodes.into_iter().enumerate() {
            let index = from + offset;
            let (_, renew, _) = self.regime.member(index, count);
            let phase = renew.mul_f64(offset as f64 / (count - from) as f64);
            let member = Member {
                api: Api::namespaced(self.client.clone(), NAMESPACE),
                index,
                regime: self.regime,
                members: Arc::clone(&self.members),
                stopping: Arc::clone(&self.stopping),
                writes: Arc::clone(&self.writes),
                failures: Arc::clone(&self.failures),
            };
            self.runtime.spawn(member.renew_forever(node, phase));
        }
        self.started.store(count, Ordering::Relaxed);
    }

    /// The real agents' cadence with `count` simulated members live.
    pub(super) fn agents_cadence(&self, count: usize) -> (Duration, Duration) {
        let live = count + NODES.len();
        let announcers = self.regime.announcers(live);
        membership_cadence(
            Role::Announcer,
            (announcers, live - announcers),
            self.regime.budget,
            self.regime.fastest,
        )
    }

    /// How many members announce with `count` simulated members live.
    pub(super) fn announcers(&self, count: usize) -> usize {
        self.regime.announcers(count + NODES.len())
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
            let simulated = self.members.load(Ordering::Relaxed);
            let (role, renew, lease) = self.regime.member(self.index, simulated);
            let patch = renewal_patch(&name, &reach, owner.as_ref(), lease, role, new_session);
            let written = match self
                .api
                .patch(&lease_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => true,
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    let object = first_lease(&name, &reach, owner.as_ref(), lease, role);
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
