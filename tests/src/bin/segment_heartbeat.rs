//! Prototype of failure detection on the segment, outside the API server
//! (proposal: docs/segment-heartbeat.md). Not wired into the agent.
//!
//! A bridge in a "segment" namespace joins K node namespaces by veth pairs.
//! N simulated agents, agent `a` on node `a % K`, each send one heartbeat
//! frame per interval on their node's segment interface: a raw Ethernet frame,
//! EtherType 0x88B5 (IEEE 802 local experimental 1) to the locally
//! administered group MAC 03:72:68:62:00:01, carrying the node-name hash, the
//! agent's session, a sequence number and the Lease-derived view epoch. One
//! observer per node receives every heartbeat on its interface and declares an
//! agent of another node dead when none arrived for `miss` intervals and a half
//! (`miss` consecutive heartbeats overdue, half an interval for jitter).
//!
//! For each N it measures, in this order:
//! - a clean phase (no kills, no loss): frames/s and bytes/s on the segment,
//!   each observer's receive CPU, false "dead" verdicts;
//! - a kill phase: one agent at a time stops sending (as after SIGKILL), the
//!   time until every other node's observer declared it dead, then it comes
//!   back with a new session;
//! - a loss phase: each observer drops every heartbeat with probability
//!   `--loss` from a seeded RNG (this kernel has no `netem` qdisc), false
//!   "dead" verdicts counted.
//!
//! Usage: segment_heartbeat [--out FILE.json] [--nodes K (8)]
//!   [--agents 10,100,300,1000] [--interval-ms 100] [--miss 3] [--kills 20]
//!   [--clean-s 20] [--loss-s 20] [--loss 0.01] [--seed 1] [--rx poll|tick]
//! Prints a Markdown table; writes JSON to --out. Needs root (namespaces,
//! AF_PACKET). Every name it makes starts with `rhb-<pid>-` and goes on exit or
//! panic.
use std::{
    collections::HashMap,
    io,
    mem::{size_of, zeroed},
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use responder_tests::{
    netns::{veth, NetNs},
    packet_socket::{packet_socket, set_option},
};
use serde_json::{json, Value};

/// IEEE Std 802 "Local Experimental EtherType 1": no registration, never
/// forwarded by a router, ignored by every host stack (the XDP program passes it).
const ETHERTYPE: u16 = 0x88B5;
/// Multicast (bit 0) and locally administered (bit 1) in the first octet, so it
/// collides with no assigned group; "rhb" in the next three. Not an IP group
/// (01:00:5e / 33:33), so IGMP/MLD snooping does not filter it: bridges flood it.
const GROUP_MAC: [u8; 6] = [0x03, 0x72, 0x68, 0x62, 0x00, 0x01];
const MAGIC: [u8; 3] = *b"RHB";
const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 40;
/// The Ethernet minimum without FCS; the 40-byte payload is padded to it.
const FRAME_LEN: usize = 60;
/// FCS, preamble + SFD and inter-frame gap: what a frame costs on a wire beyond its bytes.
const WIRE_OVERHEAD: usize = 4 + 8 + 12;
const NODE_IF: &str = "hb0";
const BRIDGE: &str = "hbbr";
/// How often an observer wakes without traffic to judge deadlines.
const RX_TICK_MS: i32 = 5;
const MAX_DRAIN: usize = 4096;
const SEND_SLEEP_CAP: Duration = Duration::from_millis(20);
/// How long a kill may take to be seen by every observer before it counts as missed.
const KILL_WAIT: Duration = Duration::from_secs(3);
const REVIVE_WAIT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(2);
/// Room for bursts while an observer thread is descheduled on a busy machine.
const RCVBUF: i32 = 4 << 20;
/// What every simulated agent's Lease view would hash to: all agree here.
const VIEW_EPOCH: u64 = 0x5eed_0001;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heartbeat {
    node_hash: u64,
    session: u64,
    seq: u64,
    view_epoch: u64,
    interval_ms: u16,
    miss_limit: u8,
    flags: u8,
}

impl Heartbeat {
    fn encode(&self, source: [u8; 6]) -> [u8; FRAME_LEN] {
        let mut frame = [0u8; FRAME_LEN];
        frame[0..6].copy_from_slice(&GROUP_MAC);
        frame[6..12].copy_from_slice(&source);
        frame[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
        let p = &mut frame[14..14 + PAYLOAD_LEN];
        p[0..3].copy_from_slice(&MAGIC);
        p[3] = VERSION;
        p[4..6].copy_from_slice(&self.interval_ms.to_be_bytes());
        p[6] = self.miss_limit;
        p[7] = self.flags;
        p[8..16].copy_from_slice(&self.node_hash.to_be_bytes());
        p[16..24].copy_from_slice(&self.session.to_be_bytes());
        p[24..32].copy_from_slice(&self.seq.to_be_bytes());
        p[32..40].copy_from_slice(&self.view_epoch.to_be_bytes());
        frame
    }

    fn decode(frame: &[u8]) -> Option<Self> {
        if frame.get(12..14)? != ETHERTYPE.to_be_bytes() {
            return None;
        }
        let p = frame.get(14..14 + PAYLOAD_LEN)?;
        if p[0..3] != MAGIC || p[3] != VERSION {
            return None;
        }
        let u64_at = |at: usize| u64::from_be_bytes(p[at..at + 8].try_into().expect("8 bytes"));
        Some(Heartbeat {
            interval_ms: u16::from_be_bytes([p[4], p[5]]),
            miss_limit: p[6],
            flags: p[7],
            node_hash: u64_at(8),
            session: u64_at(16),
            seq: u64_at(24),
            view_epoch: u64_at(32),
        })
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn node_name(agent: usize) -> String {
    format!("node-{agent:04}")
}

/// splitmix64: seeded, so a run's losses and kills can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one observer knows of one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerState {
    NeverHeard,
    Alive,
    Dead,
}

/// The detector's pure core: last heartbeat per peer, dead after `timeout`.
struct Detector {
    timeout: Duration,
    state: Vec<PeerState>,
    last_seen: Vec<Instant>,
    session: Vec<u64>,
}

impl Detector {
    fn new(peers: usize, timeout: Duration, now: Instant) -> Self {
        Detector {
            timeout,
            state: vec![PeerState::NeverHeard; peers],
            last_seen: vec![now; peers],
            session: vec![0; peers],
        }
    }

    /// A heartbeat arrived; true when the peer was dead (it is alive again).
    fn heard(&mut self, peer: usize, session: u64, now: Instant) -> bool {
        let was_dead = self.state[peer] == PeerState::Dead;
        self.state[peer] = PeerState::Alive;
        self.last_seen[peer] = now;
        self.session[peer] = session;
        was_dead
    }

    /// Peers that have just missed their deadline, now marked dead.
    fn expire(&mut self, now: Instant, newly_dead: &mut Vec<usize>) {
        for (peer, state) in self.state.iter_mut().enumerate() {
            if *state == PeerState::Alive
                && now.saturating_duration_since(self.last_seen[peer]) > self.timeout
            {
                *state = PeerState::Dead;
                newly_dead.push(peer);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Config {
    out: Option<String>,
    nodes: usize,
    agents: Vec<usize>,
    interval: Duration,
    miss: u32,
    kills: usize,
    clean: Duration,
    lossy: Duration,
    loss: f64,
    seed: u64,
    /// Wake every RX_TICK_MS and drain what queued, instead of waking per frame.
    rx_tick: bool,
}

impl Config {
    fn from_args() -> Self {
        let mut config = Config {
            out: None,
            nodes: 8,
            agents: vec![10, 100, 300, 1000],
            interval: Duration::from_millis(100),
            miss: 3,
            kills: 20,
            clean: Duration::from_secs(20),
            lossy: Duration::from_secs(20),
            loss: 0.01,
            seed: 1,
            rx_tick: false,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut pairs = args.chunks(2);
        for pair in pairs.by_ref() {
            let [flag, value] = pair else {
                panic!("{pair:?}: every flag takes a value")
            };
            let number = || -> u64 {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag}: {value} is not a number"))
            };
            match flag.as_str() {
                "--out" => config.out = Some(value.clone()),
                "--nodes" => config.nodes = number() as usize,
                "--agents" => {
                    config.agents = value
                        .split(',')
                        .map(|n| n.parse().expect("--agents: comma-separated numbers"))
                        .collect()
                }
                "--interval-ms" => config.interval = Duration::from_millis(number()),
                "--miss" => config.miss = number() as u32,
                "--kills" => config.kills = number() as usize,
                "--clean-s" => config.clean = Duration::from_secs(number()),
                "--loss-s" => config.lossy = Duration::from_secs(number()),
                "--loss" => config.loss = value.parse().expect("--loss: a probability"),
                "--seed" => config.seed = number(),
                "--rx" => {
                    config.rx_tick = match value.as_str() {
                        "poll" => false,
                        "tick" => true,
                        other => panic!("--rx: poll or tick, not {other}"),
                    }
                }
                other => panic!("unknown flag {other}"),
            }
        }
        assert!(
            (2..=64).contains(&config.nodes),
            "--nodes: 2 to 64 namespaces"
        );
        assert!(config.miss >= 1, "--miss: at least 1");
        assert!(
            config.interval >= Duration::from_millis(10),
            "--interval-ms: at least 10"
        );
        assert!((0.0..1.0).contains(&config.loss), "--loss: below 1");
        config
    }

    /// Dead once `miss` consecutive heartbeats are overdue: the last of them
    /// was due `miss` intervals after the last one heard, and half an interval
    /// more absorbs scheduling jitter. Without that half, `miss - 1` losses and
    /// a heartbeat a microsecond late would already be a verdict.
    fn timeout(&self) -> Duration {
        self.interval * self.miss + self.interval / 2
    }
}

/// The bridge and its nodes; the namespaces (and with them every link) go on drop.
struct Segment {
    nodes: Vec<NetNs>,
    macs: Vec<[u8; 6]>,
    ifindexes: Vec<u32>,
    _segment: NetNs,
}

impl Segment {
    fn build(nodes: usize) -> Self {
        let segment = NetNs::new("rhb");
        // IGMP/MLD snooping stays on (the default), as on most switches: the
        // heartbeat's group is not an IP group, so snooping must not matter.
        segment.ip(&["link", "add", BRIDGE, "type", "bridge"]);
        segment.ip(&["link", "set", BRIDGE, "up"]);
        let mut node_namespaces = Vec::new();
        for i in 0..nodes {
            let node = NetNs::new("rhb");
            let port = format!("p{i}");
            veth(&node, NODE_IF, &segment, &port);
            segment.ip(&["link", "set", &port, "master", BRIDGE]);
            node_namespaces.push(node);
        }
        let macs = node_namespaces.iter().map(|n| n.mac(NODE_IF)).collect();
        let ifindexes = node_namespaces.iter().map(|n| n.ifindex(NODE_IF)).collect();
        Segment {
            nodes: node_namespaces,
            macs,
            ifindexes,
            _segment: segment,
        }
    }

    fn socket(&self, node: usize) -> OwnedFd {
        let fd = self.nodes[node]
            .enter(|| packet_socket(ETHERTYPE, self.ifindexes[node]))
            .expect("AF_PACKET socket on the node's segment interface");
        set_option(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).expect("SO_RCVBUFFORCE");
        // Programs the group into the NIC's multicast filter, as a real agent
        // must: without it a NIC that filters multicast drops the heartbeats
        // (veth does not filter, so here it changes nothing).
        // SAFETY: packet_mreq is plain data.
        let mut membership: libc::packet_mreq = unsafe { zeroed() };
        membership.mr_ifindex = self.ifindexes[node] as i32;
        membership.mr_type = libc::PACKET_MR_MULTICAST as u16;
        membership.mr_alen = GROUP_MAC.len() as u16;
        membership.mr_address[..GROUP_MAC.len()].copy_from_slice(&GROUP_MAC);
        set_option(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            membership,
        )
        .expect("PACKET_ADD_MEMBERSHIP");
        fd
    }
}

#[derive(Default)]
struct ThreadStats {
    frames: AtomicU64,
    bytes: AtomicU64,
    cpu_ns: AtomicU64,
    dropped_injected: AtomicU64,
    socket_drops: AtomicU64,
    other_view_epoch: AtomicU64,
    seq_gaps: AtomicU64,
    peers_heard: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
struct Verdict {
    agent: usize,
    observer: usize,
    dead: bool,
    at: Instant,
}

struct Shared {
    stop: AtomicBool,
    /// Every thread ends by then whatever happens to the main thread.
    hard_deadline: Instant,
    killed: Vec<AtomicBool>,
    session: Vec<AtomicU64>,
    loss_ppm: AtomicU32,
    verdicts: Mutex<Vec<Verdict>>,
}

impl Shared {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.hard_deadline
    }
}

/// Sets `stop` when the main thread leaves the scope, also by a panic, so the
/// scope's threads end and the namespaces are deleted.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn thread_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes the timespec passed.
    let mut ts: libc::timespec = unsafe { zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The whole simulation's CPU, including the softirq work of delivering
/// frames through the veths and the bridge that runs in the senders' context.
fn process_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes the timespec passed.
    let mut ts: libc::timespec = unsafe { zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn send_frame(fd: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: `frame` is valid for its length; the socket is bound to the interface.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One frame, or None when nothing is queued; the bool says the kernel saw it
/// leave (our own node's transmissions, which an observer ignores).
fn receive_frame(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
    // SAFETY: sockaddr_ll is plain data.
    let mut from: libc::sockaddr_ll = unsafe { zeroed() };
    let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are valid for the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
            &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
            &mut from_len,
        )
    };
    if n < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            io::ErrorKind::Interrupted => Ok(None),
            _ => Err(error),
        };
    }
    Ok(Some((
        n as usize,
        from.sll_pkttype == libc::PACKET_OUTGOING,
    )))
}

fn wait_readable(fd: &OwnedFd, timeout_ms: i32) {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
}

/// Drops counted by the kernel since the last call (PACKET_STATISTICS resets them).
fn socket_drops(fd: &OwnedFd) -> u64 {
    // SAFETY: tpacket_stats is plain data, its length is passed.
    let mut stats: libc::tpacket_stats = unsafe { zeroed() };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut stats as *mut libc::tpacket_stats as *mut libc::c_void,
            &mut len,
        )
    };
    if ret < 0 {
        return 0;
    }
    u64::from(stats.tp_drops)
}

/// Sends the heartbeats of every agent on one node, each on its own phase.
fn run_sender(
    fd: &OwnedFd,
    mac: [u8; 6],
    agents: &[usize],
    shared: &Shared,
    stats: &ThreadStats,
    config: &Config,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let interval = config.interval;
    let start = Instant::now();
    let mut next_due: Vec<Instant> = agents
        .iter()
        .map(|_| start + Duration::from_nanos(rng.below(interval.as_nanos() as u64)))
        .collect();
    let hashes: Vec<u64> = agents.iter().map(|&a| fnv1a(&node_name(a))).collect();
    let mut seq = vec![0u64; agents.len()];
    let mut sent_session = vec![0u64; agents.len()];
    while shared.running() {
        let now = Instant::now();
        let earliest = next_due.iter().copied().min().expect("a node has agents");
        if earliest > now {
            thread::sleep((earliest - now).min(SEND_SLEEP_CAP));
            continue;
        }
        for (slot, &agent) in agents.iter().enumerate() {
            if next_due[slot] > now {
                continue;
            }
            // Keeps the phase; a sender that fell behind skips, as a real
            // timer with MissedTickBehavior::Skip would.
            while next_due[slot] <= now {
                next_due[slot] += interval;
            }
            if shared.killed[agent].load(Ordering::Relaxed) {
                continue;
            }
            let session = shared.session[agent].load(Ordering::Relaxed);
            if session != sent_session[slot] {
                sent_session[slot] = session;
                seq[slot] = 0;
            }
            seq[slot] += 1;
            let frame = Heartbeat {
                node_hash: hashes[slot],
                session,
                seq: seq[slot],
                view_epoch: VIEW_EPOCH,
                interval_ms: interval.as_millis() as u16,
                miss_limit: config.miss as u8,
                flags: 0,
            }
            .encode(mac);
            if send_frame(fd, &frame).is_ok() {
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
            }
        }
        stats.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
    }
    stats.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
}

/// Receives every heartbeat on one node and judges the agents of the other nodes.
fn run_observer(
    fd: &OwnedFd,
    node: usize,
    config: &Config,
    agent_of: &HashMap<u64, usize>,
    shared: &Shared,
    stats: &ThreadStats,
    seed: u64,
) {
    let agents = shared.killed.len();
    let mut rng = Rng(seed);
    let mut detector = Detector::new(agents, config.timeout(), Instant::now());
    let mut last_seq = vec![0u64; agents];
    let mut buf = [0u8; 2048];
    let mut newly_dead = Vec::new();
    let mut last_stats = Instant::now();
    while shared.running() {
        if config.rx_tick {
            thread::sleep(Duration::from_millis(RX_TICK_MS as u64));
        } else {
            wait_readable(fd, RX_TICK_MS);
        }
        let loss_ppm = u64::from(shared.loss_ppm.load(Ordering::Relaxed));
        // Deadlines are judged at the last instant the queue was seen empty,
        // not after the drain: a thread preempted between its last read and
        // the judgement would otherwise judge peers whose heartbeats wait
        // unread in the socket.
        let mut queue_empty_at = None;
        for _ in 0..MAX_DRAIN {
            let before_read = Instant::now();
            let Ok(Some((len, outgoing))) = receive_frame(fd, &mut buf) else {
                queue_empty_at = Some(before_read);
                break;
            };
            if outgoing {
                continue;
            }
            let Some(heartbeat) = Heartbeat::decode(&buf[..len]) else {
                continue;
            };
            let Some(&agent) = agent_of.get(&heartbeat.node_hash) else {
                continue;
            };
            if agent % config.nodes == node {
                continue;
            }
            stats.frames.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
            if loss_ppm > 0 && rng.below(1_000_000) < loss_ppm {
                stats.dropped_injected.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if heartbeat.view_epoch != VIEW_EPOCH {
                stats.other_view_epoch.fetch_add(1, Ordering::Relaxed);
            }
            if heartbeat.session == detector.session[agent] && heartbeat.seq > last_seq[agent] + 1 {
                stats.seq_gaps.fetch_add(1, Ordering::Relaxed);
            }
            last_seq[agent] = heartbeat.seq;
            if detector.state[agent] == PeerState::NeverHeard {
                stats.peers_heard.fetch_add(1, Ordering::Relaxed);
            }
            // Stamped one by one: a stamp taken once per drain goes stale when
            // the thread is preempted mid-drain, and a busy machine then reads
            // as dead peers.
            let now = Instant::now();
            if detector.heard(agent, heartbeat.session, now) {
                push_verdict(shared, agent, node, false, now);
            }
        }
        if let Some(judged_at) = queue_empty_at {
            detector.expire(judged_at, &mut newly_dead);
        }
        // The detection time counts until the verdict is actually known.
        let now = Instant::now();
        for agent in newly_dead.drain(..) {
            push_verdict(shared, agent, node, true, now);
        }
        if now - last_stats >= Duration::from_millis(500) {
            last_stats = now;
            stats
                .socket_drops
                .fetch_add(socket_drops(fd), Ordering::Relaxed);
        }
        stats.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
    }
    stats
        .socket_drops
        .fetch_add(socket_drops(fd), Ordering::Relaxed);
    stats.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
}

fn push_verdict(shared: &Shared, agent: usize, observer: usize, dead: bool, at: Instant) {
    shared
        .verdicts
        .lock()
        .expect("verdicts lock")
        .push(Verdict {
            agent,
            observer,
            dead,
            at,
        });
}

#[derive(Clone, Default)]
struct Snapshot {
    sent_frames: u64,
    sent_bytes: u64,
    sender_cpu_ns: u64,
    rx_frames: Vec<u64>,
    rx_cpu_ns: Vec<u64>,
    dropped_injected: u64,
    socket_drops: u64,
    other_view_epoch: u64,
    seq_gaps: u64,
    verdicts: usize,
    process_cpu_ns: u64,
    at: Option<Instant>,
}

fn snapshot(senders: &[ThreadStats], observers: &[ThreadStats], shared: &Shared) -> Snapshot {
    let mut s = Snapshot {
        at: Some(Instant::now()),
        verdicts: shared.verdicts.lock().expect("verdicts lock").len(),
        process_cpu_ns: process_cpu_ns(),
        ..Snapshot::default()
    };
    for t in senders {
        s.sent_frames += t.frames.load(Ordering::Relaxed);
        s.sent_bytes += t.bytes.load(Ordering::Relaxed);
        s.sender_cpu_ns += t.cpu_ns.load(Ordering::Relaxed);
    }
    for (i, t) in observers.iter().enumerate() {
        debug_assert_eq!(s.rx_frames.len(), i);
        s.rx_frames.push(t.frames.load(Ordering::Relaxed));
        s.rx_cpu_ns.push(t.cpu_ns.load(Ordering::Relaxed));
        s.dropped_injected += t.dropped_injected.load(Ordering::Relaxed);
        s.socket_drops += t.socket_drops.load(Ordering::Relaxed);
        s.other_view_epoch += t.other_view_epoch.load(Ordering::Relaxed);
        s.seq_gaps += t.seq_gaps.load(Ordering::Relaxed);
    }
    s
}

/// What happened between two snapshots: rates, CPU and the false verdicts.
fn phase_report(
    name: &str,
    a: &Snapshot,
    b: &Snapshot,
    nodes: usize,
    agents: usize,
    shared: &Shared,
    excused: &dyn Fn(&Verdict) -> bool,
) -> Value {
    let secs = (b.at.expect("taken") - a.at.expect("taken")).as_secs_f64();
    let rx_fps: Vec<f64> = (0..nodes)
        .map(|i| (b.rx_frames[i] - a.rx_frames[i]) as f64 / secs)
        .collect();
    let rx_cpu: Vec<f64> = (0..nodes)
        .map(|i| (b.rx_cpu_ns[i] - a.rx_cpu_ns[i]) as f64 / 1e9 / secs * 100.0)
        .collect();
    let rx_frames_total: u64 = (0..nodes).map(|i| b.rx_frames[i] - a.rx_frames[i]).sum();
    let rx_cpu_total: u64 = (0..nodes).map(|i| b.rx_cpu_ns[i] - a.rx_cpu_ns[i]).sum();
    let sent = (b.sent_frames - a.sent_frames) as f64;
    let verdicts = shared.verdicts.lock().expect("verdicts lock");
    let false_dead = verdicts[a.verdicts..b.verdicts]
        .iter()
        .filter(|v| v.dead && !excused(v))
        .count();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    json!({
        "phase": name,
        "seconds": secs,
        "agents": agents,
        "segment_frames_per_s": sent / secs,
        "segment_bytes_per_s": (b.sent_bytes - a.sent_bytes) as f64 / secs,
        "segment_wire_bytes_per_s": (sent * (FRAME_LEN + WIRE_OVERHEAD) as f64) / secs,
        "segment_wire_bits_per_s": (sent * ((FRAME_LEN + WIRE_OVERHEAD) * 8) as f64) / secs,
        "observer_rx_frames_per_s_mean": mean(&rx_fps),
        "observer_rx_cpu_percent_mean": mean(&rx_cpu),
        "observer_rx_cpu_percent_max": max(&rx_cpu),
        "observer_rx_ns_per_frame": if rx_frames_total > 0 { rx_cpu_total as f64 / rx_frames_total as f64 } else { 0.0 },
        "sender_cpu_percent_per_agent": (b.sender_cpu_ns - a.sender_cpu_ns) as f64 / 1e9 / secs * 100.0 / agents as f64,
        "process_cpu_percent": (b.process_cpu_ns - a.process_cpu_ns) as f64 / 1e9 / secs * 100.0,
        "dropped_injected": b.dropped_injected - a.dropped_injected,
        "socket_drops": b.socket_drops - a.socket_drops,
        "seq_gaps": b.seq_gaps - a.seq_gaps,
        "other_view_epoch": b.other_view_epoch - a.other_view_epoch,
        "false_dead": false_dead,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sleep_bounded(total: Duration, shared: &Shared) {
    let end = Instant::now() + total;
    while Instant::now() < end && shared.running() {
        thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
    }
}

/// Waits (bounded) until every observer of another node has a verdict
/// `dead` on `agent` after `since`; returns each observer's time.
fn wait_verdicts(
    shared: &Shared,
    agent: usize,
    dead: bool,
    since: Instant,
    observers: &[usize],
    timeout: Duration,
) -> Vec<Option<Instant>> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen: Vec<Option<Instant>> = {
            let verdicts = shared.verdicts.lock().expect("verdicts lock");
            observers
                .iter()
                .map(|&o| {
                    verdicts
                        .iter()
                        .rev()
                        .find(|v| {
                            v.agent == agent && v.observer == o && v.dead == dead && v.at >= since
                        })
                        .map(|v| v.at)
                })
                .collect()
        };
        if seen.iter().all(Option::is_some) || Instant::now() >= deadline {
            return seen;
        }
        thread::sleep(POLL);
    }
}

fn run_scenario(segment: &Segment, config: &Config, agents: usize) -> Value {
    let nodes = config.nodes;
    assert!(agents >= nodes, "at least one agent per node");
    let mut seeds = Rng(config.seed ^ agents as u64);
    // One run per N: a generous bound on everything the main thread waits for.
    let budget = Duration::from_secs(30)
        + config.clean
        + config.lossy
        + (KILL_WAIT + REVIVE_WAIT + config.interval) * config.kills as u32;
    let shared = Shared {
        stop: AtomicBool::new(false),
        hard_deadline: Instant::now() + budget,
        killed: (0..agents).map(|_| AtomicBool::new(false)).collect(),
        session: (0..agents)
            .map(|_| AtomicU64::new(seeds.next() | 1))
            .collect(),
        loss_ppm: AtomicU32::new(0),
        verdicts: Mutex::new(Vec::new()),
    };
    let agent_of: HashMap<u64, usize> = (0..agents).map(|a| (fnv1a(&node_name(a)), a)).collect();
    assert_eq!(agent_of.len(), agents, "node-name hashes collide");
    let send_fds: Vec<OwnedFd> = (0..nodes).map(|i| segment.socket(i)).collect();
    let recv_fds: Vec<OwnedFd> = (0..nodes).map(|i| segment.socket(i)).collect();
    let sender_stats: Vec<ThreadStats> = (0..nodes).map(|_| ThreadStats::default()).collect();
    let observer_stats: Vec<ThreadStats> = (0..nodes).map(|_| ThreadStats::default()).collect();
    let on_node: Vec<Vec<usize>> = (0..nodes)
        .map(|n| (0..agents).filter(|a| a % nodes == n).collect())
        .collect();

    thread::scope(|scope| {
        let _stop = StopOnDrop(&shared.stop);
        for node in 0..nodes {
            let (fd, stats, shared, agent_of, config) = (
                &recv_fds[node],
                &observer_stats[node],
                &shared,
                &agent_of,
                config,
            );
            let seed = seeds.next();
            scope.spawn(move || run_observer(fd, node, config, agent_of, shared, stats, seed));
        }
        for node in 0..nodes {
            let (fd, stats, shared, mine, config) = (
                &send_fds[node],
                &sender_stats[node],
                &shared,
                &on_node[node],
                config,
            );
            let (mac, seed) = (segment.macs[node], seeds.next());
            scope.spawn(move || run_sender(fd, mac, mine, shared, stats, config, seed));
        }

        // Warm-up: every observer must have heard every agent of the other nodes.
        sleep_bounded(config.interval * 5 + Duration::from_secs(1), &shared);
        let never_heard: u64 = (0..nodes)
            .map(|n| {
                (agents - on_node[n].len()) as u64
                    - observer_stats[n].peers_heard.load(Ordering::Relaxed)
            })
            .sum();

        let s0 = snapshot(&sender_stats, &observer_stats, &shared);
        sleep_bounded(config.clean, &shared);
        let s1 = snapshot(&sender_stats, &observer_stats, &shared);
        let clean = phase_report("clean", &s0, &s1, nodes, agents, &shared, &|_| false);

        // Kills: a victim per round, never the same twice in a row, on every node in turn.
        let mut rng = Rng(config.seed.wrapping_mul(31) ^ agents as u64);
        let mut to_all = Vec::new();
        let mut per_observer = Vec::new();
        let mut missed = 0usize;
        let mut victims = Vec::new();
        for kill in 0..config.kills {
            let victim_node = kill % nodes;
            let candidates = &on_node[victim_node];
            let victim = candidates[rng.below(candidates.len() as u64) as usize];
            victims.push(victim);
            // Decorrelates the kill from the victim's phase.
            thread::sleep(Duration::from_nanos(
                rng.below(config.interval.as_nanos() as u64),
            ));
            shared.killed[victim].store(true, Ordering::Relaxed);
            let killed_at = Instant::now();
            let observers: Vec<usize> = (0..nodes).filter(|&o| o != victim_node).collect();
            let seen = wait_verdicts(&shared, victim, true, killed_at, &observers, KILL_WAIT);
            let times: Vec<f64> = seen
                .iter()
                .flatten()
                .map(|t| (*t - killed_at).as_secs_f64() * 1e3)
                .collect();
            if times.len() < observers.len() {
                missed += 1;
            } else {
                to_all.push(times.iter().copied().fold(0.0, f64::max));
            }
            per_observer.extend(times);
            // Restart: a new session, heard again by everyone before the next kill.
            shared.session[victim].store(seeds.next() | 1, Ordering::Relaxed);
            shared.killed[victim].store(false, Ordering::Relaxed);
            let revived_at = Instant::now();
            wait_verdicts(&shared, victim, false, revived_at, &observers, REVIVE_WAIT);
            if !shared.running() {
                break;
            }
        }
        let s2 = snapshot(&sender_stats, &observer_stats, &shared);
        let killing = phase_report("kills", &s1, &s2, nodes, agents, &shared, &|v| {
            victims.contains(&v.agent)
        });

        shared
            .loss_ppm
            .store((config.loss * 1e6) as u32, Ordering::Relaxed);
        sleep_bounded(config.lossy, &shared);
        let s3 = snapshot(&sender_stats, &observer_stats, &shared);
        shared.loss_ppm.store(0, Ordering::Relaxed);
        let lossy = phase_report("loss", &s2, &s3, nodes, agents, &shared, &|_| false);
        shared.stop.store(true, Ordering::Relaxed);

        to_all.sort_by(f64::total_cmp);
        per_observer.sort_by(f64::total_cmp);
        // Expected false verdicts from independent loss alone: each heartbeat
        // starts a run of `miss` losses with probability loss^miss.
        let judged_pairs: usize = (0..nodes).map(|n| agents - on_node[n].len()).sum();
        let heartbeats_judged =
            judged_pairs as f64 * config.lossy.as_secs_f64() / config.interval.as_secs_f64();
        json!({
            "agents": agents,
            "nodes": nodes,
            "interval_ms": config.interval.as_millis() as u64,
            "miss": config.miss,
            "never_heard_after_warmup": never_heard,
            "clean": clean,
            "kills": {
                "count": config.kills,
                "missed": missed,
                "all_observers_ms": {
                    "p50": percentile(&to_all, 50.0),
                    "p99": percentile(&to_all, 99.0),
                    "min": to_all.first().copied().unwrap_or(f64::NAN),
                    "max": to_all.last().copied().unwrap_or(f64::NAN),
                },
                "each_observer_ms": {
                    "p50": percentile(&per_observer, 50.0),
                    "p99": percentile(&per_observer, 99.0),
                },
                "phase": killing,
            },
            "loss": {
                "probability": config.loss,
                "expected_false_dead": heartbeats_judged * config.loss.powi(config.miss as i32),
                "phase": lossy,
            },
        })
    })
}

fn markdown(results: &[Value], config: &Config) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Interval {} ms, dead after {} missed ({} ms without a heartbeat), {} node namespaces on one bridge, {} kills per N, clean and lossy phases {} s and {} s, loss {}% injected at each observer (seeded), observers {}.\n\n",
        config.interval.as_millis(),
        config.miss,
        config.timeout().as_millis(),
        config.nodes,
        config.kills,
        config.clean.as_secs(),
        config.lossy.as_secs(),
        config.loss * 100.0,
        if config.rx_tick {
            format!("wake every {RX_TICK_MS} ms and drain")
        } else {
            "wake per frame (poll)".to_owned()
        },
    ));
    out.push_str("| agents | detection to all observers p50 / p99 (ms) | each observer p50 / p99 (ms) | missed kills | segment frames/s | segment bytes/s (frames / on the wire) | rx frames/s per observer | rx CPU per observer mean / max | rx ns per frame | tx CPU per agent | whole simulation CPU | false dead, clean | false dead, loss (expected) |\n");
    out.push_str(
        "| ---: | --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in results {
        let c = &r["clean"];
        let k = &r["kills"];
        let l = &r["loss"];
        out.push_str(&format!(
            "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {} | {:.0} | {:.0} / {:.0} | {:.0} | {:.2}% / {:.2}% | {:.0} | {:.3}% | {:.1}% | {} | {} ({:.2}) |\n",
            r["agents"],
            k["all_observers_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
            k["all_observers_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
            k["each_observer_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
            k["each_observer_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
            k["missed"],
            c["segment_frames_per_s"].as_f64().unwrap_or(0.0),
            c["segment_bytes_per_s"].as_f64().unwrap_or(0.0),
            c["segment_wire_bytes_per_s"].as_f64().unwrap_or(0.0),
            c["observer_rx_frames_per_s_mean"].as_f64().unwrap_or(0.0),
            c["observer_rx_cpu_percent_mean"].as_f64().unwrap_or(0.0),
            c["observer_rx_cpu_percent_max"].as_f64().unwrap_or(0.0),
            c["observer_rx_ns_per_frame"].as_f64().unwrap_or(0.0),
            c["sender_cpu_percent_per_agent"].as_f64().unwrap_or(0.0),
            c["process_cpu_percent"].as_f64().unwrap_or(0.0),
            c["false_dead"].as_u64().unwrap_or(0) + k["phase"]["false_dead"].as_u64().unwrap_or(0),
            l["phase"]["false_dead"],
            l["expected_false_dead"].as_f64().unwrap_or(0.0),
        ));
    }
    out
}

fn main() {
    let config = Config::from_args();
    let segment = Segment::build(config.nodes);
    let mut results = Vec::new();
    for &agents in &config.agents {
        eprintln!(
            "segment_heartbeat: {agents} agents on {} nodes",
            config.nodes
        );
        let result = run_scenario(&segment, &config, agents);
        eprintln!("{result}");
        results.push(result);
    }
    let table = markdown(&results, &config);
    println!("{table}");
    if let Some(path) = &config.out {
        let doc = json!({
            "config": {
                "nodes": config.nodes,
                "interval_ms": config.interval.as_millis() as u64,
                "miss": config.miss,
                "kills": config.kills,
                "clean_s": config.clean.as_secs(),
                "loss_s": config.lossy.as_secs(),
                "loss": config.loss,
                "seed": config.seed,
                "timeout_ms": config.timeout().as_millis() as u64,
                "rx": if config.rx_tick { "tick" } else { "poll" },
                "frame_bytes": FRAME_LEN,
                "ethertype": format!("{ETHERTYPE:#06x}"),
            },
            "results": results,
            "markdown": table,
        });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&doc).expect("json") + "\n",
        )
        .expect("write --out");
    }
    drop(segment);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_round_trips_and_rejects_others() {
        let beat = Heartbeat {
            node_hash: fnv1a("node-0001"),
            session: 7,
            seq: 42,
            view_epoch: 9,
            interval_ms: 100,
            miss_limit: 3,
            flags: 0,
        };
        let frame = beat.encode([2, 0, 0, 0, 0, 1]);
        assert_eq!(Heartbeat::decode(&frame), Some(beat));
        let mut other = frame;
        other[12] = 0x08;
        assert_eq!(Heartbeat::decode(&other), None);
        assert_eq!(Heartbeat::decode(&frame[..30]), None);
    }

    #[test]
    fn detector_declares_dead_only_after_timeout_and_revives() {
        let t0 = Instant::now();
        let timeout = Duration::from_millis(300);
        let mut d = Detector::new(2, timeout, t0);
        let mut dead = Vec::new();
        d.expire(t0 + Duration::from_secs(5), &mut dead);
        assert!(dead.is_empty(), "never heard is never dead");
        d.heard(0, 1, t0);
        d.expire(t0 + timeout, &mut dead);
        assert!(dead.is_empty());
        d.expire(t0 + timeout + Duration::from_millis(1), &mut dead);
        assert_eq!(dead, vec![0]);
        assert!(d.heard(0, 2, t0 + Duration::from_secs(1)));
    }
}
