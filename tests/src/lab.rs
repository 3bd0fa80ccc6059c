//! A two-host L2 lab: a "client" and a "node" namespace joined by veth, the
//! responder running on the node side, real clients (the kernel, arping,
//! ndisc6) on the client side.
use std::{
    fs::File,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::programs::{Xdp, XdpMode};

use crate::netns::{run_ok, veth, wait_for, ChildGuard, NetNs};

pub const NODE_IF: &str = "rspnode0";
pub const CLIENT_IF: &str = "rspcli0";
pub const NODE_V4: &str = "198.51.100.1";
pub const CLIENT_V4: &str = "198.51.100.2";
pub const VIP_V4: &str = "198.51.100.10";
pub const OTHER_V4: &str = "198.51.100.20";
pub const NODE_V6: &str = "2001:db8:100::1";
pub const CLIENT_V6: &str = "2001:db8:100::2";
pub const VIP_V6: &str = "2001:db8:100::10";
pub const OTHER_V6: &str = "2001:db8:100::20";

pub struct Lab {
    pub client: NetNs,
    pub node: NetNs,
    /// Keeps the client's XDP program attached (see `attach_pass_through`).
    client_xdp: Option<PassThrough>,
}

impl Lab {
    pub fn new(name: &str) -> Self {
        let client = NetNs::new(&format!("rsp-{name}-c"));
        let node = NetNs::new(&format!("rsp-{name}-n"));
        link(&client, &node);
        let client_xdp = Some(attach_pass_through(&client, CLIENT_IF));
        Lab {
            client,
            node,
            client_xdp,
        }
    }

    /// A lab whose client interface has no XDP program, for callers that
    /// attach their own (the benchmark's reply counter).
    pub fn without_client_xdp(name: &str) -> Self {
        let client = NetNs::new(&format!("rsp-{name}-c"));
        let node = NetNs::new(&format!("rsp-{name}-n"));
        link(&client, &node);
        Lab {
            client,
            node,
            client_xdp: None,
        }
    }

    /// Deletes the veth pair and creates it again with the same names and
    /// addresses (new ifindexes and MACs), as a reloaded driver would.
    pub fn recreate_link(&mut self) {
        self.node.ip(&["link", "del", NODE_IF]);
        link(&self.client, &self.node);
        if self.client_xdp.is_some() {
            self.client_xdp = Some(attach_pass_through(&self.client, CLIENT_IF));
        }
    }

    /// The pin path of this lab's responders: a restarted one adopts what
    /// the previous one left there.
    pub fn pin_path(&self) -> PathBuf {
        pin_path_of(&self.node)
    }

    /// Starts `responder run` on the node side (see [`Responder::start`]).
    pub fn start_responder(&self, args: &[&str], expected_entries: usize) -> Responder {
        Responder::start(&self.node, args, expected_entries)
    }

    /// The client's neighbor entry for `ip`: (lladdr, state), if any.
    pub fn client_neighbor(&self, ip: &str) -> Option<(String, String)> {
        let out = self.client.ip(&["neigh", "show", ip, "dev", CLIENT_IF]);
        let words: Vec<&str> = out.split_whitespace().collect();
        let lladdr = words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_owned())?;
        Some((lladdr, words.last().expect("state").to_string()))
    }

    /// The id of the XDP program the kernel runs on the node interface.
    pub fn xdp_prog_id(&self) -> u64 {
        let out = self.node.ip(&["-d", "link", "show", "dev", NODE_IF]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(3)
            .find(|w| w[0].starts_with("prog/xdp") && w[1] == "id")
            .and_then(|w| w[2].parse().ok())
            .unwrap_or_else(|| panic!("no XDP program on {NODE_IF}:\n{out}"))
    }

    /// SIGTERMs `responder` and checks the teardown an agent without
    /// `--kube` owes: exit 0, no pins left, no XDP program on the interface.
    pub fn terminate_and_check_teardown(&self, responder: &mut Responder) {
        responder.child().signal(nix::sys::signal::Signal::SIGTERM);
        let code = responder.child().wait_exit(Duration::from_secs(10));
        assert_eq!(
            code,
            Some(0),
            "responder did not exit cleanly; log:\n{}",
            responder.log()
        );
        assert!(
            !responder.pin_path.exists(),
            "pins left behind at {}",
            responder.pin_path.display()
        );
        let link = self.node.ip(&["link", "show", "dev", NODE_IF]);
        assert!(
            !link.contains("xdp"),
            "XDP still attached after SIGTERM:\n{link}"
        );
    }

    pub fn node_mac(&self) -> String {
        format_mac(&self.node.mac(NODE_IF))
    }
}

/// The veth pair between the namespaces, addressed.
fn link(client: &NetNs, node: &NetNs) {
    veth(node, NODE_IF, client, CLIENT_IF);
    node.ip(&["addr", "add", &format!("{NODE_V4}/24"), "dev", NODE_IF]);
    node.ip(&[
        "addr",
        "add",
        &format!("{NODE_V6}/64"),
        "dev",
        NODE_IF,
        "nodad",
    ]);
    client.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", CLIENT_IF]);
    client.ip(&[
        "addr",
        "add",
        &format!("{CLIENT_V6}/64"),
        "dev",
        CLIENT_IF,
        "nodad",
    ]);
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

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
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path))
            .arg("--")
            .arg(responder_bin())
            .args(["vips", "--json", "--pin-path"])
            .arg(&self.pin_path)
            .output()
            .expect("run responder vips");
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .expect("vips --json is a JSON array")
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
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path))
            .arg("--")
            .arg(responder_bin())
            .args(["stats", "--json", "--pin-path"])
            .arg(&self.pin_path)
            .output()
            .expect("run responder stats");
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("stats --json is JSON"))
    }
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

/// An XDP program on the client side of the veth. Frames a driver-mode XDP
/// program sends with XDP_TX only reach the veth peer when the peer has an XDP
/// program too. The responder itself with no VIPs passes everything.
pub struct PassThrough {
    _ebpf: aya::Ebpf,
}

pub fn attach_pass_through(ns: &NetNs, ifname: &str) -> PassThrough {
    let mut ebpf = responder::bpf::object_loader()
        .load(responder::EBPF_OBJECT)
        .expect("load XDP object");
    let program: &mut Xdp = ebpf
        .program_mut(responder_common::PROGRAM_NAME)
        .expect("program in object")
        .try_into()
        .expect("XDP program");
    responder::bpf::load_retrying(|| program.load()).expect("load pass-through program");
    ns.enter(|| program.attach(ifname, XdpMode::Driver))
        .expect("attach pass-through XDP to the client veth");
    PassThrough { _ebpf: ebpf }
}

/// `responder run` arguments answering for both lab VIPs on the node
/// interface in XDP `mode` (`driver`, `skb`), then `extra`.
pub fn lab_vip_args(mode: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "--interface",
        NODE_IF,
        "--vip",
        VIP_V4,
        "--vip",
        VIP_V6,
        "--xdp-mode",
        mode,
    ];
    args.extend_from_slice(extra);
    args
}

/// `arping` from the client: (exit success, output).
pub fn arping(lab: &Lab, ip: &str, count: u32) -> (bool, String) {
    let out = lab
        .client
        .command("arping")
        .args([
            "-c",
            &count.to_string(),
            "-w",
            &(count + 2).to_string(),
            "-I",
            CLIENT_IF,
            ip,
        ])
        .output()
        .expect("run arping");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `ndisc6` from the client: (exit success, output).
pub fn ndisc6(lab: &Lab, ip: &str) -> (bool, String) {
    let out = lab
        .client
        .command("ndisc6")
        .args(["-r", "3", "-w", "1000", ip, CLIENT_IF])
        .output()
        .expect("run ndisc6");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Makes the client's kernel resolve `ip` (one ping; the VIP answers ARP/NDP
/// but nothing answers the echo, which is fine).
pub fn kernel_resolve(lab: &Lab, ip: &str) {
    let _ = lab
        .client
        .command("ping")
        .args(["-c", "1", "-W", "1", ip])
        .stdout(Stdio::null())
        .status();
}

pub fn run_in(ns: &NetNs, program: &str, args: &[&str]) -> String {
    let out = run_ok(ns.command(program).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
