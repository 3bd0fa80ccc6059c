//! Periodic re-announcement (`--reannounce-interval`): which owned VIP keys
//! are due for their one gratuitous ARP / unsolicited NA, as a pure function
//! of the keys and `now`.
//!
//! Some switches age their forwarding table (commonly 300 s) faster than
//! routers age their ARP cache, so a VIP that stays quiet falls out of the
//! switch's table and traffic to it floods or is dropped. Announcing every
//! owned key once per interval refreshes the table. Each key has a fixed
//! phase within the interval (a hash of the key), so the announcements are
//! spread evenly rather than sent all at once: 10,000 keys every 60 s cost
//! about 167 frames a second. At most [`MAX_PER_TICK`] keys are handed out
//! per [`TICK`]; keys beyond that wait for the next tick, oldest slot first.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use responder_common::VipKey;
use tokio::time::Instant;

/// The announcement task hands out periodic keys at most this often.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Periodic announcements sent per [`TICK`] at most: 500 frames a second,
/// three times what 10,000 keys need at the default interval of 60 s. Up to
/// `500 × interval` keys (30,000 at 60 s) are each re-announced once per
/// interval; with more, each is re-announced every `keys / 500` seconds.
pub(crate) const MAX_PER_TICK: usize = 50;

/// The keys to re-announce and when each is next due.
#[derive(Debug)]
pub(crate) struct Periodic {
    /// Zero disables re-announcement: nothing is ever due.
    interval: Duration,
    max_per_tick: usize,
    /// Where every key's phase counts from.
    epoch: Instant,
    /// Each tracked key's next slot.
    next: BTreeMap<VipKey, Instant>,
    /// The same, in time order.
    due: BTreeSet<(Instant, VipKey)>,
}

impl Periodic {
    pub(crate) fn new(interval: Duration, max_per_tick: usize, epoch: Instant) -> Self {
        Periodic {
            interval,
            max_per_tick,
            epoch,
            next: BTreeMap::new(),
            due: BTreeSet::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.next.len()
    }

    /// `key` is owned and was just announced for another reason (a burst,
    /// a defence): tracked from now on, and its next periodic announcement
    /// is its first slot at least half an interval from `now`, so a fresh
    /// announcement is not followed at once by a periodic one. The gap
    /// between two announcements of a key is thus at most 1.5 intervals.
    pub(crate) fn announced(&mut self, key: VipKey, now: Instant) {
        if !self.enabled() {
            return;
        }
        let at = self.slot_after(&key, now + self.interval / 2);
        self.schedule(key, at);
    }

    /// `key` is no longer announced (withdrawn, yielded, removed).
    pub(crate) fn remove(&mut self, key: &VipKey) {
        if let Some(at) = self.next.remove(key) {
            self.due.remove(&(at, *key));
        }
    }

    /// The keys due at `now`, oldest slot first, at most `max_per_tick`;
    /// each is rescheduled to its first slot after `now`. Keys left over
    /// stay due for the next call.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<VipKey> {
        let mut keys = Vec::new();
        while keys.len() < self.max_per_tick {
            let Some(&(at, key)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop_first();
            let next = self.slot_after(&key, now);
            self.next.insert(key, next);
            self.due.insert((next, key));
            keys.push(key);
        }
        keys
    }

    /// When the earliest key is due; `None` with no key (or disabled).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    fn schedule(&mut self, key: VipKey, at: Instant) {
        self.remove(&key);
        self.next.insert(key, at);
        self.due.insert((at, key));
    }

    /// The first instant strictly after `after` that is `key`'s phase
    /// within an interval counted from the epoch.
    fn slot_after(&self, key: &VipKey, after: Instant) -> Instant {
        let interval = self.interval.as_nanos();
        let phase = phase(key, self.interval).as_nanos();
        let elapsed = after.saturating_duration_since(self.epoch).as_nanos();
        // Slots are epoch + phase + k·interval, k ≥ 0.
        let k = match elapsed.checked_sub(phase) {
            None => 0,
            Some(since) => since / interval + 1,
        };
        let offset = phase + k * interval;
        self.epoch + duration_from_nanos(offset)
    }
}

/// `key`'s stable offset within `interval`: FNV-1a over the key's fields,
/// the same in every process and on every node.
pub(crate) fn phase(key: &VipKey, interval: Duration) -> Duration {
    let interval = interval.as_nanos();
    if interval == 0 {
        return Duration::ZERO;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = key
        .ifindex
        .to_be_bytes()
        .into_iter()
        .chain(key.vlan_outer.to_be_bytes())
        .chain(key.vlan_inner.to_be_bytes())
        .chain([key.family])
        .chain(key.addr);
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    duration_from_nanos(u128::from(hash) % interval)
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const INTERVAL: Duration = Duration::from_secs(60);

    fn key(i: u32) -> VipKey {
        let mut addr = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        addr[12..].copy_from_slice(&i.to_be_bytes());
        VipKey::v6(2, 0, 0, addr)
    }

    /// Runs ticks of [`TICK`] over `[from, to)`, counting each key handed
    /// out and the most keys in one tick.
    fn run(
        periodic: &mut Periodic,
        from: Instant,
        to: Instant,
    ) -> (BTreeMap<VipKey, usize>, usize) {
        let mut counts = BTreeMap::new();
        let mut most = 0;
        let mut now = from;
        while now < to {
            let keys = periodic.due(now);
            most = most.max(keys.len());
            for key in keys {
                *counts.entry(key).or_default() += 1;
            }
            now += TICK;
        }
        (counts, most)
    }

    #[test]
    fn over_one_interval_each_key_is_due_exactly_once_and_ticks_stay_bounded() {
        let start = Instant::now();
        let mut periodic = Periodic::new(INTERVAL, MAX_PER_TICK, start);
        for i in 0..1_000 {
            periodic.announced(key(i), start);
        }
        // Nothing in the first half interval: every key was just announced.
        let (early, _) = run(&mut periodic, start, start + INTERVAL / 2);
        assert!(early.is_empty(), "{early:?}");
        // Slots are after half an interval, up to one and a half: the
        // ticks from one to the other, both included.
        let (counts, most) = run(
            &mut periodic,
            start + INTERVAL / 2,
            start + INTERVAL / 2 + INTERVAL + TICK,
        );
        assert_eq!(counts.len(), 1_000);
        assert!(counts.values().all(|&n| n == 1), "{counts:?}");
        assert!(most <= MAX_PER_TICK);
        // Spread: about 1,000 / 600 ticks each, far from all at once.
        assert!(most <= 10, "{most} keys in one tick");
    }

    #[test]
    fn ten_thousand_keys_at_the_default_interval_cost_about_167_frames_a_second() {
        let start = Instant::now();
        let mut periodic = Periodic::new(INTERVAL, MAX_PER_TICK, start);
        for i in 0..10_000 {
            periodic.announced(key(i), start);
        }
        // After the first round, any interval's ticks send each key once.
        let from = start + INTERVAL + INTERVAL / 2 + TICK;
        let _ = run(&mut periodic, start, from);
        let (counts, most) = run(&mut periodic, from, from + INTERVAL);
        let sent: usize = counts.values().sum();
        assert_eq!(sent, 10_000);
        let per_second = sent as f64 / INTERVAL.as_secs_f64();
        assert!((166.0..168.0).contains(&per_second), "{per_second}");
        assert!(most <= MAX_PER_TICK, "{most}");
        // Even per second too: no second carries more than twice the mean.
        let mut periodic = Periodic::new(INTERVAL, MAX_PER_TICK, start);
        for i in 0..10_000 {
            periodic.announced(key(i), start);
        }
        let _ = run(&mut periodic, start, start + Duration::from_secs(30));
        for second in 30..150 {
            let at = start + Duration::from_secs(second);
            let (counts, _) = run(&mut periodic, at, at + Duration::from_secs(1));
            let sent: usize = counts.values().sum();
            assert!(sent <= 334, "{sent} frames in second {second}");
        }
    }

    #[test]
    fn more_keys_than_the_bound_wait_for_later_ticks_oldest_first() {
        let start = Instant::now();
        // A 1 ns interval makes every key due at every tick.
        let mut tight = Periodic::new(Duration::from_nanos(1), MAX_PER_TICK, start);
        for i in 0..200 {
            tight.announced(key(i), start);
        }
        let now = start + Duration::from_secs(1);
        let mut handed = BTreeSet::new();
        for tick in 0..4 {
            let keys = tight.due(now + TICK * tick);
            assert_eq!(keys.len(), MAX_PER_TICK);
            handed.extend(keys);
        }
        assert_eq!(handed.len(), 200, "every key once before any twice");
    }

    #[test]
    fn phases_are_stable_across_calls_and_instances() {
        let start = Instant::now();
        let a = phase(&key(7), INTERVAL);
        assert_eq!(a, phase(&key(7), INTERVAL));
        assert!(a < INTERVAL);
        assert_ne!(a, phase(&key(8), INTERVAL));
        let mut periodic = Periodic::new(INTERVAL, MAX_PER_TICK, start);
        periodic.announced(key(7), start);
        let first = periodic.next_due().expect("due");
        assert_eq!(
            first.duration_since(start).as_nanos() % INTERVAL.as_nanos(),
            a.as_nanos()
        );
        assert_eq!(periodic.due(first), vec![key(7)]);
        let second = periodic.next_due().expect("rescheduled");
        assert_eq!(second, first + INTERVAL, "same phase next interval");
        // Announced again for another reason: still the same phase.
        periodic.announced(key(7), second - Duration::from_secs(1));
        assert_eq!(periodic.next_due(), Some(second + INTERVAL));
    }

    #[test]
    fn zero_disables_it() {
        let start = Instant::now();
        let mut periodic = Periodic::new(Duration::ZERO, MAX_PER_TICK, start);
        assert!(!periodic.enabled());
        periodic.announced(key(1), start);
        assert_eq!(periodic.len(), 0);
        assert_eq!(periodic.next_due(), None);
        assert!(periodic.due(start + Duration::from_secs(3600)).is_empty());
        assert_eq!(phase(&key(1), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn keys_added_and_removed_mid_interval() {
        let start = Instant::now();
        let mut periodic = Periodic::new(INTERVAL, MAX_PER_TICK, start);
        for i in 0..100 {
            periodic.announced(key(i), start);
        }
        let mid = start + INTERVAL + INTERVAL / 4;
        let (before, _) = run(&mut periodic, start, mid);
        assert!(before.values().all(|&n| n == 1));
        for i in 0..50 {
            periodic.remove(&key(i));
        }
        for i in 100..150 {
            periodic.announced(key(i), mid);
        }
        assert_eq!(periodic.len(), 100);
        // Gone keys are never due again; new ones not in their first half
        // interval; the others keep their phase.
        let (soon, _) = run(&mut periodic, mid, mid + INTERVAL / 2);
        assert!(
            soon.keys().all(|k| *k >= key(50) && *k < key(100)),
            "{soon:?}"
        );
        let (rest, _) = run(&mut periodic, mid + INTERVAL / 2, mid + INTERVAL);
        let mut first = soon;
        for (key, n) in rest {
            *first.entry(key).or_default() += n;
        }
        assert!(first.keys().all(|k| *k >= key(50)));
        assert!(
            (50..100).all(|i| first.get(&key(i)) == Some(&1)),
            "{first:?}"
        );
        assert!(first.values().all(|&n| n == 1));
        // From then on each live key once per interval.
        let (counts, _) = run(&mut periodic, mid + INTERVAL, mid + 2 * INTERVAL);
        assert_eq!(counts.len(), 100);
        assert!(counts.keys().all(|k| *k >= key(50)));
        assert!(counts.values().all(|&n| n == 1));
    }
}
