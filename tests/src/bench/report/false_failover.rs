//! Section 4's "False failover" table, from `false_failover`'s report.
use super::{Measured, Page};
use crate::bench::schema_false_failover::FalseFailoverResult;

pub(super) fn section(page: &mut Page, result: &Measured<FalseFailoverResult>) {
    let mut line = |text: &str| page.line(text);
    line("");
    line("### False failover");
    line("");
    match result {
        Measured::Done(r) => {
            line(&format!("**Method.** `tests/src/bin/false_failover.rs` (issue #23): the owner of a VIP is hurt but never stops, Leases of {:.0} ms renewed every {:.0} ms, a client asking for the VIP by ARP every {:.0} ms. Every MAC change and ownership change below is a false failover. Details: {}.", r.lease_duration_ms, r.renew_interval_ms, r.probe_interval_ms, r.note));
            line("");
            line("| case | owner | s | requests | unanswered | MAC changes | ownership changes | most holders | two-MAC intervals | longest two-MAC ms | answered by two MACs |");
            line("|---|---|---|---|---|---|---|---|---|---|---|");
            for c in &r.cases {
                line(&format!(
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
                    c.name,
                    c.owner,
                    c.duration_s,
                    c.probes,
                    c.unanswered,
                    c.mac_changes,
                    c.ownership_changes,
                    c.max_holders,
                    c.two_mac_intervals,
                    c.longest_two_mac_ms,
                    c.multi_mac_probes,
                ));
            }
            line("");
            line("What each case emulated:");
            line("");
            for c in &r.cases {
                line(&format!("- **{}**: {}.", c.name, c.note));
            }
        }
        Measured::NotMeasured { reason } => {
            line("**Not measured in this run**: `false_failover` did not produce a report:");
            line("");
            line("```text");
            line(reason);
            line("```");
        }
    }
}
