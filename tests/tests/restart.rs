//! Running in production: a killed agent's node stops answering at the stale
//! bound, a restarted or upgraded agent takes the program over on the same
//! BPF link without a moment of silence, and the metrics endpoint serves.
use std::{
    process::Command,
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
    time::{Duration, Instant},
};

use responder_tests::{
    lab::{
        pair::{arping, Lab, NODE_IF, VIP_V4},
        responder::{PinCleanup, Responder},
    },
    netns::{run_ok, wait_for},
};

const WAIT: Duration = Duration::from_secs(20);

fn args(stale_after: &'static str) -> Vec<&'static str> {
    vec![
        "--interface",
        NODE_IF,
        "--vip",
        VIP_V4,
        "--xdp-mode",
        "driver",
        "--stale-after",
        stale_after,
        "--yield-after",
        "1s",
    ]
}

/// (link id, program id) of the node interface's attachment, as pinned.
fn attachment(responder: &Responder) -> (u64, u64) {
    let stats = responder.stats().expect("responder stats");
    let link = stats["interfaces"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["interface"] == NODE_IF))
        .unwrap_or_else(|| panic!("no link pinned for {NODE_IF}: {stats}"));
    (
        link["link_id"].as_u64().expect("link_id"),
        link["program_id"].as_u64().expect("program_id"),
    )
}

fn wait_for_log(responder: &Responder, text: &str) {
    let found = wait_for(WAIT, || responder.log().contains(text).then_some(()));
    assert!(
        found.is_some(),
        "log never said {text:?}:\n{}",
        responder.log()
    );
}

/// A client resolving the VIP over and over (one ARP request at a time, each
/// waiting up to 1 s for its reply) while the test does something else.
struct Resolver {
    stop: AtomicBool,
    attempts: AtomicU32,
    replies: AtomicU32,
}

impl Resolver {
    const MAX_ATTEMPTS: u32 = 600;
    const MAX_TIME: Duration = Duration::from_secs(120);

    fn new() -> Self {
        Resolver {
            stop: AtomicBool::new(false),
            attempts: AtomicU32::new(0),
            replies: AtomicU32::new(0),
        }
    }

    fn run(&self, lab: &Lab) {
        let start = Instant::now();
        while !self.stop.load(Ordering::Relaxed)
            && self.attempts.load(Ordering::Relaxed) < Self::MAX_ATTEMPTS
            && start.elapsed() < Self::MAX_TIME
        {
            let (ok, _) = arping(lab, VIP_V4, 1);
            self.attempts.fetch_add(1, Ordering::Relaxed);
            if ok {
                self.replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until `n` more replies than now arrived.
    fn wait_replies(&self, n: u32) {
        let target = self.replies.load(Ordering::Relaxed) + n;
        let reached = wait_for(WAIT, || {
            (self.replies.load(Ordering::Relaxed) >= target).then_some(())
        });
        assert!(
            reached.is_some(),
            "the client got no {n} more replies within {WAIT:?}"
        );
    }

    fn finish(&self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        (
            self.attempts.load(Ordering::Relaxed),
            self.replies.load(Ordering::Relaxed),
        )
    }
}

/// Resolves the VIP in a loop while `during` runs; returns (attempts, replies).
fn while_resolving(lab: &Lab, during: impl FnOnce(&Resolver)) -> (u32, u32) {
    let resolver = Resolver::new();
    std::thread::scope(|scope| {
        scope.spawn(|| resolver.run(lab));
        resolver.wait_replies(3);
        during(&resolver);
        resolver.wait_replies(3);
        resolver.finish()
    })
}

#[test]
fn killed_agent_restarted_takes_over_the_same_link_without_lost_replies() {
    let lab = Lab::new("rkill");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let mut first = lab.start_responder(&args("5s"), 1);
    let (link, program) = attachment(&first);

    let mut second = None;
    let (attempts, replies) = while_resolving(&lab, |_| {
        first.kill();
        let restarted = lab.start_responder(&args("5s"), 1);
        wait_for_log(&restarted, "responder running");
        second = Some(restarted);
    });
    let second = second.expect("restarted responder");
    assert_eq!(
        replies,
        attempts,
        "ARP requests went unanswered across the restart; log:\n{}",
        second.log()
    );
    wait_for_log(&second, "adopting pinned program from a previous agent");
    wait_for_log(&second, "without detaching");
    assert!(
        !second.log().contains("VIP removed"),
        "adopted VIPs that are still wanted must stay installed; log:\n{}",
        second.log()
    );

    let (new_link, new_program) = attachment(&second);
    assert_eq!(new_link, link, "the restarted agent must keep the BPF link");
    assert_ne!(
        new_program, program,
        "the restarted agent must run its own program"
    );
    assert_eq!(
        lab.xdp_prog_id(),
        new_program,
        "the kernel runs the new program on {NODE_IF}"
    );
    assert!(
        second.counter(VIP_V4, "replies") >= 1,
        "counters of the VIP missing after adoption"
    );
}

#[test]
fn killed_agent_stops_answering_at_the_stale_bound() {
    let lab = Lab::new("rstale");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let mut responder = lab.start_responder(&args("3s"), 1);
    let (ok, out) = arping(&lab, VIP_V4, 1);
    assert!(ok, "no reply while the agent runs:\n{out}");

    responder.kill();
    // 3 s stale bound plus slack; each failed attempt itself takes ~1 s.
    let silent = wait_for(Duration::from_secs(8), || {
        (!arping(&lab, VIP_V4, 1).0).then_some(())
    });
    assert!(
        silent.is_some(),
        "the node kept answering after the stale bound"
    );
    assert!(
        responder.counter(VIP_V4, "stale") >= 1,
        "unanswered requests not counted stale: {:?}",
        responder.vips()
    );
    let stats = responder.stats().expect("stats without an agent");
    assert_eq!(
        stats["agent"]["stale"], true,
        "stats should call the heartbeat stale: {stats}"
    );
    assert!(
        stats["totals"]["stale"].as_u64().expect("stale total") >= 1,
        "{stats}"
    );
}

#[test]
fn upgrade_replaces_the_program_on_the_same_link_without_a_gap() {
    let lab = Lab::new("rupg");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let mut old = lab.start_responder(&args("5s"), 1);
    let (link, program) = attachment(&old);

    let mut new = None;
    let (attempts, replies) = while_resolving(&lab, |_| {
        // The new agent starts while the old one still runs, as a rolling
        // update with surge does; then the old one is told to stop.
        let started = lab.start_responder(&args("5s"), 1);
        wait_for_log(&started, "responder running");
        old.child().signal(nix::sys::signal::Signal::SIGTERM);
        let code = old.child().wait_exit(Duration::from_secs(10));
        assert_eq!(
            code,
            Some(0),
            "old agent did not exit cleanly; log:\n{}",
            old.log()
        );
        new = Some(started);
    });
    let mut new = new.expect("new responder");
    assert_eq!(
        replies,
        attempts,
        "ARP requests went unanswered during the upgrade; log:\n{}",
        new.log()
    );
    assert!(
        old.log().contains("no longer this agent's"),
        "old agent log:\n{}",
        old.log()
    );

    let (new_link, new_program) = attachment(&new);
    assert_eq!(new_link, link, "the upgrade must keep the BPF link");
    assert_ne!(new_program, program, "the upgrade must replace the program");
    let bpftool = Command::new("bpftool")
        .args(["-j", "link", "show", "id", &link.to_string()])
        .output()
        .expect("run bpftool");
    assert!(
        bpftool.status.success(),
        "bpftool link show id {link}: {}",
        String::from_utf8_lossy(&bpftool.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&bpftool.stdout).expect("bpftool JSON");
    assert_eq!(
        shown["prog_id"].as_u64(),
        Some(new_program),
        "link {link} runs the new program: {shown}"
    );

    // The new agent, not superseded, still cleans up after itself.
    lab.terminate_and_check_teardown(&mut new);
}

/// `curl` inside the node's namespace: (HTTP status, body).
fn get(lab: &Lab, url: &str) -> Option<(u16, String)> {
    let out = lab
        .node
        .command("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.parse().ok()?, body.to_owned()))
}

#[test]
fn metrics_health_and_readiness_are_served() {
    let lab = Lab::new("rmet");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    // Each namespace has its own loopback, so fixed ports cannot collide.
    let mut args = args("5s");
    args.extend([
        "--metrics-addr",
        "127.0.0.1:9850",
        "--health-addr",
        "127.0.0.1:9851",
    ]);
    let responder = lab.start_responder(&args, 1);
    let (ok, out) = arping(&lab, VIP_V4, 2);
    assert!(ok, "arping failed:\n{out}");

    let series = format!(
        r#"responder_layer2_responses_sent_total{{ip="{VIP_V4}",interface="{NODE_IF}",vlan="",service=""}} "#
    );
    let counted = wait_for(WAIT, || {
        let (code, body) = get(&lab, "http://127.0.0.1:9850/metrics")?;
        let line = body.lines().find(|l| l.starts_with(&series))?.to_owned();
        let value: u64 = line.rsplit(' ').next()?.parse().ok()?;
        (code == 200 && value >= 2).then_some(line)
    });
    assert!(
        counted.is_some(),
        "no {series}>= 2 in /metrics: {:?}; log:\n{}",
        get(&lab, "http://127.0.0.1:9850/metrics"),
        responder.log()
    );
    for path in ["/healthz", "/readyz"] {
        let answer = wait_for(WAIT, || {
            get(&lab, &format!("http://127.0.0.1:9851{path}")).filter(|(code, _)| *code == 200)
        });
        assert!(
            answer.is_some(),
            "{path} not 200: {:?}",
            get(&lab, &format!("http://127.0.0.1:9851{path}"))
        );
        let (code, _) = get(&lab, &format!("http://127.0.0.1:9850{path}")).expect("an answer");
        assert_eq!(code, 404, "{path} is not served beside /metrics");
    }
}

/// Idle or slow clients holding the metrics port must not take the kubelet's
/// probes down with them: the probes have a listener of their own.
#[test]
fn probes_answer_while_idle_connections_hold_the_metrics_port() {
    let lab = Lab::new("rprobe");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let mut args = args("5s");
    args.extend([
        "--metrics-addr",
        "127.0.0.1:9850",
        "--health-addr",
        "127.0.0.1:9851",
    ]);
    let responder = lab.start_responder(&args, 1);
    let ready = wait_for(WAIT, || {
        get(&lab, "http://127.0.0.1:9851/readyz").filter(|(code, _)| *code == 200)
    });
    assert!(ready.is_some(), "not ready; log:\n{}", responder.log());

    // 100 connections to /metrics that never send a request, opened from
    // inside the node's namespace and held while the probes are asked.
    let idle = lab.node.enter(|| {
        (0..100)
            .map(|_| std::net::TcpStream::connect("127.0.0.1:9850"))
            .collect::<Result<Vec<_>, _>>()
    });
    let idle = idle.expect("open idle connections to the metrics port");
    for path in ["/healthz", "/readyz"] {
        let started = Instant::now();
        let answer = get(&lab, &format!("http://127.0.0.1:9851{path}"));
        assert_eq!(
            answer.map(|(code, _)| code),
            Some(200),
            "{path} with 100 idle connections on the metrics port (asked for {:?})",
            started.elapsed()
        );
    }
    drop(idle);
}

/// `bpftool` with `args`, failing the test with its output unless it succeeds.
fn bpftool(args: &[&str]) {
    run_ok(Command::new("bpftool").args(args));
}

/// Bytes as the space-separated hex `bpftool map update` takes.
fn hex_words(bytes: &[u8]) -> Vec<String> {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn adopts_vips_and_counters_an_agent_before_counter_slots_pinned() {
    let lab = Lab::new("rlegacy");
    let pin_path = lab.pin_path();
    let _cleanup = PinCleanup {
        pin_path: pin_path.clone(),
    };
    // What such an agent left: VIPS (value with a zeroed reserved field
    // where the counter slot is now) and its counters in a per-CPU hash
    // keyed like VIPS, pinned as `vip_stats`.
    std::fs::create_dir(&pin_path).expect("create the pin directory");
    let vip: std::net::Ipv4Addr = VIP_V4.parse().expect("VIP");
    let mut key = lab.node.ifindex(NODE_IF).to_le_bytes().to_vec();
    key.extend([0, 0, 0, 0, 4, 0, 0, 0]);
    key.extend(vip.octets());
    key.extend([0; 12]);
    let mut value = lab.node.mac(NODE_IF).to_vec();
    value.extend([0; 10]);
    let counters: Vec<u8> = [7u64, 5, 1, 0]
        .iter()
        .flat_map(|counter| counter.to_le_bytes())
        .collect();
    for (pin, kind, value_size, name, value) in [
        ("vips", "hash", "16", "VIPS", &value),
        ("vip_stats", "percpu_hash", "32", "VIP_STATS", &counters),
    ] {
        let path = pin_path.join(pin).display().to_string();
        bpftool(&[
            "map", "create", &path, "type", kind, "key", "28", "value", value_size, "entries",
            "1024", "name", name, "flags", "1",
        ]);
        let mut update = vec!["map".to_owned(), "update".into(), "pinned".into(), path];
        update.push("key".into());
        update.push("hex".into());
        update.extend(hex_words(&key));
        update.push("value".into());
        update.push("hex".into());
        update.extend(hex_words(value));
        // bpftool writes a per-CPU value to every CPU.
        bpftool(&update.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let cpus = aya::util::nr_cpus().expect("possible CPUs") as u64;

    // The old VIPS pin already holds the entry: wait for the agent itself.
    let mut responder = lab.start_responder(&args("5s"), 1);
    wait_for_log(&responder, "responder running");
    assert!(
        responder
            .log()
            .contains("adopting pinned program from a previous agent"),
        "{}",
        responder.log()
    );
    assert_eq!(
        (
            responder.counter(VIP_V4, "requests"),
            responder.counter(VIP_V4, "replies"),
            responder.counter(VIP_V4, "conflicts"),
        ),
        (7 * cpus, 5 * cpus, cpus),
        "the old counters, summed over CPUs, carried over; log:\n{}",
        responder.log()
    );
    assert!(
        !responder.log().contains("VIP installed"),
        "the adopted VIP is kept as it was, not rewritten and re-announced; log:\n{}",
        responder.log()
    );
    let pins: Vec<String> = std::fs::read_dir(&pin_path)
        .expect("read the pin directory")
        .map(|entry| {
            entry
                .expect("pin")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        !pins.contains(&"vip_stats".to_owned()) && pins.contains(&"vip_counters".to_owned()),
        "the old layout's pin gives way to the new one: {pins:?}"
    );
    let (answered, out) = arping(&lab, VIP_V4, 1);
    assert!(answered, "{out}");
    assert_eq!(
        responder.counter(VIP_V4, "replies"),
        5 * cpus + 1,
        "the adopted VIP counts on from where it was"
    );
    lab.terminate_and_check_teardown(&mut responder);
}
