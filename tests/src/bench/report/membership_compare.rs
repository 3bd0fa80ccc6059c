//! Section 4's "before → now" table: the membership before roles (every
//! member announcing) and with them, measured in the same run.
use super::{Measured, Page};
use crate::bench::schema::{MembershipResult, MembershipRow};

fn ms(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.0}"))
}

fn failover(row: &MembershipRow) -> String {
    format!(
        "{} / {} ({} of {})",
        ms(row.failover_ms.p50),
        ms(row.failover_ms.p99),
        row.failover_ms.n,
        row.failover_rounds
    )
}

pub(super) fn section(
    page: &mut Page,
    before: &Measured<MembershipResult>,
    now: &Measured<MembershipResult>,
) {
    let mut line = |text: &str| page.line(text);
    line("");
    line("### Before → now: a bounded announcer set");
    line("");
    let (Measured::Done(before), Measured::Done(now)) = (before, now) else {
        line("**Not compared in this run**: one of the two measurements did not produce a report (see above).");
        return;
    };
    line(&format!("Both measured in the same run, with the same method (above): **before**, `{}` (every member announcing at the cadence the budget gives all of them, as before roles); **now**, `{}` (the defaults: a bounded set announcing at 200 ms / 800 ms, the rest standing by on slow Leases). Failover: SIGKILL of the owner and its link down until a client's ARP request is answered by another node, p50 / p99 ms (rounds taken over of rounds tried). Writes: the API server's own count of Lease writes per second.", before.regime, now.regime));
    line("");
    line("| simulated members | announcing before → now | Lease ms before → now | failover p50 / p99 ms before | failover p50 / p99 ms now | Lease writes/s before → now | watch events/s at one agent before → now | agent CPU % before → now | agent RSS MiB before → now |");
    line("|---|---|---|---|---|---|---|---|---|");
    for row in &now.rows {
        let Some(old) = before
            .rows
            .iter()
            .find(|old| old.simulated == row.simulated)
        else {
            continue;
        };
        let announcing_before = match old.announcers {
            0 => old.simulated + before.real_agents,
            n => n,
        };
        line(&format!(
            "| {} | {} → {} | {:.0} → {:.0} | {} | {} | {:.1} → {:.1} | {:.1} → {:.1} | {:.1} → {:.1} | {:.1} → {:.1} |",
            row.simulated,
            announcing_before,
            row.announcers,
            old.lease_ms,
            row.lease_ms,
            failover(old),
            failover(row),
            old.api_lease_writes_per_s,
            row.api_lease_writes_per_s,
            old.watch_events_per_s,
            row.watch_events_per_s,
            old.agent_cpu_percent,
            row.agent_cpu_percent,
            old.agent_rss_mib,
            row.agent_rss_mib,
        ));
    }
    if let Some(largest) = now.rows.iter().max_by_key(|row| row.simulated) {
        let live = largest.simulated + now.real_agents;
        line("");
        line(&format!("**Bandwidth at {live} members** (computed from the figures above, not measured on a wire): each taking-part agent receives {:.0} watch events/s, about {:.2} Mbit/s at {LEASE_EVENT_BYTES} bytes per event (a Lease with its annotations, as JSON); {live} agents watching would take {:.0} events/s, {:.0} Mbit/s, out of the API servers (the lab runs three). Each agent writes {:.1} renewals/s as an announcer, one per {:.0} s as a standby. On the segment the membership sends nothing.", largest.watch_events_per_s, largest.watch_events_per_s * LEASE_EVENT_BYTES as f64 * 8.0 / 1e6, largest.watch_events_per_s * live as f64, largest.watch_events_per_s * live as f64 * LEASE_EVENT_BYTES as f64 * 8.0 / 1e6, 1000.0 / largest.renew_ms, standby_renew_s(now, largest)));
    }
}

/// A membership Lease as a watch event carries it, JSON-encoded: its
/// metadata (labels, five annotations, an owner reference, managed fields
/// left out by the agents' merge patches) and spec, rounded up.
const LEASE_EVENT_BYTES: usize = 1000;

/// The standbys' renew interval at `row`'s size, from the write budget: the
/// standbys' fifth of it, never faster than every 10 s.
fn standby_renew_s(result: &MembershipResult, row: &MembershipRow) -> f64 {
    let standbys = (row.simulated + result.real_agents).saturating_sub(row.announcers);
    (standbys as f64 / (result.write_budget * 0.2)).max(10.0)
}
