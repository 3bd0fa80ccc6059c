//! The assigner driven through its inputs with a fake clock: one harness
//! here, the tests by subject in the files beside it.

use std::time::Duration;

use kube::api::ObjectMeta;
use kube::runtime::reflector;

use super::*;
use crate::cluster::indexes::node_facts;

use super::super::membership::tests::lease;
use super::super::ownership::pick_owner;
use crate::k8s::fixtures::{lb_service, svc};

const WINNER_AND_LOSER: [&str; 2] = ["node-a", "node-b"];

struct Harness {
    assigner: Assigner,
    owned: watch::Receiver<Ownership>,
    event_queue: mpsc::UnboundedReceiver<OwnershipEvent>,
    start: Instant,
}

fn lease_event(node: &str, renewal: i64) -> watcher::Event<Lease> {
    watcher::Event::Apply(lease(node, renewal))
}

impl Harness {
    /// An assigner on `node` that has listed one Service and both nodes' Leases at `start`.
    fn new(node: &str) -> Self {
        Self::restarted(node, &[])
    }

    /// An agent whose data plane already answered for `announced` at start.
    fn restarted(node: &str, announced: &[&str]) -> Self {
        Self::build(node, announced, None)
    }

    /// With MetalLB's kinds served, the pools and advertisements of
    /// `metallb` listed.
    fn build(node: &str, announced: &[&str], metallb: Option<MetallbStores>) -> Self {
        let served = metallb.is_some();
        let metallb = metallb.unwrap_or_else(|| MetallbStores {
            pools: reflector::store().0,
            advertisements: reflector::store().0,
        });
        Self::build_served(node, announced, metallb, served)
    }

    /// With `metallb`'s stores, listed only when MetalLB's kinds are
    /// `served` at the start.
    fn build_served(node: &str, announced: &[&str], metallb: MetallbStores, served: bool) -> Self {
        let with_metallb = served;
        let services = ServiceCache::default();
        let (nodes, mut nodes_writer) = reflector::store();
        services.apply(&watcher::Event::Apply(lb_service(
            "web",
            None,
            "Cluster",
            &[(Some("192.0.2.1"), None)],
        )));
        for name in WINNER_AND_LOSER {
            nodes_writer.apply_watcher_event(&watcher::Event::Apply(Node {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                ..Default::default()
            }));
        }
        let (events, event_queue) = mpsc::unbounded_channel();
        let (owned_tx, owned) = watch::channel(Ownership::default());
        let mut settings = ClusterSettings::new(node, "responder");
        settings.lease_duration = Duration::from_secs(1);
        // Hold-down has tests of its own (membership, ownership).
        settings.hold_down = Duration::ZERO;
        let mut assigner = Assigner::new(
            settings,
            LabelSelector::default(),
            Stores {
                services,
                nodes,
                slices: None,
                metallb,
                metallb_served: with_metallb,
            },
            watch::channel(Attached::default()).1,
            Outputs {
                announced_before: announced.iter().map(|ip| ip.parse().expect("ip")).collect(),
                events,
                owned: owned_tx,
                roster: watch::channel(Roster::EMPTY).0,
                epochs: Arc::default(),
                metrics: Metrics::new(),
            },
        );
        let start = Instant::now();
        assigner.apply(Update::Services(Ok(Change::Listed)), start);
        assigner.apply(Update::Nodes(Ok(Change::Listed)), start);
        if with_metallb {
            assigner.apply(Update::Pools(Ok(Change::Listed)), start);
            assigner.apply(Update::Advertisements(Ok(Change::Listed)), start);
        }
        for node in WINNER_AND_LOSER {
            assigner.apply(Update::Leases(Ok(Box::new(lease_event(node, 1)))), start);
        }
        assigner.apply(
            Update::Leases(Ok(Box::new(watcher::Event::InitDone))),
            start,
        );
        assigner.evaluate(start);
        Harness {
            assigner,
            owned,
            event_queue,
            start,
        }
    }

    fn renew(&mut self, node: &str, renewal: i64, at_ms: u64) {
        let at = self.start + Duration::from_millis(at_ms);
        self.assigner
            .apply(Update::Leases(Ok(Box::new(lease_event(node, renewal)))), at);
        self.assigner.evaluate(at);
    }

    /// `node` renews declaring `role` (`renew` declares none: an agent
    /// from before roles).
    fn declare(&mut self, node: &str, role: &str, renewal: i64, at_ms: u64) {
        use super::super::membership::tests::with_role;
        let at = self.start + Duration::from_millis(at_ms);
        let lease = with_role(lease(node, renewal), role);
        self.assigner.apply(
            Update::Leases(Ok(Box::new(watcher::Event::Apply(lease)))),
            at,
        );
        self.assigner.evaluate(at);
    }

    fn evaluate(&mut self, at_ms: u64) {
        self.assigner
            .evaluate(self.start + Duration::from_millis(at_ms));
    }

    fn owns_web(&self) -> bool {
        self.owned
            .borrow()
            .vips
            .values()
            .any(|s| *s == svc("default", "web"))
    }
}

fn winner() -> &'static str {
    pick_owner(WINNER_AND_LOSER, &svc("default", "web")).expect("two candidates")
}

fn loser() -> &'static str {
    WINNER_AND_LOSER
        .into_iter()
        .find(|node| *node != winner())
        .expect("two nodes")
}

mod membership;
mod services;
mod view;
