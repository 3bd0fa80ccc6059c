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

#[test]
fn takes_over_when_the_owner_stops_renewing() {
    let mut h = Harness::new(loser());
    assert_eq!(h.assigner.health, Health::Healthy);
    assert!(
        !h.owns_web(),
        "{} wins the hash while both are live",
        winner()
    );
    h.renew(loser(), 2, 300);
    h.renew(loser(), 3, 600);
    h.renew(winner(), 2, 700);
    h.renew(loser(), 4, 900);
    h.evaluate(1_100);
    assert!(
        !h.owns_web(),
        "the winner renewed at 700 ms and is live until 1700 ms"
    );
    h.renew(loser(), 5, 1_200);
    h.renew(loser(), 6, 1_500);
    h.evaluate(1_700);
    assert!(h.owns_web(), "the winner expired at 1700 ms");
    match h.event_queue.try_recv() {
        Ok(OwnershipEvent::Started { ips, .. }) => {
            assert_eq!(ips, ["192.0.2.1".parse::<std::net::IpAddr>().expect("ip")])
        }
        other => panic!("expected AnnouncingStarted, got {other:?}"),
    }
}

/// A planned move: the owner stays a member that could keep the address
/// (here it stands by), so the node taking it waits for the owner to
/// withdraw; had the owner died, it would take it at once (above).
#[test]
fn an_address_taken_from_an_owner_that_could_keep_it_is_answered_after_the_pause() {
    let pause = ClusterSettings::DEFAULT_HANDOVER_PAUSE.as_millis() as u64;
    let mut h = Harness::new(loser());
    assert!(!h.owns_web());
    h.declare(loser(), "announcer", 2, 200);
    h.declare(winner(), "standby", 2, 300);
    assert_eq!(
        h.assigner.assignments[&svc("default", "web")]
            .owner
            .as_deref(),
        Some(loser()),
        "an announcer goes before a standby"
    );
    assert!(!h.owns_web(), "the standby may still answer: not yet");
    assert_eq!(
        h.assigner.next_wake(h.start + Duration::from_millis(300)),
        Some(h.start + Duration::from_millis(300 + pause)),
        "woken when the pause ends"
    );
    h.evaluate(300 + pause - 1);
    assert!(!h.owns_web());
    h.evaluate(300 + pause);
    assert!(h.owns_web(), "answered once the pause is over");
}

/// While an agent from before roles is live it counts everyone as an
/// announcer, and ownership here must agree with it: roles decide only once
/// every live member declares one (a downgrade, or the start of an upgrade).
#[test]
fn roles_decide_no_owner_while_an_agent_from_before_roles_is_live() {
    let mut h = Harness::new(winner());
    assert!(h.owns_web());
    h.declare(winner(), "standby", 2, 200);
    assert!(
        h.owns_web(),
        "{} predates roles and sees {} announce: so does {}",
        loser(),
        winner(),
        winner()
    );
    h.declare(loser(), "announcer", 2, 300);
    assert!(
        !h.owns_web(),
        "every member declares a role: the announcer goes before the standby"
    );
}

#[test]
fn the_owner_dying_during_the_pause_ends_it() {
    let mut h = Harness::new(loser());
    // A pause longer than the owner's Lease, to see its expiry end it.
    h.assigner.handovers = Handovers::new(Duration::from_secs(5));
    h.declare(loser(), "announcer", 2, 200);
    h.declare(winner(), "standby", 2, 300);
    for (renewal, at_ms) in [(3, 600), (4, 900), (5, 1_200)] {
        h.declare(loser(), "announcer", renewal, at_ms);
        assert!(!h.owns_web(), "pausing at {at_ms} ms");
    }
    h.evaluate(1_299);
    assert!(!h.owns_web());
    h.evaluate(1_300);
    assert!(
        h.owns_web(),
        "the standby's Lease expired (seen at 300 ms, one second long): a failover"
    );
}

#[test]
fn a_broken_view_freezes_ownership_until_it_recovers() {
    let mut h = Harness::new(loser());
    h.renew(loser(), 2, 300);
    // Nothing arrives any more, not even our own renewals: by 800 ms our view
    // is broken, before the winner (seen at 0 ms) could expire at 1000 ms.
    h.evaluate(800);
    assert!(
        matches!(h.assigner.health, Health::Frozen { .. }),
        "{:?}",
        h.assigner.health
    );
    h.evaluate(5_000);
    assert!(!h.owns_web(), "a frozen assigner must not take over");

    // Recovery: every member gets two lease durations (a holder retries a
    // failed renewal once per duration, so its first may come late).
    h.renew(loser(), 3, 5_000);
    assert_eq!(h.assigner.health, Health::Healthy);
    assert!(!h.owns_web(), "the winner is given time to show a renewal");
    h.renew(loser(), 4, 5_400);
    h.renew(loser(), 5, 5_800);
    h.evaluate(6_000);
    assert!(
        !h.owns_web(),
        "one duration after recovery the winner may still be retrying"
    );
    h.renew(loser(), 6, 6_200);
    h.renew(loser(), 7, 6_600);
    h.renew(loser(), 8, 6_900);
    h.evaluate(7_000);
    assert!(
        h.owns_web(),
        "the winner stayed silent for two lease durations after recovery"
    );
}

#[test]
fn a_failing_lease_watch_freezes_and_the_owner_keeps_its_vips() {
    let mut h = Harness::new(winner());
    assert!(h.owns_web());
    let at = h.start + Duration::from_millis(100);
    h.assigner
        .apply(Update::Leases(Err(watcher::Error::NoResourceVersion)), at);
    h.assigner.evaluate(at);
    assert!(
        matches!(h.assigner.health, Health::Frozen { .. }),
        "{:?}",
        h.assigner.health
    );
    h.evaluate(10_000);
    assert!(
        h.owns_web(),
        "fail-static: keep announcing while the view is broken"
    );
    h.renew(winner(), 2, 10_000);
    assert_eq!(h.assigner.health, Health::Healthy);
    assert!(h.owns_web());
}

#[test]
fn a_restarted_owner_keeps_its_services_without_an_event() {
    let mut h = Harness::restarted(winner(), &["192.0.2.1"]);
    assert!(h.owns_web());
    assert!(
        h.event_queue.try_recv().is_err(),
        "nothing started: the node answered for web before the restart"
    );
    let mut fresh = Harness::new(winner());
    assert!(fresh.owns_web());
    assert!(
        matches!(
            fresh.event_queue.try_recv(),
            Ok(OwnershipEvent::Started { .. })
        ),
        "a node that did not answer for web before starts to"
    );
}

#[test]
fn a_reserved_anycast_address_in_a_status_is_refused_with_one_event() {
    // Another controller wrote a /64's Subnet-Router anycast address.
    let router = svc("default", "router");
    let reporter = pick_owner(WINNER_AND_LOSER, &router).expect("two candidates");
    for node in WINNER_AND_LOSER {
        let mut h = Harness::new(node);
        while h.event_queue.try_recv().is_ok() {}
        h.assigner.services.apply(&watcher::Event::Apply(lb_service(
            "router",
            None,
            "Cluster",
            &[(Some("2001:db8:e100::"), None)],
        )));
        let at = h.start + Duration::from_millis(100);
        h.assigner
            .apply(Update::Services(Ok(Change::One(router.clone()))), at);
        h.assigner.evaluate(at);
        assert!(
            !h.owned.borrow().vips.values().any(|s| *s == router),
            "{node} does not answer for it"
        );
        let refused: Vec<String> = std::iter::from_fn(|| h.event_queue.try_recv().ok())
            .filter_map(|event| match event {
                OwnershipEvent::NotAnswered {
                    event_reason,
                    problem,
                    ..
                } => {
                    assert_eq!(event_reason, "AddressRefused");
                    Some(problem.detail)
                }
                _ => None,
            })
            .collect();
        if node == reporter {
            assert_eq!(
                refused,
                [
                    "ingress ip 2001:db8:e100:: is not answered for: it is the Subnet-Router \
                  anycast address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every \
                  router on that link answers for"
                ]
            );
        } else {
            assert!(refused.is_empty(), "one node tells: {refused:?}");
        }
    }
}

#[test]
fn only_what_a_change_can_affect_is_recomputed() {
    let mut h = Harness::new(winner());
    let at = h.start + Duration::from_millis(100);
    let node = |labels: &[(&str, &str)]| crate::k8s::fixtures::node(loser(), labels);
    let node_update = |node: &Node| {
        Update::Nodes(Ok(Change::One((
            loser().to_owned(),
            Some(node_facts(node)),
        ))))
    };
    // A status heartbeat or resourceVersion bump: nothing ownership reads.
    h.assigner.apply(node_update(&node(&[])), at);
    assert!(h.assigner.dirty.is_clean(), "{:?}", h.assigner.dirty);

    h.assigner
        .apply(Update::Services(Ok(Change::One(svc("default", "web")))), at);
    assert!(!h.assigner.dirty.all);
    assert_eq!(
        h.assigner.dirty.services,
        BTreeSet::from([svc("default", "web")])
    );
    h.assigner.evaluate(at);
    assert!(h.assigner.dirty.is_clean());

    h.assigner
        .apply(node_update(&node(&[("role", "edge")])), at);
    assert!(h.assigner.dirty.all, "a label may change eligibility");
}

#[test]
fn advertisements_scope_interfaces_and_an_uncovered_address_gets_one_event() {
    use crate::cluster::advertising::tests::{advertisement, pool};
    use crate::crd::L2Advertisement;

    let (pools, mut pools_writer) = reflector::store();
    let (advertisements, mut advertisements_writer) = reflector::store::<L2Advertisement>();
    pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
        "public",
        &["192.0.2.0/28"],
        &[],
    )));
    let on_eth0 = |pools: &[&str]| {
        advertisement(
            "public",
            serde_json::json!({"ipAddressPools": pools, "interfaces": ["eth0"]}),
        )
    };
    advertisements_writer.apply_watcher_event(&watcher::Event::Apply(on_eth0(&["public"])));
    let mut h = Harness::build(
        winner(),
        &[],
        Some(MetallbStores {
            pools,
            advertisements,
        }),
    );
    assert!(h.owns_web());
    assert_eq!(
        h.owned.borrow().interfaces,
        BTreeMap::from([(
            "192.0.2.1".parse::<IpAddr>().expect("ip"),
            BTreeSet::from(["eth0".to_owned()])
        )]),
        "keyed on the advertised interface only"
    );

    // The advertisement moves to another pool: web's address is covered
    // by nothing any more.
    advertisements_writer.apply_watcher_event(&watcher::Event::Apply(on_eth0(&["other"])));
    let at = h.start + Duration::from_millis(100);
    h.assigner
        .apply(Update::Advertisements(Ok(Change::One(()))), at);
    h.assigner.evaluate(at);
    assert!(!h.owns_web());
    let mut unadvertised = 0;
    while let Ok(event) = h.event_queue.try_recv() {
        if let OwnershipEvent::NotAnswered {
            event_reason: "NotAdvertised",
            problem,
            ..
        } = event
        {
            assert!(problem.detail.contains("pool \"public\""), "{problem:?}");
            assert_eq!(problem.object.as_deref(), Some("IPAddressPool/public"));
            unadvertised += 1;
        }
    }
    assert_eq!(unadvertised, 1, "the top candidate tells, once");
    h.assigner
        .apply(Update::Services(Ok(Change::One(svc("default", "web")))), at);
    h.assigner.evaluate(at);
    assert!(
        h.event_queue.try_recv().is_err(),
        "a recomputation tells nothing new"
    );
}

#[test]
fn a_claim_on_an_owned_vip_gets_an_event_that_status_reads_back() {
    use crate::conflicts::{ClaimReport, Defence};
    use crate::interface_names::InterfaceNames;
    use responder_common::VipKey;

    let mut h = Harness::new(winner());
    assert!(h.owns_web());
    while h.event_queue.try_recv().is_ok() {}
    let names: InterfaceNames = [(2, "eth0".to_owned())].into_iter().collect();
    let key = VipKey::v4(2, 0, 0, [192, 0, 2, 1]);
    let mac = [0x02, 0, 0, 0, 0, 0x99];
    let report = |defence| ClaimReport::new(key, mac, &names, defence, h.start);
    h.assigner.tell_claim(&report(Defence::DefendedRecently));
    assert!(
        h.event_queue.try_recv().is_err(),
        "a repeat is in the log only"
    );
    h.assigner.tell_claim(&report(Defence::Yielded));
    let Ok(OwnershipEvent::Conflict { service, note }) = h.event_queue.try_recv() else {
        panic!("an AddressConflict Event");
    };
    assert_eq!(service.key, svc("default", "web"));
    let event = k8s_openapi::api::core::v1::Event {
        reason: Some("AddressConflict".into()),
        message: Some(note.clone()),
        involved_object: service.object_ref(),
        event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::from_second(1_000).expect("timestamp"),
        )),
        ..Default::default()
    };
    let claim = crate::cluster::claim_of(&event).expect("status reads it back");
    assert_eq!(claim.mac, "02:00:00:00:00:99", "{note}");
    assert_eq!(
        claim.address,
        "192.0.2.1".parse::<std::net::IpAddr>().expect("ip")
    );
    assert_eq!(claim.service, svc("default", "web"));
    assert!(claim.yielded, "{note}");

    let mut other = Harness::new(loser());
    while other.event_queue.try_recv().is_ok() {}
    other.assigner.tell_claim(&report(Defence::Defended));
    assert!(
        other.event_queue.try_recv().is_err(),
        "only the owner tells about its VIP"
    );
}

#[test]
fn metallb_kinds_served_after_the_start_are_followed_without_a_restart() {
    use crate::cluster::advertising::tests::{advertisement, pool};
    use crate::crd::L2Advertisement;

    let (pools, mut pools_writer) = reflector::store();
    let (advertisements, mut advertisements_writer) = reflector::store::<L2Advertisement>();
    let stores = MetallbStores {
        pools,
        advertisements,
    };
    let mut h = Harness::build_served(winner(), &[], stores, false);
    assert!(
        h.assigner.broken_view(h.start).is_none(),
        "not waiting for kinds that are not served"
    );
    assert!(h.owns_web(), "flags only: announced");

    // The CRDs arrive, then an advertisement of another pool.
    pools_writer.apply_watcher_event(&watcher::Event::Apply(pool(
        "public",
        &["192.0.2.0/28"],
        &[],
    )));
    advertisements_writer.apply_watcher_event(&watcher::Event::Apply(advertisement(
        "other",
        serde_json::json!({"ipAddressPools": ["other"]}),
    )));
    let at = h.start + Duration::from_millis(100);
    h.assigner.apply(Update::MetallbServed, at);
    h.assigner.apply(Update::Pools(Ok(Change::Listed)), at);
    h.assigner
        .apply(Update::Advertisements(Ok(Change::Listed)), at);
    h.assigner.evaluate(at);
    assert!(
        !h.owns_web(),
        "the advertisement now decides: web's pool is not advertised"
    );
}
