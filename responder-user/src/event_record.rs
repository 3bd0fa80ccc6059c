//! Recording Kubernetes Events, shared by the agent and the controller, and
//! pacing them ([`Pacer`]) so a burst costs the API server a bounded number of
//! writes.

use std::collections::VecDeque;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::Client;
use tokio::time::Instant;

/// Records `event` about `regarding` as an Event of its own.
///
/// A fresh `Recorder` each time, on purpose: a long-lived one folds a later
/// Event of the same reason into the first one (keeping the first note, where
/// the later one says why an address moved), and keeps every Event it
/// published for minutes in a cache it scans on every publish. An agent
/// announcing ten thousand Services at start held ~35 MB in that cache and
/// spent quadratic time scanning it (measured with heaptrack).
pub(crate) async fn record(
    client: &Client,
    reporter: &Reporter,
    event: &Event,
    regarding: &ObjectReference,
) -> Result<(), kube::Error> {
    Recorder::new(client.clone(), reporter.clone())
        .publish(event, regarding)
        .await
}

/// How fast Events may be written, and when they are summarized instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pacing {
    /// Writes that may go at once (the bucket's size).
    pub(crate) burst: u32,
    /// Writes per second, sustained (the bucket's refill).
    pub(crate) per_second: f64,
    /// An Event that would wait longer than this for its turn is folded into its
    /// kind's summary instead.
    pub(crate) max_wait: Duration,
}

impl Pacing {
    /// The most Events of any burst written one by one: `burst + per_second ×
    /// max_wait` (the rest are summarized, one summary per kind).
    #[cfg(test)]
    pub(crate) fn one_by_one_at_most(&self) -> usize {
        self.burst as usize + (self.per_second * self.max_wait.as_secs_f64()).floor() as usize
    }
}

/// An Event the [`Pacer`] may fold into a summary.
pub(crate) trait Foldable {
    /// Events of one kind (their reason) are summarized together.
    fn kind(&self) -> &'static str;
    /// What the Event regards, as a summary names it.
    fn subject(&self) -> String;
}

/// Events of one kind that were not written one by one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) kind: &'static str,
    pub(crate) count: usize,
    /// The first few subjects, in arrival order.
    pub(crate) sample: Vec<String>,
}

impl Summary {
    /// How many subjects a summary names.
    pub(crate) const SAMPLE: usize = 5;
}

/// What to write next.
#[derive(Debug, PartialEq)]
pub(crate) enum Paced<T> {
    One(T),
    Summary(Summary),
}

/// Float rounding forgiven when counting tokens.
const TOKEN_ROUNDING: f64 = 1e-9;

struct Folding {
    summary: Summary,
    /// When its turn comes, as if it had been queued when started: written first
    /// from then on, so Events queued after it cannot starve it.
    due: Instant,
}

/// A token bucket in front of the Event writes, pure (the caller passes the time):
/// Events go one by one while the bucket allows it within `max_wait`; past that,
/// those of a kind are counted into one summary, so a burst of any size costs at
/// most `burst + per_second × max_wait` writes one by one plus one per kind, and a
/// handful of Events in steady state all go out at once.
pub(crate) struct Pacer<T> {
    pacing: Pacing,
    tokens: f64,
    refilled: Instant,
    queue: VecDeque<T>,
    /// In the order they were started.
    folding: Vec<Folding>,
}

impl<T: Foldable> Pacer<T> {
    /// With a full bucket.
    pub(crate) fn new(pacing: Pacing, now: Instant) -> Self {
        Pacer {
            pacing,
            tokens: f64::from(pacing.burst),
            refilled: now,
            queue: VecDeque::new(),
            folding: Vec::new(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.pacing.per_second).min(f64::from(self.pacing.burst));
        self.refilled = self.refilled.max(now);
    }

    /// Queues `event` to go on its own, or folds it into its kind's summary when
    /// it would wait longer than `max_wait`; true when folded.
    pub(crate) fn push(&mut self, event: T, now: Instant) -> bool {
        self.refill(now);
        // Everything queued or summarized goes first; this one needs the token after.
        let ahead = (self.queue.len() + self.folding.len()) as f64;
        let within_wait = self.tokens + self.pacing.per_second * self.pacing.max_wait.as_secs_f64();
        if ahead + 1.0 <= within_wait {
            self.queue.push_back(event);
            return false;
        }
        let kind = event.kind();
        let folding = match self.folding.iter_mut().position(|f| f.summary.kind == kind) {
            Some(index) => &mut self.folding[index],
            None => {
                // Its place in line: when the bucket has paid for what is ahead.
                let wait = (ahead + 1.0 - self.tokens).max(0.0) / self.pacing.per_second;
                self.folding.push(Folding {
                    summary: Summary {
                        kind,
                        count: 0,
                        sample: Vec::new(),
                    },
                    due: now + Duration::from_secs_f64(wait),
                });
                self.folding.last_mut().expect("just pushed")
            }
        };
        folding.summary.count += 1;
        if folding.summary.sample.len() < Summary::SAMPLE {
            folding.summary.sample.push(event.subject());
        }
        true
    }

    /// The next write, if the bucket has a token for it now: a summary that is
    /// due, else the oldest Event, else a summary.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Paced<T>> {
        if self.is_empty() {
            return None;
        }
        self.refill(now);
        // At the instant `next_at` gave, rounding may leave a hair less than one.
        if self.tokens < 1.0 - TOKEN_ROUNDING {
            return None;
        }
        let due = self.folding.iter().position(|f| f.due <= now);
        // Not empty: with no Event queued, a summary is.
        let next = match due.or(self.queue.is_empty().then_some(0)) {
            Some(index) => Paced::Summary(self.folding.remove(index).summary),
            None => Paced::One(self.queue.pop_front()?),
        };
        self.tokens -= 1.0;
        Some(next)
    }

    /// When [`Pacer::pop`] will have something: `None` while nothing waits.
    pub(crate) fn next_at(&self, now: Instant) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let missing = 1.0 - TOKEN_ROUNDING - self.tokens;
        if missing <= 0.0 {
            return Some(now);
        }
        let refilled = self.refilled + Duration::from_secs_f64(missing / self.pacing.per_second);
        Some(refilled.max(now))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.folding.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Note(&'static str, usize);

    impl Foldable for Note {
        fn kind(&self) -> &'static str {
            self.0
        }

        fn subject(&self) -> String {
            format!("svc-{}", self.1)
        }
    }

    const PACING: Pacing = Pacing {
        burst: 20,
        per_second: 10.0,
        max_wait: Duration::from_secs(1),
    };

    /// Pops what the pacer gives every `step` from `from` to `until`, with the
    /// time of each write.
    fn drain(
        pacer: &mut Pacer<Note>,
        from: Instant,
        until: Duration,
        step: Duration,
    ) -> Vec<(Duration, Paced<Note>)> {
        let mut written = Vec::new();
        let mut now = from;
        while now <= from + until {
            while let Some(next) = pacer.pop(now) {
                written.push((now - from, next));
            }
            now += step;
        }
        written
    }

    #[test]
    fn a_burst_of_any_size_costs_a_bounded_number_of_writes() {
        for size in [31, 1_000, 10_000, 100_000] {
            let start = Instant::now();
            let mut pacer = Pacer::new(PACING, start);
            let folded = (0..size)
                .filter(|&i| pacer.push(Note("AnnouncingStarted", i), start))
                .count();
            assert_eq!(folded, size - PACING.one_by_one_at_most(), "{size}");
            let written = drain(
                &mut pacer,
                start,
                Duration::from_secs(10),
                Duration::from_millis(10),
            );
            assert!(pacer.is_empty());
            let first_second = written
                .iter()
                .filter(|(at, _)| *at <= Duration::from_secs(1))
                .count();
            assert!(
                first_second <= 30,
                "{size}: {first_second} in the first second"
            );
            assert_eq!(written.len(), 31, "{size}: 30 one by one and a summary");
            // Nothing is lost: every Event is written or counted.
            let ones: Vec<usize> = written
                .iter()
                .filter_map(|(_, w)| match w {
                    Paced::One(Note(_, i)) => Some(*i),
                    Paced::Summary(_) => None,
                })
                .collect();
            assert_eq!(
                ones,
                (0..30).collect::<Vec<_>>(),
                "the first ones, in order"
            );
            let summary = written
                .iter()
                .find_map(|(at, w)| match w {
                    Paced::Summary(s) => Some((*at, s)),
                    Paced::One(_) => None,
                })
                .expect("a summary");
            assert_eq!(
                summary.1,
                &Summary {
                    kind: "AnnouncingStarted",
                    count: size - 30,
                    sample: (30..size.min(35)).map(|i| format!("svc-{i}")).collect(),
                }
            );
            assert!(summary.0 <= Duration::from_millis(1_200), "{:?}", summary.0);
        }
    }

    #[test]
    fn a_few_events_in_steady_state_all_go_at_once() {
        let start = Instant::now();
        let mut pacer = Pacer::new(PACING, start);
        for i in 0..3 {
            assert!(!pacer.push(Note("AnnouncingStarted", i), start));
        }
        let now: Vec<_> = std::iter::from_fn(|| pacer.pop(start)).collect();
        assert_eq!(
            now,
            (0..3)
                .map(|i| Paced::One(Note("AnnouncingStarted", i)))
                .collect::<Vec<_>>()
        );
        assert_eq!(pacer.next_at(start), None, "nothing waits");
    }

    #[test]
    fn a_failover_right_after_a_sync_still_gets_one_event_each() {
        let start = Instant::now();
        let mut pacer = Pacer::new(PACING, start);
        for i in 0..10_000 {
            pacer.push(Note("AnnouncingStarted", i), start);
        }
        drain(
            &mut pacer,
            start,
            Duration::from_secs(5),
            Duration::from_millis(10),
        );
        // The bucket refills in two seconds.
        let later = start + Duration::from_secs(7);
        for i in 0..3 {
            assert!(!pacer.push(Note("AnnouncingStopped", i), later));
        }
        let written = drain(&mut pacer, later, Duration::ZERO, Duration::from_millis(10));
        assert_eq!(written.len(), 3);
        assert!(written.iter().all(|(_, w)| matches!(w, Paced::One(_))));
    }

    #[test]
    fn kinds_are_summarized_apart_and_a_steady_overload_never_starves_a_summary() {
        let start = Instant::now();
        let mut pacer = Pacer::new(PACING, start);
        let mut written = Vec::new();
        // 50 Events a second of two kinds for a minute: five times the rate.
        let mut now = start;
        let mut i = 0;
        while now < start + Duration::from_secs(60) {
            let kind = if i % 2 == 0 {
                "AnnouncingStarted"
            } else {
                "AnnouncingStopped"
            };
            pacer.push(Note(kind, i), now);
            i += 1;
            while let Some(next) = pacer.pop(now) {
                written.push((now - start, next));
            }
            now += Duration::from_millis(20);
        }
        let offset = now - start;
        written.extend(
            drain(
                &mut pacer,
                now,
                Duration::from_secs(5),
                Duration::from_millis(10),
            )
            .into_iter()
            .map(|(at, w)| (offset + at, w)),
        );
        assert!(
            written.len() <= 20 + 10 * 65,
            "{} writes: the bucket's rate",
            written.len()
        );
        let counted: usize = written
            .iter()
            .map(|(_, w)| match w {
                Paced::One(_) => 1,
                Paced::Summary(s) => s.count,
            })
            .sum();
        assert_eq!(counted, i, "every Event written or counted");
        // A summary goes out within about max_wait of its first Event, however
        // busy: the gap between two summaries of a kind stays small.
        let started: Vec<Duration> = written
            .iter()
            .filter_map(|(at, w)| match w {
                Paced::Summary(s) if s.kind == "AnnouncingStarted" => Some(*at),
                _ => None,
            })
            .collect();
        assert!(started.len() >= 20, "{started:?}");
        assert!(
            started
                .windows(2)
                .all(|w| w[1] - w[0] <= Duration::from_millis(1_500)),
            "{started:?}"
        );
    }

    #[test]
    fn next_at_is_when_a_token_is_back() {
        let start = Instant::now();
        let pacing = Pacing {
            burst: 1,
            per_second: 4.0,
            max_wait: Duration::from_secs(1),
        };
        let mut pacer = Pacer::new(pacing, start);
        assert_eq!(pacer.next_at(start), None);
        pacer.push(Note("AnnouncingStarted", 0), start);
        pacer.push(Note("AnnouncingStarted", 1), start);
        assert_eq!(pacer.next_at(start), Some(start));
        assert!(matches!(pacer.pop(start), Some(Paced::One(Note(_, 0)))));
        assert_eq!(pacer.pop(start), None, "the bucket is empty");
        assert_eq!(
            pacer.next_at(start),
            Some(start + Duration::from_millis(250))
        );
        assert!(matches!(
            pacer.pop(start + Duration::from_millis(250)),
            Some(Paced::One(Note(_, 1)))
        ));
        assert_eq!(pacer.next_at(start + Duration::from_millis(250)), None);
    }
}
