//! What the measurement reads of the processes it runs: the API server's
//! Lease writes and watch events, CPU time and memory.

use super::*;

/// etcd's and kube-apiserver's PIDs from the state directory of `apiserver.sh`.
pub(super) fn server_pids(state: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(state.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            Some((name.to_owned(), pid.trim().parse().ok()?))
        })
        .collect()
}

/// Lease writes the API server has answered so far, from its own metrics.
pub(super) fn api_lease_writes(cluster: &Cluster) -> f64 {
    let out = cluster.server.kubectl(&["get", "--raw", "/metrics"]);
    assert!(
        out.status.success(),
        "kubectl get --raw /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .filter(|line| line.contains("resource=\"leases\""))
        .filter(|line| {
            ["POST", "CREATE", "PATCH", "PUT", "UPDATE"]
                .iter()
                .any(|verb| line.contains(&format!("verb=\"{verb}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The agent's metrics port, from its "serving /metrics" log line.
pub(super) fn metrics_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|line| line.contains("serving /metrics"))?;
    let after = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `responder_lease_watch_events_total` of the agent on `port`.
pub(super) fn watch_events(port: u16) -> f64 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to agent metrics");
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
    text.lines()
        .find_map(|line| line.strip_prefix("responder_lease_watch_events_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no responder_lease_watch_events_total in the agent's metrics"))
}

/// utime + stime of `pid` in seconds (NaN once it is gone).
pub(super) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or(f64::NAN)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// VmRSS and RssAnon of `pid`, MiB.
pub(super) fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("RssAnon:") / 1024.0)
}
