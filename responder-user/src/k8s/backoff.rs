//! How failed watches are retried.

use std::time::Duration;

use kube::runtime::utils::{Backoff, ResetTimerBackoff};

/// Retry delays of a failed watch: exponential from 500 ms to 8 s, each drawn
/// between half and all of its step so a fleet of agents does not retry in
/// step, back to the start after two quiet minutes.
///
/// client-go's reflector (and kube's `default_backoff`) grows to 30 s to spare
/// a struggling API server. We stop at 8 s because while the view is broken
/// ownership is frozen (no failover, deleted Services still answered), so
/// seeing the server again soon after it returns matters more; three watches
/// per node every few seconds is still light.
pub(crate) struct WatchBackoff {
    step: Duration,
    random: u64,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(500);
    const LAST: Duration = Duration::from_secs(8);
    const QUIET_RESET: Duration = Duration::from_secs(120);

    pub(crate) fn new() -> ResetTimerBackoff<Self> {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        ResetTimerBackoff::new(
            WatchBackoff {
                step: Self::FIRST,
                random,
            },
            Self::QUIET_RESET,
        )
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // xorshift64: plenty for jitter, and no dependency for it.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let fraction = 0.5 + (self.random >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        let delay = self.step.mul_f64(fraction);
        self.step = (self.step * 2).min(Self::LAST);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.step = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_backoff_doubles_with_jitter_up_to_its_cap_and_restarts() {
        let mut backoff = WatchBackoff {
            step: WatchBackoff::FIRST,
            random: 0x9e37_79b9_7f4a_7c15,
        };
        let mut step = WatchBackoff::FIRST;
        for attempt in 0..12 {
            let delay = backoff.next().expect("a watch is retried forever");
            assert!(
                delay >= step / 2 && delay <= step,
                "attempt {attempt}: {delay:?} outside [{:?}, {step:?}]",
                step / 2
            );
            step = (step * 2).min(WatchBackoff::LAST);
        }
        assert_eq!(backoff.step, WatchBackoff::LAST);
        backoff.reset();
        let first = backoff.next().expect("a delay after reset");
        assert!(first <= WatchBackoff::FIRST, "{first:?} after reset");
    }
}
