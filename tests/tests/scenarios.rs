//! MetalLB's own layer-2 end-to-end scenarios (its `e2etest/l2tests`) and
//! PureLB's failover stress, on the simulated clusters: a node whose
//! NetworkUnavailable condition is set, or that is labelled excluded from
//! load balancers, hands its Services on and takes them back once cleared;
//! the out-of-service taint moves a frozen node's Services at once, well
//! before its Lease would; Services sharing one address (allow-shared-ip)
//! are answered from one node, through a failover too; an L2Advertisement's
//! interfaces changed at run time move the answers to the new segment; and
//! repeated SIGKILLs of owners under Service churn never leave two MACs
//! answering one address, nor an address stranded.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
    thread,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use responder::crd::ServiceL2Status;
use responder_tests::{
    lab::{
        cluster::{Cluster, ClusterOptions, NAMESPACE, NODES, SETTLED, WAIT},
        kube::OUT_OF_SERVICE_TAINT,
        segments::{self, Segments, Side},
    },
    netns::wait_for,
    prober::ArpProber,
};
use serde_json::json;

const WEB_V4: &str = "198.51.100.10";
const WEB_V6: &str = "2001:db8:100::10";

/// Clusters side by side on a small machine would starve Lease renewals
/// (see tests/cluster.rs): one at a time.
fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn v4(address: &str) -> Ipv4Addr {
    address.parse().expect("test IPv4 address")
}

fn only(mac: &str) -> BTreeSet<String> {
    BTreeSet::from([mac.to_owned()])
}

/// The agents' rendezvous weight of (node, namespace/name), written out
/// again from its definition (FNV-1a 64 finished with splitmix64, see
/// `cluster/ownership.rs`) so the tests predict owners independently.
fn rendezvous_weight(node: &str, namespace: &str, name: &str) -> u64 {
    let fnv = [
        node.as_bytes(),
        &[0],
        namespace.as_bytes(),
        b"/",
        name.as_bytes(),
    ]
    .into_iter()
    .flatten()
    .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut z = fnv.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owner rendezvous gives Service `name` of the test namespace among
/// `candidates`.
fn computed_owner<'a>(candidates: &[&'a str], name: &str) -> &'a str {
    candidates
        .iter()
        .copied()
        .max_by_key(|node| (rendezvous_weight(node, NAMESPACE, name), *node))
        .expect("a candidate")
}

/// Both wire protocols are answered for web from `node`'s MAC alone.
fn assert_web_answered_only_by(cluster: &Cluster, node: &str) {
    let mac = cluster.agent(node).mac();
    assert_eq!(
        cluster.arp_answerers(WEB_V4, 2),
        only(mac),
        "ARP for {WEB_V4} must be answered by {node} ({mac}) alone"
    );
    assert_eq!(
        cluster.nd_answerers(WEB_V6),
        only(mac),
        "NDP for {WEB_V6} must be answered by {node} ({mac}) alone"
    );
}

/// MetalLB's "should not be announced from a node with a NetworkUnavailable
/// condition" and "It should be work when adding NodeExcludeBalancers label
/// to a node": each moves the owner's Service away at run time, and clearing
/// it brings the Service back to the same node (rendezvous: it wins again,
/// once it has been back for the hold-down).
#[test]
fn network_unavailable_and_the_exclusion_label_move_services_away_and_back() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("netun");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold web");
    assert_eq!(
        owner,
        computed_owner(&NODES, "web"),
        "rendezvous over all three nodes"
    );
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = computed_owner(&others, "web");

    type Change = (&'static str, fn(&Cluster, &str), fn(&Cluster, &str));
    let changes: [Change; 2] = [
        (
            "NetworkUnavailable=True",
            |c, n| c.set_node_condition(n, "NetworkUnavailable", "True"),
            |c, n| c.set_node_condition(n, "NetworkUnavailable", "False"),
        ),
        (
            "the exclude-from-external-load-balancers label",
            |c, n| c.exclude_node(n),
            |c, n| c.include_node(n),
        ),
    ];
    for (what, set, clear) in changes {
        let started = Instant::now();
        set(&cluster, owner);
        let moved_after = wait_for(WAIT, || {
            cluster
                .holders(WEB_V4)
                .contains(&successor)
                .then(|| started.elapsed())
        })
        .unwrap_or_else(|| panic!("{successor} never took web with {what} on {owner}"));
        let moved = cluster.new_owner(
            &[WEB_V4, WEB_V6],
            owner,
            &format!("web to leave {owner} with {what}"),
        );
        assert_eq!(moved, successor, "web goes to the next node by rendezvous");
        assert_web_answered_only_by(&cluster, moved);
        let left = wait_for(WAIT, || (!cluster.holds_lease(owner)).then_some(()));
        assert!(left.is_some(), "{owner} kept holding its Lease with {what}");

        let started = Instant::now();
        clear(&cluster, owner);
        let back = wait_for(WAIT, || {
            [WEB_V4, WEB_V6]
                .iter()
                .all(|vip| cluster.holders(vip) == [owner])
                .then_some(())
        });
        assert!(
            back.is_some(),
            "web never came back to {owner} once {what} was cleared: {:?}",
            cluster.holders(WEB_V4)
        );
        let back_after = started.elapsed();
        assert_eq!(
            cluster.sole_owner(&[WEB_V4, WEB_V6], "web to settle back"),
            owner
        );
        assert_web_answered_only_by(&cluster, owner);
        eprintln!(
            "{what}: web moved {owner} -> {moved} {moved_after:?} after the change, \
             came back {back_after:?} after it was cleared (the hold-down included)"
        );
    }
}

/// MetalLB #3116: the out-of-service taint of a non-graceful node shutdown
/// releases the node's Services at once. The owner's agent is frozen
/// (SIGSTOP) with 10 s Leases, so its Lease keeps it a member for up to 10 s:
/// without the taint nothing moves; with it the next node answers within a
/// bound far below that, and the frozen agent, once it runs again, withdraws
/// and leaves the membership.
#[test]
fn the_out_of_service_taint_releases_a_frozen_nodes_services_at_once() {
    const LEASE: Duration = Duration::from_secs(10);
    /// Well below the Lease: a watch event and an assignment, on a busy machine.
    const BOUND: Duration = Duration::from_secs(3);
    let _serial = one_cluster_at_a_time();
    let options = ClusterOptions {
        agent_args: vec!["--lease-duration".into(), format!("{}s", LEASE.as_secs())],
        ..ClusterOptions::default()
    };
    let (cluster, ()) = Cluster::start_with("oos", &[], &options, |_| ());
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold web");
    let owner_mac = cluster.agent(owner).mac().to_owned();
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = computed_owner(&others, "web");
    let successor_mac = cluster.agent(successor).mac().to_owned();
    let prober = cluster.arp_prober();

    cluster.freeze_agent(owner);
    let frozen_at = Instant::now();
    // The control: the frozen owner's Lease keeps it the owner for now.
    thread::sleep(Duration::from_secs(2));
    for other in &others {
        assert!(
            !cluster.holders(WEB_V4).contains(other),
            "{other} took web before the taint, {:?} after freezing {owner}: \
             the Lease ({LEASE:?}) should have kept {owner}",
            frozen_at.elapsed()
        );
    }
    assert_eq!(
        prober.answers(v4(WEB_V4), Duration::from_millis(200)),
        vec![owner_mac.clone()],
        "the frozen owner's program still answers"
    );

    let tainted_at = Instant::now();
    cluster.taint_out_of_service(owner);
    let first =
        prober.first_reply_not_from(v4(WEB_V4), &owner_mac, Duration::from_millis(20), LEASE);
    let (answered_at, mac) = first.unwrap_or_else(|| {
        panic!("nobody but the frozen {owner} answered web within {LEASE:?} of the taint")
    });
    let takeover = answered_at - tainted_at;
    eprintln!(
        "out-of-service taint on frozen {owner}: {successor} answered after {takeover:?} \
         ({:?} after the freeze; Lease {LEASE:?})",
        answered_at - frozen_at
    );
    assert_eq!(
        mac, successor_mac,
        "web goes to the next node by rendezvous"
    );
    assert!(
        takeover < BOUND,
        "takeover took {takeover:?} after the taint: not at once (bound {BOUND:?}, Lease {LEASE:?})"
    );
    assert!(
        frozen_at.elapsed() < LEASE,
        "the frozen Lease may have expired meanwhile ({:?}): the test proves nothing",
        frozen_at.elapsed()
    );

    // Running again, the tainted node's agent sees it may not announce:
    // it withdraws and leaves the membership.
    cluster.thaw_agent(owner);
    let withdrawn = wait_for(WAIT, || {
        ([WEB_V4, WEB_V6]
            .iter()
            .all(|vip| cluster.holders(vip) == [successor])
            && !cluster.holds_lease(owner))
        .then_some(())
    });
    assert!(
        withdrawn.is_some(),
        "{owner} did not withdraw once thawed: holders {:?}, holds its Lease: {}",
        cluster.holders(WEB_V4),
        cluster.holds_lease(owner)
    );
    assert!(
        cluster.agent(owner).log().contains(OUT_OF_SERVICE_TAINT),
        "{owner} did not say it is tainted"
    );
    assert_web_answered_only_by(&cluster, successor);
}

/// One Service of the pair sharing an address, with the allow-shared-ip key.
fn shared_service(cluster: &Cluster, name: &str, port: u16, vip: &str) {
    let services: Api<Service> = Api::namespaced(cluster.client(), NAMESPACE);
    let service: Service = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {
                "metallb.io/allow-shared-ip": "shared-web",
                "metallb.io/loadBalancerIPs": vip,
            },
        },
        "spec": { "type": "LoadBalancer", "ports": [{ "port": port, "protocol": "TCP" }] },
    }))
    .expect("service manifest");
    cluster
        .block(services.create(&PostParams::default(), &service))
        .expect("create Service");
    cluster.set_ingress(name, &[vip]);
}

/// Asks for `vip` every few milliseconds until `stop`, recording the MACs
/// answering each single request (the prober's "probe instant").
fn probe_instants(
    prober: &ArpProber,
    vip: Ipv4Addr,
    stop: &AtomicBool,
    limit: Duration,
) -> Vec<(Duration, BTreeSet<String>)> {
    let start = Instant::now();
    let mut instants = Vec::new();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        let at = start.elapsed();
        let macs = prober.answers(vip, Duration::from_millis(30));
        instants.push((at, macs.into_iter().collect()));
    }
    instants
}

/// MetalLB's "different services sharing the same ip should advertise from
/// the same node": two Services with one allow-shared-ip key and different
/// ports list the same address; one node answers it (the owner of the
/// first Service by namespace/name, though the second's owner differs), also
/// when that node dies (its agent SIGKILLed, its link down): exactly one other
/// MAC answers afterwards, and never two at once.
///
/// The node dies whole: an agent SIGKILLed alone leaves its program answering
/// (fail-static, so a restart loses nothing) until the successor's
/// announcements make it yield, once its heartbeat is older than
/// `--yield-after` (2 s), or until `--stale-after` (15 s). In this lab that
/// is the stale bound: the agents share the root namespace, so each counts
/// the others' MACs as its own and their announcements claim nothing.
#[test]
fn services_sharing_an_address_are_answered_from_one_node_through_a_failover() {
    const SHARED: &str = "198.51.100.30";
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start("share");
    shared_service(&cluster, "shared-1", 80, SHARED);
    shared_service(&cluster, "shared-2", 443, SHARED);
    // Rendezvous per Service would put them on different nodes: one answers
    // for both only because the address is settled on the first.
    assert_ne!(
        computed_owner(&NODES, "shared-1"),
        computed_owner(&NODES, "shared-2"),
        "the test needs Services whose own owners differ"
    );
    let owner = cluster.sole_owner(&[SHARED], "one node to hold the shared address");
    assert_eq!(
        owner,
        computed_owner(&NODES, "shared-1"),
        "the first Service by name holds the address (shared-2's own owner would be {})",
        computed_owner(&NODES, "shared-2")
    );
    let owner_mac = cluster.agent(owner).mac().to_owned();
    assert_eq!(cluster.arp_answerers(SHARED, 3), only(&owner_mac));
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = computed_owner(&others, "shared-1");
    assert_ne!(
        successor,
        computed_owner(&others, "shared-2"),
        "the test needs Services whose own owners differ after the failover too"
    );
    let successor_mac = cluster.agent(successor).mac().to_owned();

    let prober = cluster.arp_prober();
    let stop = AtomicBool::new(false);
    let (instants, killed_after) = thread::scope(|scope| {
        let probing =
            scope.spawn(|| probe_instants(&prober, v4(SHARED), &stop, Duration::from_secs(40)));
        let started = Instant::now();
        thread::sleep(Duration::from_millis(500));
        let killed_after = started.elapsed();
        cluster.fail_node(owner);
        let new = cluster.new_owner(&[SHARED], owner, "the shared address to fail over");
        assert_eq!(new, successor, "the next node by rendezvous of shared-1");
        // Past the successor's whole announcement burst (3 × 1.1 s).
        thread::sleep(Duration::from_secs(4));
        stop.store(true, Ordering::Relaxed);
        (probing.join().expect("prober thread"), killed_after)
    });

    let doubles: Vec<_> = instants.iter().filter(|(_, macs)| macs.len() > 1).collect();
    let first_new = instants
        .iter()
        .position(|(_, macs)| macs.contains(&successor_mac));
    let last_old = instants
        .iter()
        .rposition(|(_, macs)| macs.contains(&owner_mac));
    let strangers: BTreeSet<&String> = instants
        .iter()
        .flat_map(|(_, macs)| macs)
        .filter(|mac| **mac != owner_mac && **mac != successor_mac)
        .collect();
    eprintln!(
        "shared {SHARED}: {} probe instants, kill at {killed_after:?}; old MAC last at {:?}, \
         new MAC first at {:?}; {} unanswered, {} with two MACs",
        instants.len(),
        last_old.map(|i| instants[i].0),
        first_new.map(|i| instants[i].0),
        instants.iter().filter(|(_, m)| m.is_empty()).count(),
        doubles.len()
    );
    assert!(strangers.is_empty(), "MACs of neither node: {strangers:?}");
    assert!(
        doubles.is_empty(),
        "two MACs answered one request for {SHARED}: {doubles:?}"
    );
    let first_new = first_new.expect("the successor never answered");
    assert!(
        last_old.is_none_or(|last| last < first_new),
        "{owner} answered again after {successor} took over"
    );
    assert!(
        instants[first_new..]
            .iter()
            .all(|(_, macs)| *macs == only(&successor_mac)),
        "once {successor} answered, every request was answered by it alone"
    );
    assert_eq!(
        cluster.sole_owner(&[SHARED], "the shared address"),
        successor
    );
    assert_eq!(cluster.arp_answerers(SHARED, 3), only(&successor_mac));
}

/// The single holder of `addresses`, each only on its interface of `side`.
fn holder_on_side(lab: &Segments, addresses: &[String], side: Side) -> Option<&'static str> {
    let mut owner = None;
    for address in addresses {
        let holders = lab.holders_on(address);
        let [(node, interfaces)] = holders.as_slice() else {
            return None;
        };
        let expected = BTreeSet::from([lab.interface(node, side).to_owned()]);
        if *interfaces != expected || owner.is_some_and(|o| o != *node) {
            return None;
        }
        owner = Some(*node);
    }
    owner
}

fn advertisement(lab: &Segments, side: Side) -> String {
    let interfaces: Vec<String> = lab
        .interfaces(side)
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect();
    format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: moving, namespace: {ns}}}
spec:
  ipAddressPools: [moving]
  interfaces: [{interfaces}]
"#,
        ns = segments::NAMESPACE,
        interfaces = interfaces.join(", ")
    )
}

/// MetalLB's "Modify L2 interface": an L2Advertisement's `interfaces`
/// changed at run time from each node's first NIC to its second moves the
/// answers (ARP and NDP) to the second segment, they stop on the first, and
/// ServiceL2Status names the new interface.
#[test]
fn changing_an_advertisements_interfaces_moves_the_answers() {
    let _serial = one_cluster_at_a_time();
    let lab = Segments::start("ifmv", [json!({}), json!({}), json!({})]);
    let pool = format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: moving, namespace: {ns}}}
spec:
  addresses: ["203.0.113.32/28", "2001:db8:3::10-2001:db8:3::1f"]
  autoAssign: false
---"#,
        ns = segments::NAMESPACE,
    );
    lab.apply(&(pool + &advertisement(&lab, Side::Public)));
    let services: Api<Service> = Api::namespaced(lab.client(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"metallb.io/address-pool": "moving"}},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                 "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80, "protocol": "TCP"}]},
    }))
    .expect("service");
    lab.block(services.create(&PostParams::default(), &service))
        .expect("create Service");
    let addresses: Vec<String> = wait_for(segments::WAIT, || {
        let ips: Vec<String> = lab
            .block(services.get("web"))
            .ok()?
            .status?
            .load_balancer?
            .ingress?
            .into_iter()
            .filter_map(|i| i.ip)
            .collect();
        (ips.len() == 2).then_some(ips)
    })
    .expect("web gets both addresses");
    let web_v4 = addresses
        .iter()
        .find(|a| !a.contains(':'))
        .expect("v4")
        .clone();
    let web_v6 = addresses
        .iter()
        .find(|a| a.contains(':'))
        .expect("v6")
        .clone();

    let statuses: Api<ServiceL2Status> = Api::namespaced(lab.client(), segments::NAMESPACE);
    let status_names = |owner: &str, side: Side| {
        let want = json!([{ "name": lab.interface(owner, side) }]);
        let mut seen = Vec::new();
        let found = wait_for(segments::WAIT, || {
            let list = lab
                .block(statuses.list(&ListParams::default().labels("metallb.io/service-name=web")))
                .ok()?;
            seen = list
                .items
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect();
            let [one] = seen.as_slice() else { return None };
            (one["status"]["node"] == owner && one["status"]["interfaces"] == want).then_some(())
        });
        assert!(
            found.is_some(),
            "one ServiceL2Status for web naming {owner} and {want} within {:?}; seen {seen:?}",
            segments::WAIT
        );
    };

    let owner = wait_for(segments::WAIT, || {
        holder_on_side(&lab, &addresses, Side::Public)
    })
    .unwrap_or_else(|| {
        panic!(
            "web not held on the public side: {:?}",
            lab.holders_on(&web_v4)
        )
    });
    let public_mac = lab.mac(owner, Side::Public).to_owned();
    assert_eq!(lab.arp_answerers(Side::Public, &web_v4), only(&public_mac));
    assert_eq!(lab.nd_answerers(Side::Public, &web_v6), only(&public_mac));
    assert!(lab.arp_answerers(Side::Internal, &web_v4).is_empty());
    status_names(owner, Side::Public);

    let changed_at = Instant::now();
    lab.apply(&advertisement(&lab, Side::Internal));
    let moved = wait_for(segments::WAIT, || {
        holder_on_side(&lab, &addresses, Side::Internal)
    })
    .unwrap_or_else(|| {
        panic!(
            "web not moved to the internal side: {:?}",
            lab.holders_on(&web_v4)
        )
    });
    eprintln!(
        "interfaces changed: web held on the internal NIC of {moved} after {:?}",
        changed_at.elapsed()
    );
    assert_eq!(moved, owner, "only the interfaces changed, not the node");
    let internal_mac = lab.mac(owner, Side::Internal).to_owned();
    assert_eq!(
        lab.arp_answerers(Side::Internal, &web_v4),
        only(&internal_mac)
    );
    assert_eq!(
        lab.nd_answerers(Side::Internal, &web_v6),
        only(&internal_mac)
    );
    assert!(
        lab.arp_answerers(Side::Public, &web_v4).is_empty(),
        "{web_v4} still answered on the public segment"
    );
    assert!(
        lab.nd_answerers(Side::Public, &web_v6).is_empty(),
        "{web_v6} still answered on the public segment"
    );
    status_names(owner, Side::Internal);
}

/// Creates and deletes Services continuously until `stop` (at most `limit`
/// Services, and `deadline`): each takes the next address of `pool`, and
/// the oldest is deleted once `live` exist. Returns the Services left.
fn churn(
    client: kube::Client,
    pool: &[String],
    live: usize,
    limit: usize,
    stop: &AtomicBool,
    deadline: Instant,
) -> BTreeMap<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let services: Api<Service> = Api::namespaced(client, NAMESPACE);
    let mut existing = BTreeMap::new();
    let mut order = std::collections::VecDeque::new();
    for i in 0..limit {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let name = format!("churn-{i}");
        let vip = pool[i % pool.len()].clone();
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] },
        }))
        .expect("service manifest");
        let status = json!({ "status": { "loadBalancer": { "ingress": [{ "ip": vip }] } } });
        runtime.block_on(async {
            services
                .create(&PostParams::default(), &service)
                .await
                .expect("create churn Service");
            services
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("patch churn Service status");
        });
        existing.insert(name.clone(), vip);
        order.push_back(name);
        if order.len() > live {
            let oldest = order.pop_front().expect("an oldest");
            runtime
                .block_on(services.delete(&oldest, &DeleteParams::default()))
                .expect("delete churn Service");
            existing.remove(&oldest);
        }
        thread::sleep(Duration::from_millis(100));
    }
    existing
}

/// PureLB's failover stress: rounds of SIGKILL of the owner of a probed
/// address (its agent killed and its link down, a node dying whole: see the
/// shared-address test for an agent killed alone), then its restart, while
/// Services are created and deleted all along. At every probe instant at
/// most one MAC answers each address; at the end every Service is answered
/// by its computed owner alone and no deleted Service's address is
/// answered.
#[test]
fn repeated_sigkill_failovers_under_service_churn_strand_nothing() {
    const ROUNDS: usize = 8;
    /// The agents' `--hold-down` (the default).
    const HOLD_DOWN: Duration = Duration::from_secs(10);
    const PROBED: [(&str, &str); 3] = [
        ("probe-0", "198.51.100.40"),
        ("probe-1", "198.51.100.41"),
        ("probe-2", "198.51.100.42"),
    ];
    let _serial = one_cluster_at_a_time();
    let test_start = Instant::now();
    let mut cluster = Cluster::start("stress");
    for (name, vip) in PROBED {
        cluster.create_lb_service(name, &[vip]);
    }
    for (name, vip) in PROBED {
        assert_eq!(
            cluster.sole_owner(&[vip], &format!("one node to hold {name}")),
            computed_owner(&NODES, name)
        );
    }
    let pool: Vec<String> = (100..116).map(|i| format!("198.51.100.{i}")).collect();
    let node_macs: BTreeMap<String, &str> = NODES
        .iter()
        .map(|n| (cluster.agent(n).mac().to_owned(), *n))
        .collect();

    let prober = cluster.arp_prober();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(90);
    let client = cluster.client();
    let mut targets: Vec<Ipv4Addr> = PROBED.iter().map(|(_, vip)| v4(vip)).collect();
    targets.extend(pool.iter().map(|a| v4(a)));
    let mut failovers = Vec::new();
    let mut last_restore = Instant::now();
    let (existing, instants, doubles) = thread::scope(|scope| {
        let churning = scope.spawn(|| churn(client, &pool, 5, 600, &stop, deadline));
        let probing = scope.spawn(|| {
            // Every round of probes asks for each probed address and the
            // next few of the churn pool.
            let mut instants = 0u64;
            let mut doubles = Vec::new();
            let mut next = PROBED.len();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut round: Vec<Ipv4Addr> = targets[..PROBED.len()].to_vec();
                for _ in 0..3 {
                    round.push(targets[next]);
                    next = if next + 1 == targets.len() {
                        PROBED.len()
                    } else {
                        next + 1
                    };
                }
                for target in round {
                    let macs: BTreeSet<String> = prober
                        .answers(target, Duration::from_millis(30))
                        .into_iter()
                        .collect();
                    instants += 1;
                    if macs.len() > 1 {
                        doubles.push((k8s_openapi::jiff::Timestamp::now(), target, macs));
                    }
                }
            }
            (instants, doubles)
        });

        for round in 0..ROUNDS {
            let (name, vip) = PROBED[round % PROBED.len()];
            let owner =
                cluster.sole_owner(&[vip], &format!("round {round}: one node to hold {name}"));
            let killed_at = Instant::now();
            cluster.fail_node(owner);
            let successor = cluster.new_owner(
                &[vip],
                owner,
                &format!("round {round}: {name} to fail over"),
            );
            let took = killed_at.elapsed();
            cluster.restore_node(owner);
            last_restore = Instant::now();
            failovers.push((round, name, owner, successor, took));
            assert!(
                Instant::now() < deadline,
                "{round} rounds took longer than the test's bound"
            );
        }
        stop.store(true, Ordering::Relaxed);
        let existing = churning.join().expect("churn thread");
        let (instants, doubles) = probing.join().expect("prober thread");
        (existing, instants, doubles)
    });
    for (round, name, owner, successor, took) in &failovers {
        eprintln!("round {round}: {name} {owner} -> {successor}, settled {took:?} after the kill");
    }
    eprintln!(
        "{instants} probe instants, {} with two MACs; {} churn Services left",
        doubles.len(),
        existing.len()
    );
    assert!(
        doubles.is_empty(),
        "two MACs answered one request: {:?}",
        doubles
            .iter()
            .map(|(at, ip, macs)| (
                at.to_string(),
                ip,
                macs.iter().map(|m| node_macs.get(m)).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
    );

    // Nothing stranded: with every node back and past its hold-down (until
    // then the nodes that have settled hold the Services of those that
    // have not), each Service is answered by its computed owner alone.
    thread::sleep((last_restore + HOLD_DOWN + SETTLED).saturating_duration_since(Instant::now()));
    let mut expected: BTreeMap<String, &str> = PROBED
        .iter()
        .map(|(name, vip)| (vip.to_string(), computed_owner(&NODES, name)))
        .collect();
    for (name, vip) in &existing {
        expected.insert(vip.clone(), computed_owner(&NODES, name));
    }
    let settled = wait_for(WAIT, || {
        expected
            .iter()
            .all(|(vip, owner)| cluster.holders(vip) == [*owner])
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "not every address settled on its computed owner: {:?}",
        expected
            .iter()
            .map(|(vip, owner)| (vip, owner, cluster.holders(vip)))
            .filter(|(_, owner, holders)| holders != &[**owner])
            .collect::<Vec<_>>()
    );
    let prober = cluster.arp_prober();
    for (vip, owner) in &expected {
        let answers = prober.answers(v4(vip), Duration::from_millis(300));
        assert_eq!(
            answers,
            vec![cluster.agent(owner).mac().to_owned()],
            "{vip} must be answered by {owner} alone; answered by {:?}, held by {:?}",
            answers
                .iter()
                .map(|mac| cluster.node_of_mac(mac))
                .collect::<Vec<_>>(),
            cluster.holders_on(vip)
        );
    }
    for address in pool.iter().filter(|a| !expected.contains_key(*a)) {
        assert!(
            cluster.holders(address).is_empty(),
            "deleted {address} still installed on {:?}",
            cluster.holders(address)
        );
        let got = prober.answers(v4(address), Duration::from_millis(300));
        assert!(got.is_empty(), "deleted {address} answered by {got:?}");
    }
    eprintln!("stress test took {:?}", test_start.elapsed());
}
