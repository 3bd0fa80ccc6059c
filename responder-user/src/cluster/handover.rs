//! Break before make for planned moves.
//!
//! Every agent computes the same owners from the same objects, but each sees
//! a change (a node settling after its hold-down, a role change, a new
//! L2Advertisement) when its own watch delivers it, and writes its map a
//! little later still. When an address moves from one live node to another
//! that both could hold it, the one gaining it may answer a few milliseconds
//! before the one losing it has withdrawn (seen: 2.5 ms), and a request in
//! that gap is answered by two MACs. So a node gaining an address from a
//! holder that could still hold it waits `pause` before answering; the
//! holder withdraws at once. Nobody answering for that moment costs little:
//! clients keep the old MAC cached, whose node still forwards the traffic,
//! and the gaining node announces the move when it starts answering.
//!
//! A move because the holder can no longer hold the address (its Lease
//! expired, its link went down, it lost its endpoints or its label) is a
//! failover and is taken at once: the pause never delays one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::k8s::ServiceRef;

#[derive(Debug)]
struct Waiting {
    /// The node this one takes the address from.
    from: String,
    until: Instant,
}

/// The addresses this node owns but does not answer for yet.
#[derive(Debug)]
pub(crate) struct Handovers {
    pause: Duration,
    waiting: BTreeMap<IpAddr, Waiting>,
}

impl Handovers {
    pub(crate) fn new(pause: Duration) -> Self {
        Handovers {
            pause,
            waiting: BTreeMap::new(),
        }
    }

    /// After a recomputation: `owned` is what this node owns now,
    /// `held_elsewhere` the addresses other nodes owned before it, with
    /// their owner, and `may_hold(service, node)` whether `node` could still
    /// own `service`, `None` for a Service this pass did not recompute
    /// (nothing about it changed). Returns how many addresses began to
    /// wait.
    pub(crate) fn after_pass(
        &mut self,
        now: Instant,
        owned: &BTreeMap<IpAddr, ServiceRef>,
        held_elsewhere: &BTreeMap<IpAddr, String>,
        may_hold: impl Fn(&ServiceRef, &str) -> Option<bool>,
    ) -> usize {
        self.waiting.retain(|ip, waiting| {
            owned.get(ip).is_some_and(|service| {
                waiting.until > now && may_hold(service, &waiting.from) != Some(false)
            })
        });
        let mut began = 0;
        for (ip, service) in owned {
            if self.waiting.contains_key(ip) || self.pause.is_zero() {
                continue;
            }
            let Some(holder) = held_elsewhere.get(ip) else {
                continue;
            };
            if may_hold(service, holder) == Some(true) {
                let waiting = Waiting {
                    from: holder.clone(),
                    until: now + self.pause,
                };
                self.waiting.insert(*ip, waiting);
                began += 1;
            }
        }
        began
    }

    /// Whether a wait ended at `now`: then [`Self::answered`] is more.
    pub(crate) fn release_due(&mut self, now: Instant) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|_, waiting| waiting.until > now);
        self.waiting.len() != before
    }

    /// `owned` less the addresses still waiting.
    pub(crate) fn answered(
        &self,
        owned: &BTreeMap<IpAddr, ServiceRef>,
    ) -> BTreeMap<IpAddr, ServiceRef> {
        owned
            .iter()
            .filter(|(ip, _)| !self.waiting.contains_key(ip))
            .map(|(ip, service)| (*ip, service.clone()))
            .collect()
    }

    /// The nodes addresses are waited for from.
    pub(crate) fn holders(&self) -> BTreeSet<String> {
        self.waiting.values().map(|w| w.from.clone()).collect()
    }

    pub(crate) fn next_change(&self) -> Option<Instant> {
        self.waiting.values().map(|waiting| waiting.until).min()
    }
}

#[cfg(test)]
mod tests;
