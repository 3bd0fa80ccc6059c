//! Real userspace daemons the responder is compared with, run in the node
//! namespace on the node CPU as they run in production: Debian's `farpd`
//! (ARP reply daemon, libpcap) for the VIP and `ndppd` (NDP proxy daemon)
//! with a static rule for it.
use std::{
    fs,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{sys::signal, unistd::Pid};

use super::{syslog_sink::SyslogSink, threads::process_runtime};
use crate::netns::{run_ok, wait_for, ChildGuard, NetNs, TempPath};

/// Where farpd writes its pid once daemonized (compiled in).
const FARPD_PIDFILE: &str = "/var/run/farpd.pid";

/// A daemon under test and its CPU time so far.
pub(super) enum Daemon {
    /// Daemonized, as it runs in production: known by pid. It logs every
    /// reply, to a sink of ours when the machine has no syslog daemon.
    Farpd {
        pid: i32,
        syslog: Option<SyslogSink>,
    },
    Ndppd {
        child: ChildGuard,
        _config: TempPath,
    },
}

/// Whether `pid` is a live farpd (a killed one stays a zombie until its
/// parent, not us, reaps it).
fn is_farpd(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) state …"
        stat.split_once(") ")
            .is_some_and(|(head, rest)| head.ends_with("(farpd") && !rest.starts_with(['Z', 'X']))
    })
}

fn farpd_pid() -> Option<i32> {
    fs::read_to_string(FARPD_PIDFILE)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| is_farpd(*pid))
}

impl Daemon {
    /// `farpd -i IFNAME VIP` in `ns`, on `cpu`.
    pub(super) fn farpd(ns: &NetNs, ifname: &str, vip: &str, cpu: usize) -> Daemon {
        assert!(
            farpd_pid().is_none(),
            "a farpd is already running ({FARPD_PIDFILE}); the benchmark runs its own"
        );
        let _ = fs::remove_file(FARPD_PIDFILE);
        let syslog = SyslogSink::start(cpu);
        run_ok(
            ns.command("taskset")
                .args(["-c", &cpu.to_string(), "farpd", "-i", ifname, vip])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let pid =
            wait_for(Duration::from_secs(5), farpd_pid).expect("farpd wrote no pidfile within 5 s");
        Daemon::Farpd { pid, syslog }
    }

    /// `ndppd` in `ns`, on `cpu`, answering for `vip` on `ifname` at once
    /// (a static rule) with the router flag off, as a host would.
    pub(super) fn ndppd(ns: &NetNs, ifname: &str, vip: &str, cpu: usize) -> Daemon {
        let config = TempPath(PathBuf::from(format!(
            "/tmp/rsp-bench-ndppd-{}.conf",
            std::process::id()
        )));
        fs::write(
            &config.0,
            format!("proxy {ifname} {{\n  router no\n  rule {vip}/128 {{\n    static\n  }}\n}}\n"),
        )
        .expect("write the ndppd configuration");
        let mut command = ns.command("taskset");
        command
            .args(["-c", &cpu.to_string(), "ndppd", "-c"])
            .arg(&config.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Daemon::Ndppd {
            child: ChildGuard::spawn(command, "ndppd"),
            _config: config,
        }
    }

    /// On-CPU time of all its threads so far (farpd's with its syslog sink).
    pub(super) fn runtime(&self) -> Duration {
        match self {
            Daemon::Farpd { pid, syslog } => {
                process_runtime(*pid) + syslog.as_ref().map_or(Duration::ZERO, SyslogSink::runtime)
            }
            Daemon::Ndppd { child, .. } => process_runtime(child.pid() as i32),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Daemon::Farpd { pid, .. } = *self {
            // Not our child: killed by pid, then waited for through /proc.
            if is_farpd(pid) {
                let _ = signal::kill(Pid::from_raw(pid), signal::Signal::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_farpd(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = fs::remove_file(FARPD_PIDFILE);
        }
    }
}
