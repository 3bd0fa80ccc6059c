use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use responder::{
    agent::{Agent, AgentConfig},
    bpf::{self, AttachMode, VipRow, DEFAULT_PIN_PATH},
    duration::parse_duration,
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
    Run(RunArgs),
    /// Show the VIPs of an agent's pinned maps, with counters.
    Vips {
        #[arg(long, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Detach and remove the pins a killed agent left behind.
    Cleanup {
        #[arg(long, default_value = DEFAULT_PIN_PATH)]
        pin_path: PathBuf,
    },
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("vips").required(true).multiple(true).args(["vip", "vip_file"]))]
struct RunArgs {
    /// Interface to attach to (repeatable).
    #[arg(long = "interface", short = 'i', value_name = "IFACE", required = true)]
    interfaces: Vec<String>,
    /// VIP: IP, IP@IFACE, IP@IFACE.VID, IP@IFACE.OUTER.INNER or IP@*.VID (repeatable).
    #[arg(long, value_name = "SPEC")]
    vip: Vec<VipSpec>,
    /// File with one VIP spec per line (`#` comments); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    vip_file: Option<PathBuf>,
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes would garble log files and `kubectl logs`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Vips { pin_path, json } => vips(&pin_path, json),
        Command::Cleanup { pin_path } => cleanup(&pin_path),
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = AgentConfig {
        interfaces: args.interfaces,
        vips: args.vip,
        vip_file: args.vip_file,
        pin_path: args.pin_path,
        attach_mode: args.xdp_mode,
        announce_count: args.announce_count,
        announce_interval: args.announce_interval,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let agent = Agent::start(config).context("starting the responder")?;
        // No dynamic sources yet: the sender is dropped and the channel closes.
        let (_, updates) = tokio::sync::mpsc::channel(1);
        agent.run(updates).await;
        Ok(())
    })
}

fn vips(pin_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let rows = bpf::read_pinned_vips(pin_path).context("reading the pinned VIP maps")?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows).context("writing JSON")?;
        writeln!(out)?;
    } else {
        out.write_all(format_table(&rows).as_bytes())?;
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
    ]
    .map(String::from);
    let cells: Vec<[String; 7]> = std::iter::once(header)
        .chain(rows.iter().map(|r| {
            [
                r.ip.to_string(),
                r.interface.clone(),
                r.vlan.clone().unwrap_or_else(|| "-".into()),
                r.mac.clone(),
                r.requests.to_string(),
                r.replies.to_string(),
                r.conflicts.to_string(),
            ]
        }))
        .collect();
    let widths: Vec<usize> = (0..7)
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
            },
        ];
        let table = format_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "IP            INTERFACE  VLAN     MAC                REQUESTS  REPLIES  CONFLICTS"
        );
        assert_eq!(
            lines[1],
            "192.0.2.10    eth0       -        02:00:00:00:00:0a         5        5          0"
        );
        assert_eq!(
            lines[2],
            "2001:db8::10  eth1       100.200  02:00:00:00:00:0b     12345       12          1"
        );
    }

    #[test]
    fn cli_requires_a_vip_source_and_an_interface() {
        assert!(Cli::try_parse_from(["responder", "run", "-i", "eth0"]).is_err());
        assert!(Cli::try_parse_from(["responder", "run", "--vip", "192.0.2.10"]).is_err());
        let cli =
            Cli::try_parse_from(["responder", "run", "-i", "eth0", "--vip-file", "/etc/vips"])
                .expect("file only");
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.announce_interval, Duration::from_millis(1100));
        assert_eq!(args.announce_count, 3);
        assert_eq!(args.xdp_mode, AttachMode::Auto);
        assert_eq!(args.pin_path, PathBuf::from(DEFAULT_PIN_PATH));
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
