//! Faults the agent must survive: an unreachable API server (fail-static,
//! then reconciliation), rapid VIP churn, two nodes claiming one VIP (split
//! brain), and bad input (Service status, VIP files, pin paths, SIGHUP, an IP
//! family the interface lacks).
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::Path,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use responder_tests::{
    lab::cluster::{Cluster, WAIT},
    lab::{
        link::{attach_pass_through, PassThrough},
        pair::{arping, lab_vip_args, ndisc6, Lab, CLIENT_IF, CLIENT_V4, NODE_IF, VIP_V4, VIP_V6},
        responder::{responder_bin, PinCleanup, Responder},
    },
    netns::{veth, wait_for, NetNs, TempPath},
    prober::ArpProber,
};
use serde_json::json;

/// Clusters side by side on a small CI machine would starve Lease renewals
/// (see tests/cluster.rs); the split-brain segment is light and runs freely.
fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn v4(address: &str) -> Ipv4Addr {
    address.parse().expect("test IPv4 address")
}

/// The first log line containing every one of `needles`.
fn log_line(log: &str, needles: &[&str]) -> Option<String> {
    log.lines()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
}

/// The Kubernetes API server is killed for a minute, and a Service is deleted
/// from etcd while it is down (a change no watch can deliver): the VIPs keep
/// being answered by their owners (no request lost), and once the server is
/// back the agents re-list and withdraw the deleted Service's VIP.
#[test]
fn api_server_outage_is_fail_static_and_reconciles_after() {
    const WEB: &str = "198.51.100.10";
    const API: &str = "198.51.100.11";
    const OUTAGE: Duration = Duration::from_secs(60);
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("stat");
    cluster.create_lb_service("web", &[WEB]);
    cluster.create_lb_service("api", &[API]);
    let web_owner = cluster.sole_owner(&[WEB], "one node to hold web");
    let api_owner = cluster.sole_owner(&[API], "one node to hold api");
    let expected = [
        (v4(WEB), cluster.agent(web_owner).mac().to_owned()),
        (v4(API), cluster.agent(api_owner).mac().to_owned()),
    ];
    let prober = cluster.arp_prober();

    cluster.server.kill_api_server();
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut unanswered = Vec::new();
    let mut wrong = Vec::new();
    let mut deleted_meanwhile = None;
    while started.elapsed() < OUTAGE {
        for (vip, mac) in &expected {
            attempts += 1;
            let answers = prober.answers(*vip, Duration::from_millis(500));
            if answers.is_empty() {
                unanswered.push((started.elapsed(), *vip));
            }
            wrong.extend(answers.into_iter().filter(|a| a != mac).map(|a| (*vip, a)));
        }
        if deleted_meanwhile.is_none() && started.elapsed() >= OUTAGE / 2 {
            deleted_meanwhile = Some(
                cluster
                    .server
                    .delete_from_etcd(&Cluster::service_etcd_key("api")),
            );
        }
    }
    let broken: Vec<String> = cluster
        .agents
        .iter()
        .filter_map(|a| log_line(&a.log(), &["Kubernetes view broken"]))
        .collect();
    // Each failing watch and renewal is logged once, not every retry (the
    // Lease alone is retried every second).
    let log_lines: Vec<(&str, usize)> = cluster
        .agents
        .iter()
        .map(|a| (a.node, a.log().lines().count()))
        .collect();
    eprintln!("agent log lines at the end of the outage: {log_lines:?}");
    for (node, lines) in &log_lines {
        assert!(
            *lines < 60,
            "{node} logged {lines} lines through a {OUTAGE:?} outage: log spam"
        );
    }
    eprintln!(
        "outage of {OUTAGE:?}: {attempts} ARP requests, {} unanswered; fail-static log lines: {broken:#?}",
        unanswered.len()
    );
    assert_eq!(
        deleted_meanwhile,
        Some(1),
        "the api Service must have been deleted from etcd during the outage"
    );
    assert!(
        unanswered.is_empty(),
        "requests lost while the API server was down: {unanswered:?} of {attempts}"
    );
    assert!(
        wrong.is_empty(),
        "answers from other than the owners during the outage: {wrong:?}"
    );
    assert_eq!(
        broken.len(),
        cluster.agents.len(),
        "every agent must log that it keeps its VIPs while the API is unreachable"
    );

    cluster.server.restart_api_server();
    cluster.nobody_holds(
        &[API],
        "api, deleted during the outage, to be withdrawn once the API server is back",
    );
    assert!(
        prober.answers(v4(API), Duration::from_secs(1)).is_empty(),
        "api, deleted during the outage, is still answered"
    );
    let recovered = wait_for(WAIT, || {
        cluster
            .agents
            .iter()
            .map(|a| log_line(&a.log(), &["Kubernetes view recovered"]))
            .collect::<Option<Vec<_>>>()
    });
    eprintln!("recovery log lines: {recovered:#?}");
    assert!(
        recovered.is_some(),
        "not every agent logged its recovery from the outage"
    );
    let web_after = cluster.sole_owner(&[WEB], "web to have one owner after the outage");
    assert_eq!(
        prober.answers(v4(WEB), Duration::from_secs(1)),
        vec![cluster.agent(web_after).mac().to_owned()],
        "web must be answered by {web_after} alone after the outage"
    );
}

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

/// A segment (bridge) with two node namespaces on it, for two static
/// responders claiming the same VIP.
struct Segment {
    _ports: Vec<PassThrough>,
    nodes: Vec<NetNs>,
    _bridge: NetNs,
}

const NODE_PORT_IF: &str = "seg0";

impl Segment {
    fn new(name: &str, nodes: usize) -> Self {
        let bridge = NetNs::new(&format!("rsp-{name}-s"));
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        bridge.ip(&["link", "set", "br0", "up"]);
        let mut ports = Vec::new();
        let mut namespaces = Vec::new();
        for i in 0..nodes {
            let node = NetNs::new(&format!("rsp-{name}-{i}"));
            let port = format!("port{i}");
            veth(&node, NODE_PORT_IF, &bridge, &port);
            bridge.ip(&["link", "set", &port, "master", "br0"]);
            ports.push(attach_pass_through(&bridge, &port));
            namespaces.push(node);
        }
        Segment {
            _ports: ports,
            nodes: namespaces,
            _bridge: bridge,
        }
    }
}

impl Segment {
    /// A second port of node `index` on the bridge, named `ifname` there.
    fn add_port(&mut self, index: usize, ifname: &str) {
        let port = format!("port{index}b");
        veth(&self.nodes[index], ifname, &self._bridge, &port);
        self._bridge.ip(&["link", "set", &port, "master", "br0"]);
        self._ports.push(attach_pass_through(&self._bridge, &port));
    }
}

/// A responder of the segment: the second starts while the first one still
/// announces (a long burst), so each sees the other's announcements.
fn segment_responder(node: &NetNs, vip: &'static str, metrics: &'static str) -> Responder {
    let args = [
        "--interface",
        NODE_PORT_IF,
        "--vip",
        vip,
        "--metrics-addr",
        metrics,
        "--announce-count",
        "200",
        "--announce-interval",
        "100ms",
    ];
    Responder::start(node, &args, 1)
}

/// Two responders answering for one VIP on one segment each see the other's
/// announcements and say so: in `vips`, in the metrics and in the log.
#[test]
fn split_brain_is_reported_by_both_sides() {
    const VIP: &str = "198.51.100.50";
    const METRICS_PORT: u16 = 9851;
    const METRICS_ADDR: &str = "127.0.0.1:9851";
    let segment = Segment::new("split", 2);
    let first = segment_responder(&segment.nodes[0], VIP, METRICS_ADDR);
    let second = segment_responder(&segment.nodes[1], VIP, METRICS_ADDR);
    for (side, responder) in [("first", &first), ("second", &second)] {
        let seen = wait_for(Duration::from_secs(20), || {
            let conflicts = responder.counter(VIP, "conflicts");
            let metric = responder.metric(METRICS_PORT, "responder_layer2_conflicts_total")?;
            let line = log_line(&responder.log(), &["WARN", "split brain", VIP])?;
            (conflicts > 0 && metric > 0.0).then_some((conflicts, metric, line))
        });
        let (conflicts, metric, line) = seen.unwrap_or_else(|| {
            panic!(
                "{side} responder did not report the conflict: vips {:?}, metric {:?}",
                responder.vips(),
                responder.metric(METRICS_PORT, "responder_layer2_conflicts_total")
            )
        });
        eprintln!("{side}: conflicts {conflicts}, metric {metric}, log: {line}");
    }
}

/// A node with two NICs on one segment answers a VIP on both: each NIC sees
/// the other's announcements, which come from a MAC of the same node and are
/// no split brain. A second node claiming the VIP still is one.
#[test]
fn two_nics_of_one_node_on_one_segment_are_no_split_brain() {
    const VIP: &str = "198.51.100.51";
    const SECOND_IF: &str = "seg1";
    const METRICS_PORT: u16 = 9851;
    let mut segment = Segment::new("twonic", 2);
    segment.add_port(0, SECOND_IF);
    let node = &segment.nodes[0];
    let args = [
        "--interface",
        NODE_PORT_IF,
        "--interface",
        SECOND_IF,
        "--vip",
        VIP,
        "--metrics-addr",
        "127.0.0.1:9851",
        "--announce-count",
        "20",
        "--announce-interval",
        "100ms",
    ];
    let first = Responder::start(node, &args, 2);
    let received_before = rx_packets(node, SECOND_IF);
    // The whole burst: 20 announcements from each NIC, each heard by the other.
    std::thread::sleep(Duration::from_secs(3));
    let heard = rx_packets(node, SECOND_IF) - received_before;
    assert!(
        heard >= 10,
        "{SECOND_IF} received only {heard} frames during the burst: the test \
         cannot tell whether its own announcements are conflicts"
    );
    assert_eq!(
        first.counter(VIP, "conflicts"),
        0,
        "announcements from this node's other NIC counted as conflicts: {:?}",
        first.vips()
    );
    assert!(
        !first.log().contains("split brain"),
        "split brain reported for this node's own NICs:\n{}",
        first.log()
    );

    // The control: another node claiming the VIP is a conflict here.
    let _second = segment_responder(&segment.nodes[1], VIP, "127.0.0.1:9851");
    let conflicts = wait_for(Duration::from_secs(20), || {
        let conflicts = first.counter(VIP, "conflicts");
        let metric = first.metric(METRICS_PORT, "responder_layer2_conflicts_total")?;
        (conflicts > 0 && metric > 0.0).then_some(conflicts)
    });
    assert!(
        conflicts.is_some(),
        "another node's claim was not reported: {:?}",
        first.vips()
    );
}

/// Frames `ifname` in `ns` has received (`ip -s link`: the line after "RX:").
fn rx_packets(ns: &NetNs, ifname: &str) -> u64 {
    let out = ns.ip(&["-s", "link", "show", "dev", ifname]);
    let mut lines = out.lines();
    lines
        .position(|line| line.trim_start().starts_with("RX:"))
        .and_then(|_| lines.next())
        .and_then(|counts| counts.split_whitespace().nth(1))
        .and_then(|packets| packets.parse().ok())
        .unwrap_or_else(|| panic!("no RX packets in:\n{out}"))
}

/// Services whose status the agent cannot use are named in a warning, and
/// do not keep a good Service from being answered.
#[test]
fn unusable_service_status_is_named_and_skipped() {
    const GOOD: &str = "198.51.100.30";
    const NOT_UNICAST: &str = "224.0.0.5";
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("bad");
    cluster.create_lb_service("bad-ip", &[]);
    // The API server validates ingress ips itself (so the agent's own parse
    // error is unreachable through it); an IP that is no unicast VIP passes.
    let rejected = cluster.try_set_ingress_entries("bad-ip", json!([{ "ip": "not-an-ip" }]));
    eprintln!("the API server's verdict on ingress ip \"not-an-ip\": {rejected:?}");
    assert!(
        rejected.is_err(),
        "the API server accepted ingress ip \"not-an-ip\""
    );
    cluster.set_ingress("bad-ip", &[NOT_UNICAST]);
    cluster.create_lb_service("hostname-only", &[]);
    cluster
        .try_set_ingress_entries("hostname-only", json!([{ "hostname": "lb.example.com" }]))
        .expect("hostname-only ingress accepted");
    cluster.create_lb_service("good", &[GOOD]);

    let owner = cluster.sole_owner(&[GOOD], "one node to hold good");
    assert_eq!(
        cluster.arp_answerers(GOOD, 2),
        BTreeSet::from([cluster.agent(owner).mac().to_owned()]),
        "good must be answered by {owner} alone"
    );
    let warnings = wait_for(WAIT, || {
        let logs: Vec<String> = cluster.agents.iter().map(|a| a.log()).collect();
        let bad_ip = logs.iter().find_map(|log| {
            log_line(
                log,
                &["WARN", "default/bad-ip", "ignoring load-balancer IP"],
            )
        })?;
        let hostname = logs
            .iter()
            .find_map(|log| log_line(log, &["WARN", "default/hostname-only", "has no ip"]))?;
        Some((bad_ip, hostname))
    });
    let (bad_ip, hostname) = warnings.unwrap_or_else(|| {
        panic!("no warning naming bad-ip and hostname-only in the agents' logs")
    });
    eprintln!("warnings:\n{bad_ip}\n{hostname}");
    assert!(
        cluster.holders(NOT_UNICAST).is_empty(),
        "{NOT_UNICAST} installed as a VIP"
    );
}

/// `responder run` that must refuse to start: its exit code and stderr.
fn run_refused(lab: &Lab, args: &[&str], pin_path: &Path) -> (i32, String) {
    let out = lab
        .node
        .command("timeout")
        .arg("20")
        .arg(responder_bin())
        .args([
            "run",
            "--interface",
            NODE_IF,
            "--metrics-addr",
            "off",
            "--health-addr",
            "off",
            "--pin-path",
        ])
        .arg(pin_path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run responder");
    let code = out.status.code().expect("exit code");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    assert_ne!(code, 124, "responder kept running with {args:?}:\n{text}");
    (code, text)
}

#[test]
fn unreadable_vip_file_and_non_bpffs_pin_path_refuse_to_start() {
    let lab = Lab::new("badin");
    let _pins = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let missing = std::env::temp_dir().join(format!("faults-missing-{}.vips", std::process::id()));
    let directory =
        TempPath(std::env::temp_dir().join(format!("faults-dir-{}", std::process::id())));
    std::fs::create_dir_all(&directory.0).expect("create a directory");
    let directory = &directory.0;
    let missing_text = format!("cannot read VIP file {}", missing.display());
    let directory_text = format!("cannot read VIP file {}", directory.display());
    let cases = [
        (
            "a missing --vip-file",
            vec!["--vip-file", missing.to_str().expect("utf-8")],
            lab.pin_path(),
            missing_text.as_str(),
        ),
        (
            "a directory as --vip-file",
            vec!["--vip-file", directory.to_str().expect("utf-8")],
            lab.pin_path(),
            directory_text.as_str(),
        ),
        (
            "a pin path off bpffs",
            vec!["--vip", "198.51.100.10"],
            directory.clone(),
            "is not on a BPF filesystem",
        ),
    ];
    for (what, args, pin_path, expected) in cases {
        let (code, output) = run_refused(&lab, &args, &pin_path);
        eprintln!("{what}: exit {code}: {}", output.trim());
        assert_ne!(code, 0, "{what} must fail the start:\n{output}");
        assert!(
            output.contains(expected),
            "the error for {what} must say {expected:?}:\n{output}"
        );
    }
}

#[test]
fn sighup_with_an_unreadable_vip_file_keeps_serving() {
    const VIP: &str = "198.51.100.10";
    let lab = Lab::new("hupbad");
    let _pins = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let file =
        TempPath(std::env::temp_dir().join(format!("faults-hup-{}.vips", std::process::id())));
    let file = &file.0;
    std::fs::write(file, format!("{VIP}\n")).expect("write vip file");
    let mut responder = lab.start_responder(
        &[
            "--interface",
            NODE_IF,
            "--vip-file",
            file.to_str().expect("utf-8"),
        ],
        1,
    );
    let (answered, out) = arping(&lab, VIP, 2);
    assert!(answered, "{VIP} not answered before the reload: {out}");

    // Root reads through `chmod 000`; a directory in the file's place cannot be read.
    std::fs::remove_file(file).expect("remove vip file");
    std::fs::create_dir(file).expect("directory in its place");
    responder.child().signal(nix::sys::signal::Signal::SIGHUP);
    let refused = wait_for(Duration::from_secs(10), || {
        log_line(&responder.log(), &["SIGHUP", "keeping the current VIPs"])
    });
    let line = refused.unwrap_or_else(|| panic!("no reload error logged:\n{}", responder.log()));
    eprintln!("reload error: {line}");
    assert_eq!(responder.vips().len(), 1, "the VIP must stay installed");
    let (answered, out) = arping(&lab, VIP, 2);
    assert!(
        answered,
        "{VIP} not answered after the failed reload: {out}"
    );
}

/// IPv6 disabled on the interface: the IPv6 VIP is not answered there (the
/// node would drop what it draws), a warning says why, the IPv4 VIP is served
/// meanwhile, and enabling IPv6 brings the IPv6 VIP in without a restart.
#[test]
fn ipv6_vip_waits_while_the_interface_has_ipv6_disabled() {
    let lab = Lab::new("nov6");
    let set_disable_ipv6 = |value: u8| {
        let out = lab
            .node
            .command("sysctl")
            .args([
                "-qw",
                &format!("net.ipv6.conf.{NODE_IF}.disable_ipv6={value}"),
            ])
            .output()
            .expect("run sysctl");
        assert!(out.status.success(), "sysctl disable_ipv6={value}: {out:?}");
    };
    set_disable_ipv6(1);
    let responder = lab.start_responder(&lab_vip_args("driver", &[]), 1);
    let installed: Vec<String> = responder
        .vips()
        .iter()
        .map(|v| v["ip"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(installed, vec![VIP_V4.to_owned()], "only the IPv4 VIP fits");
    let warning = log_line(
        &responder.log(),
        &["WARN", VIP_V6, "IPv6 is disabled there"],
    )
    .unwrap_or_else(|| panic!("no warning naming {VIP_V6}; log:\n{}", responder.log()));
    eprintln!("warning: {warning}");
    let (ok, out) = arping(&lab, VIP_V4, 2);
    assert!(ok, "the IPv4 VIP must be served meanwhile:\n{out}");
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(
        !ok,
        "{VIP_V6} answered on an interface without IPv6:\n{out}"
    );

    set_disable_ipv6(0);
    let both = wait_for(Duration::from_secs(10), || {
        (responder.vips().len() == 2).then_some(())
    });
    assert!(
        both.is_some(),
        "{VIP_V6} not installed after IPv6 was enabled; log:\n{}",
        responder.log()
    );
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(ok, "{VIP_V6} not answered once IPv6 is enabled:\n{out}");
}

/// Static mode: the agent stalls past --yield-after, another MAC announces
/// the VIP and the data plane yields it; once the agent ticks again it still
/// owns the VIP, so it takes it back instead of leaving it unanswered for good.
#[test]
fn a_stalled_agent_yields_to_another_mac_and_takes_its_vip_back() {
    const FOREIGN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x98];
    let lab = Lab::new("stall");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let mut responder = lab.start_responder(
        &[
            "--interface",
            NODE_IF,
            "--vip",
            VIP_V4,
            "--yield-after",
            "1s",
            "--stale-after",
            "30s",
        ],
        1,
    );
    let prober = ArpProber::on(&lab.client, CLIENT_IF, v4(CLIENT_V4));
    let node_mac = lab.node_mac();
    let answered = || prober.answers(v4(VIP_V4), Duration::from_millis(300));
    let yielded = |responder: &Responder| {
        responder
            .vips()
            .first()
            .and_then(|row| row["yielded"].as_bool())
    };
    assert_eq!(answered(), vec![node_mac.clone()]);

    responder.child().signal(nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    prober.announce_foreign(v4(VIP_V4), FOREIGN_MAC);
    let gave_way = wait_for(WAIT, || yielded(&responder).filter(|y| *y));
    responder.child().signal(nix::sys::signal::Signal::SIGCONT);
    assert!(
        gave_way.is_some(),
        "the stalled node did not yield: {:?}",
        responder.vips()
    );

    let back = wait_for(WAIT, || {
        (yielded(&responder) == Some(false) && answered() == [node_mac.clone()]).then_some(())
    });
    assert!(
        back.is_some(),
        "the VIP stayed unanswered after the agent resumed: {:?}; log:\n{}",
        responder.vips(),
        responder.log()
    );
    assert!(
        responder.log().contains("taking it back"),
        "{}",
        responder.log()
    );
}
