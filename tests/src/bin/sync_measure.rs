//! Measures the agent's initial sync with many Services: a real API server
//! holds one Node and N LoadBalancer Services, each with one ingress IP; then
//! ONE agent (`responder run --kube`, so it owns every Service) starts, and the
//! time until all N VIPs are in its pinned map is taken, together with its
//! resident memory and CPU time. Creating the Services is setup, not measured.
//!
//! Usage: sync_measure OUT.json [SERVICES (10000)]
//! The `responder` binary is RESPONDER_BIN, else the one next to this binary.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aya::maps::{HashMap, Map, MapData};
use k8s_openapi::api::core::v1::Node;
use kube::{
    api::{Api, PostParams},
    Client,
};
use responder_common::{VipKey, VipValue, PIN_VIPS};
use responder_tests::{
    bench::schema::{to_json_text, SyncResult, Usage},
    bulk_services::{create_lb_services, documentation_ip, IPV4_ADDRESSES},
    lab::apiserver::ApiServer,
    lab::responder::{cleanup_pins, responder_bin},
    netns::{quiet_ipv6, run_ok, ChildGuard, NetNs},
};
use serde_json::json;

const NODE: &str = "sync-node";
const NAMESPACE: &str = "default";
/// Cluster IPs come from the benchmarking range (RFC 2544): the default /24 of
/// the test API server holds only a few hundred Services. They never reach a wire.
const CLUSTER_IP_RANGE: &str = "198.18.0.0/16";
/// Every LoadBalancer Service takes a node port.
const NODE_PORT_RANGE: &str = "20000-39999";
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);
/// After the map is full: long enough for the agent to finish the announcements.
const SETTLE: Duration = Duration::from_secs(2);

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: sync_measure OUT.json [SERVICES]");
    let services: usize = args
        .next()
        .map_or(10_000, |n| n.parse().expect("SERVICES is a number"));
    if std::env::var_os("RESPONDER_BIN").is_none() {
        let exe = std::env::current_exe().expect("current exe");
        std::env::set_var("RESPONDER_BIN", exe.with_file_name("responder"));
    }
    // Read by apiserver.sh `start`; set while this process has one thread.
    std::env::set_var("SERVICE_CLUSTER_IP_RANGE", CLUSTER_IP_RANGE);
    std::env::set_var("SERVICE_NODE_PORT_RANGE", NODE_PORT_RANGE);

    let server = ApiServer::start("sync");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = runtime.block_on(server.client());
    let setup_started = Instant::now();
    runtime.block_on(create_services(client, services));
    let setup = setup_started.elapsed();
    eprintln!(
        "sync_measure: {services} Services created in {:.1} s",
        setup.as_secs_f64()
    );

    let link = Link::create();
    let mut agent = SyncAgent::start(&server.kubeconfig(), &link.root);
    let sync = agent.wait_for_vips(services);
    let at_sync = agent.usage();
    std::thread::sleep(SETTLE);
    let settled = agent.usage();
    agent.stop();

    let report = SyncResult {
        services,
        sync_ms: sync.as_secs_f64() * 1000.0,
        at_sync,
        settled,
        setup_s: setup.as_secs_f64(),
        note: format!("one agent (--announce-count 1, skb mode, one interface) against a kube-apiserver v1.20 holding {services} LoadBalancer Services with one ingress IP each ({} IPv4, the rest IPv6), one Node; sync = agent start until all {services} VIPs are in its pinned map; includes process start, BPF load and attach, the Service list and the map inserts; every new VIP is also announced once (one gratuitous ARP or unsolicited NA) through the agent's announcer queue, part of the real sync cost, which `at_sync` holds only in part and `settled` in full; memory from /proc/PID/status, CPU = utime + stime from /proc/PID/stat; `settled` is {} s later", services.min(IPV4_ADDRESSES), SETTLE.as_secs()),
    };
    let text = to_json_text(&report).expect("serialize report");
    print!("{text}");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("write {out}: {e}"));
}

async fn create_services(client: Client, count: usize) {
    let nodes = Api::<Node>::all(client.clone());
    let node: Node = serde_json::from_value(json!({ "metadata": { "name": NODE } })).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create Node");
    create_lb_services(Api::namespaced(client, NAMESPACE), count, documentation_ip).await;
}

/// A root-namespace veth for the agent whose peer sits in a namespace of its
/// own, so the announcements end there; deleting the root end deletes both.
struct Link {
    root: String,
    peer_ns: NetNs,
}

impl Link {
    fn create() -> Self {
        let peer_ns = NetNs::new("rk-sync");
        let root = format!("rksync{}", std::process::id() % 100_000);
        run_ok(Command::new("ip").args([
            "link",
            "add",
            &root,
            "type",
            "veth",
            "peer",
            "name",
            "peer0",
            "netns",
            peer_ns.name(),
        ]));
        let link = Link { root, peer_ns };
        quiet_ipv6(&link.root);
        link.peer_ns.ip(&["link", "set", "peer0", "up"]);
        run_ok(Command::new("ip").args(["link", "set", "dev", &link.root, "up"]));
        link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root])
            .stderr(Stdio::null())
            .status();
    }
}

struct SyncAgent {
    child: Option<ChildGuard>,
    pid: u32,
    started: Instant,
    pin_path: PathBuf,
    log_path: PathBuf,
}

impl SyncAgent {
    fn start(kubeconfig: &Path, interface: &str) -> Self {
        let pin_path = PathBuf::from(format!("/sys/fs/bpf/{interface}"));
        let log_path = std::env::temp_dir().join(format!("{interface}-agent.log"));
        let log = File::create(&log_path).expect("create agent log");
        let mut cmd = Command::new(responder_bin());
        cmd.args(["run", "--kube", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--node-name", NODE, "--namespace", NAMESPACE])
            .args(["--interface", interface, "--xdp-mode", "skb"])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
                "--announce-count",
                "1",
            ])
            .arg("--pin-path")
            .arg(&pin_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let started = Instant::now();
        let child = ChildGuard::spawn(cmd, "responder agent");
        SyncAgent {
            pid: child.pid(),
            child: Some(child),
            started,
            pin_path,
            log_path,
        }
    }

    /// Time from the agent's start until its pinned map holds `count` VIPs.
    fn wait_for_vips(&mut self, count: usize) -> Duration {
        let map = self.pin_path.join(PIN_VIPS);
        loop {
            // The agent may replace the pin while starting: reopen every time.
            if pinned_count(&map) >= count {
                return self.started.elapsed();
            }
            assert!(
                self.started.elapsed() < SYNC_TIMEOUT,
                "{} of {count} VIPs in the map after {SYNC_TIMEOUT:?}; agent log:\n{}",
                pinned_count(&map),
                std::fs::read_to_string(&self.log_path).unwrap_or_default()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Resident memory (current and peak) and CPU time of the agent so far.
    fn usage(&self) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("agent /proc status");
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
        };
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("agent /proc stat");
        // Fields after the command name, which may hold spaces: utime and stime
        // are fields 14 and 15 of the whole line.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("comm in /proc/PID/stat")
            .1
            .split_whitespace()
            .collect();
        let ticks = |i: usize| -> u64 { fields[i].parse().expect("tick count") };
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let cpu_ms = (ticks(11) + ticks(12)) as f64 * 1000.0 / per_second;
        Usage {
            vm_rss_mib: kib("VmRSS:") as f64 / 1024.0,
            rss_anon_mib: kib("RssAnon:") as f64 / 1024.0,
            rss_file_mib: kib("RssFile:") as f64 / 1024.0,
            vm_hwm_mib: kib("VmHWM:") as f64 / 1024.0,
            cpu_ms,
            wall_ms: self.started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.signal(nix::sys::signal::Signal::SIGTERM);
            child.wait_exit(Duration::from_secs(30));
        }
    }
}

impl Drop for SyncAgent {
    fn drop(&mut self) {
        drop(self.child.take());
        // The agent leaves its program pinned for a successor on SIGTERM.
        cleanup_pins(&self.pin_path);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn pinned_count(path: &Path) -> usize {
    let Ok(data) = MapData::from_pin(path) else {
        return 0;
    };
    let Ok(vips) = HashMap::<MapData, VipKey, VipValue>::try_from(Map::HashMap(data)) else {
        return 0;
    };
    vips.keys().filter(Result::is_ok).count()
}
