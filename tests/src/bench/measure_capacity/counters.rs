//! What a capacity run reads (the veth driver's and the stack's counters)
//! and what it makes of its samples.

use super::*;

/// One run's figures.
pub(super) struct Sample {
    pub(super) responder: Responder,
    pub(super) request: Request,
    pub(super) round: usize,
    pub(super) injection: Injection,
    pub(super) node_received: u64,
    pub(super) replies: u64,
    pub(super) node_sent: u64,
    pub(super) receive_thread: Duration,
    pub(super) client_thread: Duration,
    pub(super) daemon: Option<Duration>,
    pub(super) node_cpu_busy: f64,
}

/// `ethtool -S` of `ifname` in `ns`, by statistic name.
pub(super) fn driver_stats(ns: &NetNs, ifname: &str) -> BTreeMap<String, u64> {
    let out = run_ok(ns.command("ethtool").args(["-S", ifname]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Frames sent out of `ifname` in `ns`, dropped ones included: the
/// stack's, and XDP_TX in driver mode (veth adds those in).
pub(super) fn stack_tx(ns: &NetNs, ifname: &str) -> u64 {
    let out = ns.ip(&["-j", "-s", "link", "show", "dev", ifname]);
    let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j link JSON");
    let tx = &links[0]["stats64"]["tx"];
    tx["packets"].as_u64().expect("tx packets") + tx["dropped"].as_u64().expect("tx dropped")
}

pub(super) fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    name: &str,
) -> u64 {
    let get = |stats: &BTreeMap<String, u64>| {
        *stats
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the veth driver's statistics"))
    };
    get(after) - get(before)
}

pub(super) fn summarize(samples: &[Sample]) -> Vec<CapacityRun> {
    let mut runs = vec![];
    for responder in RESPONDERS {
        for &request in requests_for(responder) {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.responder == responder && s.request == request)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let per = |f: &dyn Fn(&Sample) -> f64| -> Spread {
                Spread::of(&mine.iter().map(|s| f(s)).collect::<Vec<_>>())
            };
            let seconds = |s: &Sample| s.injection.elapsed.as_secs_f64();
            let node_ns =
                |s: &Sample| (s.receive_thread + s.daemon.unwrap_or_default()).as_nanos() as f64;
            let driver_rate = |s: &Sample| {
                samples
                    .iter()
                    .find(|d| {
                        d.responder == Responder::Driver
                            && d.request == request
                            && d.round == s.round
                    })
                    .map_or(f64::NAN, |d| d.replies as f64 / seconds(d))
            };
            runs.push(CapacityRun {
                responder,
                request,
                injected_per_s: per(&|s| s.injection.frames as f64 / seconds(s)),
                node_received_per_s: per(&|s| s.node_received as f64 / seconds(s)),
                replies_per_s: per(&|s| s.replies as f64 / seconds(s)),
                answered_fraction: per(&|s| s.replies as f64 / s.node_received.max(1) as f64),
                relative_to_driver: per(&|s| s.replies as f64 / seconds(s) / driver_rate(s)),
                node_ns_per_frame: per(&|s| node_ns(s) / s.node_received.max(1) as f64),
                node_ns_per_reply: per(&|s| {
                    if s.replies == 0 {
                        f64::NAN
                    } else {
                        node_ns(s) / s.replies as f64
                    }
                }),
                receive_thread_cpu: per(&|s| s.receive_thread.as_secs_f64() / seconds(s)),
                daemon_cpu: responder
                    .is_daemon()
                    .then(|| per(&|s| s.daemon.unwrap_or_default().as_secs_f64() / seconds(s))),
                node_cpu_busy: per(&|s| s.node_cpu_busy),
                generator_cpu: per(&|s| s.injection.cpu.as_secs_f64() / seconds(s)),
                client_cpu: per(&|s| s.client_thread.as_secs_f64() / seconds(s)),
                lost_before_client: per(&|s| {
                    if s.node_sent == 0 {
                        0.0
                    } else {
                        s.node_sent.saturating_sub(s.replies) as f64 / s.node_sent as f64
                    }
                }),
            });
        }
    }
    runs
}
