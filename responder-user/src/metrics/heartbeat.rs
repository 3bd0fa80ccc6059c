//! The agent's heartbeat, whose age is computed when it is scraped.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder},
    metrics::{MetricType, TypedMetric},
};

/// Where "now" comes from; tests pin it.
#[derive(Clone)]
pub(super) struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    pub(super) fn system() -> Self {
        Clock(Arc::new(Instant::now))
    }

    #[cfg(test)]
    pub(super) fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub(super) fn now(&self) -> Instant {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// When the agent last beat; a clone shares the beat, so the registry's copy
/// sees what the agent writes.
#[derive(Clone, Debug)]
pub(super) struct Heartbeat {
    last: Arc<Mutex<Option<Instant>>>,
    clock: Clock,
}

impl Heartbeat {
    pub(super) fn new(clock: Clock) -> Self {
        Heartbeat {
            last: Arc::default(),
            clock,
        }
    }

    pub(super) fn beat(&self) {
        self.beat_at(self.clock.now());
    }

    pub(super) fn beat_at(&self, at: Instant) {
        // A plain assignment: a panic elsewhere cannot leave it half-written.
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    /// None before the first beat.
    pub(super) fn age(&self) -> Option<Duration> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.map(|beat| self.clock.now().saturating_duration_since(beat))
    }
}

impl TypedMetric for Heartbeat {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for Heartbeat {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        // Millisecond resolution, like the three decimals of the previous
        // hand-written exposition; +Inf before the first beat.
        let seconds = self.age().map_or(f64::INFINITY, |age| {
            (age.as_secs_f64() * 1000.0).round() / 1000.0
        });
        encoder.encode_gauge(&seconds)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
