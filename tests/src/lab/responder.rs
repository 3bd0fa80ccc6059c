//! A `responder run` started in a namespace of the test's (no cluster), and
//! where to find the binary and how to clean up what a killed one pinned.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::netns::{wait_for, ChildGuard, NetNs};

pub struct Responder {
    child: ChildGuard,
    pub pin_path: PathBuf,
    log_path: PathBuf,
    /// `vips` names interfaces by ifindex, which only means something in the node's namespace.
    netns_path: String,
}

/// Where the responder of namespace `node` pins its program and maps: a
/// restarted one adopts what the previous one left there.
pub fn pin_path_of(node: &NetNs) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/{}", node.name()))
}

impl Responder {
    /// Starts `responder run` in `node` with the pin path of that namespace,
    /// and waits until `expected_entries` VIP keys are installed. Metrics listen
    /// on a free loopback port unless `args` choose an address, so parallel
    /// tests never collide on the default port.
    pub fn start(node: &NetNs, args: &[&str], expected_entries: usize) -> Responder {
        let pin_path = pin_path_of(node);
        let mut cmd = node.command(responder_bin().to_str().expect("utf-8 path"));
        cmd.arg("run").arg("--pin-path").arg(&pin_path);
        if !args.contains(&"--metrics-addr") {
            cmd.args(["--metrics-addr", "127.0.0.1:0"]);
        }
        if !args.contains(&"--health-addr") {
            cmd.args(["--health-addr", "127.0.0.1:0"]);
        }
        cmd.args(args);
        Responder::start_command(node, cmd, pin_path, expected_entries)
    }

    /// Starts `cmd`, a `responder run` in `node` made by the caller (under
    /// reduced privileges, say), whose pins are readable at `pin_path`, and
    /// waits as [`Responder::start`] does.
    pub fn start_command(
        node: &NetNs,
        mut cmd: Command,
        pin_path: PathBuf,
        expected_entries: usize,
    ) -> Responder {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        // Unique per start: a restarted responder must not share (and, on
        // drop, delete) its predecessor's log.
        let log_path = std::env::temp_dir().join(format!(
            "{}-{}.log",
            node.name(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let log = File::create(&log_path).expect("create responder log");
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let responder = Responder {
            child: ChildGuard::spawn(cmd, "responder run"),
            pin_path,
            log_path,
            netns_path: node.path(),
        };
        // Running, not only installed: a restarted agent finds its
        // predecessor's entries pinned at once, and a signal sent before it
        // has set up its handlers (SIGHUP's default is to terminate) would
        // kill it.
        let installed = wait_for(Duration::from_secs(20), || {
            let n = responder.vips().len();
            (n == expected_entries && responder.log().contains("responder running")).then_some(n)
        });
        assert!(
            installed.is_some(),
            "responder did not install {expected_entries} VIP entries and run within 20 s; log:\n{}",
            responder.log()
        );
        responder
    }

    /// `responder vips --json`, as parsed JSON objects (empty while nothing is pinned).
    pub fn vips(&self) -> Vec<serde_json::Value> {
        inspect_pins(Some(&self.netns_path), "vips", &self.pin_path)
            .map(|out| serde_json::from_slice(&out).expect("vips --json is a JSON array"))
            .unwrap_or_default()
    }

    /// Sum of a counter (`requests`, `replies`, `conflicts`) over the entries for `ip`.
    pub fn counter(&self, ip: &str, field: &str) -> u64 {
        self.vips()
            .iter()
            .filter(|v| v["ip"] == ip)
            .map(|v| {
                v[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{field} in {v}"))
            })
            .sum()
    }

    /// The value of metric `name` (its first series) from `/metrics` on
    /// 127.0.0.1:`port` in the responder's namespace.
    pub fn metric(&self, port: u16, name: &str) -> Option<f64> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path))
            .args(["--", "curl", "-sf", "-m", "5"])
            .arg(format!("http://127.0.0.1:{port}/metrics"))
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (metric, value) = line.rsplit_once(' ')?;
                (metric == name || metric.starts_with(&format!("{name}{{")))
                    .then(|| value.parse().ok())?
            })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// SIGKILL, as the OOM killer or a node problem would: nothing is
    /// cleaned up, the program stays attached and pinned.
    pub fn kill(&mut self) {
        self.child.signal(nix::sys::signal::Signal::SIGKILL);
        self.child.wait_exit(Duration::from_secs(10));
    }

    /// `responder stats --json`, parsed; None while nothing is pinned.
    pub fn stats(&self) -> Option<serde_json::Value> {
        inspect_pins(Some(&self.netns_path), "stats", &self.pin_path)
            .map(|out| serde_json::from_slice(&out).expect("stats --json is JSON"))
    }
}

/// `responder <verb> --json` on `pin_path`, inside the network namespace at
/// `netns_path` if given (interfaces are named by ifindex, which only means
/// something there); its output, or None when it fails (nothing pinned).
pub fn inspect_pins(netns_path: Option<&str>, verb: &str, pin_path: &Path) -> Option<Vec<u8>> {
    let mut cmd = match netns_path {
        Some(path) => {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={path}"))
                .arg("--")
                .arg(responder_bin());
            cmd
        }
        None => Command::new(responder_bin()),
    };
    let out = cmd
        .args([verb, "--json", "--pin-path"])
        .arg(pin_path)
        .output()
        .unwrap_or_else(|e| panic!("run responder {verb}: {e}"));
    out.status.success().then_some(out.stdout)
}

/// Runs `responder cleanup` on a pin path when dropped: SIGKILLed responders,
/// and --kube ones on SIGTERM, leave their pins (and XDP attached) behind.
pub struct PinCleanup {
    pub pin_path: PathBuf,
}

impl Drop for PinCleanup {
    fn drop(&mut self) {
        cleanup_pins(&self.pin_path);
    }
}

/// `responder cleanup`: a SIGKILLed agent leaves its program, links and maps
/// pinned. Runs from `Drop`, so it must not panic.
pub fn cleanup_pins(pin_path: &std::path::Path) {
    let Some(bin) = find_responder_bin() else {
        return;
    };
    let _ = Command::new(bin)
        .args(["cleanup", "--pin-path"])
        .arg(pin_path)
        .stdout(Stdio::null())
        .status();
}

impl Drop for Responder {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- responder log ({}) ---\n{}",
                self.log_path.display(),
                self.log()
            );
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// The `responder` binary of this workspace: `RESPONDER_BIN`, else the one
/// cargo built next to the test executable.
pub fn responder_bin() -> PathBuf {
    find_responder_bin().unwrap_or_else(|| {
        panic!("no responder binary: build it with `cargo build -p responder-user` or set RESPONDER_BIN")
    })
}

fn find_responder_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("RESPONDER_BIN") {
        return Some(bin.into());
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("responder");
    bin.exists().then_some(bin)
}
