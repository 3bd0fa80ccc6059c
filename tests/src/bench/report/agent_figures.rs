//! The agent's sections of BENCHMARKS.md: the cluster and sync figures, and
//! membership with and without its write budget.

use super::*;

pub(super) fn agent(
    page: &mut Page,
    cluster: &Measured<ClusterResult>,
    sync: &Measured<SyncResult>,
) {
    let mut line = |text: &str| page.line(text);
    line("## 3. Agent convergence, failover and initial sync");
    line("");
    match cluster {
        Measured::Done(r) => {
            line("Measured by `tests/src/bin/cluster_measure.rs` in this run against the real test API server and three simulated nodes on one segment (every sample is in BENCHMARKS.json).");
            line("");
            line("| What | n | p50 ms | p99 ms | min ms | max ms | from → to |");
            line("|---|---|---|---|---|---|---|");
            for (what, d, note) in [
                ("Failover", &r.failover_ms, &r.failover_note),
                (
                    "Status patch → map entry",
                    &r.patch_to_map_ms,
                    &r.patch_to_map_note,
                ),
            ] {
                let ms = |value: Option<f64>| value.map_or("–".to_owned(), |v| format!("{v:.1}"));
                line(&format!(
                    "| {what} | {} | {} | {} | {} | {} | {} |",
                    d.n,
                    ms(d.p50),
                    ms(d.p99),
                    ms(d.min),
                    ms(d.max),
                    note
                ));
            }
            line("");
            line("**What limits it.** Failover is the announcer's Lease (800 ms) counted from when the survivors last *saw* the owner's renewal: with the kills spread over the phases of the 200 ms renewals, that is spread evenly between 600 and 800 ms (p50 700 ms, p99 ≈ 800 ms), plus the reassignment, map insert and the client's next probe (10 ms apart). With 20 trials, p50 and p99 carry tens of ms of sampling noise: compare runs of two versions side by side (same phases, same machine load), not against an old table. Patch → map is the API server's watch fan-out plus one reassignment and one map insert.");
        }
        Measured::NotMeasured { reason } => {
            line("**Not measured in this run**: `cluster_measure` did not produce a report:");
            line("");
            line("```text");
            line(reason);
            line("```");
        }
    }
    line("");
    line("### Initial sync with many Services");
    line("");
    match sync {
        Measured::Done(r) => {
            let services = r.services;
            line(&format!("**Method.** `tests/src/bin/sync_measure.rs`: a real kube-apiserver (v1.20) holds one Node and {services} LoadBalancer Services with one ingress IP each (created beforehand, {:.1} s, not measured); then one agent starts (`--announce-count 1`, skb mode, one veth), owns every Service as the only live node, and the time from its start until all {services} VIPs are in its pinned map is taken, polling the map every 20 ms. Memory is VmRSS / VmHWM (peak) from `/proc/PID/status`, CPU is utime + stime from `/proc/PID/stat` (10 ms ticks), once when the map is full and once 2 s later, when the announcements — one gratuitous ARP or unsolicited NA per VIP, queued to the agent's one announcer, part of a real sync — are done. RSS is split into anonymous memory (RssAnon: heap, stacks) and file-backed pages (RssFile: the binary's own code and data, shared with the page cache). The agent caps glibc at two malloc arenas, fixes its mmap threshold at 64 KiB and hands memory freed by the sync back to the kernel.", r.setup_s));
            line("");
            line("| Services | sync ms | CPU ms at sync | RSS MiB at sync | of which anon / file | peak RSS MiB at sync | CPU ms 2 s later | RSS MiB 2 s later | of which anon / file | peak RSS MiB 2 s later |");
            line("|---|---|---|---|---|---|---|---|---|---|");
            let (at, later) = (&r.at_sync, &r.settled);
            line(&format!(
                "| {services} | {:.0} | {:.0} | {:.1} | {:.1} / {:.1} | {:.1} | {:.0} | {:.1} | {:.1} / {:.1} | {:.1} |",
                r.sync_ms,
                at.cpu_ms,
                at.vm_rss_mib,
                at.rss_anon_mib,
                at.rss_file_mib,
                at.vm_hwm_mib,
                later.cpu_ms,
                later.vm_rss_mib,
                later.rss_anon_mib,
                later.rss_file_mib,
                later.vm_hwm_mib,
            ));
            line("");
            let busy = at.cpu_ms / r.sync_ms;
            line(&format!("**What limits it.** The agent was on a CPU {:.0} % of the sync time: the rest is waiting — process start, loading and attaching the program, and the kube-apiserver and etcd (on the same two cores) listing and serialising {services} Services. The agent's own work per Service is decoding it, deciding ownership, one map insert (a syscall) and one entry in the announcer's queue; memory grows with the Services held in its cache (only the facts ownership, L2Advertisements and Events read of each Service, see `responder-user/src/cluster/service_facts.rs`) and what ownership keeps per Service (its assignment and owned VIP, sharing one copy of the Service's name).", busy * 100.0));
        }
        Measured::NotMeasured { reason } => {
            line("**Not measured in this run**: `sync_measure` did not produce a report:");
            line("");
            line("```text");
            line(reason);
            line("```");
        }
    }
}

pub(super) fn membership(page: &mut Page, result: &Measured<MembershipResult>) {
    let mut line = |text: &str| page.line(text);
    line("");
    line("## 4. Membership at scale");
    line("");
    match result {
        Measured::Done(r) => {
            line(&format!("**Method.** `tests/src/bin/membership_measure.rs`: {} real agents and a load generator that keeps N simulated members' Leases renewed as agents do (the renewal patch and the cadence come from the responder library: `renewal_patch`, `membership_cadence`), one process, against the real test API server with {} LoadBalancer Services. Only the real agents' Nodes match `--node-selector`, so the simulated members load the API server and every agent's Lease watch but own nothing. Details: {}.", r.real_agents, r.services, r.note));
            line("");
            for row in membership_table(r) {
                line(&row);
            }
            line("");
            let limits = match r.regime.as_str() {
                "before" | "" => format!("**What limits it.** The write budget ({:.0} writes/s for the whole cluster) caps the Lease writes, and with them the watch events every agent receives, once more than {:.0} members are live: beyond that, more members cost no more API writes or watch events (the agent's CPU and memory grow only with the Leases and Nodes it caches), but each renews less often and its Lease lasts longer, so failover grows in proportion to the members (detection is up to one Lease duration after the owner's last renewal seen).", r.write_budget, r.write_budget * 0.25),
                _ => format!("**What limits it.** The write budget ({:.0} writes/s for the whole cluster) is split: standbys renew within a fifth of it, never faster than every 10 s, and the rest keeps a bounded set of announcers (\"announcing\") at 200 ms / 800 ms. Failover is the announcer's 800 ms Lease counted from its last renewal seen, plus the reaction, whatever the number of members; more members only lengthen the standbys' Leases. The writes stay at the budget, and with them the watch events every agent receives.", r.write_budget),
            };
            line(&format!("{limits} With 100 % = one core of a two-core machine shared by the API server, etcd, three agents and the generator, figures are from a loaded machine and vary between runs."));
        }
        Measured::NotMeasured { reason } => {
            line("**Not measured in this run**: `membership_measure` did not produce a report:");
            line("");
            line("```text");
            line(reason);
            line("```");
        }
    }
}

pub(super) fn membership_unbudgeted(page: &mut Page, result: &Measured<MembershipResult>) {
    let mut line = |text: &str| page.line(text);
    line("");
    line("### Without a write budget (every member renewing every 250 ms, as before it)");
    line("");
    match result {
        Measured::Done(r) => {
            line(&format!("The same measurement with `--lease-write-budget {}` for the agents and the generator, too big to matter: the members want 4 writes per member per second, and get them until the API server and etcd, on the same two cores as everything else, saturate: past that point the writes per second stop growing with the members (each renewal waits for the previous one's answer, and the answers come late), and failover gets slower and less reliable; a failover round whose VIP nobody took over within three Lease durations plus 60 s counts as not taken over.", r.write_budget));
            line("");
            for row in membership_table(r) {
                line(&row);
            }
        }
        Measured::NotMeasured { reason } => {
            line("**Not measured in this run**: `membership_measure` without a budget did not produce a report:");
            line("");
            line("```text");
            line(reason);
            line("```");
        }
    }
}
