//! Two nodes claiming one VIP (split brain), one node's two NICs on one
//! segment (no split brain), and a stalled agent yielding to another MAC.
use super::*;

/// Node namespaces on one segment, for static responders claiming the same
/// VIP.
struct SharedSegment {
    // Dropped first: their veths go with them.
    nodes: Vec<NetNs>,
    segment: Segment,
}

const NODE_PORT_IF: &str = "seg0";

impl SharedSegment {
    fn new(name: &str, nodes: usize) -> Self {
        let mut segment = Segment::new(&format!("rsp-{name}-s"), None);
        let nodes = (0..nodes)
            .map(|i| {
                let node = NetNs::new(&format!("rsp-{name}-{i}"));
                segment.plug(&node, NODE_PORT_IF);
                node
            })
            .collect();
        SharedSegment { nodes, segment }
    }

    /// A second port of node `index` on the bridge, named `ifname` there.
    fn add_port(&mut self, index: usize, ifname: &str) {
        self.segment.plug(&self.nodes[index], ifname);
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
    let segment = SharedSegment::new("split", 2);
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
    let mut segment = SharedSegment::new("twonic", 2);
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
