//! The data plane's heartbeat, beaten from a task of its own every second so
//! that it never waits behind other work (a burst of map writes, ten thousand
//! Services to reassign) — but only while the agent's loop keeps ticking, so
//! that a wedged agent's node still stops answering at the stale bound.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::{
    bpf::{monotonic_now, Heartbeat},
    error::display_chain,
};

/// How often the heartbeat is written.
const BEAT: Duration = Duration::from_secs(1);

/// A loop that has not ticked for this long is stalled: the heartbeat stops
/// until it ticks again. A few missed ticks of a loaded node are tolerated.
const LOOP_STALL: Duration = Duration::from_secs(5);

/// When the agent's loop last ticked (CLOCK_MONOTONIC, milliseconds).
#[derive(Debug, Default)]
pub(crate) struct LoopAlive(AtomicU64);

impl LoopAlive {
    pub(crate) fn tick(&self) {
        self.0.store(millis(monotonic_now()), Ordering::Relaxed);
    }

    fn stalled(&self, now: Duration) -> bool {
        let last = self.0.load(Ordering::Relaxed);
        millis(now).saturating_sub(last) > millis(LOOP_STALL)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Runs until cancelled.
pub(crate) async fn run(mut heartbeat: Heartbeat, alive: Arc<LoopAlive>) {
    let mut interval = tokio::time::interval(BEAT);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut holding = false;
    let mut failing = false;
    loop {
        interval.tick().await;
        if alive.stalled(monotonic_now()) {
            if !holding {
                tracing::error!(
                    "the agent's loop has not ticked for {LOOP_STALL:?}; no more heartbeats until it does (the data plane stops answering at the stale bound)"
                );
                holding = true;
            }
            continue;
        }
        if holding {
            tracing::info!("the agent's loop ticks again; heartbeats resume");
            holding = false;
        }
        match heartbeat.beat() {
            // The data plane stops answering at the stale bound: loud.
            Err(e) if !failing => {
                tracing::error!("writing the heartbeat: {}", display_chain(&e));
                failing = true;
            }
            Err(_) => {}
            Ok(()) => {
                if failing {
                    tracing::info!("heartbeats are written again");
                }
                failing = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_has_not_ticked_for_a_while_is_stalled() {
        let alive = LoopAlive::default();
        alive.tick();
        let now = monotonic_now();
        assert!(!alive.stalled(now));
        assert!(!alive.stalled(now + LOOP_STALL - Duration::from_millis(100)));
        assert!(alive.stalled(now + LOOP_STALL + Duration::from_millis(100)));
    }
}
