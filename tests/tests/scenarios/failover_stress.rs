//! PureLB's failover stress: repeated SIGKILLs of owners under Service churn
//! never leave two MACs answering one address, nor an address stranded.
use super::*;

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
    // A hand-over between two live nodes waits --handover-pause before the
    // new owner answers; without it, the new owner answered a few
    // milliseconds before the old one withdrew, and one request in about
    // 1,200 got both in one run out of three.
    let named = doubles
        .iter()
        .map(|(at, ip, macs)| {
            (
                at.to_string(),
                *ip,
                macs.iter().map(|m| node_macs.get(m)).collect::<Vec<_>>(),
            )
        })
        .collect::<Vec<_>>();
    assert!(named.is_empty(), "requests answered by two MACs: {named:?}");

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
    // The returning owners took their addresses back from live nodes: after
    // the pause, which is what kept the two MACs apart.
    let paused: f64 = NODES
        .iter()
        .map(|n| cluster.agent(n).metric("responder_handover_pauses_total"))
        .sum();
    assert!(paused >= 1.0, "no address was handed back after a pause");
    eprintln!("addresses handed back after a pause (agents' current runs): {paused}");
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
