//! A node's agent in a simulated cluster: `responder run --kube` in the root
//! namespace (it must reach the API server on 127.0.0.1), answering on one
//! root-namespace veth per segment the node is on.
use std::{
    collections::BTreeSet,
    fs::OpenOptions,
    io::Write,
    net::IpAddr,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use super::{
    link::{root_xdp_attached, set_root_link},
    responder::{cleanup_pins, inspect_pins, responder_bin},
};
use crate::netns::ChildGuard;

/// One of a node's interfaces: its name in the root namespace and its MAC.
#[derive(Clone, Debug)]
pub struct Nic {
    pub name: String,
    pub mac: String,
}

pub struct Agent {
    pub node: &'static str,
    /// One per segment, in the lab's segment order.
    pub nics: Vec<Nic>,
    pub pin_path: PathBuf,
    /// Every run of the agent in this lab, one after another: a failure
    /// shows what each restart did.
    pub(super) log_path: PathBuf,
    /// Where the current run's log begins.
    pub(super) log_start: u64,
    pub(super) kubeconfig: PathBuf,
    pub(super) namespace: &'static str,
    /// Appended to `responder run`.
    pub(super) extra_args: Vec<String>,
    pub(super) rust_log: String,
    pub(super) child: Option<ChildGuard>,
}

impl Agent {
    pub(super) fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open agent log");
        writeln!(log, "=== agent {} started ===", self.node).expect("write agent log");
        self.log_start = log.metadata().map_or(0, |m| m.len());
        let mut cmd = Command::new(responder_bin());
        cmd.arg("run")
            .arg("--kube")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--node-name", self.node, "--namespace", self.namespace]);
        for nic in &self.nics {
            cmd.args(["--interface", &nic.name]);
        }
        cmd.args(["--xdp-mode", "driver"])
            // The agents share the root netns: no two may take the default port.
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
            ])
            .arg("--pin-path")
            .arg(&self.pin_path)
            .args(&self.extra_args)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        self.child = Some(ChildGuard::spawn(
            cmd,
            &format!("responder agent of {}", self.node),
        ));
    }

    /// The interface of a node on one segment.
    pub fn interface(&self) -> &str {
        &self.only_nic().name
    }

    /// The MAC of a node on one segment.
    pub fn mac(&self) -> &str {
        &self.only_nic().mac
    }

    fn only_nic(&self) -> &Nic {
        match self.nics.as_slice() {
            [nic] => nic,
            nics => panic!(
                "{} has {} interfaces; name the segment",
                self.node,
                nics.len()
            ),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// Each pinned VIP key: address and interface name, read in-process (the
    /// map outlives a killed agent, so callers check `is_running` first).
    pub fn pinned(&self) -> BTreeSet<(IpAddr, String)> {
        responder::bpf::read_pinned_vips(&self.pin_path)
            .map(|rows| {
                rows.into_iter()
                    .map(|row| (row.ip, row.interface))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The addresses in this agent's pinned VIP map.
    pub fn pinned_addresses(&self) -> BTreeSet<IpAddr> {
        self.pinned().into_iter().map(|(ip, _)| ip).collect()
    }

    /// `responder vips --json` (root namespace, where the agent runs).
    pub fn vips_json(&self) -> Vec<serde_json::Value> {
        inspect_pins(None, "vips", &self.pin_path)
            .map(|out| serde_json::from_slice(&out).expect("vips --json is a JSON array"))
            .unwrap_or_default()
    }

    /// The agent's `/metrics` text (its port from the "serving /metrics"
    /// log line; the lab binds port 0).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let log = self.log();
        let line = log
            .lines()
            .find(|line| line.contains("serving /metrics"))
            .unwrap_or_else(|| panic!("{} logged no metrics address", self.node));
        let after = &line[line.find("127.0.0.1:").expect("metrics on 127.0.0.1") + 10..];
        let port: u16 = after
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("metrics port");
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to agent metrics");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .expect("send metrics request");
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .expect("read agent metrics");
        text
    }

    /// The value of one series (`name{labels}` exactly as exported, or a
    /// bare name) in the agent's metrics; 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The current run's log.
    pub fn log(&self) -> String {
        let all = std::fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(self.log_start).map_or(all.len(), |s| s.min(all.len()));
        String::from_utf8_lossy(&all[start..]).into_owned()
    }

    pub(super) fn xdp_attached(&self) -> bool {
        self.nics.iter().all(|nic| root_xdp_attached(&nic.name))
    }

    pub(super) fn set_links(&self, state: &str) {
        for nic in &self.nics {
            set_root_link(&nic.name, state);
        }
    }

    /// What a dead node looks like on the wire: its agent is gone without a
    /// chance to withdraw, and its links are down (the XDP program a SIGKILLed
    /// agent leaves pinned would otherwise keep answering).
    pub(super) fn fail(&mut self) {
        self.signal_and_wait(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(10));
        self.set_links("down");
    }

    /// Sends `signal` to the running agent, without waiting for anything.
    pub(super) fn signal(&self, signal: nix::sys::signal::Signal) {
        self.child.as_ref().expect("agent running").signal(signal);
    }

    /// Sends `signal` and reaps the agent; its exit code.
    pub(super) fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> Option<i32> {
        let mut child = self.child.take().expect("agent running");
        child.signal(signal);
        child.wait_exit(timeout)
    }

    pub(super) fn cleanup_pins(&self) {
        cleanup_pins(&self.pin_path);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        drop(self.child.take());
        // A killed agent leaves its program, maps and links pinned.
        self.cleanup_pins();
        if std::thread::panicking() {
            eprintln!(
                "--- agent {} log ({}) ---\n{}",
                self.node,
                self.log_path.display(),
                std::fs::read_to_string(&self.log_path).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}
