//! `responder vips`, `stats` and `cleanup`: what the pins say, as tables
//! or JSON.

use std::io::Write as _;

use anyhow::Context as _;
use responder::bpf::{self, PinnedStats, VipRow};

pub(crate) fn vips(pin_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let rows = bpf::read_pinned_vips(pin_path).context("reading the pinned VIP maps")?;
    print_report(&rows, json, |rows| format_table(rows))
}

/// Prints `report` as pretty JSON, or as the text `format` makes of it.
pub(crate) fn print_report<T: serde::Serialize + ?Sized>(
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
        "STATE",
        "LAST CLAIMANT",
    ]
    .map(String::from);
    let cells: Vec<[String; 10]> = std::iter::once(header)
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
                match r.yielded {
                    true => "yielded".into(),
                    false => "answering".into(),
                },
                r.claimant.as_ref().map_or_else(
                    || "-".into(),
                    |c| format!("{} ({}s ago)", c.mac, c.age_seconds),
                ),
            ]
        }))
        .collect();
    aligned(&cells, |column| (4..8).contains(&column))
}

/// Rows of cells as columns two spaces apart, each as wide as its widest
/// cell; `right` says which columns are aligned right (numbers).
pub(crate) fn aligned<R: AsRef<[String]>>(cells: &[R], right: impl Fn(usize) -> bool) -> String {
    let columns = cells
        .iter()
        .map(|row| row.as_ref().len())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            cells
                .iter()
                .filter_map(|row| row.as_ref().get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in cells {
        let line: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| match right(c) {
                true => format!("{cell:>w$}"),
                false => format!("{cell:<w$}"),
            })
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

pub(crate) fn stats(pin_path: &std::path::Path, json: bool) -> anyhow::Result<()> {
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
        if link.yielded > 0 {
            text.push_str(&format!(
                "  {} VIP(s) yielded to another MAC: not answered\n",
                link.yielded
            ));
        }
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

pub(crate) fn cleanup(pin_path: &std::path::Path) -> anyhow::Result<()> {
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
    use std::time::Duration;

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
                stale: 0,
                yielded: false,
                claimant: None,
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
                yielded: true,
                claimant: Some(bpf::ClaimantRow {
                    mac: "02:00:00:00:00:02".into(),
                    age_seconds: 3,
                }),
            },
        ];
        let table = format_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "IP            INTERFACE  VLAN     MAC                REQUESTS  REPLIES  CONFLICTS  STALE  STATE      LAST CLAIMANT"
        );
        assert_eq!(
            lines[1],
            "192.0.2.10    eth0       -        02:00:00:00:00:0a         5        5          0      0  answering  -"
        );
        assert_eq!(
            lines[2],
            "2001:db8::10  eth1       100.200  02:00:00:00:00:0b     12345       12          1      7  yielded    02:00:00:00:00:02 (3s ago)"
        );
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
                yielded: 1,
            }],
            totals: counters,
            yielded: 1,
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
             \x20 1 VIP(s) yielded to another MAC: not answered\n\
             total: requests 4 replies 3 conflicts 0 stale 1\n\
             heartbeat: 11.5s ago (STALE: not answering); stale after 10s, yield after 2s\n"
        );
    }
}
