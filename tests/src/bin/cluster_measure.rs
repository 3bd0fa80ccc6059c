//! Measures, on the simulated cluster of `responder_tests::lab::cluster`:
//! (1) failover: SIGKILL of a Service's owner (plus its link down) until the
//!     client's ARP probes, sent every 10 ms, are first answered by another node;
//! (2) reaction: a Service status patch with a new ingress IP until the owner's
//!     pinned VIP map holds it.
//!
//! Usage: cluster_measure OUT.json [FAILOVER_TRIALS (20)] [PATCH_UPDATES (200)]
//! The `responder` binary is RESPONDER_BIN, else the one next to this binary.
use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use responder::cluster::ClusterSettings;
use responder_tests::{
    bench::schema::{to_json_text, ClusterResult, Percentiles},
    lab::cluster::{Cluster, WAIT},
    netns::wait_for,
};

const VIP: &str = "198.51.100.10";
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
const PATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive patches cycle through this many addresses (198.51.100.100…).
const PATCH_ADDRESSES: u32 = 100;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: cluster_measure OUT.json [FAILOVER_TRIALS] [PATCH_UPDATES]");
    let trials: usize = args
        .next()
        .map_or(20, |n| n.parse().expect("FAILOVER_TRIALS is a number"));
    let updates: usize = args
        .next()
        .map_or(200, |n| n.parse().expect("PATCH_UPDATES is a number"));
    if std::env::var_os("RESPONDER_BIN").is_none() {
        let exe = std::env::current_exe().expect("current exe");
        std::env::set_var("RESPONDER_BIN", exe.with_file_name("responder"));
    }

    let mut cluster = Cluster::start("meas");
    cluster.create_lb_service("web", &[VIP]);
    let failover = measure_failover(&mut cluster, trials);
    let reaction = measure_patch_to_map(&cluster, updates);

    let report = ClusterResult {
        failover_ms: Percentiles::of(&failover),
        failover_note: "SIGKILL of the owner's agent + its link down, until the first ARP reply from another node to a client probing every 10 ms (gratuitous announcements not counted); the kills spread evenly over the phases of the owner's renewals (the agents' default renew interval)".to_owned(),
        patch_to_map_ms: Percentiles::of(&reaction),
        patch_to_map_note: "Service status merge patch (new ingress IP) sent, until the owner's pinned VIP map holds the IP".to_owned(),
    };
    let text = to_json_text(&report).expect("serialize report");
    print!("{text}");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("write {out}: {e}"));
}

fn measure_failover(cluster: &mut Cluster, trials: usize) -> Vec<Duration> {
    let target: Ipv4Addr = VIP.parse().expect("VIP");
    let prober = cluster.arp_prober();
    let mut samples = Vec::with_capacity(trials);
    for trial in 0..trials {
        let owner = cluster.sole_owner(&[VIP], "web to have one owner before the trial");
        let old_mac = cluster.agent(owner).mac().to_owned();
        let extra = phase_delay(trial as u64);
        let (failed_at, reply) = std::thread::scope(|scope| {
            let probe =
                scope.spawn(|| prober.first_reply_not_from(target, &old_mac, PROBE_INTERVAL, WAIT));
            // Probing already runs, so the first answer after the failure is seen at once.
            std::thread::sleep(Duration::from_millis(50));
            // Then an extra 0..one renew interval, spread evenly
            // over the trials: the kills fall at every phase of the owner's
            // renewals alike.
            // Without it the phase follows from when the VIP came back (a
            // renewal, or the hold-down timer), and the sample is biased by
            // up to a renew interval either way.
            std::thread::sleep(extra);
            let failed_at = Instant::now();
            cluster.fail_node(owner);
            (failed_at, probe.join().expect("prober thread"))
        });
        let (answered_at, new_mac) = reply.unwrap_or_else(|| {
            panic!("trial {trial}: nobody took {VIP} over from {owner} within {WAIT:?}")
        });
        let took = answered_at - failed_at;
        let successor = cluster.node_of_mac(&new_mac).unwrap_or("an unknown MAC");
        eprintln!(
            "failover {trial}: {owner} -> {successor} in {:.1} ms (killed {:.1} ms later than the fixed 50 ms)",
            ms(took),
            ms(extra),
        );
        samples.push(took);
        cluster.restore_node(owner);
        // All nodes live again: the hash gives web back to the same node.
        let settled = wait_for(WAIT, || (cluster.holders(VIP) == [owner]).then_some(()));
        assert!(
            settled.is_some(),
            "trial {trial}: web did not return to {owner}: {:?}",
            cluster.holders(VIP)
        );
    }
    samples
}

fn measure_patch_to_map(cluster: &Cluster, updates: usize) -> Vec<Duration> {
    let owner = cluster.sole_owner(&[VIP], "web to have one owner before the patches");
    let agent = cluster.agent(owner);
    let mut samples = Vec::with_capacity(updates);
    for update in 0..updates {
        let address = Ipv4Addr::new(198, 51, 100, 100 + (update as u32 % PATCH_ADDRESSES) as u8);
        let text = address.to_string();
        let sent_at = Instant::now();
        cluster.set_ingress("web", &[&text]);
        let deadline = sent_at + PATCH_TIMEOUT;
        let seen = loop {
            if agent.pinned_addresses().contains(&IpAddr::V4(address)) {
                break Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "update {update}: {text} not in {owner}'s map within {PATCH_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_micros(200));
        };
        samples.push(seen - sent_at);
    }
    eprintln!("{updates} status patches measured on {owner}");
    samples
}

/// Extra delay before the kill of trial `index`, within one renew interval
/// (the agents' default): the golden-ratio (Weyl) sequence. Unlike pseudo-random delays,
/// it spreads any run of consecutive trials evenly over the interval whatever
/// phase the kill would otherwise fall at; 20 pseudo-random draws added to a
/// fixed phase left two versions' means ~25 ms apart by chance alone.
fn phase_delay(index: u64) -> Duration {
    let fraction = (index as f64 * 0.618_033_988_749_894_9).fract();
    ClusterSettings::DEFAULT_RENEW_INTERVAL.mul_f64(fraction)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
