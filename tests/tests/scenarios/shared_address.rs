//! Services sharing one address (allow-shared-ip) are answered from one
//! node, through a failover too.
use super::*;

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
