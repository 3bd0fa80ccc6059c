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
//! Usage: membership_measure OUT.json [SERVICES (10000)] [ROUNDS (5)] [WINDOW_S (20)] [N,N,… (10,100,300,1000)] [BUDGET (the default)]
//! A BUDGET (`--lease-write-budget` of the agents and the generator) too big
//! to matter shows the membership as it was before the budget: every member
//! renewing every 250 ms.
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
    first_lease, lease_name, membership_cadence, renewal_patch, ClusterSettings, Families, Reach,
};
use responder_tests::{
    bench::schema::{to_json_text, MembershipResult, MembershipRow, Percentiles},
    bulk_services::{create_lb_services, documentation_ip},
    lab::cluster::{Cluster, ClusterOptions, NAMESPACE, NODES},
    netns::wait_for,
};
use serde_json::json;

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
    let budget: f64 = args
        .next()
        .map_or(ClusterSettings::DEFAULT_LEASE_WRITE_BUDGET, |b| {
            b.parse().expect("BUDGET is a number")
        });
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
        agent_args: vec![
            "--node-selector".to_owned(),
            format!("{REAL_LABEL}=true"),
            "--hold-down".to_owned(),
            HOLD_DOWN.to_owned(),
            "--announce-count".to_owned(),
            "1".to_owned(),
            "--lease-write-budget".to_owned(),
            budget.to_string(),
        ],
        // The metrics address is logged at info by the run module.
        rust_log: "warn,responder::cli::run=info".to_owned(),
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
        let generator = Generator::new(client, budget);
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
        let (renew, lease) = membership_cadence(
            live,
            budget,
            ClusterSettings::DEFAULT_RENEW_INTERVAL,
            ClusterSettings::DEFAULT_LEASE_DURATION,
        );
        // Every member, real or simulated, renews at the new cadence, and
        // the first renewals after a change have passed.
        std::thread::sleep(renew * 2 + Duration::from_secs(2));
        let window = Duration::from_secs(window_s).max(renew * 3);
        eprintln!(
            "membership_measure: N={simulated}: renew {renew:?}, lease {lease:?}, window {window:?}"
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
        eprintln!("membership_measure: {row:?}");
        rows.push(row);
    }
    generator.stop();

    let report = MembershipResult {
        services,
        real_agents: NODES.len(),
        write_budget: budget,
        hold_down_ms: HOLD_DOWN_MS,
        rows,
        note: format!("{} real agents (driver mode on veths into one bridge, --node-selector {REAL_LABEL}=true so only they are eligible, --hold-down {HOLD_DOWN}, --lease-write-budget {budget}, --renew-interval 250ms, --lease-duration 1s) against a kube-apiserver v1.20 + etcd holding {services} LoadBalancer Services; N simulated members: one Node and one Lease each, renewed by one load generator (tokio, one connection pool) with the library's renewal patch at the library's cadence for N + {} live members, phases spread over the renew interval; writes/s from the API server's apiserver_request_total (resource leases, verbs POST/CREATE/PATCH/PUT/UPDATE) over the window; watch events/s from one real agent's responder_lease_watch_events_total; CPU % = (utime + stime) / window, 100 % = one core; RSS = VmRSS and RssAnon at the window's end; failover = SIGKILL of the probe Service's owner + its link down until the first ARP reply from another node to a client probing every 10 ms, the owner restarted after each round", NODES.len(), NODES.len()),
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

/// The generator's simulated members: `sim-NNNN`, one Node and one Lease
/// each, renewed by one task per member at the agents' cadence.
struct Generator {
    runtime: tokio::runtime::Runtime,
    client: Client,
    budget: f64,
    members: Arc<AtomicUsize>,
    started: AtomicUsize,
    stopping: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl Generator {
    fn new(client: Client, budget: f64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("generator runtime");
        Generator {
            runtime,
            client,
            budget,
            members: Arc::new(AtomicUsize::new(0)),
            started: AtomicUsize::new(0),
            stopping: Arc::new(AtomicBool::new(false)),
            writes: Arc::new(AtomicU64::new(0)),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds members up to `count`: their Nodes first, then their renewals,
    /// whose first writes are spread over one renew interval.
    fn grow_to(&self, count: usize) {
        let from = self.started.load(Ordering::Relaxed);
        if count <= from {
            return;
        }
        let nodes: Vec<Node> =
            self.runtime
                .block_on(create_nodes(self.client.clone(), from, count));
        self.members.store(count, Ordering::Relaxed);
        let (renew, _) = self.cadence();
        for (offset, node) in nodes.into_iter().enumerate() {
            let phase = renew.mul_f64(offset as f64 / (count - from) as f64);
            let member = Member {
                api: Api::namespaced(self.client.clone(), NAMESPACE),
                budget: self.budget,
                members: Arc::clone(&self.members),
                stopping: Arc::clone(&self.stopping),
                writes: Arc::clone(&self.writes),
                failures: Arc::clone(&self.failures),
            };
            self.runtime.spawn(member.renew_forever(node, phase));
        }
        self.started.store(count, Ordering::Relaxed);
    }

    fn cadence(&self) -> (Duration, Duration) {
        live_cadence(self.members.load(Ordering::Relaxed), self.budget)
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// The cadence every member uses with `simulated` members and the real agents live.
fn live_cadence(simulated: usize, budget: f64) -> (Duration, Duration) {
    membership_cadence(
        simulated + NODES.len(),
        budget,
        ClusterSettings::DEFAULT_RENEW_INTERVAL,
        ClusterSettings::DEFAULT_LEASE_DURATION,
    )
}

struct Member {
    api: Api<Lease>,
    budget: f64,
    members: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl Member {
    /// What an agent's `hold_lease` does: a merge patch per renew interval,
    /// the Lease created when the patch finds none, a new session first.
    async fn renew_forever(self, node: Node, phase: Duration) {
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
            let (renew, lease) = live_cadence(self.members.load(Ordering::Relaxed), self.budget);
            let patch = renewal_patch(&name, &reach, owner.as_ref(), lease, new_session);
            let written = match self
                .api
                .patch(&lease_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => true,
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    let object = first_lease(&name, &reach, owner.as_ref(), lease);
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

async fn create_nodes(client: Client, from: usize, to: usize) -> Vec<Node> {
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
fn ingress_ip(index: usize) -> IpAddr {
    match index {
        0 => PROBE_VIP.parse().expect("probe VIP"),
        i => documentation_ip(i - 1),
    }
}

async fn create_services(client: Client, count: usize) {
    create_lb_services(Api::namespaced(client, NAMESPACE), count, ingress_ip).await;
}

/// etcd's and kube-apiserver's PIDs from the state directory of `apiserver.sh`.
fn server_pids(state: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(state.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            Some((name.to_owned(), pid.trim().parse().ok()?))
        })
        .collect()
}

/// Lease writes the API server has answered so far, from its own metrics.
fn api_lease_writes(cluster: &Cluster) -> f64 {
    let out = cluster.server.kubectl(&["get", "--raw", "/metrics"]);
    assert!(
        out.status.success(),
        "kubectl get --raw /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .filter(|line| line.contains("resource=\"leases\""))
        .filter(|line| {
            ["POST", "CREATE", "PATCH", "PUT", "UPDATE"]
                .iter()
                .any(|verb| line.contains(&format!("verb=\"{verb}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The agent's metrics port, from its "serving /metrics" log line.
fn metrics_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|line| line.contains("serving /metrics"))?;
    let after = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `responder_lease_watch_events_total` of the agent on `port`.
fn watch_events(port: u16) -> f64 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to agent metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("send metrics request");
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .expect("read agent metrics");
    text.lines()
        .find_map(|line| line.strip_prefix("responder_lease_watch_events_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no responder_lease_watch_events_total in the agent's metrics"))
}

/// utime + stime of `pid` in seconds (NaN once it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or(f64::NAN)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// VmRSS and RssAnon of `pid`, MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("RssAnon:") / 1024.0)
}
