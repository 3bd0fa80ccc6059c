//! Measures the membership at scale: three real agents (`responder run
//! --kube`, the only eligible nodes through `--node-selector`) on one
//! segment, with SERVICES LoadBalancer Services, while a load generator in
//! this process keeps N simulated members' Leases renewed exactly as agents
//! do (the patches and the cadence come from the responder library), one
//! Node per simulated member. For each N, over a window: the API server's
//! Lease writes per second (its `apiserver_request_total`), the watch events
//! one real agent receives per second (its `responder_lease_watch_events_total`),
//! that agent's CPU % and RSS, the API server's and etcd's CPU %; then the
//! failover of a real owner killed among the simulated members (SIGKILL and
//! link down, until a client probing every 10 ms is answered by another real
//! node), restarted after each round.
//!
//! Usage: membership_measure OUT.json [SERVICES (10000)] [ROUNDS (5)] [WINDOW_S (20)] [N,N,… (10,100,300,1000)] [REGIME (now)]
//! REGIME is `now` (the agents' defaults: a bounded announcer set, the
//! other members standing by), a number (the same with that
//! `--lease-write-budget`), or `before`: the membership before roles, every
//! member announcing (`--announcers all --lease-duration 1s
//! --renew-interval 250ms --lease-write-budget 50`).
//! The `responder` binary is RESPONDER_BIN, else the one next to this binary.
use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kube::{
    api::{Api, Patch, PatchParams, PostParams},
    Client, Resource,
};
use responder::cluster::{
    announcer_slots, first_lease, lease_name, membership_cadence, renewal_patch, ClusterSettings,
    Families, Reach, Role,
};
use responder_tests::{
    bench::schema::{to_json_text, MembershipResult, MembershipRow, Percentiles},
    bulk_services::{create_lb_services, documentation_ip},
    lab::cluster::{Cluster, ClusterOptions, NAMESPACE, NODES},
    netns::wait_for,
};
use serde_json::json;

#[path = "membership_measure/generator.rs"]
mod generator;
#[path = "membership_measure/process.rs"]
mod process;

use generator::*;
use process::*;

const PROBE_VIP: &str = "198.51.100.10";
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
const REAL_LABEL: &str = "bench.responder/real";
const HOLD_DOWN: &str = "1s";
const HOLD_DOWN_MS: f64 = 1000.0;
const CONCURRENCY: usize = 16;
const CLUSTER_IP_RANGE: &str = "198.18.0.0/16";
const NODE_PORT_RANGE: &str = "20000-39999";
/// Bound of every wait that does not depend on the Lease duration.
const WAIT: Duration = Duration::from_secs(60);
/// A VIP held by one agent alone this long is settled.
const SETTLED: Duration = Duration::from_millis(1500);

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: membership_measure OUT.json [SERVICES] [ROUNDS] [WINDOW_S] [N,N,…]");
    let services: usize = args
        .next()
        .map_or(10_000, |n| n.parse().expect("SERVICES is a number"));
    let rounds: usize = args
        .next()
        .map_or(5, |n| n.parse().expect("ROUNDS is a number"));
    let window_s: u64 = args
        .next()
        .map_or(20, |n| n.parse().expect("WINDOW_S is a number"));
    let sizes: Vec<usize> = args.next().map_or(vec![10, 100, 300, 1000], |list| {
        list.split(',')
            .map(|n| n.parse().expect("N is a number"))
            .collect()
    });
    assert!(!sizes.is_empty(), "at least one N");
    let (regime_name, regime) = match args.next().as_deref() {
        None | Some("now") => (
            "now".to_owned(),
            Regime::now(ClusterSettings::DEFAULT_LEASE_WRITE_BUDGET),
        ),
        Some("before") => ("before".to_owned(), Regime::BEFORE),
        Some(budget) => (
            format!("now, budget {budget}"),
            Regime::now(budget.parse().expect("REGIME is now, before or a budget")),
        ),
    };
    let budget = regime.budget;
    if std::env::var_os("RESPONDER_BIN").is_none() {
        let exe = std::env::current_exe().expect("current exe");
        std::env::set_var("RESPONDER_BIN", exe.with_file_name("responder"));
    }
    let options = ClusterOptions {
        server_env: vec![
            ("SERVICE_CLUSTER_IP_RANGE", CLUSTER_IP_RANGE),
            ("SERVICE_NODE_PORT_RANGE", NODE_PORT_RANGE),
        ],
        node_labels: json!({ REAL_LABEL: "true" }),
        agent_args: [
            "--node-selector".to_owned(),
            format!("{REAL_LABEL}=true"),
            "--hold-down".to_owned(),
            HOLD_DOWN.to_owned(),
            "--announce-count".to_owned(),
            "1".to_owned(),
        ]
        .into_iter()
        .chain(regime.agent_args())
        .collect(),
        // The metrics address is logged at info by the cli (cli/shared.rs).
        rust_log: "warn,responder::cli=info".to_owned(),
        ..ClusterOptions::default()
    };
    let started = Instant::now();
    let (mut cluster, generator) = Cluster::start_with("memb", &[], &options, |cluster| {
        let client = cluster.client();
        let setup = Instant::now();
        cluster.block(create_services(client.clone(), services));
        eprintln!(
            "membership_measure: {services} Services in {:.1} s",
            setup.elapsed().as_secs_f64()
        );
        let generator = Generator::new(client, regime);
        generator.grow_to(sizes[0]);
        generator
    });
    eprintln!(
        "membership_measure: cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let state = cluster
        .server
        .kubeconfig()
        .parent()
        .expect("state dir")
        .to_owned();
    let server_pids = server_pids(&state);

    let mut rows = Vec::new();
    for &simulated in &sizes {
        generator.grow_to(simulated);
        let live = simulated + NODES.len();
        let (renew, lease) = generator.agents_cadence(simulated);
        let announcers = generator.announcers(simulated);
        // Every member, real or simulated, renews at the new cadence, and
        // the first renewals after a change have passed (a standby's renew
        // interval may be long: its first renewal is phased within it).
        let (_, slowest, _) = regime.member(simulated.saturating_sub(1), simulated);
        std::thread::sleep(renew.max(slowest) * 2 + Duration::from_secs(2));
        let window = Duration::from_secs(window_s).max(renew * 3);
        eprintln!(
            "membership_measure: N={simulated} ({live} live, {announcers} announcing): renew {renew:?}, lease {lease:?}, window {window:?}"
        );
        let row = measure_size(
            &mut cluster,
            &generator,
            &server_pids,
            simulated,
            (renew, lease),
            window,
            rounds,
        );
        let row = MembershipRow { announcers, ..row };
        eprintln!("membership_measure: {row:?}");
        rows.push(row);
    }
    generator.stop();

    let report = MembershipResult {
        services,
        real_agents: NODES.len(),
        write_budget: budget,
        regime: regime_name,
        hold_down_ms: HOLD_DOWN_MS,
        rows,
        note: format!("{} real agents (driver mode on veths into one bridge, --node-selector {REAL_LABEL}=true so only they are eligible, --hold-down {HOLD_DOWN}, {}) against a kube-apiserver v1.20 + etcd holding {services} LoadBalancer Services; N simulated members: one Node and one Lease each, renewed by one load generator (tokio, one connection pool) with the library's renewal patch at the library's cadence for N + {} live members (with roles: the first simulated members fill the announcer slots the budget affords beyond the real agents and renew as announcers, the rest as standbys, as agents would), phases spread over the renew interval; writes/s from the API server's apiserver_request_total (resource leases, verbs POST/CREATE/PATCH/PUT/UPDATE) over the window; watch events/s from one real agent's responder_lease_watch_events_total; CPU % = (utime + stime) / window, 100 % = one core; RSS = VmRSS and RssAnon at the window's end; failover = SIGKILL of the probe Service's owner + its link down until the first ARP reply from another node to a client probing every 10 ms, the owner restarted after each round", NODES.len(), regime.agent_args().join(" "), NODES.len()),
    };
    let text = to_json_text(&report).expect("serialize report");
    print!("{text}");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("write {out}: {e}"));
}

/// Window figures, then failover rounds, for one membership size.
fn measure_size(
    cluster: &mut Cluster,
    generator: &Generator,
    server_pids: &[(String, u32)],
    simulated: usize,
    (renew, lease): (Duration, Duration),
    window: Duration,
    rounds: usize,
) -> MembershipRow {
    // One agent that runs throughout the window.
    let agent = cluster.agent(NODES[NODES.len() - 1]);
    let pid = agent.pid().expect("agent runs");
    let port = metrics_port(&agent.log()).expect("the agent logged its metrics address");
    let pid_of = |name: &str| {
        server_pids
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, pid)| *pid)
    };
    let api_pid = pid_of("kube-apiserver");
    let etcd_pid = pid_of("etcd");
    let self_pid = std::process::id();

    let writes_before = api_lease_writes(cluster);
    let generated_before = generator.writes.load(Ordering::Relaxed);
    let failures_before = generator.failures.load(Ordering::Relaxed);
    let events_before = watch_events(port);
    let cpu_before = [Some(pid), api_pid, etcd_pid, Some(self_pid)].map(|p| p.map(cpu_seconds));
    let at = Instant::now();
    std::thread::sleep(window);
    let elapsed = at.elapsed().as_secs_f64();
    let writes_after = api_lease_writes(cluster);
    let generated_after = generator.writes.load(Ordering::Relaxed);
    let failures_after = generator.failures.load(Ordering::Relaxed);
    let events_after = watch_events(port);
    let cpu_after = [Some(pid), api_pid, etcd_pid, Some(self_pid)].map(|p| p.map(cpu_seconds));
    let percent = |i: usize| match (cpu_before[i], cpu_after[i]) {
        // Not NaN, which JSON cannot hold: a process that vanished is 0.
        (Some(before), Some(after)) if (after - before).is_finite() => {
            (after - before) / elapsed * 100.0
        }
        _ => 0.0,
    };
    let (rss, rss_anon) = memory_mib(pid);

    let failover = measure_failover(cluster, rounds, lease);
    MembershipRow {
        simulated,
        renew_ms: renew.as_secs_f64() * 1000.0,
        lease_ms: lease.as_secs_f64() * 1000.0,
        window_s: elapsed,
        api_lease_writes_per_s: (writes_after - writes_before) / elapsed,
        generator_writes_per_s: (generated_after - generated_before) as f64 / elapsed,
        generator_failures: failures_after - failures_before,
        watch_events_per_s: (events_after - events_before) / elapsed,
        agent_cpu_percent: percent(0),
        agent_rss_mib: rss,
        agent_rss_anon_mib: rss_anon,
        apiserver_cpu_percent: percent(1),
        etcd_cpu_percent: percent(2),
        generator_cpu_percent: percent(3),
        failover_rounds: rounds,
        announcers: 0,
        failover_ms: Percentiles::of(&failover),
    }
}

fn measure_failover(cluster: &mut Cluster, rounds: usize, lease: Duration) -> Vec<Duration> {
    let target: Ipv4Addr = PROBE_VIP.parse().expect("VIP");
    // Detection takes up to one Lease; the restarted agent must first see
    // the others renew, which takes up to one renew interval (a quarter).
    let bound = lease * 3 + WAIT;
    let prober = cluster.arp_prober();
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let Some(owner) = settled_owner(cluster, bound) else {
            eprintln!("round {round}: {PROBE_VIP} has no settled owner within {bound:?}; stopping");
            break;
        };
        let old_mac = cluster.agent(owner).mac().to_owned();
        let (failed_at, reply) = std::thread::scope(|scope| {
            let probe = scope
                .spawn(|| prober.first_reply_not_from(target, &old_mac, PROBE_INTERVAL, bound));
            std::thread::sleep(Duration::from_millis(50));
            let failed_at = Instant::now();
            cluster.fail_node(owner);
            (failed_at, probe.join().expect("prober thread"))
        });
        cluster.restore_node(owner);
        // All real nodes live again: after its hold-down the hash gives the
        // probe back to the same node; measuring before would kill an owner
        // about to hand it over anyway.
        let back = wait_for(bound, || {
            (cluster.holders(PROBE_VIP) == [owner]).then_some(())
        });
        if back.is_none() {
            eprintln!("round {round}: {PROBE_VIP} did not return to {owner} within {bound:?}");
        }
        let Some((answered_at, new_mac)) = reply else {
            eprintln!("round {round}: nobody took {PROBE_VIP} over from {owner} within {bound:?}");
            continue;
        };
        let took = answered_at - failed_at;
        let successor = cluster.node_of_mac(&new_mac).unwrap_or("an unknown MAC");
        eprintln!(
            "failover {round}: {owner} -> {successor} in {:.1} ms",
            took.as_secs_f64() * 1000.0
        );
        samples.push(took);
    }
    samples
}

/// The one running agent holding the probe VIP, unchanged for `SETTLED`.
fn settled_owner(cluster: &Cluster, bound: Duration) -> Option<&'static str> {
    let mut candidate: Option<(&'static str, Instant)> = None;
    wait_for(bound, || {
        let holders = cluster.holders(PROBE_VIP);
        candidate = match (holders.as_slice(), candidate) {
            ([node], Some((held, since))) if *node == held => Some((held, since)),
            ([node], _) => Some((node, Instant::now())),
            _ => None,
        };
        candidate.and_then(|(node, since)| (since.elapsed() >= SETTLED).then_some(node))
    })
}
