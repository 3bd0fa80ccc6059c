//! Rapid VIP churn under a client's questions.
use super::*;

/// A thousand status changes swap a Service's addresses among a pool while a
/// client keeps asking: only node MACs ever answer, never for an address that
/// was never a VIP, and what was removed last is not answered afterwards.
#[test]
fn vip_churn_never_answers_wrongly() {
    const CHANGES: usize = 1000;
    const NEVER_A_VIP: &str = "198.51.100.120";
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("churn");
    let pool: Vec<String> = (100..120).map(|i| format!("198.51.100.{i}")).collect();
    let step = |i: usize| {
        [
            pool[(i * 7) % pool.len()].clone(),
            pool[(i * 7 + 3) % pool.len()].clone(),
        ]
    };
    let initial = step(0);
    cluster.create_lb_service("churn", &[&initial[0], &initial[1]]);
    cluster.sole_owner(&[&initial[0], &initial[1]], "one node to hold churn");
    let node_macs: BTreeSet<String> = cluster.agents.iter().map(|a| a.mac().to_owned()).collect();

    let prober = cluster.arp_prober();
    let stop = AtomicBool::new(false);
    let mut targets: Vec<Ipv4Addr> = pool.iter().map(|a| v4(a)).collect();
    targets.push(v4(NEVER_A_VIP));
    let (answers, asked) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut answers = Vec::new();
            let mut asked = 0u32;
            'probing: while Instant::now() < deadline {
                for target in &targets {
                    if stop.load(Ordering::Relaxed) {
                        break 'probing;
                    }
                    asked += 1;
                    for mac in prober.answers(*target, Duration::from_millis(20)) {
                        answers.push((*target, mac));
                    }
                }
            }
            (answers, asked)
        });
        for i in 1..=CHANGES {
            let addresses = step(i);
            cluster.set_ingress("churn", &[&addresses[0], &addresses[1]]);
        }
        stop.store(true, Ordering::Relaxed);
        client.join().expect("client thread")
    });

    let last: BTreeSet<String> = step(CHANGES).into_iter().collect();
    let last_refs: Vec<&str> = last.iter().map(String::as_str).collect();
    let owner = cluster.sole_owner(&last_refs, "one node to hold the final addresses");
    let applied = wait_for(WAIT, || {
        let installed: BTreeSet<String> = cluster
            .agent(owner)
            .vips_json()
            .iter()
            .filter_map(|v| v["ip"].as_str().map(str::to_owned))
            .filter(|ip| pool.contains(ip))
            .collect();
        (installed == last).then_some(())
    });
    assert!(
        applied.is_some(),
        "{owner}'s map never settled on {last:?}: {:?}",
        cluster.agent(owner).vips_json()
    );
    for address in &pool {
        assert!(
            last.contains(address) || cluster.holders(address).is_empty(),
            "removed {address} still installed on {:?}",
            cluster.holders(address)
        );
    }

    eprintln!(
        "{CHANGES} status changes; client asked {asked} times, got {} answers",
        answers.len()
    );
    assert!(
        !answers.is_empty(),
        "the client got no answers at all during the churn"
    );
    let foreign: Vec<_> = answers
        .iter()
        .filter(|(_, mac)| !node_macs.contains(mac))
        .collect();
    assert!(
        foreign.is_empty(),
        "answers from MACs that are no node's: {foreign:?}"
    );
    let never: Vec<_> = answers
        .iter()
        .filter(|(ip, _)| *ip == v4(NEVER_A_VIP))
        .collect();
    assert!(
        never.is_empty(),
        "{NEVER_A_VIP} was never a VIP but was answered: {never:?}"
    );

    let owner_mac = cluster.agent(owner).mac().to_owned();
    for address in &pool {
        let got = prober.answers(v4(address), Duration::from_millis(300));
        if last.contains(address) {
            assert_eq!(
                got,
                vec![owner_mac.clone()],
                "{address} must be answered by {owner} alone"
            );
        } else {
            assert!(
                got.is_empty(),
                "{address} was removed but is answered by {got:?}"
            );
        }
    }
}
