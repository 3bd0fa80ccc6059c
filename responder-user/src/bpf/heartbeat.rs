//! The agent's side of the stale gate: a heartbeat in the `AGENT` map, on the
//! clock the XDP program reads, with the bounds after which the program stops
//! answering or yields a VIP.

use std::time::Duration;

use std::os::fd::AsFd as _;

use aya::maps::{Array, IterableMap as _, Map, MapData, MapError};
use responder_common::{AgentState, AGENT_MAP};

use super::pins::map_error;
use crate::error::Error;

/// How long the data plane keeps answering without a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleGate {
    /// Heartbeat age after which nothing is answered.
    pub stale_after: Duration,
    /// Heartbeat age after which a conflicting announcement yields the VIP.
    pub yield_after: Duration,
}

/// The `AGENT` entry proving the agent alive at `now` (CLOCK_MONOTONIC).
/// Never 0 on the heartbeat, which would switch the gate off.
pub(super) fn agent_state(now: Duration, gate: StaleGate) -> AgentState {
    AgentState {
        heartbeat_ns: heartbeat_ns(now),
        stale_after_ns: nanos(gate.stale_after),
        yield_after_ns: nanos(gate.yield_after),
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Never 0, which would switch the gate off.
fn heartbeat_ns(now: Duration) -> u64 {
    nanos(now).max(1)
}

/// CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` reads (not boottime, not
/// wall time).
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The agent's side of the stale gate: the `AGENT` map.
pub(crate) struct Heartbeat {
    pub(super) map: Array<MapData, AgentState>,
    pub(super) gate: StaleGate,
}

impl Heartbeat {
    /// A second handle on the map, for a task of its own.
    pub(crate) fn try_clone(&self) -> Result<Heartbeat, Error> {
        let fd = self
            .map
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| map_error("duplicating", AGENT_MAP, MapError::from(e)))?;
        let map = MapData::from_fd(fd)
            .and_then(Map::from_map_data)
            .and_then(Array::try_from)
            .map_err(|source| map_error("opening", AGENT_MAP, source))?;
        Ok(Heartbeat {
            map,
            gate: self.gate,
        })
    }

    /// Writes the whole entry (limits included) with a fresh heartbeat.
    pub(crate) fn beat(&mut self) -> Result<(), Error> {
        self.map
            .set(0, agent_state(monotonic_now(), self.gate), 0)
            .map_err(|source| map_error("writing", AGENT_MAP, source))
    }
}

/// Renews the heartbeat a previous agent left in the pinned `AGENT` map,
/// keeping its bounds, so the program it left keeps answering while this
/// agent loads its own (the verifier alone can take seconds on a busy node)
/// and swaps it in. Nothing is renewed where the gate was off or nothing
/// is pinned; a failure only logs: the old program then answers until its
/// own stale bound, as it would without this.
pub(super) fn renew_previous(pin_path: &std::path::Path) {
    let renew = || -> Result<(), Error> {
        let mut map: Array<MapData, AgentState> = Array::try_from(super::pins::open_pinned(
            pin_path,
            responder_common::PIN_AGENT,
        )?)
        .map_err(|source| map_error("opening pinned", AGENT_MAP, source))?;
        let previous = map
            .get(&0, 0)
            .map_err(|source| map_error("reading", AGENT_MAP, source))?;
        if previous.heartbeat_ns == 0 {
            return Ok(());
        }
        let renewed = AgentState {
            heartbeat_ns: heartbeat_ns(monotonic_now()),
            ..previous
        };
        map.set(0, renewed, 0)
            .map_err(|source| map_error("writing", AGENT_MAP, source))
    };
    match renew() {
        Ok(()) | Err(Error::NothingPinned { .. }) => {}
        Err(error) => tracing::warn!(
            "renewing the previous agent's heartbeat: {}; its program answers until its stale bound",
            crate::error::display_chain(&error)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_entry_is_in_nanoseconds_and_never_disables_the_gate() {
        let gate = StaleGate {
            stale_after: Duration::from_secs(10),
            yield_after: Duration::from_millis(2500),
        };
        assert_eq!(
            agent_state(Duration::new(3, 7), gate),
            AgentState {
                heartbeat_ns: 3_000_000_007,
                stale_after_ns: 10_000_000_000,
                yield_after_ns: 2_500_000_000,
            }
        );
        assert_eq!(agent_state(Duration::ZERO, gate).heartbeat_ns, 1);
        let now = monotonic_now();
        assert!(now > Duration::ZERO && monotonic_now() >= now);
    }
}
