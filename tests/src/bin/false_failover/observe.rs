//! What a case saw: a client's ARP probes every 10 ms (which MACs answered
//! each) and the agents' pinned maps sampled (who holds the VIP), and the
//! counts made of them.
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use responder_tests::lab::cluster::{ArpProber, Cluster};

pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
const HOLDERS_INTERVAL: Duration = Duration::from_millis(50);
/// A MAC answering again this soon after another took over is alternation
/// (two MACs answering the VIP), not a second move.
pub const ALTERNATION: Duration = Duration::from_millis(1000);

/// One probe: when it was sent and the MACs that answered it.
pub struct Probe {
    pub at: Duration,
    pub macs: BTreeSet<String>,
}

/// Probes `target` every `PROBE_INTERVAL` (each request's answers are
/// those that arrive within the interval) until `duration` has passed.
pub fn probe(prober: &ArpProber, target: Ipv4Addr, duration: Duration) -> Vec<Probe> {
    let start = Instant::now();
    let cap = (duration.as_millis() / PROBE_INTERVAL.as_millis()) as usize + 10;
    let mut probes = Vec::with_capacity(cap);
    while start.elapsed() < duration && probes.len() < cap {
        let at = start.elapsed();
        let macs = prober.answers(target, PROBE_INTERVAL).into_iter().collect();
        probes.push(Probe { at, macs });
    }
    probes
}

/// Samples who holds `vip` in its pinned map until `stop`; each change of
/// the holders (as a sorted list) with its time.
pub fn holders(
    cluster: &Cluster,
    vip: &str,
    stop: &AtomicBool,
    bound: Duration,
) -> Vec<(Duration, Vec<&'static str>)> {
    let start = Instant::now();
    let mut changes: Vec<(Duration, Vec<&'static str>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < bound {
        let mut now = cluster.holders(vip);
        now.sort_unstable();
        if changes.last().map(|(_, h)| h) != Some(&now) {
            changes.push((start.elapsed(), now));
        }
        std::thread::sleep(HOLDERS_INTERVAL);
    }
    changes
}

/// The counts of one case.
#[derive(Debug, Default)]
pub struct Counts {
    pub probes: usize,
    pub unanswered: usize,
    pub mac_changes: usize,
    pub two_mac_intervals: usize,
    pub longest_two_mac_ms: f64,
    pub multi_mac_probes: usize,
    /// MACs that answered, in order of first answer.
    pub macs: Vec<String>,
}

/// Counts what the probes saw. A MAC change is an answered probe whose set
/// of MACs differs from the previous answered probe's. A probe is in a
/// two-MAC state when more than one MAC answered it, or when its MAC had
/// answered before another MAC did and answers again within
/// `ALTERNATION` of being replaced; consecutive such probes (gaps under
/// `ALTERNATION`) form one interval, from its first to its last probe
/// (one probe interval at least).
pub fn count(probes: &[Probe]) -> Counts {
    let mut counts = Counts {
        probes: probes.len(),
        ..Counts::default()
    };
    let mut previous: Option<&BTreeSet<String>> = None;
    // The MAC that answered alone before the current one, and when the
    // current one replaced it.
    let mut replaced: Option<(&String, Duration)> = None;
    let mut interval: Option<(Duration, Duration)> = None;
    let mut intervals: Vec<(Duration, Duration)> = Vec::new();
    for probe in probes {
        for mac in &probe.macs {
            if !counts.macs.contains(mac) {
                counts.macs.push(mac.clone());
            }
        }
        if probe.macs.is_empty() {
            counts.unanswered += 1;
            continue;
        }
        let mut conflict = probe.macs.len() > 1;
        if conflict {
            counts.multi_mac_probes += 1;
        }
        if let Some(before) = previous {
            if before != &probe.macs {
                counts.mac_changes += 1;
                if let (Some(old), Some(new)) = (single(before), single(&probe.macs)) {
                    if let Some((older, since)) = replaced {
                        if older == new && probe.at - since < ALTERNATION {
                            conflict = true;
                        }
                    }
                    replaced = Some((old, probe.at));
                }
            }
        }
        previous = Some(&probe.macs);
        if conflict {
            interval = match interval {
                Some((first, last)) if probe.at - last < ALTERNATION => Some((first, probe.at)),
                Some(done) => {
                    intervals.push(done);
                    Some((probe.at, probe.at))
                }
                None => Some((probe.at, probe.at)),
            };
        }
    }
    intervals.extend(interval);
    counts.two_mac_intervals = intervals.len();
    counts.longest_two_mac_ms = intervals
        .iter()
        .map(|(first, last)| (*last - *first + PROBE_INTERVAL).as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    counts
}

fn single(macs: &BTreeSet<String>) -> Option<&String> {
    (macs.len() == 1).then(|| macs.iter().next()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(seq: &[&[&str]]) -> Vec<Probe> {
        seq.iter()
            .enumerate()
            .map(|(i, macs)| Probe {
                at: PROBE_INTERVAL * i as u32,
                macs: macs.iter().map(|m| m.to_string()).collect(),
            })
            .collect()
    }

    #[test]
    fn a_clean_move_is_one_change_and_no_two_mac_interval() {
        let c = count(&probes(&[&["a"], &["a"], &[], &["b"], &["b"]]));
        assert_eq!(
            (c.mac_changes, c.unanswered, c.two_mac_intervals),
            (1, 1, 0)
        );
    }

    #[test]
    fn two_answers_and_alternation_are_one_interval() {
        let c = count(&probes(&[
            &["a"],
            &["a", "b"],
            &["b"],
            &["a"],
            &["b"],
            &["b"],
        ]));
        assert_eq!(c.two_mac_intervals, 1);
        assert_eq!(c.multi_mac_probes, 1);
        assert_eq!(c.longest_two_mac_ms, 40.0);
    }
}
