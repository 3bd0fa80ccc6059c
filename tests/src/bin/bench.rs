//! `cargo xtask bench`: what the responder costs, always as a ratio to
//! something measured side by side in the same run, because the machines
//! this runs on are shared and noisy.
//!
//! 1. Per-frame cost with BPF_PROG_TEST_RUN next to an empty XDP program.
//! 2. Replies per second over veth between namespaces: the responder in
//!    driver and skb mode, the Linux kernel, a MetalLB-style userspace
//!    responder, and nothing answering at all.
//! 3. Agent convergence/failover and the initial sync of one agent with many
//!    Services, when `cluster_measure` and `sync_measure` were built.
//!
//! Usage: bench [--quick] --out BENCHMARKS.md --json BENCHMARKS.json --chart benchmarks.png
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use aya::{
    maps::{HashMap, PerCpuHashMap, PerCpuValues},
    programs::{Xdp, XdpMode},
    util::nr_cpus,
    Ebpf,
};
use responder_common::{VipKey, VipStats, VipValue, PROGRAM_NAME, VIPS_MAP, VIP_STATS_MAP};
use responder_model::frames::{
    ipv4_l4_packet, ipv6_l4_packet, link_addr_option, nonce_option, solicited_node_group, tcp_syn,
    Arp, Ethernet, Nd, Vlan, BROADCAST_MAC, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP,
    ND_OPT_SOURCE_LL_ADDR, OTHER4, OUR_MAC, PEER4, PEER6, PEER_MAC, UNSPECIFIED6, VIP4, VIP6,
};
use responder_tests::{
    lab::{Lab, CLIENT_IF, CLIENT_V4, CLIENT_V6, NODE_IF, VIP_V4, VIP_V6},
    loadgen::{self, ExpectedReplies, LoadResult},
    testrun::{test_run_fd, LOOPBACK_IFINDEX},
    userspace_responder::UserspaceResponder,
};
use serde_json::{json, Value};

/// The empty program in the responder's object (responder-ebpf main.rs).
const BASELINE_PROGRAM: &str = "xdp_pass";
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const VLAN_ID: u16 = 100;
const FEW_VIPS: usize = 10;
const MANY_VIPS: usize = 100_000;

struct Settings {
    quick: bool,
    /// Rounds of the per-frame measurement; every subject is measured once per round.
    frame_rounds: usize,
    /// BPF_PROG_TEST_RUN calls per subject and round.
    calls: usize,
    /// `repeat` of the kernel-loop cross-check.
    kernel_repeat: u32,
    /// Rounds of the end-to-end measurement; every mode runs once per round.
    load_rounds: usize,
    load_time: Duration,
    /// LoadBalancer Services the agent syncs in `sync_measure`.
    sync_services: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| -> PathBuf {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} PATH is required"));
        PathBuf::from(
            args.get(at + 1)
                .unwrap_or_else(|| panic!("{flag} needs a path")),
        )
    };
    let (out, json_path, chart) = (value("--out"), value("--json"), value("--chart"));
    if args.iter().any(|a| a == "--render-only") {
        let text = std::fs::read_to_string(&json_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", json_path.display()));
        let report: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a bench report: {e}", json_path.display()));
        write_reports(&report, &out, &chart);
        eprintln!(
            "bench: rewrote {} and {} from {}",
            out.display(),
            chart.display(),
            json_path.display()
        );
        return;
    }
    let settings = if quick {
        Settings {
            quick,
            frame_rounds: 7,
            calls: 20_000,
            kernel_repeat: 100_000,
            load_rounds: 3,
            load_time: Duration::from_secs(2),
            sync_services: 1_000,
        }
    } else {
        Settings {
            quick,
            frame_rounds: 15,
            calls: 100_000,
            kernel_repeat: 1_000_000,
            load_rounds: 7,
            load_time: Duration::from_secs(5),
            sync_services: 10_000,
        }
    };
    let started = Instant::now();
    eprintln!("bench: per-frame cost (BPF_PROG_TEST_RUN)");
    let frame_costs = per_frame_costs(&settings);
    eprintln!("bench: replies per second over veth");
    let throughput = throughput(&settings);
    eprintln!("bench: agent convergence and failover");
    let cluster = cluster_measure(settings.quick);
    eprintln!(
        "bench: initial sync with {} Services",
        settings.sync_services
    );
    let sync = sync_measure(settings.sync_services);
    let elapsed = started.elapsed();

    let report = json!({
        "quick": quick,
        "elapsed_s": elapsed.as_secs_f64(),
        "machine": machine(),
        "per_frame": frame_costs,
        "throughput": throughput,
        "cluster": cluster,
        "sync": sync,
    });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).expect("serialize") + "\n",
    )
    .expect("write the JSON report");
    write_reports(&report, &out, &chart);
    eprintln!(
        "bench: done in {:.0} s: {}, {}, {}",
        elapsed.as_secs_f64(),
        out.display(),
        json_path.display(),
        chart.display()
    );
}

fn write_reports(report: &Value, out: &Path, chart: &Path) {
    draw_chart(&report["throughput"], chart);
    let chart_name = chart
        .file_name()
        .expect("chart file name")
        .to_string_lossy()
        .into_owned();
    std::fs::write(out, markdown(report, &chart_name)).expect("write the Markdown report");
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({ "cpu": cpu, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "kernel": kernel })
}

// ---------------------------------------------------------------------------
// 1. Per-frame cost

/// A frame and what the responder must do with it.
struct FrameCase {
    name: &'static str,
    frame: Vec<u8>,
    action: u32,
    /// Ordinary traffic (goal: within 3 ns of the empty program) rather than a request answered.
    ordinary: bool,
}

fn frame_cases() -> Vec<FrameCase> {
    let to_us = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let broadcast = Ethernet {
        dst: BROADCAST_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let (group, group_mac) = solicited_node_group(VIP6);
    let sllao = link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC);
    let case = |name, frame, action, ordinary| FrameCase {
        name,
        frame,
        action,
        ordinary,
    };
    vec![
        case(
            "IPv4 TCP",
            to_us.frame(
                ETH_P_IP,
                &ipv4_l4_packet(PEER4, VIP4, IPPROTO_TCP, tcp_syn(40000, 80)),
            ),
            XDP_PASS,
            true,
        ),
        case(
            "IPv6 TCP",
            to_us.frame(
                ETH_P_IPV6,
                &ipv6_l4_packet(PEER6, VIP6, IPPROTO_TCP, tcp_syn(40000, 80)),
            ),
            XDP_PASS,
            true,
        ),
        case(
            "ARP miss",
            Arp::request(PEER_MAC, PEER4, OTHER4).frame(&broadcast),
            XDP_PASS,
            false,
        ),
        case(
            "ARP hit",
            Arp::request(PEER_MAC, PEER4, VIP4).frame(&broadcast),
            XDP_TX,
            false,
        ),
        case(
            "ARP hit, VLAN",
            Arp::request(PEER_MAC, PEER4, VIP4).frame(&Ethernet {
                vlan: Vlan::Dot1Q(VLAN_ID),
                ..broadcast
            }),
            XDP_TX,
            false,
        ),
        case(
            "NS multicast hit",
            Nd::solicitation(PEER6, group, VIP6, vec![sllao.clone()]).frame(&Ethernet {
                dst: group_mac,
                ..to_us
            }),
            XDP_TX,
            false,
        ),
        case(
            "NS unicast hit",
            Nd::solicitation(PEER6, VIP6, VIP6, vec![sllao]).frame(&to_us),
            XDP_TX,
            false,
        ),
        // With the nonce option Linux puts in its DAD probes.
        case(
            "DAD NS",
            Nd::solicitation(
                UNSPECIFIED6,
                group,
                VIP6,
                vec![nonce_option([1, 2, 3, 4, 5, 6])],
            )
            .frame(&Ethernet {
                dst: group_mac,
                ..to_us
            }),
            XDP_TX,
            false,
        ),
    ]
}

/// The keys the frames ask for, first, then fillers up to `count`.
fn vip_keys(count: usize) -> Vec<VipKey> {
    let mut keys = vec![
        VipKey::v4(LOOPBACK_IFINDEX, 0, 0, VIP4),
        VipKey::v4(LOOPBACK_IFINDEX, VLAN_ID, 0, VIP4),
        VipKey::v6(LOOPBACK_IFINDEX, 0, 0, VIP6),
    ];
    for i in 0..count.saturating_sub(keys.len()) {
        let n = i as u32;
        keys.push(if i % 2 == 0 {
            // Other interfaces of a big node: the documentation /24s run out.
            VipKey::v4(1000 + n / 512, 0, 0, [203, 0, 113, (n / 2 % 256) as u8])
        } else {
            let mut addr = [
                0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ];
            addr[12..].copy_from_slice(&n.to_be_bytes());
            VipKey::v6(LOOPBACK_IFINDEX, 0, 0, addr)
        });
    }
    keys
}

/// Loads the object with both programs and fills its map with `vip_count` VIPs.
fn load_with_vips(vip_count: usize, vips: &[VipKey], mac: [u8; 6]) -> Ebpf {
    let mut ebpf = Ebpf::load(responder::EBPF_OBJECT).expect("load the XDP object");
    for name in [PROGRAM_NAME, BASELINE_PROGRAM] {
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("{name} in the object"))
            .try_into()
            .expect("an XDP program");
        program
            .load()
            .unwrap_or_else(|e| panic!("load {name}: {e}"));
    }
    let mut map: HashMap<_, VipKey, VipValue> =
        HashMap::try_from(ebpf.map_mut(VIPS_MAP).expect("VIPS map")).expect("VIPS is a hash map");
    let value = VipValue {
        mac,
        ..VipValue::default()
    };
    for key in vips.iter().take(vip_count) {
        map.insert(key, value, 0).expect("insert VIP");
    }
    let mut stats: PerCpuHashMap<_, VipKey, VipStats> =
        PerCpuHashMap::try_from(ebpf.map_mut(VIP_STATS_MAP).expect("VIP_STATS map"))
            .expect("per-CPU hash");
    let cpus = nr_cpus().expect("CPU count");
    // Only the VIPs the frames ask for are ever counted; their counters
    // exist as the agent would have made them.
    for key in vips.iter().take(3) {
        let zeroed =
            PerCpuValues::try_from(vec![VipStats::default(); cpus]).expect("per-CPU values");
        stats.insert(key, zeroed, 0).expect("insert counters");
    }
    ebpf
}

fn program_fd(ebpf: &Ebpf, name: &str) -> RawFd {
    let program: &Xdp = ebpf
        .program(name)
        .expect("program")
        .try_into()
        .expect("XDP");
    program.fd().expect("loaded").as_fd().as_raw_fd()
}

/// One BPF_PROG_TEST_RUN of `frame`: (action, kernel-measured mean ns per run).
/// Both programs go through this same function, so whatever it adds is added
/// to both. No output buffer: copying the frame back is not what we measure.
fn test_run(fd: RawFd, frame: &[u8], repeat: u32) -> (u32, u32) {
    let outcome =
        test_run_fd(fd, frame, LOOPBACK_IFINDEX, repeat, None).unwrap_or_else(|e| panic!("{e}"));
    (outcome.action, outcome.duration_ns)
}

/// Mean of the samples below the 99th percentile: interrupts and
/// preemption land in the top percent and say nothing about the program.
fn trimmed_mean(samples: &mut [u32]) -> f64 {
    samples.sort_unstable();
    let kept = &samples[..(samples.len() * 99 / 100).max(1)];
    kept.iter().map(|&s| s as f64).sum::<f64>() / kept.len() as f64
}

struct Subject {
    fd: RawFd,
    frame: Vec<u8>,
    /// Trimmed mean ns per round, repeat=1.
    per_round: Vec<f64>,
    /// Wall-clock ns per syscall per round, repeat=1.
    wall: Vec<f64>,
    /// Kernel-loop ns per round (repeat = many), only for frames left unchanged.
    kernel_loop: Vec<f64>,
}

fn per_frame_costs(settings: &Settings) -> Value {
    let cases = frame_cases();
    let keys = vip_keys(MANY_VIPS);
    let few = load_with_vips(FEW_VIPS, &keys, OUR_MAC);
    let many = load_with_vips(MANY_VIPS, &keys, OUR_MAC);
    for case in &cases {
        for ebpf in [&few, &many] {
            let (action, _) = test_run(program_fd(ebpf, PROGRAM_NAME), &case.frame, 1);
            assert_eq!(
                action, case.action,
                "{}: the responder returned {action}, expected {}",
                case.name, case.action
            );
        }
    }
    let subject = |fd, frame: &[u8]| Subject {
        fd,
        frame: frame.to_vec(),
        per_round: vec![],
        wall: vec![],
        kernel_loop: vec![],
    };
    let mut subjects = vec![subject(program_fd(&few, BASELINE_PROGRAM), &cases[0].frame)];
    for case in &cases {
        subjects.push(subject(program_fd(&few, PROGRAM_NAME), &case.frame));
        subjects.push(subject(program_fd(&many, PROGRAM_NAME), &case.frame));
    }
    let unchanged: Vec<bool> = std::iter::once(true)
        .chain(cases.iter().flat_map(|c| [c.action == XDP_PASS; 2]))
        .collect();
    let mut samples = vec![0u32; settings.calls];
    for round in 0..settings.frame_rounds {
        // Rotating the order spreads slow phases of the machine over all subjects.
        let n = subjects.len();
        for i in 0..n {
            let at = (i + round) % n;
            let subject = &mut subjects[at];
            let start = Instant::now();
            for sample in samples.iter_mut() {
                *sample = test_run(subject.fd, &subject.frame, 1).1;
            }
            subject
                .wall
                .push(start.elapsed().as_nanos() as f64 / settings.calls as f64);
            subject.per_round.push(trimmed_mean(&mut samples));
            if unchanged[at] {
                let mut loops: Vec<u32> = (0..5)
                    .map(|_| test_run(subject.fd, &subject.frame, settings.kernel_repeat).1)
                    .collect();
                loops.sort_unstable();
                subject.kernel_loop.push(loops[2] as f64);
            }
        }
    }
    let empty = &subjects[0];
    let mut rows = vec![];
    for (c, case) in cases.iter().enumerate() {
        let few = &subjects[1 + 2 * c];
        let many = &subjects[2 + 2 * c];
        let ratio =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
        let delta =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x - y).collect() };
        rows.push(json!({
            "case": case.name,
            "action": if case.action == XDP_TX { "XDP_TX" } else { "XDP_PASS" },
            "ordinary": case.ordinary,
            "frame_bytes": case.frame.len(),
            "ns_10": summary(&few.per_round),
            "ns_100k": summary(&many.per_round),
            "minus_empty_ns_10": summary(&delta(&few.per_round, &empty.per_round)),
            "minus_empty_ns_100k": summary(&delta(&many.per_round, &empty.per_round)),
            "ratio_to_empty_10": summary(&ratio(&few.per_round, &empty.per_round)),
            "ratio_to_empty_100k": summary(&ratio(&many.per_round, &empty.per_round)),
            "ratio_100k_to_10": summary(&ratio(&many.per_round, &few.per_round)),
            "kernel_loop_ns_10": (!few.kernel_loop.is_empty()).then(|| summary(&few.kernel_loop)),
            "kernel_loop_ns_100k": (!many.kernel_loop.is_empty()).then(|| summary(&many.kernel_loop)),
            "kernel_loop_minus_empty_ns_10": (!few.kernel_loop.is_empty()).then(|| summary(&delta(&few.kernel_loop, &empty.kernel_loop))),
        }));
    }
    json!({
        "method": "repeat=1 per BPF_PROG_TEST_RUN, kernel-reported duration, 99th-percentile-trimmed mean per round",
        "rounds": settings.frame_rounds,
        "calls_per_round": settings.calls,
        "kernel_repeat": settings.kernel_repeat,
        "empty_ns": summary(&empty.per_round),
        "empty_kernel_loop_ns": summary(&empty.kernel_loop),
        "empty_syscall_wall_ns": summary(&empty.wall),
        "cases": rows,
    })
}

/// Median, min, max and quartiles of `values`.
fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    json!({ "median": at(0.5), "min": sorted[0], "max": sorted[sorted.len() - 1], "q1": at(0.25), "q3": at(0.75), "n": sorted.len() })
}

// ---------------------------------------------------------------------------
// 2. Replies per second over veth

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nothing,
    Driver,
    Skb,
    Kernel,
    Userspace,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Driver,
        Mode::Skb,
        Mode::Kernel,
        Mode::Userspace,
        Mode::Nothing,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Nothing => "nothing answering",
            Mode::Driver => "XDP driver mode",
            Mode::Skb => "XDP skb mode",
            Mode::Kernel => "Linux kernel",
            Mode::Userspace => "userspace (MetalLB-style)",
        }
    }
}

/// Busy and softirq jiffies of all CPUs, from the first line of /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("jiffies"))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
    (busy, fields[6])
}

fn jiffies_ns(jiffies: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    jiffies as f64 * 1e9 / hz
}

fn parse4(ip: &str) -> [u8; 4] {
    ip.parse::<Ipv4Addr>().expect("IPv4").octets()
}

fn parse6(ip: &str) -> [u8; 16] {
    ip.parse::<Ipv6Addr>().expect("IPv6").octets()
}

/// One responder's run in one round of the end-to-end measurement.
struct LoadRun {
    mode: Mode,
    result: LoadResult,
    /// The userspace responder's (replies, CPU time), from its own threads.
    userspace: Option<(u64, Duration)>,
    busy_ns: f64,
    softirq_ns: f64,
}

fn throughput(settings: &Settings) -> Value {
    let lab = Lab::new("bench");
    let node_mac = lab.node.mac(NODE_IF);
    let client_mac = lab.client.mac(CLIENT_IF);
    let node_ifindex = lab.node.ifindex(NODE_IF);
    let (vip4, vip6) = (parse4(VIP_V4), parse6(VIP_V6));
    let (group, group_mac) = solicited_node_group(vip6);
    let requests = vec![
        Arp::request(client_mac, parse4(CLIENT_V4), vip4).frame(&Ethernet {
            dst: BROADCAST_MAC,
            src: client_mac,
            vlan: Vlan::Untagged,
        }),
        Nd::solicitation(
            parse6(CLIENT_V6),
            group,
            vip6,
            vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, client_mac)],
        )
        .frame(&Ethernet {
            dst: group_mac,
            src: client_mac,
            vlan: Vlan::Untagged,
        }),
    ];
    let expected = ExpectedReplies {
        generator_mac: client_mac,
        vip4,
        vip6,
    };
    let mut keys = vec![
        VipKey::v4(node_ifindex, 0, 0, vip4),
        VipKey::v6(node_ifindex, 0, 0, vip6),
    ];
    keys.extend(vip_keys(FEW_VIPS).into_iter().skip(3).take(FEW_VIPS - 2));
    let mut driver = load_with_vips(FEW_VIPS, &keys, node_mac);
    let mut skb = load_with_vips(FEW_VIPS, &keys, node_mac);

    let mut runs: Vec<LoadRun> = vec![];
    for round in 0..settings.load_rounds {
        for offset in 0..Mode::ALL.len() {
            let mode = Mode::ALL[(offset + round) % Mode::ALL.len()];
            eprintln!(
                "bench:   round {}/{} {}",
                round + 1,
                settings.load_rounds,
                mode.name()
            );
            let before = cpu_jiffies();
            let (result, responder) = match mode {
                Mode::Driver | Mode::Skb => {
                    let (ebpf, xdp_mode) = if mode == Mode::Driver {
                        (&mut driver, XdpMode::Driver)
                    } else {
                        (&mut skb, XdpMode::Skb)
                    };
                    let program: &mut Xdp = ebpf
                        .program_mut(PROGRAM_NAME)
                        .expect("program")
                        .try_into()
                        .expect("XDP");
                    let link = lab
                        .node
                        .enter(|| program.attach(NODE_IF, xdp_mode))
                        .expect("attach the responder");
                    let result = loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    );
                    program.detach(link).expect("detach the responder");
                    (result, None)
                }
                Mode::Kernel => {
                    lab.node
                        .ip(&["addr", "add", &format!("{VIP_V4}/32"), "dev", NODE_IF]);
                    lab.node.ip(&[
                        "addr",
                        "add",
                        &format!("{VIP_V6}/128"),
                        "dev",
                        NODE_IF,
                        "nodad",
                    ]);
                    let result = loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    );
                    lab.node
                        .ip(&["addr", "del", &format!("{VIP_V4}/32"), "dev", NODE_IF]);
                    lab.node
                        .ip(&["addr", "del", &format!("{VIP_V6}/128"), "dev", NODE_IF]);
                    (result, None)
                }
                Mode::Userspace => {
                    let responder =
                        UserspaceResponder::start(&lab.node, NODE_IF, node_mac, &[vip4], &[vip6])
                            .expect("start the userspace responder");
                    let result = loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    );
                    let stats = responder.stop().expect("userspace responder");
                    (result, Some((stats.replies, stats.cpu)))
                }
                Mode::Nothing => (
                    loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    ),
                    None,
                ),
            };
            let after = cpu_jiffies();
            let result = result.expect("load generator");
            let busy = jiffies_ns(after.0 - before.0);
            let softirq = jiffies_ns(after.1 - before.1);
            if mode != Mode::Nothing {
                assert!(
                    result.arp_replies > 0 && result.na_replies > 0,
                    "{}: no ARP or no NA replies: {result:?}",
                    mode.name()
                );
            }
            runs.push(LoadRun {
                mode,
                result,
                userspace: responder,
                busy_ns: busy,
                softirq_ns: softirq,
            });
        }
    }

    let driver_rates: Vec<f64> = runs
        .iter()
        .filter(|r| r.mode == Mode::Driver)
        .map(|r| rate(r.result.replies(), &r.result))
        .collect();
    let modes: Vec<Value> = Mode::ALL
        .iter()
        .map(|&mode| {
            let mine: Vec<_> = runs.iter().filter(|r| r.mode == mode).collect();
            let per = |f: &dyn Fn(&LoadRun) -> f64| -> Value {
                summary(&mine.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let replies_per_reply = |ns: f64, r: &LoadResult| if r.replies() == 0 { f64::NAN } else { ns / r.replies() as f64 };
            let rates: Vec<f64> = mine.iter().map(|r| rate(r.result.replies(), &r.result)).collect();
            json!({
                "mode": mode.name(),
                "replies_per_s": summary(&rates),
                "sent_per_s": per(&|r| rate(r.result.sent, &r.result)),
                "answered_fraction": per(&|r| if r.result.sent == 0 { 0.0 } else { r.result.replies() as f64 / r.result.sent as f64 }),
                "relative_to_driver": summary(&rates.iter().zip(&driver_rates).map(|(a, b)| a / b).collect::<Vec<_>>()),
                "arp_replies": per(&|r| r.result.arp_replies as f64),
                "na_replies": per(&|r| r.result.na_replies as f64),
                "other_frames": per(&|r| r.result.other_frames as f64),
                "receiver_drops": per(&|r| r.result.receiver_drops as f64),
                "generator_sender_cpu_share": per(&|r| r.result.sender_cpu.as_secs_f64() / r.result.send_time.as_secs_f64()),
                "generator_receiver_cpu_share": per(&|r| r.result.receiver_cpu.as_secs_f64() / r.result.send_time.as_secs_f64()),
                "softirq_ns_per_reply": per(&|r| replies_per_reply(r.softirq_ns, &r.result)),
                "softirq_ns_per_sent": per(&|r| r.softirq_ns / r.result.sent.max(1) as f64),
                "busy_ns_per_reply": per(&|r| replies_per_reply(r.busy_ns, &r.result)),
                "userspace_responder_ns_per_reply": (mode == Mode::Userspace).then(|| per(&|r| {
                    let (replies, cpu) = r.userspace.expect("userspace stats");
                    cpu.as_nanos() as f64 / replies.max(1) as f64
                })),
                "userspace_responder_cpu_share": (mode == Mode::Userspace).then(|| per(&|r| r.userspace.expect("userspace stats").1.as_secs_f64() / r.result.send_time.as_secs_f64())),
            })
        })
        .collect();
    json!({
        "rounds": settings.load_rounds,
        "seconds_per_run": settings.load_time.as_secs_f64(),
        "vips_in_map": FEW_VIPS,
        "frames": "alternating broadcast ARP request and multicast NS (with SLLAO) for one IPv4 and one IPv6 VIP",
        "modes": modes,
    })
}

fn rate(count: u64, result: &LoadResult) -> f64 {
    count as f64 / result.send_time.as_secs_f64()
}

// ---------------------------------------------------------------------------
// 3. Convergence and failover, measured by another program

fn cluster_measure(quick: bool) -> Value {
    // Failover trials and status patches: few in a quick run.
    let args: &[&str] = if quick { &["3", "20"] } else { &[] };
    run_measure("cluster_measure", args)
}

fn sync_measure(services: usize) -> Value {
    run_measure("sync_measure", &[&services.to_string()])
}

/// Runs a measuring program built next to this one as `NAME REPORT.json ARGS…`
/// and returns its JSON report, or why there is none.
fn run_measure(name: &str, args: &[&str]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let measure = exe.with_file_name(name);
    if !measure.exists() {
        return json!({ "measured": false, "reason": format!("{} was not built", measure.display()) });
    }
    let report = std::env::temp_dir().join(format!("{name}-{}.json", std::process::id()));
    let outcome = Command::new(&measure).arg(&report).args(args).output();
    let written = std::fs::read(&report);
    let _ = std::fs::remove_file(&report);
    match outcome {
        Ok(out) if out.status.success() => {
            match serde_json::from_slice::<Value>(&written.unwrap_or_default()) {
                Ok(value) => json!({ "measured": true, "result": value }),
                Err(e) => {
                    json!({ "measured": false, "reason": format!("its output is not JSON: {e}") })
                }
            }
        }
        Ok(out) => {
            json!({ "measured": false, "reason": format!("it failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).chars().take(2000).collect::<String>()) })
        }
        Err(e) => json!({ "measured": false, "reason": format!("it did not start: {e}") }),
    }
}

// ---------------------------------------------------------------------------
// 4. Report and chart

fn med(v: &Value) -> f64 {
    v["median"].as_f64().unwrap_or(f64::NAN)
}

/// "median (min–max)" with `digits` decimals.
fn spread(v: &Value, digits: usize) -> String {
    if v.is_null() || med(v).is_nan() {
        return "–".into();
    }
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        med(v),
        v["min"].as_f64().unwrap_or(f64::NAN),
        v["max"].as_f64().unwrap_or(f64::NAN),
        d = digits
    )
}

/// A Markdown table row: the `lead` cells, then the spread of each
/// (field, decimals) of `row`.
fn spread_row(lead: &[&str], row: &Value, columns: &[(&str, usize)]) -> String {
    let cells: Vec<String> = lead
        .iter()
        .map(|cell| cell.to_string())
        .chain(
            columns
                .iter()
                .map(|(field, digits)| spread(&row[*field], *digits)),
        )
        .collect();
    format!("| {} |", cells.join(" | "))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn markdown(report: &Value, chart: &str) -> String {
    let pf = &report["per_frame"];
    let tp = &report["throughput"];
    let m = &report["machine"];
    let mut s = String::new();
    let mut line = |text: &str| {
        s.push_str(text);
        s.push('\n');
    };
    line("# Benchmarks");
    line("");
    line(&format!(
        "Generated by `cargo xtask bench{}` in {:.0} s on {} ({} CPUs), kernel {}. \
         Every figure is taken side by side with what it is compared to, in the same run: the machine is shared and noisy, \
         so absolute numbers move between runs while the ratios hold much better. Spread is given as median (min–max) over rounds. \
         Raw numbers: [BENCHMARKS.json](BENCHMARKS.json).",
        if report["quick"].as_bool() == Some(true) { " --quick" } else { "" },
        report["elapsed_s"].as_f64().unwrap_or(0.0),
        m["cpu"].as_str().unwrap_or("?"),
        m["cpus"],
        m["kernel"].as_str().unwrap_or("?"),
    ));
    line("");
    line("## 1. Per-frame cost (BPF_PROG_TEST_RUN)");
    line("");
    line(&format!(
        "**Method.** Each frame runs through the loaded (never attached) responder with `repeat = 1`, {} times per round, over {} rounds; \
         the empty program `xdp_pass` from the same object runs the same way in every round, through the same code. \
         The figure per round is the kernel-reported duration, averaged after dropping the slowest 1 % of calls (interrupts, preemption). \
         `repeat = 1` is deliberate: with `repeat = N` the kernel reruns the program on the same buffer, so an answered request has become \
         its own reply from the second run on and the loop would time the wrong path. One run per syscall is honest for every frame, at a price: \
         each duration includes one `ktime_get_ns()` read and the loop around it (the empty program's figure is mostly that), and a syscall costs \
         {} ns of wall time on top, outside the measured window. Hence the differences to the empty program (\"+ns\") are the program's own cost, \
         and ratios to the empty program are ratios to that fixed overhead, not to zero. \
         As a cross-check, frames the program passes unchanged were also timed with `repeat = {}` in one syscall, which is valid for them: \
         empty program {} ns per run that way. `BPF_F_TEST_XDP_LIVE_FRAMES` was not used because its duration includes building an skb and \
         running the stack for every XDP_PASS frame and a redirect for every XDP_TX frame, so a pass and a reply would not be compared on program cost.",
        pf["calls_per_round"], pf["rounds"], spread(&pf["empty_syscall_wall_ns"], 0), pf["kernel_repeat"], spread(&pf["empty_kernel_loop_ns"], 1),
    ));
    line("");
    line(&format!(
        "Empty program: {} ns per run (repeat = 1).",
        spread(&pf["empty_ns"], 1)
    ));
    line("");
    line("| Frame | Action | 10 VIPs: ns | +ns vs empty | × empty | 100,000 VIPs: ns | +ns vs empty | × empty | 100k / 10 | kernel loop +ns (unchanged frames) |");
    line("|---|---|---|---|---|---|---|---|---|---|");
    let cases = pf["cases"].as_array().cloned().unwrap_or_default();
    for c in &cases {
        line(&spread_row(
            &[
                c["case"].as_str().unwrap_or(""),
                c["action"].as_str().unwrap_or(""),
            ],
            c,
            &[
                ("ns_10", 1),
                ("minus_empty_ns_10", 1),
                ("ratio_to_empty_10", 2),
                ("ns_100k", 1),
                ("minus_empty_ns_100k", 1),
                ("ratio_to_empty_100k", 2),
                ("ratio_100k_to_10", 3),
                ("kernel_loop_minus_empty_ns_10", 1),
            ],
        ));
    }
    line("");
    line("**Goals** (medians):");
    line("");
    for c in cases
        .iter()
        .filter(|c| c["ordinary"].as_bool() == Some(true))
    {
        for (vips, key) in [
            ("10", "minus_empty_ns_10"),
            ("100,000", "minus_empty_ns_100k"),
        ] {
            let d = med(&c[key]);
            line(&format!("- Ordinary traffic within 3 ns of the empty program — {} with {vips} VIPs: +{d:.1} ns, {}.", c["case"].as_str().unwrap_or(""), verdict(d <= 3.0)));
        }
    }
    for c in cases.iter().filter(|c| c["action"] == "XDP_TX") {
        let worst = med(&c["ratio_to_empty_10"]).max(med(&c["ratio_to_empty_100k"]));
        line(&format!("- A reply at most twice the empty program — {}: {worst:.2}× (worse of 10/100,000 VIPs), {}.", c["case"].as_str().unwrap_or(""), verdict(worst <= 2.0)));
    }
    let worst_scale = cases
        .iter()
        .map(|c| {
            (
                med(&c["ratio_100k_to_10"]),
                c["case"].as_str().unwrap_or(""),
            )
        })
        .fold((0.0f64, ""), |a, b| if b.0 > a.0 { b } else { a });
    line(&format!(
        "- 100,000 VIPs at most 10 % slower than 10 — worst case {}: {:.3}×, {}.",
        worst_scale.1,
        worst_scale.0,
        verdict(worst_scale.0 <= 1.10)
    ));
    line("");
    line("**What limits these numbers.** The program does a fixed amount of work per frame: parse up to two VLAN tags, test the ethertype, \
          one hash lookup (VIPS) for ARP and NS, and for a reply one per-CPU counter lookup plus rewriting the frame (the NA also recomputes \
          the ICMPv6 checksum over 32 bytes and moves the tail). Frames of other ethertypes never reach a map, which is why ordinary traffic \
          costs about the same as the empty program. The hash lookup costs the same at 10 and at 100,000 entries as long as the chain is short \
          (131,072 buckets); what grows with the map is cache misses, which a warm, single-frame loop hides — on a busy node with many VIPs the \
          lookup's bucket is more often cold. The floor under all figures is the test-run harness (timer read, loop), shown by the empty program.");
    line("");

    line("## 2. Replies per second over veth");
    line("");
    line(&format!(
        "**Method.** Two network namespaces joined by a veth pair (the `Lab` fixture; the client side carries a pass-through XDP program so that \
         driver-mode XDP_TX frames reach it). The project's load generator (`tests/src/loadgen.rs`) sends, from the client, {} as fast as `sendmmsg` \
         on an AF_PACKET socket allows for {} s per run, while a second thread counts the valid replies (ARP reply for the VIP to the generator's MAC, \
         NA for the VIP) on ETH_P_ARP/ETH_P_IPV6 packet sockets, which never see this host's own sends. {} rounds; within a round every responder \
         runs once, in rotating order: the responder (with {} VIPs in its map) attached in driver mode, the same in skb (generic) mode, the Linux kernel \
         answering for the VIPs configured on the node interface, a MetalLB-style userspace responder (`tests/src/userspace_responder.rs`: \
         per protocol a packet socket, read one request, look the VIP up in a hash set, write one reply), and nothing answering (the generator alone).",
        tp["frames"].as_str().unwrap_or(""), tp["seconds_per_run"], tp["rounds"], tp["vips_in_map"],
    ));
    line("");
    line(&format!("![replies per second per responder]({chart})"));
    line("");
    line("| Responder | replies/s | × driver mode | sent/s | answered / sent | softirq ns per reply | all-CPU busy ns per reply | generator send thread CPU | receiver drops |");
    line("|---|---|---|---|---|---|---|---|---|");
    let modes = tp["modes"].as_array().cloned().unwrap_or_default();
    for mode in &modes {
        line(&spread_row(
            &[mode["mode"].as_str().unwrap_or("")],
            mode,
            &[
                ("replies_per_s", 0),
                ("relative_to_driver", 2),
                ("sent_per_s", 0),
                ("answered_fraction", 3),
                ("softirq_ns_per_reply", 0),
                ("busy_ns_per_reply", 0),
                ("generator_sender_cpu_share", 2),
                ("receiver_drops", 0),
            ],
        ));
    }
    if let Some(user) = modes
        .iter()
        .find(|m| !m["userspace_responder_ns_per_reply"].is_null())
    {
        line("");
        line(&format!(
            "The userspace responder's own threads used {} ns of CPU per reply (getrusage, user + system), {} of a CPU.",
            spread(&user["userspace_responder_ns_per_reply"], 0),
            spread(&user["userspace_responder_cpu_share"], 2),
        ));
    }
    line("");
    line(&format!("**CPU time, what was measured.** The kernel here uses tick-based accounting (no IRQ time accounting), so CPU time is sampled at the tick: \
          \"softirq ns per reply\" is the machine-wide softirq time from `/proc/stat` over the run divided by the replies. Nearly all of it is this \
          benchmark's packet processing (the node's receive path, the responder, and the client receiving replies), because little else on the machine \
          does networking — but it includes the generator's side. \"All-CPU busy\" is every non-idle jiffy of the machine over the run per reply: it \
          includes the generator and anything else running on this shared machine, so read it as an upper bound. The generator's send-thread CPU is \
          its share of one CPU (getrusage); with tick accounting it includes softirq work the kernel ran in its context — on veth the receiving side \
          of a frame is usually processed right there, in the sender's softirq. Compare each responder's softirq per reply with the \"nothing answering\" \
          row's softirq per sent frame ({}) to see what answering adds.",
        modes.iter().find(|m| m["mode"] == Mode::Nothing.name()).map(|m| spread(&m["softirq_ns_per_sent"], 0)).unwrap_or_default(),
    ));
    line("");
    line("**What limits these numbers.**");
    line("");
    for mode in &modes {
        let name = mode["mode"].as_str().unwrap_or("");
        let answered = med(&mode["answered_fraction"]);
        let sender = med(&mode["generator_sender_cpu_share"]);
        let drops = med(&mode["receiver_drops"]);
        let text = if name == Mode::Nothing.name() {
            format!("{name}: the generator alone reaches {:.0} frames/s; its sending thread is busy {:.0} % of the time, so this is the ceiling of the send path on this machine, not of any responder.", med(&mode["sent_per_s"]), sender * 100.0)
        } else if answered >= 0.95 {
            format!(
                "{name}: answered {:.1} % of what was sent, so the responder kept up and the generator is the bottleneck. The generator sends fewer frames than with nothing answering ({:.0} vs {:.0} per s) because on veth the node's receive path, the responder and the client's processing of the reply run in the sending thread's softirq (sending thread {:.0} % busy): replies/s here compare whole paths, and the responder's own cost shows in the CPU columns.",
                answered * 100.0,
                med(&mode["sent_per_s"]),
                modes.iter().find(|m| m["mode"] == Mode::Nothing.name()).map(|m| med(&m["sent_per_s"])).unwrap_or(f64::NAN),
                sender * 100.0
            )
        } else {
            format!(
                "{name}: answered {:.1} % of what was sent — the responder cannot keep up and the rest is dropped (its socket queue overflows){}. It runs on the other CPU than the sender, which is why its replies/s can still come close to the in-line XDP path on two cores; the CPU columns show what each reply costs.",
                answered * 100.0,
                if drops > 0.0 { format!("; the generator's receive sockets also dropped {drops:.0} replies per run, so the counting side limits too") } else { String::new() }
            )
        };
        line(&format!("- {text}"));
    }
    line("- All of it runs on one machine with two CPUs: on veth, sending a frame runs the receiving side's processing in the sender's softirq, so the generator, the responder and the client's reply processing share the same cores. Replies/s here are therefore a lower bound for what the responder does on a real NIC with its own receive queues, and the ratios between responders are the figure to read.");
    line("");
    line("## 3. Agent convergence, failover and initial sync");
    line("");
    let cluster = &report["cluster"];
    if cluster["measured"].as_bool() == Some(true) {
        let r = &cluster["result"];
        line("Measured by `tests/src/bin/cluster_measure.rs` in this run against the real test API server and three simulated nodes on one segment (every sample is in BENCHMARKS.json).");
        line("");
        line("| What | n | p50 ms | p99 ms | min ms | max ms | from → to |");
        line("|---|---|---|---|---|---|---|");
        for (what, key, note) in [
            ("Failover", "failover_ms", "failover_note"),
            (
                "Status patch → map entry",
                "patch_to_map_ms",
                "patch_to_map_note",
            ),
        ] {
            let d = &r[key];
            let ms = |field: &str| {
                d[field]
                    .as_f64()
                    .map_or("–".to_owned(), |v| format!("{v:.1}"))
            };
            line(&format!(
                "| {what} | {} | {} | {} | {} | {} | {} |",
                d["n"].as_u64().unwrap_or(0),
                ms("p50"),
                ms("p99"),
                ms("min"),
                ms("max"),
                r[note].as_str().unwrap_or("")
            ));
        }
        line("");
        line("**What limits it.** Failover is bounded below by the Lease duration (1 s, judged from when each agent last *saw* the owner's renewal, so it lands between 1 s minus the renew interval of 250 ms and 1 s) plus the reassignment, map insert and the client's next probe. Patch → map is the API server's watch fan-out plus one reassignment and one map insert.");
    } else {
        line("**Not measured in this run**: `cluster_measure` did not produce a report:");
        line("");
        line("```text");
        line(cluster["reason"].as_str().unwrap_or("unknown"));
        line("```");
    }
    line("");
    line("### Initial sync with many Services");
    line("");
    let sync = &report["sync"];
    if sync["measured"].as_bool() == Some(true) {
        let r = &sync["result"];
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let services = r["services"].as_u64().unwrap_or(0);
        line(&format!("**Method.** `tests/src/bin/sync_measure.rs`: a real kube-apiserver (v1.20) holds one Node and {services} LoadBalancer Services with one ingress IP each (created beforehand, {:.1} s, not measured); then one agent starts (`--announce-count 1`, skb mode, one veth), owns every Service as the only live node, and the time from its start until all {services} VIPs are in its pinned map is taken, polling the map every 20 ms. Memory is VmRSS / VmHWM (peak) from `/proc/PID/status`, CPU is utime + stime from `/proc/PID/stat` (10 ms ticks), once when the map is full and once 2 s later, when the announcements — one gratuitous ARP or unsolicited NA per VIP, each sent by a task of its own, part of a real sync — are done.", f(&r["setup_s"])));
        line("");
        line("| Services | sync ms | CPU ms at sync | RSS MiB at sync | peak RSS MiB at sync | CPU ms 2 s later | RSS MiB 2 s later | peak RSS MiB 2 s later |");
        line("|---|---|---|---|---|---|---|---|");
        let (at, later) = (&r["at_sync"], &r["settled"]);
        line(&format!(
            "| {services} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} |",
            f(&r["sync_ms"]),
            f(&at["cpu_ms"]),
            f(&at["vm_rss_mib"]),
            f(&at["vm_hwm_mib"]),
            f(&later["cpu_ms"]),
            f(&later["vm_rss_mib"]),
            f(&later["vm_hwm_mib"]),
        ));
        line("");
        let busy = f(&at["cpu_ms"]) / f(&r["sync_ms"]);
        line(&format!("**What limits it.** The agent was on a CPU {:.0} % of the sync time: the rest is waiting — process start, loading and attaching the program, and the kube-apiserver and etcd (on the same two cores) listing and serialising {services} Services. The agent's own work per Service is decoding it, deciding ownership, one map insert (a syscall) and spawning one announcement task; memory grows with the Services held in its cache and the announcement tasks in flight.", busy * 100.0));
    } else {
        line("**Not measured in this run**: `sync_measure` did not produce a report:");
        line("");
        line("```text");
        line(sync["reason"].as_str().unwrap_or("unknown"));
        line("```");
    }
    s
}

fn draw_chart(throughput: &Value, path: &Path) {
    use plotters::prelude::*;

    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").expect(
        "DejaVuSans.ttf (Debian package fonts-dejavu-core, installed by `cargo xtask setup`)",
    );
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .unwrap_or_else(|_| panic!("DejaVuSans.ttf is not a usable font"));

    let modes = throughput["modes"].as_array().cloned().unwrap_or_default();
    let bars: Vec<(String, f64, f64, f64)> = modes
        .iter()
        .filter(|m| m["mode"] != Mode::Nothing.name())
        .map(|m| {
            let r = &m["replies_per_s"];
            (
                m["mode"].as_str().unwrap_or("").to_owned(),
                med(r),
                r["min"].as_f64().unwrap_or(0.0),
                r["max"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let top = bars.iter().map(|b| b.3).fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Replies per second over veth (median, min–max)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)
        .expect("chart");
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("replies/s")
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .label_style(("sans-serif", 14))
        .draw()
        .expect("mesh");
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
    ];
    for (i, (_, median, min, max)) in bars.iter().enumerate() {
        let x = i as f64;
        let color = colors[i % colors.len()];
        chart
            .draw_series([Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *median)],
                color.filled(),
            )])
            .expect("bar");
        chart
            .draw_series([
                PathElement::new(
                    vec![(x + 0.5, *min), (x + 0.5, *max)],
                    BLACK.stroke_width(2),
                ),
                PathElement::new(
                    vec![(x + 0.42, *min), (x + 0.58, *min)],
                    BLACK.stroke_width(2),
                ),
                PathElement::new(
                    vec![(x + 0.42, *max), (x + 0.58, *max)],
                    BLACK.stroke_width(2),
                ),
            ])
            .expect("whisker");
        chart
            .draw_series([Text::new(
                format!("{:.0}k", median / 1000.0),
                (x + 0.3, *max + top * 0.03),
                ("sans-serif", 16),
            )])
            .expect("label");
    }
    root.present().expect("write the chart PNG");
}
