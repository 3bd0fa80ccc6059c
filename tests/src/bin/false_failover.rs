//! Counts false failovers (issue #23): three real agents (`responder run
//! --kube` with the default 800 ms Lease and 200 ms renewals) on one segment
//! against a real kube-apiserver, a client probing one VIP by ARP every
//! 10 ms, while the VIP's owner is hurt without being dead: starved of CPU,
//! losing 1 % of its frames and API packets, or losing its frames to one
//! other node. Every answering-MAC change and ownership change counted here
//! is a false failover: the owner never stopped.
//!
//! Usage: false_failover OUT.json [DURATION_S (60)]
//! The `responder` binary is RESPONDER_BIN, else the one next to this binary.
//! Needs root; everything it adds is removed on exit, also on panic.
use std::{
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use responder::cluster::ClusterSettings;
use responder_tests::{
    bench::schema::to_json_text,
    bench::schema_false_failover::{FalseFailoverCase, FalseFailoverResult},
    lab::cluster::{ArpProber, Cluster, ClusterOptions, BRIDGE, NODES},
};

#[path = "false_failover/faults.rs"]
mod faults;
#[path = "false_failover/observe.rs"]
mod observe;

use faults::{ApiLoss, OneWay, SegmentLoss, Starved};
use observe::{count, holders, probe, ALTERNATION, PROBE_INTERVAL};

/// The probed VIP and the other Services' addresses (documentation ranges).
const PROBE_VIP: &str = "198.51.100.10";
const SERVICES: [(&str, &[&str]); 4] = [
    ("ff-probe", &[PROBE_VIP]),
    ("ff-one", &["198.51.100.11"]),
    ("ff-two", &["203.0.113.10"]),
    ("ff-three", &["203.0.113.11", "198.51.100.12"]),
];
const QUOTA_US: u64 = 20_000;
const PERIOD_US: u64 = 100_000;
const LOSS: f64 = 0.01;
/// After a case's fault is removed, before the next owner is looked for.
const RECOVER: Duration = Duration::from_secs(3);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--hog") {
        let number = |i: usize| {
            args.get(i)
                .and_then(|a| a.parse().ok())
                .expect("--hog CPU SECONDS")
        };
        faults::hog(number(1) as usize, number(2));
        return;
    }
    let out = args
        .first()
        .expect("usage: false_failover OUT.json [DURATION_S]")
        .clone();
    let duration = Duration::from_secs(
        args.get(1)
            .map_or(60, |d| d.parse().expect("DURATION_S is a number")),
    );
    if std::env::var_os("RESPONDER_BIN").is_none() {
        let exe = std::env::current_exe().expect("current exe");
        std::env::set_var("RESPONDER_BIN", exe.with_file_name("responder"));
    }
    // Before any thread or child exists: everything this process starts
    // (API server, etcd, agents, probes) runs at nice -20, as the busy loops
    // of the starved case will, so that only the owner's agent is starved.
    // SAFETY: setpriority on the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) } != 0 {
        eprintln!(
            "false_failover: nice -20: {}",
            std::io::Error::last_os_error()
        );
    }
    let options = ClusterOptions {
        ..ClusterOptions::default()
    };
    let started = Instant::now();
    let (cluster, ()) = Cluster::start_with("ffo", &[], &options, |_| ());
    for (name, addresses) in SERVICES {
        cluster.create_lb_service(name, addresses);
    }
    eprintln!(
        "false_failover: cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let prober = cluster.arp_prober();
    let cases = vec![
        starved(&cluster, &prober, duration),
        loss(&cluster, &prober, duration),
        one_way(&cluster, &prober, duration),
    ];
    let report = FalseFailoverResult {
        lease_duration_ms: ClusterSettings::DEFAULT_LEASE_DURATION.as_secs_f64() * 1000.0,
        renew_interval_ms: ClusterSettings::DEFAULT_RENEW_INTERVAL.as_secs_f64() * 1000.0,
        probe_interval_ms: PROBE_INTERVAL.as_secs_f64() * 1000.0,
        cases,
        note: format!("{} real agents (driver mode on veths into one bridge, default flags: {:?} Lease, {:?} renewals) against a kube-apiserver v1.20 + etcd on 127.0.0.1, {} LoadBalancer Services; a client on the bridge sends an ARP request for {PROBE_VIP} every 10 ms and takes the MACs answering within 10 ms as that request's answers (a later answer counts the request unanswered); ownership = the agents' pinned VIP maps, sampled every 50 ms; the owner at each case's start is the node holding the VIP alone for 1.5 s; a mac change = an answered request whose set of answering MACs differs from the previous answered one; a two-MAC interval = consecutive requests answered by two MACs at once or by a MAC answering again within {} ms of being replaced; this whole process and its children (API server, etcd, agents) run at nice -20", NODES.len(), ClusterSettings::DEFAULT_LEASE_DURATION, ClusterSettings::DEFAULT_RENEW_INTERVAL, SERVICES.len(), ALTERNATION.as_millis()),
    };
    let text = to_json_text(&report).expect("serialize report");
    print!("{text}");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("write {out}: {e}"));
}

/// The owner's index among the agents, its MAC and PID.
fn owner(cluster: &Cluster) -> (&'static str, usize, String, u32) {
    let node = cluster.sole_owner(&[PROBE_VIP], "one node to hold the probed VIP");
    let index = cluster
        .agents
        .iter()
        .position(|a| a.node == node)
        .expect("agent");
    let agent = &cluster.agents[index];
    (
        node,
        index,
        agent.mac().to_owned(),
        agent.pid().expect("owner's agent runs"),
    )
}

/// Probes for `duration` while the agents' maps are sampled and `during`
/// runs every 500 ms; the case's figures.
fn measure(
    cluster: &Cluster,
    prober: &ArpProber,
    name: &str,
    owner: &str,
    duration: Duration,
    during: impl FnMut() + Send,
    note: impl FnOnce() -> String,
) -> FalseFailoverCase {
    let target: Ipv4Addr = PROBE_VIP.parse().expect("VIP");
    let stop = AtomicBool::new(false);
    let (probes, timeline) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| holders(cluster, PROBE_VIP, &stop, duration * 2));
        let ticker = scope.spawn(|| {
            let mut during = during;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < duration * 2 {
                during();
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let probes = probe(prober, target, duration);
        stop.store(true, Ordering::Relaxed);
        ticker.join().expect("ticker thread");
        (probes, sampler.join().expect("holders thread"))
    });
    let counts = count(&probes);
    let ownership_changes = timeline.len().saturating_sub(1);
    let max_holders = timeline.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let node_of = |mac: &String| cluster.node_of_mac(mac).unwrap_or("unknown").to_owned();
    let holders_timeline: Vec<String> = timeline
        .iter()
        .take(50)
        .map(|(at, h)| format!("{:.2}s {:?}", at.as_secs_f64(), h))
        .collect();
    let case = FalseFailoverCase {
        name: name.to_owned(),
        owner: owner.to_owned(),
        duration_s: duration.as_secs_f64(),
        probes: counts.probes,
        unanswered: counts.unanswered,
        mac_changes: counts.mac_changes,
        ownership_changes,
        max_holders,
        two_mac_intervals: counts.two_mac_intervals,
        longest_two_mac_ms: counts.longest_two_mac_ms,
        multi_mac_probes: counts.multi_mac_probes,
        answering_nodes: counts.macs.iter().map(node_of).collect(),
        holders_timeline,
        note: note(),
    };
    eprintln!("false_failover: {case:?}");
    case
}

/// Lets the cluster recover from the previous case.
fn recover() {
    std::thread::sleep(RECOVER);
}

fn starved(cluster: &Cluster, prober: &ArpProber, duration: Duration) -> FalseFailoverCase {
    let (node, _, _, pid) = owner(cluster);
    eprintln!("false_failover: starved: {node} (PID {pid})");
    let bound = duration + Duration::from_secs(5);
    let guard = Starved::start(pid, QUOTA_US, PERIOD_US, bound).expect("starve the owner");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let agent_cpu = faults::cpu_seconds(pid);
    let case = measure(
        cluster,
        prober,
        "starved",
        node,
        duration,
        || (),
        || {
            let (periods, throttled, throttled_ms) = guard.throttling();
            let agent_ms = (faults::cpu_seconds(pid) - agent_cpu) * 1000.0;
            let hogs_s = guard.hog_cpu_s();
            format!("the owner's agent (every thread) in a cgroup v1 CPU group of its own with cpu.cfs_quota_us {QUOTA_US} per cpu.cfs_period_us {PERIOD_US} (a 200m pod limit; cpu.shares left at 1024, as for a pod without a request), and {cpus} busy-loop processes at nice -20, one pinned to each CPU, for the whole case; everything else of the lab (API server, etcd, the other agents, the prober) at nice -20 as well, so that only the owner's node is starved; the group was throttled in {throttled} of {periods} periods ({throttled_ms:.0} ms); the owner's agent used {agent_ms:.0} ms of CPU during the case, the busy loops {hogs_s:.1} s; no SCHED_FIFO busy loops: RT throttling (950 ms of every 1 s) would freeze the agent for most of every second, which no Lease design survives")
        },
    );
    drop(guard);
    recover();
    case
}

fn api_port(cluster: &Cluster) -> u16 {
    let kubeconfig = std::fs::read_to_string(cluster.server.kubeconfig()).expect("read kubeconfig");
    kubeconfig
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("server: https://127.0.0.1:")?
                .parse()
                .ok()
        })
        .expect("the kubeconfig names https://127.0.0.1:PORT")
}

fn loss(cluster: &Cluster, prober: &ArpProber, duration: Duration) -> FalseFailoverCase {
    let (node, _, _, pid) = owner(cluster);
    eprintln!("false_failover: loss_1pct: {node} (PID {pid})");
    let ports: Vec<String> = (0..cluster.agents.len())
        .map(|i| format!("port{i}"))
        .collect();
    let segment = SegmentLoss::start(&cluster.segment().ns, &ports, BRIDGE, LOSS)
        .expect("random loss on the segment");
    let api = Mutex::new(ApiLoss::new(pid, api_port(cluster), LOSS));
    let followed = api.lock().expect("lock").follow();
    assert!(
        followed > 0,
        "found no connection of the owner's agent to the API server"
    );
    let most = Mutex::new(followed);
    let case = measure(
        cluster,
        prober,
        "loss_1pct",
        node,
        duration,
        || {
            let n = api.lock().expect("lock").follow();
            let mut most = most.lock().expect("lock");
            *most = (*most).max(n);
        },
        || {
            format!("1 % of the frames entering the segment's bridge dropped at random (a cls_bpf filter, bpf_get_prandom_u32() < 1 % of 2^32, on tc egress of the bridge's three node ports and tc ingress of the bridge device, the client: every frame meets it once per receiver; there is no sch_netem or act_gact here), and 1 % of the packets in each direction of the owner's agent's TCP connections to the API server (iptables OUTPUT on lo, -m statistic --mode random --probability 0.01, matched by the connections' ports as found in /proc, rechecked every 500 ms: {} connection(s) followed; a cgroup match cannot do it, as a socket keeps the cgroup it was created in and the agent's connections predate any move); the other agents' API traffic untouched", most.lock().expect("lock"))
        },
    );
    drop(api);
    drop(segment);
    recover();
    case
}

fn one_way(cluster: &Cluster, prober: &ArpProber, duration: Duration) -> FalseFailoverCase {
    let (node, index, mac, _) = owner(cluster);
    let other = (index + 1) % cluster.agents.len();
    let other_node = cluster.agents[other].node;
    eprintln!("false_failover: one_way_loss: {node} -> {other_node}");
    let rule = OneWay::start(&cluster.segment().ns, &mac, &format!("port{other}"))
        .expect("one-way loss rule");
    let case = measure(
        cluster,
        prober,
        "one_way_loss",
        node,
        duration,
        || (),
        || {
            format!("every frame from the owner ({node}) to {other_node} dropped by the segment's bridge (ebtables FORWARD -s OWNER-MAC -o {other_node}'s port -j DROP, in the segment's namespace), broadcasts included; {other_node} to the owner and everything to and from the client untouched; the agents' API traffic untouched")
        },
    );
    drop(rule);
    recover();
    case
}
