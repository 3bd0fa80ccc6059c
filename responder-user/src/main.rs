use std::{io::Write as _, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use regex::Regex;
use responder::{
    agent::{Agent, AgentConfig},
    bpf::{self, AttachMode, PinnedStats, StaleGate, VipRow, DEFAULT_PIN_PATH},
    duration::parse_duration,
    kube::{KubeSettings, LabelSelector, SelectorError},
    metrics::{Metrics, MetricsServer, VipSource, DEFAULT_METRICS_ADDR},
    sources::KubeSourceConfig,
    vip::VipSpec,
};
use tracing_subscriber::EnvFilter;

/// XDP responder answering ARP and IPv6 Neighbor Discovery for virtual IPs.
#[derive(Parser)]
#[command(name = "responder", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach to interfaces and answer for VIPs until SIGINT/SIGTERM
    /// (SIGHUP reloads --vip-file).
    Run(Box<RunArgs>),
    /// Show the VIPs of an agent's pinned maps, with counters.
    Vips {
        #[arg(long, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the attached interfaces, total counters and the agent's
    /// heartbeat from the pins, whether or not an agent runs.
    Stats {
        #[arg(long, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Detach and remove everything an agent pinned (a killed agent's pins,
    /// or those a --kube agent leaves for its successor).
    Cleanup {
        #[arg(long, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Interface to attach to (repeatable); followed as it goes down, comes
    /// back or is recreated. Required without --kube; with --kube, every
    /// interface selected by the regexes and default exclusions when absent.
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    interfaces: Vec<String>,
    /// Attach only to interfaces whose name matches (unanchored), when no
    /// --interface is given.
    #[arg(long, value_name = "RE", conflicts_with = "interfaces")]
    interface_regex: Option<Regex>,
    /// Never attach to interfaces whose name matches (unanchored), on top of
    /// the default exclusions (docker, veth, cali, cni, flannel, kube-ipvs,
    /// lxc, cilium).
    #[arg(long, value_name = "RE", conflicts_with = "interfaces")]
    exclude_interface_regex: Option<Regex>,
    /// VIP: IP, IP@IFACE, IP@IFACE.VID, IP@IFACE.OUTER.INNER or IP@*.VID (repeatable).
    #[arg(long, value_name = "SPEC")]
    vip: Vec<VipSpec>,
    /// File with one VIP spec per line (`#` comments); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    vip_file: Option<PathBuf>,
    /// Also answer for the LoadBalancer Services this node owns.
    #[arg(long)]
    kube: bool,
    /// Kubeconfig for --kube; default: $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account.
    #[arg(long, value_name = "PATH", requires = "kube")]
    kubeconfig: Option<PathBuf>,
    /// This node's name, as in its Node object (required with --kube).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    node_name: Option<String>,
    /// Namespace of the membership Leases; default: $POD_NAMESPACE, the
    /// service account's namespace, else responder-system.
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Handle only Services with this spec.loadBalancerClass (default: only
    /// Services without a class).
    #[arg(long, value_name = "NAME")]
    lb_class: Option<String>,
    /// Label selector of the Nodes that may answer for Services.
    #[arg(long, value_name = "SELECTOR", value_parser = parse_selector)]
    node_selector: Option<String>,
    /// How long a node stays a member after its last Lease renewal seen: the
    /// failover time.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// How often this node renews its membership Lease.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    renew_interval: Duration,
    /// bpffs directory for the program, map and link pins.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_PATH)]
    pin_path: PathBuf,
    /// XDP attach mode: auto tries driver mode and falls back to skb mode.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    xdp_mode: AttachMode,
    /// Gratuitous ARP / unsolicited NA packets (per type) sent for a new VIP.
    #[arg(long, value_name = "N", default_value_t = 3)]
    announce_count: u32,
    /// Spacing of announcements; Linux ignores a second gratuitous ARP within 1 s.
    #[arg(long, value_name = "DURATION", default_value = "1.1s", value_parser = parse_duration)]
    announce_interval: Duration,
    /// Heartbeat age after which the XDP program stops answering: bounds how
    /// long a dead agent's node keeps claiming VIPs.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    stale_after: Duration,
    /// Heartbeat age after which another MAC announcing a VIP makes this
    /// node yield it at once; shorter than --stale-after.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    yield_after: Duration,
    /// Listen address of /metrics, /healthz and /readyz (port 0 picks a free
    /// port); `off` disables them.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_ADDR, value_parser = parse_metrics_addr)]
    metrics_addr: MetricsAddr,
    /// With --kube, detach and unpin on SIGTERM/SIGINT instead of leaving the
    /// program attached for the next agent (e.g. when uninstalling).
    #[arg(long)]
    detach_on_exit: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricsAddr {
    Off,
    Listen(SocketAddr),
}

fn parse_metrics_addr(text: &str) -> Result<MetricsAddr, String> {
    match text {
        "" | "off" => Ok(MetricsAddr::Off),
        _ => text
            .parse()
            .map(MetricsAddr::Listen)
            .map_err(|e| format!("{e}: expected IP:PORT or `off`")),
    }
}

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const DEFAULT_NAMESPACE: &str = "responder-system";

fn parse_selector(text: &str) -> Result<String, SelectorError> {
    text.parse::<LabelSelector>()?;
    Ok(text.to_owned())
}

impl RunArgs {
    /// What clap cannot express: the requirements that depend on --kube.
    fn check(&self) -> Result<(), String> {
        if self.yield_after.is_zero() || self.yield_after >= self.stale_after {
            return Err(format!(
                "--yield-after ({:?}) must be non-zero and shorter than --stale-after ({:?})",
                self.yield_after, self.stale_after
            ));
        }
        if self.kube {
            if self.node_name.as_deref().is_none_or(str::is_empty) {
                return Err(
                    "--kube needs --node-name (or NODE_NAME): the name of this node's Node object"
                        .into(),
                );
            }
            if self.renew_interval.is_zero() || self.renew_interval >= self.lease_duration {
                return Err(format!(
                    "--renew-interval ({:?}) must be non-zero and shorter than --lease-duration ({:?})",
                    self.renew_interval, self.lease_duration
                ));
            }
            return Ok(());
        }
        if self.interfaces.is_empty() {
            return Err("--interface is required without --kube".into());
        }
        if self.vip.is_empty() && self.vip_file.is_none() {
            return Err("--vip or --vip-file is required without --kube".into());
        }
        Ok(())
    }
}

/// Parses and checks the command line like clap does, errors included.
fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    if let Command::Run(run) = &cli.command {
        run.check().map_err(|message| {
            Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, message)
        })?;
    }
    Ok(cli)
}

/// kube-client's per-request trace logs every failed request at ERROR: four
/// lines a second from Lease renewals alone while the API server is down. The
/// agent logs each failing watch or renewal once, and its recovery, with the
/// same error text, so the trace is off unless `RUST_LOG` names kube_client.
const KUBE_REQUEST_TRACE_OFF: &str = "kube_client::client::builder=off";

/// `RUST_LOG` (or `info`), with kube-client's request trace off; an invalid
/// `RUST_LOG` falls back to the default rather than failing the start.
fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let default = || EnvFilter::new(format!("info,{KUBE_REQUEST_TRACE_OFF}"));
    match rust_log {
        Some(spec) if spec.contains("kube_client") => EnvFilter::try_new(spec),
        Some(spec) => EnvFilter::try_new(format!("{spec},{KUBE_REQUEST_TRACE_OFF}")),
        None => return default(),
    }
    .unwrap_or_else(|_| default())
}

fn main() -> anyhow::Result<()> {
    let cli = parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        // Colour codes would garble log files and `kubectl logs`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Vips { pin_path, json } => vips(&pin_path, json),
        Command::Stats { pin_path, json } => stats(&pin_path, json),
        Command::Cleanup { pin_path } => cleanup(&pin_path),
    }
}

fn namespace(flag: Option<String>) -> String {
    flag.or_else(|| {
        std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
            .ok()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
    })
    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Builds the client up front so a broken kubeconfig fails the start; the
/// API server itself may well be unreachable for now.
async fn kube_source(args: &RunArgs) -> anyhow::Result<KubeSourceConfig> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding the Kubernetes API server (no --kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster service account)")?,
    };
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let node_name = args.node_name.clone().context("--kube needs --node-name")?;
    let mut settings = KubeSettings::new(node_name, namespace(args.namespace.clone()));
    settings.lb_class = args.lb_class.clone();
    settings.node_selector = args.node_selector.clone();
    settings.lease_duration = args.lease_duration;
    settings.renew_interval = args.renew_interval;
    Ok(KubeSourceConfig { client, settings })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let kube = match args.kube {
            true => Some(kube_source(&args).await?),
            false => None,
        };
        if let Some(kube) = &kube {
            tracing::info!(node = %kube.settings.node_name, namespace = %kube.settings.namespace, "Kubernetes source enabled");
        }
        // Bound before anything is attached, so a taken port fails the start
        // rather than leave a node answering without observability.
        let server = match args.metrics_addr {
            MetricsAddr::Off => None,
            MetricsAddr::Listen(addr) => {
                let server = MetricsServer::bind(addr).await?;
                let bound = server.local_addr()?;
                tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
                Some(server)
            }
        };
        let metrics = Metrics::new();
        metrics.install_global();
        let config = AgentConfig {
            interfaces: args.interfaces,
            interface_regex: args.interface_regex,
            exclude_interface_regex: args.exclude_interface_regex,
            vips: args.vip,
            vip_file: args.vip_file,
            pin_path: args.pin_path,
            attach_mode: args.xdp_mode,
            announce_count: args.announce_count,
            announce_interval: args.announce_interval,
            keep_attached_on_exit: kube.is_some() && !args.detach_on_exit,
            kube,
            stale_gate: StaleGate {
                stale_after: args.stale_after,
                yield_after: args.yield_after,
            },
        };
        let agent = Agent::start(config)
            .await
            .context("starting the responder")?;
        if let Some(server) = server {
            let vips: Arc<dyn VipSource> = Arc::new(agent.vip_counters());
            // Ends with the runtime when the agent returns.
            tokio::spawn(server.run(metrics, vips, std::future::pending()));
        }
        // No other dynamic sources: the sender is dropped and the channel closes.
        let (_, updates) = tokio::sync::mpsc::channel(1);
        agent.run(updates).await.context("the responder stopped")
    })
}

fn vips(pin_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let rows = bpf::read_pinned_vips(pin_path).context("reading the pinned VIP maps")?;
    print_report(&rows, json, |rows| format_table(rows))
}

/// Prints `report` as pretty JSON, or as the text `format` makes of it.
fn print_report<T: serde::Serialize + ?Sized>(
    report: &T,
    json: bool,
    format: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report).context("writing JSON")?;
        writeln!(out)?;
    } else {
        out.write_all(format(report).as_bytes())?;
    }
    Ok(())
}

fn format_table(rows: &[VipRow]) -> String {
    let header = [
        "IP",
        "INTERFACE",
        "VLAN",
        "MAC",
        "REQUESTS",
        "REPLIES",
        "CONFLICTS",
        "STALE",
    ]
    .map(String::from);
    let cells: Vec<[String; 8]> = std::iter::once(header)
        .chain(rows.iter().map(|r| {
            [
                r.ip.to_string(),
                r.interface.clone(),
                r.vlan.clone().unwrap_or_else(|| "-".into()),
                r.mac.clone(),
                r.requests.to_string(),
                r.replies.to_string(),
                r.conflicts.to_string(),
                r.stale.to_string(),
            ]
        }))
        .collect();
    let widths: Vec<usize> = (0..8)
        .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c >= 4 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn stats(pin_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let stats = bpf::read_pinned_stats(pin_path).context("reading the pinned maps and links")?;
    print_report(&stats, json, format_stats)
}

fn format_stats(stats: &PinnedStats) -> String {
    let mut text = String::new();
    let counters = |c: &bpf::Totals| {
        format!(
            "requests {} replies {} conflicts {} stale {}",
            c.requests, c.replies, c.conflicts, c.stale
        )
    };
    if stats.interfaces.is_empty() {
        text.push_str("attached: none\n");
    }
    for link in &stats.interfaces {
        let ifindex = link
            .ifindex
            .map_or_else(|| "gone".to_owned(), |i| i.to_string());
        text.push_str(&format!(
            "interface {} (ifindex {ifindex}): link {} program {}: {}\n",
            link.interface,
            link.link_id,
            link.program_id,
            counters(&link.counters)
        ));
    }
    text.push_str(&format!("total: {}\n", counters(&stats.totals)));
    match &stats.agent {
        None => text.push_str("heartbeat: not pinned (agent predates the stale gate)\n"),
        Some(agent) => {
            let age = agent
                .heartbeat_age_seconds
                .map_or_else(|| "never written".to_owned(), |a| format!("{a:.1}s ago"));
            let state = if agent.stale {
                " (STALE: not answering)"
            } else {
                ""
            };
            text.push_str(&format!(
                "heartbeat: {age}{state}; stale after {}s, yield after {}s\n",
                agent.stale_after_seconds, agent.yield_after_seconds
            ));
        }
    }
    text
}

fn cleanup(pin_path: &std::path::Path) -> anyhow::Result<()> {
    let removed =
        bpf::cleanup(pin_path).with_context(|| format!("cleaning up {}", pin_path.display()))?;
    if removed.is_empty() {
        println!("nothing to clean up at {}", pin_path.display());
    }
    for path in removed {
        println!("removed {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filter_keeps_the_request_trace_off_unless_asked_for() {
        let shown = |spec: Option<&str>| log_filter(spec).to_string();
        assert_eq!(shown(None), "kube_client::client::builder=off,info");
        assert_eq!(
            shown(Some("debug")),
            "kube_client::client::builder=off,debug"
        );
        assert_eq!(shown(Some("kube_client=trace")), "kube_client=trace");
        assert_eq!(
            shown(Some("not a filter[")),
            shown(None),
            "an invalid RUST_LOG falls back to the default"
        );
    }

    #[test]
    fn table_aligns_columns_and_shows_untagged_as_dash() {
        let rows = vec![
            VipRow {
                ip: "192.0.2.10".parse().expect("ip"),
                interface: "eth0".into(),
                ifindex: 2,
                vlan: None,
                mac: "02:00:00:00:00:0a".into(),
                requests: 5,
                replies: 5,
                conflicts: 0,
                stale: 0,
            },
            VipRow {
                ip: "2001:db8::10".parse().expect("ip"),
                interface: "eth1".into(),
                ifindex: 3,
                vlan: Some("100.200".into()),
                mac: "02:00:00:00:00:0b".into(),
                requests: 12345,
                replies: 12,
                conflicts: 1,
                stale: 7,
            },
        ];
        let table = format_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "IP            INTERFACE  VLAN     MAC                REQUESTS  REPLIES  CONFLICTS  STALE"
        );
        assert_eq!(
            lines[1],
            "192.0.2.10    eth0       -        02:00:00:00:00:0a         5        5          0      0"
        );
        assert_eq!(
            lines[2],
            "2001:db8::10  eth1       100.200  02:00:00:00:00:0b     12345       12          1      7"
        );
    }

    fn run_args(args: &[&str]) -> Result<RunArgs, String> {
        let cli = parse(["responder", "run"].iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(args) => Ok(*args),
            _ => panic!("expected run"),
        }
    }

    #[test]
    fn cli_requires_a_vip_source_and_an_interface() {
        let e = run_args(&["-i", "eth0"]).err().expect("no VIP source");
        assert!(e.contains("--vip or --vip-file"), "{e}");
        let e = run_args(&["--vip", "192.0.2.10"])
            .err()
            .expect("no interface");
        assert!(e.contains("--interface is required"), "{e}");
        let args = run_args(&["-i", "eth0", "--vip-file", "/etc/vips"]).expect("file only");
        assert_eq!(args.announce_interval, Duration::from_millis(1100));
        assert_eq!(args.announce_count, 3);
        assert_eq!(args.xdp_mode, AttachMode::Auto);
        assert_eq!(args.pin_path, PathBuf::from(DEFAULT_PIN_PATH));
        assert!(!args.kube);
        assert_eq!(args.stale_after, Duration::from_secs(10));
        assert_eq!(args.yield_after, Duration::from_secs(2));
        assert_eq!(
            args.metrics_addr,
            MetricsAddr::Listen(DEFAULT_METRICS_ADDR.parse().expect("default address"))
        );
        assert!(!args.detach_on_exit);
    }

    #[test]
    fn cli_checks_the_stale_gate_and_metrics_address() {
        let base = ["-i", "eth0", "--vip", "192.0.2.10"];
        let with = |extra: &[&str]| run_args(&[&base[..], extra].concat());
        let e = with(&["--stale-after", "2s"])
            .err()
            .expect("yield not below stale");
        assert!(e.contains("shorter than --stale-after"), "{e}");
        let args = with(&[
            "--stale-after",
            "3s",
            "--yield-after",
            "1s",
            "--metrics-addr",
            "off",
        ])
        .expect("short gate, no metrics");
        assert_eq!(args.stale_after, Duration::from_secs(3));
        assert_eq!(args.metrics_addr, MetricsAddr::Off);
        let args = with(&["--metrics-addr", "127.0.0.1:0"]).expect("port 0");
        assert_eq!(
            args.metrics_addr,
            MetricsAddr::Listen("127.0.0.1:0".parse().expect("addr"))
        );
        let e = with(&["--metrics-addr", "localhost"])
            .err()
            .expect("no port");
        assert!(e.contains("--metrics-addr"), "{e}");
    }

    #[test]
    fn stats_text_shows_links_totals_and_heartbeat() {
        let counters = bpf::Totals {
            requests: 4,
            replies: 3,
            conflicts: 0,
            stale: 1,
        };
        let stats = PinnedStats {
            interfaces: vec![bpf::LinkRow {
                interface: "eth0".into(),
                ifindex: Some(2),
                link_id: 7,
                program_id: 42,
                counters,
            }],
            totals: counters,
            agent: Some(bpf::HeartbeatRow::new(
                &responder_common::AgentState {
                    heartbeat_ns: 1_000_000_000,
                    stale_after_ns: 10_000_000_000,
                    yield_after_ns: 2_000_000_000,
                },
                Duration::from_millis(12_500),
            )),
        };
        assert_eq!(
            format_stats(&stats),
            "interface eth0 (ifindex 2): link 7 program 42: requests 4 replies 3 conflicts 0 stale 1\n\
             total: requests 4 replies 3 conflicts 0 stale 1\n\
             heartbeat: 11.5s ago (STALE: not answering); stale after 10s, yield after 2s\n"
        );
    }

    #[test]
    fn kube_needs_a_node_name_but_no_interface_or_vip() {
        // NODE_NAME from the environment would satisfy --node-name.
        if std::env::var_os("NODE_NAME").is_none() {
            let e = run_args(&["--kube"]).err().expect("no node name");
            assert!(e.contains("--node-name"), "{e}");
        }
        let args = run_args(&["--kube", "--node-name", "n1"]).expect("kube alone");
        assert_eq!(args.node_name.as_deref(), Some("n1"));
        assert!(args.interfaces.is_empty() && args.vip.is_empty());
        assert_eq!(args.lease_duration, Duration::from_secs(1));
        assert_eq!(args.renew_interval, Duration::from_millis(250));
    }

    #[test]
    fn kube_accepts_every_option_of_the_contract() {
        let args = run_args(&[
            "--kube",
            "--kubeconfig",
            "/tmp/kubeconfig",
            "--node-name",
            "n1",
            "--namespace",
            "ns1",
            "--lb-class",
            "example.com/responder",
            "--node-selector",
            "role=edge,!tainted",
            "--lease-duration",
            "2s",
            "--renew-interval",
            "500ms",
            "--interface-regex",
            "^eth",
            "--exclude-interface-regex",
            "^eth9$",
            "--vip",
            "192.0.2.10",
        ])
        .expect("all options");
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/tmp/kubeconfig")));
        assert_eq!(args.namespace.as_deref(), Some("ns1"));
        assert_eq!(args.lb_class.as_deref(), Some("example.com/responder"));
        assert_eq!(args.node_selector.as_deref(), Some("role=edge,!tainted"));
        assert_eq!(args.lease_duration, Duration::from_secs(2));
        assert_eq!(args.renew_interval, Duration::from_millis(500));
        assert_eq!(
            args.interface_regex.map(|r| r.to_string()).as_deref(),
            Some("^eth")
        );
        assert_eq!(args.vip.len(), 1);
        assert_eq!(namespace(Some("ns1".into())), "ns1");
    }

    #[test]
    fn cli_rejects_bad_kube_settings() {
        let e = run_args(&["--kube", "--node-name", "n1", "--renew-interval", "1s"])
            .err()
            .expect("renew not below lease");
        assert!(e.contains("shorter than --lease-duration"), "{e}");
        let e = run_args(&["--kube", "--node-name", "n1", "--node-selector", "a in"])
            .err()
            .expect("bad selector");
        assert!(e.contains("--node-selector"), "{e}");
        let e = run_args(&["-i", "eth0", "--vip", "192.0.2.10", "--kubeconfig", "/k"])
            .err()
            .expect("--kubeconfig without --kube");
        assert!(e.contains("--kube"), "{e}");
        let e = run_args(&["--kube", "--node-name", "n1", "--interface-regex", "("])
            .err()
            .expect("bad regex");
        assert!(e.contains("--interface-regex"), "{e}");
        let e = run_args(&[
            "--kube",
            "--node-name",
            "n1",
            "-i",
            "eth0",
            "--interface-regex",
            "^e",
        ])
        .err()
        .expect("names and regex together");
        assert!(e.contains("cannot be used with"), "{e}");
    }

    #[test]
    fn cli_reports_bad_vips_and_durations() {
        let e = Cli::try_parse_from([
            "responder",
            "run",
            "-i",
            "eth0",
            "--vip",
            "192.0.2.10@eth0.5000",
        ])
        .err()
        .expect("bad VLAN")
        .to_string();
        assert!(e.contains("4094"), "{e}");
        let e = Cli::try_parse_from([
            "responder",
            "run",
            "-i",
            "eth0",
            "--vip",
            "192.0.2.1",
            "--announce-interval",
            "2",
        ])
        .err()
        .expect("missing unit")
        .to_string();
        assert!(e.contains("missing unit"), "{e}");
    }
}
