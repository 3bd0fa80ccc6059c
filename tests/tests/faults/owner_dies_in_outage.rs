//! The API server goes away (issue #22, item 3) while the owner of a VIP
//! dies.
use std::{collections::BTreeMap, net::IpAddr};

use responder_tests::lab::cluster::NODES;

use super::*;

/// The data plane's `--stale-after` (default): the gate closes this long
/// after the agent's last heartbeat.
const STALE_AFTER: Duration = Duration::from_secs(15);
/// The agent writes its heartbeat every second.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The owner of a VIP dies (its agent SIGKILLed, its links up) while the API
/// server is down. Nobody takes the VIP over during the outage: the
/// survivors' views are frozen (their Lease watch is down, so they cannot
/// see the owner's Lease expire, and they keep their last decision). The
/// dead node's pinned XDP program answers on until its agent's heartbeat is
/// `--stale-after` (15 s) old, then the stale-agent gate closes and the VIP
/// goes unanswered until the server is back; then the survivors re-list,
/// give every member a Lease duration (`restart_clocks`), see the dead
/// node's Lease expire, and one of them takes the VIP over.
#[test]
fn owner_dying_during_an_api_outage_is_replaced_once_the_server_returns() {
    const WEB: &str = "198.51.100.20";
    const WEB6: &str = "2001:db8:100::20";
    /// From the owner's death to the server's return: longer than the stale
    /// gate, so the gap it leaves is seen.
    const DEAD_FOR: Duration = Duration::from_secs(25);
    const AFTER: Duration = Duration::from_secs(20);
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start("ldie");
    cluster.create_lb_service("web", &[WEB, WEB6]);
    let owner = cluster.sole_owner(&[WEB, WEB6], "one node to hold web");
    let owner_mac = cluster.agent(owner).mac().to_owned();
    let survivors: Vec<&'static str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let targets: Vec<IpAddr> = [WEB, WEB6]
        .iter()
        .map(|a| a.parse().expect("VIP"))
        .collect();
    let prober = cluster.segment().stream_prober(&targets);

    struct Marks {
        killed_api: Instant,
        killed_owner: Instant,
        restarting: Instant,
        ready: Instant,
        held_by_survivors: Vec<(Duration, Vec<&'static str>)>,
        new_owner: &'static str,
        survivor_logs: Vec<String>,
    }
    let limit = DEAD_FOR + AFTER + WAIT * 3;
    let (run, marks) = probing(&prober, limit, |_| {
        thread::sleep(Duration::from_secs(2));
        cluster.server.kill_api_server();
        let killed_api = Instant::now();
        // The survivors must be frozen before the owner dies, or they
        // could see its Lease expire.
        let frozen = wait_for(Duration::from_secs(10), || {
            cluster
                .agents
                .iter()
                .all(|a| log_line(&a.log(), &["Kubernetes view broken"]).is_some())
                .then_some(())
        });
        assert!(frozen.is_some(), "not every agent froze its view");
        cluster.kill_agent(owner);
        let killed_owner = Instant::now();
        let mut held_by_survivors = Vec::new();
        while killed_owner.elapsed() < DEAD_FOR {
            let holders: Vec<&'static str> = [WEB, WEB6]
                .iter()
                .flat_map(|a| cluster.holders(a))
                .collect();
            if !holders.is_empty() {
                held_by_survivors.push((killed_owner.elapsed(), holders));
            }
            thread::sleep(Duration::from_millis(500));
        }
        let restarting = Instant::now();
        cluster.server.restart_api_server();
        let ready = Instant::now();
        let new_owner = cluster.new_owner(&[WEB, WEB6], owner, "a survivor to take web over");
        thread::sleep(AFTER.saturating_sub(restarting.elapsed()));
        let survivor_logs = survivors
            .iter()
            .map(|node| cluster.agent(node).log())
            .collect();
        Marks {
            killed_api,
            killed_owner,
            restarting,
            ready,
            held_by_survivors,
            new_owner,
            survivor_logs,
        }
    });

    let dead = run.offset(marks.killed_owner);
    let restarting = run.offset(marks.restarting);
    let ready = run.offset(marks.ready);
    let new_mac = cluster.agent(marks.new_owner).mac().to_owned();
    eprintln!(
        "API server killed at {:?}, owner {owner} ({owner_mac}) SIGKILLed at {dead:?}, API server restarted at {restarting:?}, ready at {ready:?}; new owner {} ({new_mac}); MACs that answered {:?}; stray answers {:?}",
        run.offset(marks.killed_api),
        marks.new_owner,
        run.macs,
        run.stray,
    );
    assert_eq!(run.socket_drops, 0, "the prober's sockets overflowed");
    assert!(
        marks.held_by_survivors.is_empty(),
        "a survivor took web over while its view was frozen: {:?}",
        marks.held_by_survivors
    );
    // The gate closes `--stale-after` after the last heartbeat, written at
    // most a heartbeat period (plus scheduling slack) before the kill.
    let still_answered = dead + STALE_AFTER - HEARTBEAT - Duration::from_millis(500);
    let gate_closed = dead + STALE_AFTER + Duration::from_millis(200);
    for target in &targets {
        let before = run.summary(*target, Duration::ZERO, still_answered);
        let closing = run.summary(*target, still_answered, gate_closed);
        let closed = run.summary(*target, gate_closed, restarting);
        let after = run.summary(*target, restarting, Duration::MAX);
        eprintln!(
            "{target}: until {still_answered:?} {before:?}\n  gate closing {closing:?}\n  gate closed until the restart: {} requests, {} unanswered, answers {:?}\n  after the restart: {} requests, {} unanswered, answers {:?}",
            closed.sent,
            closed.unanswered.len(),
            closed.by_mac,
            after.sent,
            after.unanswered.len(),
            after.by_mac,
        );
        // Until shortly before the gate closes: the dead node's program
        // answers every request, alone.
        assert!(
            before.unanswered.is_empty(),
            "{target} unanswered before the stale gate could close: {:?}",
            before.unanswered
        );
        assert_eq!(
            before.by_mac,
            BTreeMap::from([(owner_mac.clone(), before.sent)]),
            "{target} must be answered by the dead owner's program alone until the gate closes"
        );
        // While it closes: the dead owner or nobody.
        assert!(
            closing.by_mac.keys().all(|mac| *mac == owner_mac),
            "{target} answered by another node while the view was frozen: {closing:?}"
        );
        // Once closed, until the server is back: nobody.
        assert!(
            closed.sent > 0 && closed.unanswered.len() == closed.sent,
            "{target} must go unanswered from the gate's closing until the API server returns: {closed:?}"
        );
        // After: nobody until the new owner answers, then the new owner
        // alone; the dead owner's program never again.
        let first = run
            .first_answered_by(*target, &new_mac, restarting)
            .unwrap_or_else(|| panic!("{target} never answered by {}", marks.new_owner));
        // `restart_api_server` returns once /readyz says ok, which it polls:
        // the agents may reach the server, and take over, a little before.
        let takeover = first.sent.saturating_sub(ready);
        eprintln!(
            "{target}: first answered by the new owner {:?} after the restart began, {} the API server was seen ready",
            first.sent - restarting,
            match first.sent.checked_sub(ready) {
                Some(after) => format!("{after:?} after"),
                None => format!("{:?} before", ready - first.sent),
            }
        );
        // A survivor's Lease watch retries at most WATCH_RETRY_MAX apart;
        // once it sees its own renewal it gives every member two Lease
        // durations, after which the dead node's Lease expires; 2 s for the
        // re-list, the reassignment and a loaded machine.
        let bound = WATCH_RETRY_MAX + 2 * LEASE + Duration::from_secs(2);
        assert!(
            takeover <= bound,
            "{target} taken over {takeover:?} after the API server was ready (bound {bound:?})"
        );
        let gap = run.summary(*target, restarting, first.sent);
        assert!(
            gap.by_mac.is_empty(),
            "{target} answered between the restart and the takeover: {gap:?}"
        );
        let served = run.summary(*target, first.sent, Duration::MAX);
        assert!(
            served.unanswered.is_empty() && served.several == 0,
            "{target} after the takeover: {served:?}"
        );
        assert_eq!(
            served.by_mac,
            BTreeMap::from([(new_mac.clone(), served.sent)]),
            "{target} must be answered by the new owner alone after the takeover"
        );
    }
    for log in &marks.survivor_logs {
        assert!(
            log_line(log, &["Kubernetes view recovered"]).is_some(),
            "a survivor did not log its recovery"
        );
    }
}
