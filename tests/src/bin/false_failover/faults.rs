//! The faults of the three cases, each a guard that undoes exactly what it
//! made when dropped (also on panic): a CPU cgroup and busy loops, a
//! random-drop cls_bpf filter on the segment plus iptables rules on the
//! owner's API connections, an ebtables rule for one-way loss.
use std::{
    io,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use responder_tests::bench::tiny_xdp::pin_random_drop;
use responder_tests::netns::{ChildGuard, NetNs};

/// Runs a command, returning whether it succeeded (stderr echoed if not).
fn run(cmd: &mut Command) -> bool {
    match cmd.output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "false_failover: {cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("false_failover: {cmd:?} did not start: {e}");
            false
        }
    }
}

// ---------------------------------------------------------------- starved

const CPU_CGROUP_ROOT: &str = "/sys/fs/cgroup/cpu";

/// The owner's agent in a cgroup v1 CPU group with a CFS quota (a pod's
/// CPU limit), and one busy loop per CPU at nice -20.
pub struct Starved {
    cgroup: PathBuf,
    pid: u32,
    hogs: Vec<ChildGuard>,
}

impl Starved {
    /// `quota_us` per `period_us` for `pid`; busy loops that end by
    /// themselves after `bound`.
    pub fn start(pid: u32, quota_us: u64, period_us: u64, bound: Duration) -> io::Result<Starved> {
        let cgroup =
            PathBuf::from(CPU_CGROUP_ROOT).join(format!("ff-starve-{}", std::process::id()));
        std::fs::create_dir(&cgroup)?;
        let mut guard = Starved {
            cgroup,
            pid,
            hogs: Vec::new(),
        };
        std::fs::write(
            guard.cgroup.join("cpu.cfs_period_us"),
            period_us.to_string(),
        )?;
        std::fs::write(guard.cgroup.join("cpu.cfs_quota_us"), quota_us.to_string())?;
        // cgroup v1 `cgroup.procs` moves every thread of the process.
        std::fs::write(guard.cgroup.join("cgroup.procs"), pid.to_string())?;
        let exe = std::env::current_exe()?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for cpu in 0..cpus {
            let mut cmd = Command::new(&exe);
            cmd.args(["--hog", &cpu.to_string(), &bound.as_secs().to_string()]);
            guard
                .hogs
                .push(ChildGuard::spawn(cmd, &format!("busy loop on CPU {cpu}")));
        }
        Ok(guard)
    }

    /// CPU seconds (user + system) the busy loops have used so far.
    pub fn hog_cpu_s(&self) -> f64 {
        self.hogs.iter().map(|h| cpu_seconds(h.pid())).sum()
    }

    /// What throttling the group saw: (periods, throttled periods, throttled ms).
    pub fn throttling(&self) -> (u64, u64, f64) {
        let stat = std::fs::read_to_string(self.cgroup.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (
            field("nr_periods "),
            field("nr_throttled "),
            field("throttled_time ") as f64 / 1e6,
        )
    }
}

impl Drop for Starved {
    fn drop(&mut self) {
        // The busy loops first (SIGTERM, then SIGKILL, by PID).
        self.hogs.clear();
        let root = PathBuf::from(CPU_CGROUP_ROOT).join("cgroup.procs");
        if let Err(e) = std::fs::write(&root, self.pid.to_string()) {
            // The agent may have exited; its group is then empty anyway.
            eprintln!(
                "false_failover: move {} back to the root CPU group: {e}",
                self.pid
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.cgroup).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.cgroup.exists() {
            eprintln!("false_failover: could not remove {}", self.cgroup.display());
        }
    }
}

/// utime + stime of `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is 3rd, utime 14th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// `--hog CPU SECONDS`: busy-loop on one CPU at nice -20 (inherited from
/// the bench, and set again) until SECONDS have passed.
pub fn hog(cpu: usize, seconds: u64) {
    // SAFETY: a zeroed cpu_set_t with one CPU set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        libc::setpriority(libc::PRIO_PROCESS, 0, -20);
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut x: u64 = 0;
    while Instant::now() < end {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

// ------------------------------------------------------------ segment loss

/// Random frame loss where frames leave the segment's bridge: tc egress of
/// the ports to the nodes, tc ingress of the bridge itself (frames to the
/// client, past its packet taps but before its ARP socket), so every frame
/// meets it once per receiver. (On the bridge's egress, a drop would fail
/// the client's send with ENOBUFS.)
pub struct SegmentLoss<'a> {
    ns: &'a NetNs,
    pin: String,
    /// (device, direction) of each clsact qdisc added.
    qdiscs: Vec<(String, &'static str)>,
}

impl<'a> SegmentLoss<'a> {
    pub fn start(
        ns: &'a NetNs,
        ports: &[String],
        bridge: &str,
        probability: f64,
    ) -> io::Result<Self> {
        let pin = format!("/sys/fs/bpf/ff-loss-{}", std::process::id());
        pin_random_drop(probability, &pin)?;
        let mut guard = SegmentLoss {
            ns,
            pin,
            qdiscs: Vec::new(),
        };
        let hooks = ports
            .iter()
            .map(|p| (p.clone(), "egress"))
            .chain([(bridge.to_owned(), "ingress")]);
        for (dev, direction) in hooks {
            let tc = |args: &[&str]| run(ns.command("tc").args(args));
            if !tc(&["qdisc", "add", "dev", &dev, "clsact"]) {
                return Err(io::Error::other(format!(
                    "clsact on {dev} (one already there?)"
                )));
            }
            guard.qdiscs.push((dev.clone(), direction));
            let filter = [
                "filter",
                "add",
                "dev",
                &dev,
                direction,
                "bpf",
                "direct-action",
            ];
            if !tc(&[&filter[..], &["object-pinned", &guard.pin]].concat()) {
                return Err(io::Error::other(format!("cls_bpf on {dev} {direction}")));
            }
        }
        Ok(guard)
    }
}

impl Drop for SegmentLoss<'_> {
    fn drop(&mut self) {
        // Deleting the clsact qdisc we added deletes our filter with it.
        for (dev, _) in self.qdiscs.drain(..) {
            run(self
                .ns
                .command("tc")
                .args(["qdisc", "del", "dev", &dev, "clsact"]));
        }
        let _ = std::fs::remove_file(&self.pin);
    }
}

// ---------------------------------------------------------------- API loss

/// Random loss of one process's packets to and from the API server on
/// loopback, both directions: iptables OUTPUT rules (every loopback packet
/// passes OUTPUT once) on the ports of that process's connections to the
/// server, found in /proc and followed as it reconnects.
pub struct ApiLoss {
    pid: u32,
    api_port: u16,
    probability: String,
    ports: Vec<u16>,
}

/// At most this many connections followed (the agent holds one or two).
const MAX_PORTS: usize = 32;

impl ApiLoss {
    pub fn new(pid: u32, api_port: u16, probability: f64) -> ApiLoss {
        ApiLoss {
            pid,
            api_port,
            probability: probability.to_string(),
            ports: Vec::new(),
        }
    }

    fn rule(&self, action: &str, sport: u16, dport: u16) -> bool {
        run(Command::new("iptables").args([
            "-w",
            action,
            "OUTPUT",
            "-o",
            "lo",
            "-p",
            "tcp",
            "-s",
            "127.0.0.1",
            "-d",
            "127.0.0.1",
            "--sport",
            &sport.to_string(),
            "--dport",
            &dport.to_string(),
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &self.probability,
            "-j",
            "DROP",
        ]))
    }

    /// Adds rules for connections opened since the last call; returns how
    /// many connections are followed.
    pub fn follow(&mut self) -> usize {
        for port in agent_api_ports(self.pid, self.api_port) {
            if self.ports.contains(&port) || self.ports.len() >= MAX_PORTS {
                continue;
            }
            if self.rule("-A", port, self.api_port) {
                if !self.rule("-A", self.api_port, port) {
                    self.rule("-D", port, self.api_port);
                    continue;
                }
                self.ports.push(port);
            }
        }
        self.ports.len()
    }
}

impl Drop for ApiLoss {
    fn drop(&mut self) {
        for port in std::mem::take(&mut self.ports) {
            self.rule("-D", port, self.api_port);
            self.rule("-D", self.api_port, port);
        }
    }
}

/// Local ports of `pid`'s established TCP connections to 127.0.0.1:`api_port`.
fn agent_api_ports(pid: u32, api_port: u16) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| {
                let link = std::fs::read_link(e.ok()?.path()).ok()?;
                let link = link.to_str()?;
                Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let port_of = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
            (port_of(remote)? == api_port && inodes.iter().any(|i| i == inode))
                .then(|| port_of(local))?
        })
        .collect()
}

// ------------------------------------------------------------ one-way loss

/// Frames from one node's port to another's dropped by the segment's
/// bridge (ebtables FORWARD, in the segment's namespace), that direction only.
pub struct OneWay<'a> {
    ns: &'a NetNs,
    spec: Vec<String>,
}

impl<'a> OneWay<'a> {
    pub fn start(ns: &'a NetNs, from_mac: &str, to_port: &str) -> io::Result<Self> {
        let spec: Vec<String> = ["-s", from_mac, "-o", to_port, "-j", "DROP"]
            .map(str::to_owned)
            .to_vec();
        let add = ["-A", "FORWARD"]
            .map(str::to_owned)
            .into_iter()
            .chain(spec.clone());
        if !run(ns.command("ebtables").args(add)) {
            return Err(io::Error::other("ebtables rule"));
        }
        Ok(OneWay { ns, spec })
    }
}

impl Drop for OneWay<'_> {
    fn drop(&mut self) {
        let del = ["-D", "FORWARD"]
            .map(str::to_owned)
            .into_iter()
            .chain(self.spec.clone());
        run(self.ns.command("ebtables").args(del));
    }
}
