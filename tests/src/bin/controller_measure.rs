//! Measures the address controller:
//!
//! 1. Allocation cost in the IPAM core, in-process: a whole IPv6 /64 pool with
//!    10,000 addresses assigned, then 1,000 more Services allocated one by one
//!    (each one's time taken); the same on a /112 (65,536 addresses) beside it,
//!    to show that the cost does not depend on the pool's size.
//! 2. Service creation → status written, against a real kube-apiserver (v1.20)
//!    with one `responder controller`: 200 Services created one at a time (each
//!    one's time from the create request until a watch of this process sees its
//!    `status.loadBalancer.ingress`), then 200 more created at once by 16
//!    concurrent clients (the same time, per Service, under a burst).
//!
//! Usage: controller_measure. The `responder` binary is RESPONDER_BIN, else
//! the one next to this binary. Prints the figures; asserts nothing.
use std::{
    collections::BTreeMap,
    fs::File,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::{
    api::{Api, PostParams},
    runtime::{watcher, WatchStreamExt},
};
use responder::ipam::{Allocator, IpFamily, IpFamilyPolicy, PoolSet, PoolSpec, ServiceRequest};
use responder_tests::{
    lab::{apiserver::ApiServer, responder::responder_bin},
    netns::ChildGuard,
};
use serde_json::json;
use tokio::sync::mpsc;

const ASSIGNED: usize = 10_000;
const MEASURED_ALLOCATIONS: usize = 1_000;
const SERVICES: usize = 200;
const CONCURRENCY: usize = 16;
const NAMESPACE: &str = "default";
const POOL_NAMESPACE: &str = "responder-system";
/// Cluster IPs from the benchmarking range: the default /24 holds a few hundred.
const CLUSTER_IP_RANGE: &str = "198.18.0.0/16";
const NODE_PORT_RANGE: &str = "20000-39999";
const WAIT: Duration = Duration::from_secs(60);

fn main() {
    if std::env::var_os("RESPONDER_BIN").is_none() {
        let exe = std::env::current_exe().expect("current exe");
        std::env::set_var("RESPONDER_BIN", exe.with_file_name("responder"));
    }
    for (pool, label) in [("2001:db8::/64", "/64"), ("2001:db8::/112", "/112")] {
        let (fill, each) = allocation_in(pool);
        println!(
            "ipam {label}: {ASSIGNED} assigned in {:.1} ms ({:.2} µs each); then per allocation \
             over {MEASURED_ALLOCATIONS}: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
            fill.as_secs_f64() * 1e3,
            fill.as_secs_f64() * 1e6 / ASSIGNED as f64,
            micros(percentile(&each, 50.0)),
            micros(percentile(&each, 99.0)),
            micros(*each.iter().max().expect("samples")),
        );
    }
    api_server_latency();
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn v6_request(index: usize) -> ServiceRequest {
    ServiceRequest {
        ip_family_policy: IpFamilyPolicy::SingleStack,
        ip_families: vec![IpFamily::V6],
        ..ServiceRequest::new("default", format!("svc-{index}"))
    }
}

/// Fills `pool` with `ASSIGNED` Services, then times each further allocation.
fn allocation_in(pool: &str) -> (Duration, Vec<Duration>) {
    let mut allocator = Allocator::new(PoolSet::build([PoolSpec::new("v6", &[pool])]));
    let started = Instant::now();
    for index in 0..ASSIGNED {
        allocator
            .assign(&v6_request(index))
            .expect("room in the pool");
    }
    let fill = started.elapsed();
    let each = (ASSIGNED..ASSIGNED + MEASURED_ALLOCATIONS)
        .map(|index| {
            let request = v6_request(index);
            let started = Instant::now();
            allocator.assign(&request).expect("room in the pool");
            started.elapsed()
        })
        .collect();
    (fill, each)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn api_server_latency() {
    let server = ApiServer::start_with(
        "ctlmeasure",
        &[
            ("SERVICE_CLUSTER_IP_RANGE", CLUSTER_IP_RANGE),
            ("SERVICE_NODE_PORT_RANGE", NODE_PORT_RANGE),
        ],
    );
    let kubectl = |args: &[&str]| {
        let out = server.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let deploy = format!("{}/../deploy", env!("CARGO_MANIFEST_DIR"));
    kubectl(&["apply", "-k", &format!("{deploy}/crds")]);
    kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/ipaddresspools.metallb.io",
    ]);
    kubectl(&["apply", "-f", &format!("{deploy}/namespace.yaml")]);
    let pool = std::env::temp_dir().join(format!("controller-measure-{}.yaml", std::process::id()));
    std::fs::write(
        &pool,
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: measure\n  \
             namespace: {POOL_NAMESPACE}\nspec:\n  addresses: [192.0.2.0/24, 203.0.113.0/24]\n"
        ),
    )
    .expect("write pool");
    kubectl(&["apply", "-f", pool.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&pool);

    let log_path =
        std::env::temp_dir().join(format!("controller-measure-{}.log", std::process::id()));
    let log = File::create(&log_path).expect("log");
    let mut cmd = Command::new(responder_bin());
    cmd.arg("controller")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "--namespace",
            POOL_NAMESPACE,
            "--metrics-addr",
            "off",
            "--health-addr",
            "off",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log);
    let controller = ChildGuard::spawn(cmd, "responder controller");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = runtime.block_on(server.client());
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    runtime.spawn(watch_ingress(services.clone(), seen_tx));

    // Warm-up: the controller is leading and has listed everything.
    runtime.block_on(create(&services, "warmup"));
    let warm = runtime.block_on(async {
        tokio::time::timeout(WAIT, async {
            while let Some((name, _)) = seen.recv().await {
                if name == "warmup" {
                    return;
                }
            }
        })
        .await
    });
    assert!(
        warm.is_ok(),
        "the controller did not allocate within {WAIT:?}: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    let sequential: Vec<Duration> = (0..SERVICES)
        .map(|i| {
            let name = format!("one-{i}");
            runtime.block_on(async {
                let started = Instant::now();
                create(&services, &name).await;
                loop {
                    let (seen_name, at) = tokio::time::timeout(WAIT, seen.recv())
                        .await
                        .expect("status within the bound")
                        .expect("watch running");
                    if seen_name == name {
                        return at - started;
                    }
                }
            })
        })
        .collect();
    report("one at a time", &sequential);

    let burst = runtime.block_on(async {
        let started_at: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Arc::default();
        let burst_started = Instant::now();
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|worker| {
                let services = services.clone();
                let started_at = Arc::clone(&started_at);
                tokio::spawn(async move {
                    for i in (worker..SERVICES).step_by(CONCURRENCY) {
                        let name = format!("burst-{i}");
                        started_at.lock().expect("lock").insert(name.clone(), Instant::now());
                        create(&services, &name).await;
                    }
                    Instant::now()
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut last = burst_started;
        while latencies.len() < SERVICES {
            let (name, at) = tokio::time::timeout(WAIT, seen.recv())
                .await
                .expect("status within the bound")
                .expect("watch running");
            if let Some(started) = started_at.lock().expect("lock").get(&name) {
                latencies.push(at - *started);
                last = last.max(at);
            }
        }
        let mut created = burst_started;
        for worker in workers {
            created = created.max(worker.await.expect("creation task"));
        }
        println!(
            "burst: {SERVICES} Services created by {CONCURRENCY} clients in {:.0} ms; all with a status {:.0} ms after the first create",
            (created - burst_started).as_secs_f64() * 1e3,
            (last - burst_started).as_secs_f64() * 1e3
        );
        latencies
    });
    report("burst", &burst);
    drop(controller);
    let _ = std::fs::remove_file(&log_path);
}

fn report(what: &str, samples: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Service created → status seen ({what}, {} Services): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0)),
        ms(*samples.iter().max().expect("samples")),
    );
}

async fn create(services: &Api<Service>, name: &str) {
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": "SingleStack",
            "ports": [{ "port": 80, "protocol": "TCP" }],
        },
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Sends each Service's name the first time it is seen with an ingress address.
async fn watch_ingress(services: Api<Service>, seen: mpsc::UnboundedSender<(String, Instant)>) {
    let mut reported = std::collections::HashSet::new();
    let mut stream = watcher(services, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(event) = stream.next().await {
        let Ok(service) = event else { continue };
        let has_ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        let name = service.metadata.name.clone().unwrap_or_default();
        if has_ingress && reported.insert(name.clone()) {
            let _ = seen.send((name, Instant::now()));
        }
    }
}
