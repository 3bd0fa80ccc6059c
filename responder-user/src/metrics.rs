//! Prometheus metrics and health endpoints of the agent.
//!
//! `/metrics` serves the text exposition format 0.0.4, `/healthz` answers 200
//! while the XDP program is attached and the agent's heartbeat is fresh, and
//! `/readyz` answers 200 once the initial sync is done.
//!
//! Metric names follow the MetalLB layer 2 speaker where the meaning is the
//! same, so existing dashboards and alerts translate by renaming:
//!
//! | responder                                   | MetalLB                              |
//! |---------------------------------------------|--------------------------------------|
//! | `responder_layer2_requests_received_total`  | `metallb_layer2_requests_received`   |
//! | `responder_layer2_responses_sent_total`     | `metallb_layer2_responses_sent`      |
//! | `responder_layer2_gratuitous_sent_total`    | `metallb_layer2_gratuitous_sent`     |
//! | `responder_announced`                       | `metallb_speaker_announced`          |
//! | `responder_layer2_conflicts_total`          | (none)                               |
//! | `responder_layer2_stale_total`              | (none)                               |
//! | `responder_lease_renewals_total`            | (none)                               |
//! | `responder_lease_renewal_failures_total`    | (none)                               |
//! | `responder_ownership_changes_total`         | (none)                               |
//! | `responder_reconcile_errors_total`          | (none)                               |
//! | `responder_heartbeat_age_seconds`           | (none)                               |
//! | `responder_xdp_attached`                    | (none)                               |
//! | `responder_vips_family_disabled`            | (none)                               |
//!
//! Per-VIP series carry `ip`, `interface`, `vlan` (empty when untagged, `100`
//! for one tag, `100.200` for two) and `service` (`namespace/name`, empty for
//! VIPs from the command line or `--vip-file`). MetalLB's `ip` label means the
//! same; its `node` and `protocol` labels are left out because the scrape
//! target already names the node and the protocol is always layer 2.
//! `responder_layer2_conflicts_total` growing on the node that owns a VIP is
//! the split-brain signal: another MAC claimed the address.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::{self, Write as _},
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

/// The default `--metrics-addr`.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9850";

/// A heartbeat older than this makes `/healthz` fail. The agent beats every
/// second, so this tolerates a few late beats on a loaded node.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounds what one client can cost us: the request head size, how long a
/// connection may stay open, and how many are served at once.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 32;
const MAX_LINGER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the metrics listener's address")]
    LocalAddr(#[source] io::Error),
}

/// Process-level counters and gauges; every update is a single atomic or a
/// short lock, cheap enough to call from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    lease_renewals: AtomicU64,
    lease_renewal_failures: AtomicU64,
    ownership_changes: AtomicU64,
    reconcile_errors: AtomicU64,
    attached: AtomicBool,
    family_disabled: AtomicU64,
    ready: AtomicBool,
    heartbeat: Mutex<Option<Instant>>,
    announced: Mutex<BTreeMap<IpAddr, Option<String>>>,
}

static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Counts into the metrics installed with [`Metrics::install_global`], if
/// any, so code without a handle (the Kubernetes source) needs no plumbing.
pub fn record(count: impl FnOnce(&Metrics)) {
    if let Some(metrics) = GLOBAL.get() {
        count(metrics);
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Makes these the metrics [`record`] counts into. Only the first call
    /// wins; returns whether this one did.
    pub fn install_global(self: &Arc<Self>) -> bool {
        GLOBAL.set(Arc::clone(self)).is_ok()
    }

    pub fn lease_renewal(&self, ok: bool) {
        let counter = if ok {
            &self.lease_renewals
        } else {
            &self.lease_renewal_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// This node started or stopped owning a Service.
    pub fn ownership_change(&self) {
        self.ownership_changes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconcile_error(&self) {
        self.reconcile_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the set of VIPs this node announces, each with the
    /// `namespace/name` of its Service if it has one.
    pub fn set_announced(&self, vips: impl IntoIterator<Item = (IpAddr, Option<String>)>) {
        *lock(&self.announced) = vips.into_iter().collect();
    }

    /// Proof of life; the agent calls it every second from its main loop.
    pub fn set_heartbeat(&self) {
        self.heartbeat_at(Instant::now());
    }

    fn heartbeat_at(&self, now: Instant) {
        *lock(&self.heartbeat) = Some(now);
    }

    pub fn set_attached(&self, attached: bool) {
        self.attached.store(attached, Ordering::Relaxed);
    }

    /// How many (VIP, interface) pairs are not answered because IPv6 is
    /// disabled on the interface.
    pub fn set_family_disabled(&self, pairs: usize) {
        self.family_disabled.store(pairs as u64, Ordering::Relaxed);
    }

    /// The initial sync is done: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn liveness(&self) -> Result<(), Unhealthy> {
        self.liveness_at(Instant::now())
    }

    fn liveness_at(&self, now: Instant) -> Result<(), Unhealthy> {
        if !self.attached.load(Ordering::Relaxed) {
            return Err(Unhealthy::NotAttached);
        }
        match self.heartbeat_age(now) {
            None => Err(Unhealthy::NoHeartbeat),
            Some(age) if age > HEARTBEAT_TIMEOUT => Err(Unhealthy::StaleHeartbeat { age }),
            Some(_) => Ok(()),
        }
    }

    fn heartbeat_age(&self, now: Instant) -> Option<Duration> {
        lock(&self.heartbeat).map(|beat| now.saturating_duration_since(beat))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a plain assignment or copy, so a panic
    // elsewhere cannot leave the data half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why `/healthz` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unhealthy {
    NotAttached,
    NoHeartbeat,
    StaleHeartbeat { age: Duration },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhealthy::NotAttached => write!(f, "XDP program not attached"),
            Unhealthy::NoHeartbeat => write!(f, "no heartbeat from the agent yet"),
            Unhealthy::StaleHeartbeat { age } => write!(
                f,
                "last heartbeat {:.1}s ago (limit {}s)",
                age.as_secs_f64(),
                HEARTBEAT_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Counters of one VIP key, read at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipSample {
    pub ip: IpAddr,
    pub interface: String,
    /// Empty when untagged, `100` for one tag, `100.200` for two.
    pub vlan: String,
    /// `namespace/name` of the Service the VIP belongs to.
    pub service: Option<String>,
    pub requests: u64,
    pub replies: u64,
    pub conflicts: u64,
    pub stale: u64,
    pub gratuitous_sent: u64,
}

/// Where the per-VIP counters come from (the BPF maps and the announcer).
pub trait VipSource: Send + Sync {
    fn vip_samples(&self) -> Vec<VipSample>;
}

impl<F: Fn() -> Vec<VipSample> + Send + Sync> VipSource for F {
    fn vip_samples(&self) -> Vec<VipSample> {
        self()
    }
}

type VipCounter = fn(&VipSample) -> u64;

const VIP_COUNTERS: [(&str, &str, VipCounter); 5] = [
    (
        "responder_layer2_requests_received_total",
        "Valid ARP requests and IPv6 Neighbor Solicitations received for the VIP.",
        |s| s.requests,
    ),
    (
        "responder_layer2_responses_sent_total",
        "ARP replies and Neighbor Advertisements sent for the VIP by the XDP program.",
        |s| s.replies,
    ),
    (
        "responder_layer2_gratuitous_sent_total",
        "Gratuitous ARP and unsolicited Neighbor Advertisement packets sent for the VIP.",
        |s| s.gratuitous_sent,
    ),
    (
        "responder_layer2_conflicts_total",
        "Packets in which another MAC claimed the VIP (gratuitous ARP, ARP reply or NA): split brain.",
        |s| s.conflicts,
    ),
    (
        "responder_layer2_stale_total",
        "Requests left unanswered because the agent's heartbeat was stale or the VIP was yielded.",
        |s| s.stale,
    ),
];

/// The `/metrics` body.
pub fn render(metrics: &Metrics, samples: &[VipSample]) -> String {
    render_at(metrics, samples, Instant::now())
}

fn render_at(metrics: &Metrics, samples: &[VipSample], now: Instant) -> String {
    let mut sorted: Vec<&VipSample> = samples.iter().collect();
    sorted.sort_by(|a, b| (a.ip, &a.interface, &a.vlan).cmp(&(b.ip, &b.interface, &b.vlan)));
    let mut out = String::new();
    for (name, help, value) in VIP_COUNTERS {
        family(&mut out, name, "counter", help);
        for sample in &sorted {
            let service = sample.service.as_deref().unwrap_or_default();
            let labels = [
                ("ip", sample.ip.to_string()),
                ("interface", sample.interface.clone()),
                ("vlan", sample.vlan.clone()),
                ("service", service.to_owned()),
            ];
            series(&mut out, name, &labels, value(sample));
        }
    }

    family(
        &mut out,
        "responder_announced",
        "gauge",
        "1 for each VIP this node announces.",
    );
    for (ip, service) in lock(&metrics.announced).iter() {
        let labels = [
            ("ip", ip.to_string()),
            ("service", service.clone().unwrap_or_default()),
        ];
        series(&mut out, "responder_announced", &labels, 1);
    }

    let counters = [
        (
            "responder_lease_renewals_total",
            "Successful renewals of this node's membership Lease.",
            &metrics.lease_renewals,
        ),
        (
            "responder_lease_renewal_failures_total",
            "Failed renewals of this node's membership Lease.",
            &metrics.lease_renewal_failures,
        ),
        (
            "responder_ownership_changes_total",
            "Times this node started or stopped owning a Service.",
            &metrics.ownership_changes,
        ),
        (
            "responder_reconcile_errors_total",
            "VIP installs or removals in the XDP maps that failed.",
            &metrics.reconcile_errors,
        ),
    ];
    for (name, help, counter) in counters {
        family(&mut out, name, "counter", help);
        series(&mut out, name, &[], counter.load(Ordering::Relaxed));
    }

    family(
        &mut out,
        "responder_heartbeat_age_seconds",
        "gauge",
        "Seconds since the agent's last heartbeat; +Inf before the first.",
    );
    let age = match metrics.heartbeat_age(now) {
        Some(age) => format!("{:.3}", age.as_secs_f64()),
        None => "+Inf".to_owned(),
    };
    series(&mut out, "responder_heartbeat_age_seconds", &[], age);

    family(
        &mut out,
        "responder_xdp_attached",
        "gauge",
        "1 while the XDP program is attached.",
    );
    let attached = u8::from(metrics.attached.load(Ordering::Relaxed));
    series(&mut out, "responder_xdp_attached", &[], attached);

    family(
        &mut out,
        "responder_vips_family_disabled",
        "gauge",
        "VIP and interface pairs not answered because the interface has the VIP's IP family (IPv6) disabled.",
    );
    let disabled = metrics.family_disabled.load(Ordering::Relaxed);
    series(&mut out, "responder_vips_family_disabled", &[], disabled);
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn series(out: &mut String, name: &str, labels: &[(&str, String)], value: impl fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A VIP whose conflict counter grew between two scrapes of the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictGrowth {
    pub ip: IpAddr,
    pub interface: String,
    pub vlan: String,
    pub service: Option<String>,
    pub delta: u64,
    pub total: u64,
}

/// Warns about every VIP whose conflict counter grew since `previous`, and
/// returns them. A VIP missing from `previous` counts from zero: its counters
/// are created zeroed when it is installed.
pub fn warn_on_new_conflicts(previous: &[VipSample], current: &[VipSample]) -> Vec<ConflictGrowth> {
    let growth = conflict_growth(previous, current);
    for g in &growth {
        tracing::warn!(
            ip = %g.ip,
            interface = %g.interface,
            vlan = %g.vlan,
            service = g.service.as_deref().unwrap_or(""),
            delta = g.delta,
            total = g.total,
            "another MAC claimed a VIP this node answers for (split brain?)"
        );
    }
    growth
}

fn conflict_growth(previous: &[VipSample], current: &[VipSample]) -> Vec<ConflictGrowth> {
    let before: HashMap<(IpAddr, &str, &str), u64> = previous
        .iter()
        .map(|s| ((s.ip, s.interface.as_str(), s.vlan.as_str()), s.conflicts))
        .collect();
    current
        .iter()
        .filter_map(|s| {
            let old = before
                .get(&(s.ip, s.interface.as_str(), s.vlan.as_str()))
                .copied()
                .unwrap_or(0);
            // A smaller value means the VIP was removed and re-added in
            // between: its counters restarted from zero.
            let delta = if s.conflicts >= old {
                s.conflicts - old
            } else {
                s.conflicts
            };
            (delta > 0).then(|| ConflictGrowth {
                ip: s.ip,
                interface: s.interface.clone(),
                vlan: s.vlan.clone(),
                service: s.service.clone(),
                delta,
                total: s.conflicts,
            })
        })
        .collect()
}

/// A bound listener, so callers learn the address (and any bind error)
/// before serving.
pub struct MetricsServer {
    listener: TcpListener,
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    vips: Arc<dyn VipSource>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MetricsError> {
    MetricsServer::bind(addr)
        .await?
        .run(metrics, vips, shutdown)
        .await;
    Ok(())
}

impl MetricsServer {
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(MetricsServer { listener })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, MetricsError> {
        self.listener.local_addr().map_err(MetricsError::LocalAddr)
    }

    /// Serves until `shutdown` completes; connections still open then are
    /// dropped.
    pub async fn run(
        self,
        metrics: Arc<Metrics>,
        vips: Arc<dyn VipSource>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            match accepted {
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                    let metrics = Arc::clone(&metrics);
                    let vips = Arc::clone(&vips);
                    connections.spawn(async move {
                        let served = tokio::time::timeout(
                            CONNECTION_TIMEOUT,
                            handle(stream, &metrics, vips.as_ref()),
                        )
                        .await;
                        if let Ok(Err(error)) = served {
                            tracing::debug!(%error, "metrics connection failed");
                        }
                    });
                }
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "too many metrics connections; dropping one");
                    drop(stream);
                }
                Err(error) => {
                    // Usually out of file descriptors: give others a moment to close.
                    tracing::warn!(%error, "accepting a metrics connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn handle(mut stream: TcpStream, metrics: &Metrics, vips: &dyn VipSource) -> io::Result<()> {
    let response = match read_head(&mut stream).await? {
        Some(head) => respond(&head, metrics, vips),
        None => Response::text(
            431,
            "Request Header Fields Too Large",
            "request too large\n",
        ),
    };
    stream.write_all(&response.to_bytes()).await?;
    stream.shutdown().await?;
    // Closing with unread input would reset the connection and could destroy
    // the response before the client reads it, so drain (boundedly) until the
    // client closes too.
    let mut drained = 0;
    let mut chunk = [0u8; 1024];
    while drained < MAX_LINGER_BYTES {
        match stream.read(&mut chunk).await? {
            0 => break,
            read => drained += read,
        }
    }
    Ok(())
}

/// The request line and headers, or `None` when they exceed the limit.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(Some(head));
        }
        head.extend_from_slice(&chunk[..read]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Self {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: body.into(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(header) = self.extra_header {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

fn respond(head: &[u8], metrics: &Metrics, vips: &dyn VipSource) -> Response {
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    let path = target.split('?').next().unwrap_or_default();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return Response::text(404, "Not Found", "not found\n");
    }
    if method != "GET" {
        let mut response = Response::text(405, "Method Not Allowed", "only GET\n");
        response.extra_header = Some("Allow: GET");
        return response;
    }
    match path {
        "/metrics" => Response {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Response::text(200, "OK", render(metrics, &vips.vip_samples()))
        },
        "/healthz" => match metrics.liveness() {
            Ok(()) => Response::text(200, "OK", "ok\n"),
            Err(reason) => Response::text(503, "Service Unavailable", format!("{reason}\n")),
        },
        _ if metrics.is_ready() => Response::text(200, "OK", "ready\n"),
        _ => Response::text(503, "Service Unavailable", "initial sync not done\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ip: &str, interface: &str, vlan: &str, conflicts: u64) -> VipSample {
        VipSample {
            ip: ip.parse().expect("ip"),
            interface: interface.into(),
            vlan: vlan.into(),
            service: None,
            requests: 0,
            replies: 0,
            conflicts,
            stale: 0,
            gratuitous_sent: 0,
        }
    }

    #[test]
    fn renders_the_exposition_format() {
        let metrics = Metrics::new();
        metrics.lease_renewal(true);
        metrics.lease_renewal(true);
        metrics.lease_renewal(false);
        metrics.ownership_change();
        metrics.reconcile_error();
        metrics.set_attached(true);
        metrics.set_family_disabled(2);
        let start = Instant::now();
        metrics.heartbeat_at(start);
        metrics.set_announced([
            ("2001:db8::1".parse().expect("ip"), None),
            (
                "192.0.2.1".parse().expect("ip"),
                Some("default/web".to_owned()),
            ),
        ]);
        let samples = [
            VipSample {
                ip: "2001:db8::1".parse().expect("ip"),
                interface: "eth1".into(),
                vlan: "100.200".into(),
                service: None,
                requests: 7,
                replies: 6,
                conflicts: 0,
                stale: 1,
                gratuitous_sent: 3,
            },
            VipSample {
                ip: "192.0.2.1".parse().expect("ip"),
                interface: "eth0".into(),
                vlan: String::new(),
                service: Some("default/web".into()),
                requests: 5,
                replies: 5,
                conflicts: 2,
                stale: 0,
                gratuitous_sent: 6,
            },
        ];
        let text = render_at(&metrics, &samples, start + Duration::from_millis(1500));
        let v4 = r#"{ip="192.0.2.1",interface="eth0",vlan="",service="default/web"}"#;
        let v6 = r#"{ip="2001:db8::1",interface="eth1",vlan="100.200",service=""}"#;
        let expected = format!(
            "\
# HELP responder_layer2_requests_received_total Valid ARP requests and IPv6 Neighbor Solicitations received for the VIP.
# TYPE responder_layer2_requests_received_total counter
responder_layer2_requests_received_total{v4} 5
responder_layer2_requests_received_total{v6} 7
# HELP responder_layer2_responses_sent_total ARP replies and Neighbor Advertisements sent for the VIP by the XDP program.
# TYPE responder_layer2_responses_sent_total counter
responder_layer2_responses_sent_total{v4} 5
responder_layer2_responses_sent_total{v6} 6
# HELP responder_layer2_gratuitous_sent_total Gratuitous ARP and unsolicited Neighbor Advertisement packets sent for the VIP.
# TYPE responder_layer2_gratuitous_sent_total counter
responder_layer2_gratuitous_sent_total{v4} 6
responder_layer2_gratuitous_sent_total{v6} 3
# HELP responder_layer2_conflicts_total Packets in which another MAC claimed the VIP (gratuitous ARP, ARP reply or NA): split brain.
# TYPE responder_layer2_conflicts_total counter
responder_layer2_conflicts_total{v4} 2
responder_layer2_conflicts_total{v6} 0
# HELP responder_layer2_stale_total Requests left unanswered because the agent's heartbeat was stale or the VIP was yielded.
# TYPE responder_layer2_stale_total counter
responder_layer2_stale_total{v4} 0
responder_layer2_stale_total{v6} 1
# HELP responder_announced 1 for each VIP this node announces.
# TYPE responder_announced gauge
responder_announced{{ip=\"192.0.2.1\",service=\"default/web\"}} 1
responder_announced{{ip=\"2001:db8::1\",service=\"\"}} 1
# HELP responder_lease_renewals_total Successful renewals of this node's membership Lease.
# TYPE responder_lease_renewals_total counter
responder_lease_renewals_total 2
# HELP responder_lease_renewal_failures_total Failed renewals of this node's membership Lease.
# TYPE responder_lease_renewal_failures_total counter
responder_lease_renewal_failures_total 1
# HELP responder_ownership_changes_total Times this node started or stopped owning a Service.
# TYPE responder_ownership_changes_total counter
responder_ownership_changes_total 1
# HELP responder_reconcile_errors_total VIP installs or removals in the XDP maps that failed.
# TYPE responder_reconcile_errors_total counter
responder_reconcile_errors_total 1
# HELP responder_heartbeat_age_seconds Seconds since the agent's last heartbeat; +Inf before the first.
# TYPE responder_heartbeat_age_seconds gauge
responder_heartbeat_age_seconds 1.500
# HELP responder_xdp_attached 1 while the XDP program is attached.
# TYPE responder_xdp_attached gauge
responder_xdp_attached 1
# HELP responder_vips_family_disabled VIP and interface pairs not answered because the interface has the VIP's IP family (IPv6) disabled.
# TYPE responder_vips_family_disabled gauge
responder_vips_family_disabled 2
"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn escapes_label_values_and_reports_a_missing_heartbeat() {
        let metrics = Metrics::new();
        metrics.set_announced([(
            "192.0.2.9".parse().expect("ip"),
            Some("odd\\ns/\"quoted\"\nname".to_owned()),
        )]);
        let text = render(&metrics, &[]);
        assert!(
            text.contains(
                r#"responder_announced{ip="192.0.2.9",service="odd\\ns/\"quoted\"\nname"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("responder_heartbeat_age_seconds +Inf\n"),
            "{text}"
        );
        assert!(text.contains("responder_xdp_attached 0\n"), "{text}");
        assert!(
            text.contains(
                "# TYPE responder_layer2_conflicts_total counter\n# HELP responder_layer2_stale_total"
            ),
            "families without VIPs keep their HELP and TYPE lines: {text}"
        );
    }

    #[test]
    fn liveness_needs_attachment_and_a_fresh_heartbeat() {
        let metrics = Metrics::new();
        let start = Instant::now();
        assert_eq!(metrics.liveness_at(start), Err(Unhealthy::NotAttached));
        metrics.set_attached(true);
        assert_eq!(metrics.liveness_at(start), Err(Unhealthy::NoHeartbeat));
        metrics.heartbeat_at(start);
        assert_eq!(metrics.liveness_at(start + HEARTBEAT_TIMEOUT), Ok(()));
        let late = HEARTBEAT_TIMEOUT + Duration::from_millis(200);
        let unhealthy = metrics
            .liveness_at(start + late)
            .expect_err("heartbeat older than the limit");
        assert_eq!(unhealthy, Unhealthy::StaleHeartbeat { age: late });
        assert_eq!(unhealthy.to_string(), "last heartbeat 5.2s ago (limit 5s)");
        metrics.heartbeat_at(start + late);
        assert_eq!(metrics.liveness_at(start + late), Ok(()));
        metrics.set_attached(false);
        assert_eq!(
            metrics.liveness_at(start + late),
            Err(Unhealthy::NotAttached)
        );
    }

    #[test]
    fn conflict_growth_is_per_vip_key_and_survives_counter_resets() {
        let previous = [
            sample("192.0.2.1", "eth0", "", 2),
            sample("192.0.2.1", "eth0", "100", 5),
            sample("192.0.2.2", "eth0", "", 4),
        ];
        let current = [
            // Unchanged: nothing to say.
            sample("192.0.2.1", "eth0", "", 2),
            // Same address, other VLAN: its own counter.
            sample("192.0.2.1", "eth0", "100", 8),
            // Re-added in between: the counter restarted.
            sample("192.0.2.2", "eth0", "", 1),
            // New VIP: counts from zero.
            sample("2001:db8::1", "eth1", "", 3),
            sample("2001:db8::2", "eth1", "", 0),
        ];
        let grown: Vec<(String, String, u64, u64)> = warn_on_new_conflicts(&previous, &current)
            .into_iter()
            .map(|g| (g.ip.to_string(), g.vlan, g.delta, g.total))
            .collect();
        assert_eq!(
            grown,
            [
                ("192.0.2.1".to_owned(), "100".to_owned(), 3, 8),
                ("192.0.2.2".to_owned(), String::new(), 1, 1),
                ("2001:db8::1".to_owned(), String::new(), 3, 3),
            ]
        );
        assert!(conflict_growth(&current, &current).is_empty());
    }

    #[test]
    fn the_global_registry_is_set_once() {
        let metrics = Metrics::new();
        let first = metrics.install_global();
        assert!(
            !Metrics::new().install_global(),
            "a second registry must not replace the first"
        );
        if first {
            record(|m| m.reconcile_error());
            assert_eq!(metrics.reconcile_errors.load(Ordering::Relaxed), 1);
        }
    }

    /// Sends a raw request and returns the whole response, bounded in time.
    async fn get(addr: SocketAddr, request: &str) -> String {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("send request");
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .await
                .expect("read response");
            String::from_utf8(response).expect("UTF-8 response")
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("response within 10 s")
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let metrics = Metrics::new();
        let vips: Arc<dyn VipSource> = Arc::new(|| vec![sample("198.51.100.7", "eth0", "42", 1)]);
        let server = MetricsServer::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = server.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(Arc::clone(&metrics), vips, async {
            let _ = stopped.await;
        }));

        let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{response}"
        );
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{response}"
        );
        assert!(
            body.contains(
                r#"responder_layer2_conflicts_total{ip="198.51.100.7",interface="eth0",vlan="42",service=""} 1"#
            ),
            "{body}"
        );

        let response = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
                && response.ends_with("\r\n\r\nXDP program not attached\n"),
            "{response}"
        );
        metrics.set_attached(true);
        metrics.set_heartbeat();
        let response = get(addr, "GET /healthz?verbose HTTP/1.0\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\nok\n"),
            "{response}"
        );

        let response = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{response}"
        );
        metrics.set_ready();
        let response = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");

        let response = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{response}"
        );
        let response = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
                && response.contains("Allow: GET\r\n"),
            "{response}"
        );
        let oversized = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
        let response = get(addr, &oversized).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");

        stop.send(()).expect("server still running");
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("server stops within 10 s")
            .expect("server task");
    }
}
