//! The command line: what `responder` accepts, and the checks clap cannot
//! express.

use std::{path::PathBuf, time::Duration};

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use regex::Regex;
use responder::{
    bpf::{AttachMode, DEFAULT_PIN_PATH},
    cluster::Announcers,
    duration::parse_duration,
    k8s::{LabelSelector, SelectorError},
    metrics::DEFAULT_METRICS_ADDR,
    nic::vlan_offload::VlanOffloadPolicy,
    vip::VipSpec,
};

use super::shared::{parse_listen_addr, ListenAddr};

#[derive(Parser)]
#[command(name = "responder", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Attach to interfaces and answer for VIPs until SIGINT/SIGTERM
    /// (SIGHUP reloads --vip-file).
    Run(Box<RunArgs>),
    /// Give LoadBalancer Services their addresses from MetalLB IPAddressPools
    /// (one active replica, elected on a Lease) until SIGINT/SIGTERM.
    Controller(Box<super::controller::ControllerArgs>),
    /// Show every LoadBalancer Service's addresses: announced by which node
    /// on which interfaces, or why not. Reads the cluster like kubectl.
    Status(Box<super::status::StatusArgs>),
    /// Show the VIPs of an agent's pinned maps, with counters.
    Vips {
        #[arg(long, env = PIN_PATH_ENV, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the attached interfaces, total counters and the agent's
    /// heartbeat from the pins, whether or not an agent runs.
    Stats {
        #[arg(long, env = PIN_PATH_ENV, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Detach and remove everything an agent pinned (a killed agent's pins,
    /// or those a --kube agent leaves for its successor).
    Cleanup {
        #[arg(long, env = PIN_PATH_ENV, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
    },
}

/// Where the pins are when not on the command line.
const PIN_PATH_ENV: &str = "RESPONDER_PIN_PATH";

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Interface to attach to (repeatable); followed as it goes down, comes
    /// back or is recreated. Required without --kube; with --kube, every
    /// interface selected by the regexes and default exclusions when absent.
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    pub(crate) interfaces: Vec<String>,
    /// Attach only to interfaces whose name matches (unanchored), when no
    /// --interface is given.
    #[arg(long, value_name = "RE", conflicts_with = "interfaces")]
    pub(crate) interface_regex: Option<Regex>,
    /// Never attach to interfaces whose name matches (unanchored), on top of
    /// the default exclusions (docker, veth, cali, cni, flannel, kube-ipvs,
    /// lxc, cilium).
    #[arg(long, value_name = "RE", conflicts_with = "interfaces")]
    pub(crate) exclude_interface_regex: Option<Regex>,
    /// VIP: IP, IP@IFACE, IP@IFACE.VID, IP@IFACE.OUTER.INNER or IP@*.VID (repeatable).
    #[arg(long, value_name = "SPEC")]
    pub(crate) vip: Vec<VipSpec>,
    /// File with one VIP spec per line (`#` comments); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub(crate) vip_file: Option<PathBuf>,
    /// Also answer for the LoadBalancer Services this node owns.
    #[arg(long)]
    pub(crate) kube: bool,
    /// Kubeconfig for --kube; default: $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account.
    #[arg(long, value_name = "PATH", requires = "kube")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// This node's name, as in its Node object (required with --kube).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub(crate) node_name: Option<String>,
    /// Namespace of the membership Leases; default: $POD_NAMESPACE, the
    /// service account's namespace, else responder-system.
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// With --kube, this agent's own pod (in --namespace): when it is
    /// stopped, a DaemonSet that is gone or being deleted means an uninstall
    /// (detach and unpin everything), anything else a restart.
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub(crate) pod_name: Option<String>,
    /// Handle only Services with this spec.loadBalancerClass (default: only
    /// Services without a class).
    #[arg(long, value_name = "NAME")]
    pub(crate) lb_class: Option<String>,
    /// Label selector of the Nodes that may answer for Services.
    #[arg(long, value_name = "SELECTOR", value_parser = parse_selector)]
    pub(crate) node_selector: Option<String>,
    /// How long an announcing node stays a member after its last Lease
    /// renewal seen: the failover time.
    #[arg(long, value_name = "DURATION", default_value = "800ms", value_parser = parse_duration)]
    pub(crate) lease_duration: Duration,
    /// How often an announcing node renews its membership Lease while the
    /// write budget allows it (the fastest cadence).
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub(crate) renew_interval: Duration,
    /// Membership Lease writes per second the whole cluster may spend:
    /// standbys renew slowly within a fifth of it, announcers at
    /// --renew-interval with the rest (see docs/agents.md, "Announcers and
    /// standbys").
    #[arg(long, value_name = "WRITES", default_value_t = 90.0, value_parser = parse_budget)]
    pub(crate) lease_write_budget: f64,
    /// How many nodes announce: `auto` as many as the write budget affords
    /// at --renew-interval, a number for at most that many, `all` for every
    /// eligible node (failover then grows with the cluster). Every set of
    /// nodes that may own some Service keeps two announcers whatever this
    /// says.
    #[arg(long, value_name = "auto|N|all", default_value = "auto", value_parser = parse_announcers)]
    pub(crate) announcers: Announcers,
    /// How long a node that (re)joins the membership must stay live before
    /// Services move to it, so a flapping node does not move them back and
    /// forth.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) hold_down: Duration,
    /// How long a node taking an address over from a node that still
    /// answers for it (a planned move: a node back after its hold-down, a
    /// change of announcers or of L2Advertisements) waits before answering,
    /// so the two never answer together; `0s` answers at once. A failover,
    /// the holder dead or unable to answer, never waits.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub(crate) handover_pause: Duration,
    /// bpffs directory for the program, map and link pins. A container sets
    /// it once in its environment, so `kubectl exec … responder vips` finds
    /// the pins where the agent's volume mounts them.
    #[arg(long, value_name = "DIR", env = PIN_PATH_ENV, default_value = DEFAULT_PIN_PATH)]
    pub(crate) pin_path: PathBuf,
    /// XDP attach mode: auto tries driver mode and falls back to skb mode.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub(crate) xdp_mode: AttachMode,
    /// Gratuitous ARP / unsolicited NA packets (per type) sent for a new VIP.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) announce_count: u32,
    /// Spacing of announcements; Linux ignores a second gratuitous ARP within 1 s.
    #[arg(long, value_name = "DURATION", default_value = "1.1s", value_parser = parse_duration)]
    pub(crate) announce_interval: Duration,
    /// How often every owned VIP is announced again, with one gratuitous ARP
    /// request (IPv4) or unsolicited NA (IPv6) per VIP, interface and VLAN,
    /// spread evenly over the interval; `0` or `off` disables it. Switches
    /// commonly age their forwarding table after 300 s, routers their ARP
    /// cache after minutes to hours, so a VIP nobody sends from would drop
    /// out of the switch's table and its traffic flood or be lost; 60 s
    /// refreshes it five times per 300 s ageing, for about 167 frames/s at
    /// 10,000 VIPs (at most 500 frames/s whatever their number).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval_or_off)]
    pub(crate) reannounce_interval: Duration,
    /// Heartbeat age after which the XDP program stops answering: bounds how
    /// long a dead agent's node keeps claiming VIPs. Longer than
    /// --restart-grace, so a restarting agent's node answers throughout.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub(crate) stale_after: Duration,
    /// Heartbeat age after which another MAC announcing a VIP makes this
    /// node yield it at once; shorter than --stale-after. Above the 1 s
    /// heartbeat, and short enough that a successor's second announcement
    /// (one --announce-interval after its first, which comes a Lease after
    /// the agent died) always finds it passed: two MACs answer for at most
    /// one announcement interval after an agent alone dies.
    #[arg(long, value_name = "DURATION", default_value = "1500ms", value_parser = parse_duration)]
    pub(crate) yield_after: Duration,
    /// Listen address of /metrics (port 0 picks a free port); `off`
    /// disables it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_ADDR, value_parser = parse_listen_addr)]
    pub(crate) metrics_addr: ListenAddr,
    /// Listen address of /healthz and /readyz, apart from /metrics so that
    /// scrapers (or anyone) holding connections there cannot starve the
    /// kubelet's probes; `off` disables it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HEALTH_ADDR, value_parser = parse_listen_addr)]
    pub(crate) health_addr: ListenAddr,
    /// With --kube, detach and unpin on SIGTERM/SIGINT, and release this
    /// node's Lease, instead of leaving the program attached for the next
    /// agent (e.g. when uninstalling).
    #[arg(long)]
    pub(crate) detach_on_exit: bool,
    /// With --kube, how long the other nodes keep this node's Services in
    /// place after its agent stops, waiting for it to come back (a DaemonSet
    /// rolling update). A node that does not come back fails over when it
    /// ends; a cordoned node's agent releases its Services at once instead.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) restart_grace: Duration,
    /// How long an attached interface may lose carrier before its node stops
    /// counting it as serving (and its Services move); the program stays
    /// attached, as some drivers reset the link on every attach.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) carrier_debounce: Duration,
    /// Receive VLAN tag stripping on the attached NICs: `turn-off` while
    /// attached (restored on a clean exit or `responder cleanup`), so the
    /// program sees the tags that VLAN-scoped VIPs are keyed on; `leave`
    /// touches no NIC, and VLAN-scoped VIPs are then answered only where
    /// stripping is already off.
    #[arg(long, value_enum, value_name = "POLICY", default_value = "turn-off")]
    pub(crate) vlan_offload: VlanOffloadPolicy,
}

/// The default `--health-addr`: the kubelet probes it on the node itself.
pub(crate) const DEFAULT_HEALTH_ADDR: &str = "127.0.0.1:9851";

/// A duration, or `0`/`off` for none (zero).
fn parse_interval_or_off(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" | "off" => Ok(Duration::ZERO),
        text => parse_duration(text).map_err(|e| e.to_string()),
    }
}

fn parse_budget(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(budget) if budget.is_finite() && budget > 0.0 => Ok(budget),
        _ => Err("expected a positive number of writes per second".into()),
    }
}

fn parse_announcers(text: &str) -> Result<Announcers, String> {
    match text.trim() {
        "auto" => Ok(Announcers::Budgeted),
        "all" => Ok(Announcers::All),
        number => match number.parse::<usize>() {
            Ok(most) => Ok(Announcers::AtMost(most)),
            Err(_) => Err("expected auto, all or a number of nodes".into()),
        },
    }
}

fn parse_selector(text: &str) -> Result<String, SelectorError> {
    text.parse::<LabelSelector>()?;
    Ok(text.to_owned())
}

/// Linux retries an unanswered ARP request after a second.
const MAX_HANDOVER_PAUSE: Duration = Duration::from_secs(1);

impl RunArgs {
    /// What clap cannot express: the requirements that depend on --kube.
    fn check(&self) -> Result<(), String> {
        if self.handover_pause > MAX_HANDOVER_PAUSE {
            return Err(format!(
                "--handover-pause ({:?}) must be at most {MAX_HANDOVER_PAUSE:?}: a moved address \
                 goes unanswered that long, past an ARP or ND client's first retry",
                self.handover_pause
            ));
        }
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
            if !self.detach_on_exit && self.restart_grace >= self.stale_after {
                return Err(format!(
                    "--restart-grace ({:?}) must be shorter than --stale-after ({:?}): the node must \
                     keep answering while the others wait for its agent",
                    self.restart_grace, self.stale_after
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
pub(crate) fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    let checked = match &cli.command {
        Command::Run(run) => run.check(),
        Command::Controller(controller) => controller.check(),
        _ => Ok(()),
    };
    checked.map_err(|message| {
        Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, message)
    })?;
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(args.reannounce_interval, Duration::from_secs(60));
        assert_eq!(args.xdp_mode, AttachMode::Auto);
        assert_eq!(args.pin_path, PathBuf::from(DEFAULT_PIN_PATH));
        assert!(!args.kube);
        assert_eq!(args.stale_after, Duration::from_secs(15));
        assert_eq!(args.yield_after, Duration::from_millis(1500));
        assert_eq!(
            args.metrics_addr,
            ListenAddr::Listen(DEFAULT_METRICS_ADDR.parse().expect("default address"))
        );
        assert_eq!(
            args.health_addr,
            ListenAddr::Listen("127.0.0.1:9851".parse().expect("default address"))
        );
        assert!(!args.detach_on_exit);
        assert_eq!(args.restart_grace, Duration::from_secs(10));
        assert_eq!(args.carrier_debounce, Duration::from_secs(1));
        assert_eq!(args.vlan_offload, VlanOffloadPolicy::TurnOff);
    }

    #[test]
    fn cli_checks_the_stale_gate_and_metrics_address() {
        let base = ["-i", "eth0", "--vip", "192.0.2.10"];
        let with = |extra: &[&str]| run_args(&[&base[..], extra].concat());
        let e = with(&["--stale-after", "1s"])
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
        assert_eq!(args.metrics_addr, ListenAddr::Off);
        let args = with(&["--metrics-addr", "127.0.0.1:0"]).expect("port 0");
        assert_eq!(
            args.metrics_addr,
            ListenAddr::Listen("127.0.0.1:0".parse().expect("addr"))
        );
        let e = with(&["--metrics-addr", "localhost"])
            .err()
            .expect("no port");
        assert!(e.contains("--metrics-addr"), "{e}");
        let args = with(&["--health-addr", "off"]).expect("no probes");
        assert_eq!(args.health_addr, ListenAddr::Off);
    }

    #[test]
    fn the_restart_grace_must_end_before_the_stale_bound() {
        let kube = ["--kube", "--node-name", "n1"];
        let with = |extra: &[&str]| run_args(&[&kube[..], extra].concat());
        let e = with(&["--restart-grace", "20s"])
            .err()
            .expect("grace beyond the stale bound");
        assert!(e.contains("--restart-grace"), "{e}");
        let args = with(&["--restart-grace", "3s", "--stale-after", "5s"]).expect("short grace");
        assert_eq!(args.restart_grace, Duration::from_secs(3));
        with(&["--restart-grace", "20s", "--detach-on-exit"])
            .expect("no grace is asked for when detaching");
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
        assert_eq!(args.lease_duration, Duration::from_millis(800));
        assert_eq!(args.renew_interval, Duration::from_millis(200));
        assert_eq!(args.lease_write_budget, 90.0);
        assert_eq!(args.announcers, Announcers::Budgeted);
        assert_eq!(args.hold_down, Duration::from_secs(10));
        assert_eq!(args.handover_pause, Duration::from_millis(100));
    }

    #[test]
    fn the_handover_pause_is_at_most_a_second() {
        let base = ["--kube", "--node-name", "n1", "--handover-pause"];
        let with = |pause: &str| {
            let mut argv = base.to_vec();
            argv.push(pause);
            run_args(&argv)
        };
        assert_eq!(with("0s").expect("zero").handover_pause, Duration::ZERO);
        assert_eq!(
            with("1s").expect("a second").handover_pause,
            Duration::from_secs(1)
        );
        let e = with("1500ms").err().expect("too long");
        assert!(
            e.contains("--handover-pause") && e.contains("at most 1s"),
            "{e}"
        );
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
            "--announcers",
            "all",
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
        assert_eq!(args.announcers, Announcers::All);
        assert_eq!(
            run_args(&["--kube", "--node-name", "n1", "--announcers", "5"])
                .expect("a number")
                .announcers,
            Announcers::AtMost(5)
        );
        assert_eq!(
            args.interface_regex.map(|r| r.to_string()).as_deref(),
            Some("^eth")
        );
        assert_eq!(args.vip.len(), 1);
    }

    #[test]
    fn cli_rejects_bad_kube_settings() {
        let e = run_args(&["--kube", "--node-name", "n1", "--renew-interval", "1s"])
            .err()
            .expect("renew not below lease");
        assert!(e.contains("shorter than --lease-duration"), "{e}");
        let e = run_args(&["--kube", "--node-name", "n1", "--lease-write-budget", "0"])
            .err()
            .expect("no budget");
        assert!(e.contains("--lease-write-budget"), "{e}");
        let e = run_args(&["--kube", "--node-name", "n1", "--announcers", "most"])
            .err()
            .expect("not a count");
        assert!(e.contains("--announcers"), "{e}");
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

    #[test]
    fn reannouncement_takes_a_duration_or_off() {
        let with = |value: &str| {
            run_args(&[
                "-i",
                "eth0",
                "--vip",
                "192.0.2.1",
                "--reannounce-interval",
                value,
            ])
            .map(|args| args.reannounce_interval)
        };
        assert_eq!(with("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(with("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(with("0"), Ok(Duration::ZERO));
        assert_eq!(with("off"), Ok(Duration::ZERO));
        assert_eq!(with("0s"), Ok(Duration::ZERO));
        let e = with("60").expect_err("missing unit");
        assert!(e.contains("missing unit"), "{e}");
    }
}
