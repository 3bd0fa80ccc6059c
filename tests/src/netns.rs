//! Network namespaces and processes that clean up after themselves.
//!
//! Every name made here carries the test process's PID, and `Drop` removes
//! exactly those names and kills exactly the children it started, so a failing
//! test never leaves state behind nor touches anything it did not create.
use std::{
    fs::File,
    os::fd::AsFd,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use nix::sched::{setns, CloneFlags};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// `prefix` should say which test made it; the PID and a counter make it unique.
    pub fn new(prefix: &str) -> Self {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command run inside the namespace with `nsenter --net`: unlike
    /// `ip netns exec`, it keeps the mount namespace, so /sys/fs/bpf (bpffs)
    /// stays visible to the responder.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// `ip -n <ns> …`, panicking with the output when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` with the calling thread inside this namespace, then returns
    /// the thread to where it was (setns is per thread).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let original = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let target = File::open(self.path()).expect("open test netns");
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into test netns");
        let result = f();
        setns(original.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns back");
        result
    }

    pub fn ifindex(&self, ifname: &str) -> u32 {
        self.enter(|| nix::net::if_::if_nametoindex(ifname).expect("interface exists"))
    }

    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = self.ip(&["-br", "link", "show", "dev", ifname]);
        let mac = out.split_whitespace().nth(2).expect("mac column");
        let mut bytes = [0u8; 6];
        for (b, part) in bytes.iter_mut().zip(mac.split(':')) {
            *b = u8::from_str_radix(part, 16).expect("hex mac");
        }
        bytes
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins `a` and `b` with a veth pair named `a_if`/`b_if` and brings both up.
pub fn veth(a: &NetNs, a_if: &str, b: &NetNs, b_if: &str) {
    run_ok(Command::new("ip").args([
        "-n",
        a.name(),
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]));
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// A child process killed (SIGTERM, then SIGKILL) and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command, what: &str) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {what}: {e}"));
        ChildGuard {
            child: Some(child),
            what: what.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|e| panic!("signal {signal} to {}: {e}", self.what));
    }

    /// Waits (bounded) for the process to exit after a signal; returns its output status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not exit within {timeout:?}", self.what);
    }

    /// Stops the process and returns what it printed (stdout, stderr must be piped).
    pub fn stop(mut self) -> Output {
        let mut child = self.child.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && child.try_wait().expect("try_wait").is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output().expect("collect output")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A file or directory made by a test, removed on drop (also when the test
/// panics).
pub struct TempPath(pub PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, panicking with its stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Keeps a root-namespace interface made by a test quiet on its segment (no
/// link-local address, so no DAD, RS or MLD) while IPv6 stays enabled on it:
/// the responder rightly refuses IPv6 VIPs where `disable_ipv6` is set. Call
/// before the link goes up.
pub fn quiet_ipv6(interface: &str) {
    for (key, value) in [
        ("addr_gen_mode", "1"),
        ("accept_dad", "0"),
        ("accept_ra", "0"),
        ("router_solicitations", "0"),
        ("forwarding", "0"),
    ] {
        run_ok(
            Command::new("sysctl")
                .args(["-qw", &format!("net.ipv6.conf.{interface}.{key}={value}")]),
        );
    }
}

/// Polls `f` every 50 ms until it returns Some, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
