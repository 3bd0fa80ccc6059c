//! Lease expiry as seen from this agent, in the style of client-go leader election.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::time::Instant;
use tracing::warn;

use super::advert::{reach_of, restart_grace_of};
use super::lease_name;
use crate::cluster::Reach;

#[derive(Debug)]
struct Observation {
    holder: String,
    renew_time: Option<MicroTime>,
    observed_at: Instant,
    reach: Reach,
    /// How long a departing holder asked to be considered alive.
    restart_grace: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct LeaseTracker {
    lease_duration: Duration,
    leases: HashMap<String, Observation>,
    /// Leases whose holder is not the node their name is for, already
    /// warned about.
    forged: HashSet<String>,
}

impl LeaseTracker {
    pub(crate) fn new(lease_duration: Duration) -> Self {
        LeaseTracker {
            lease_duration,
            leases: HashMap::new(),
            forged: HashSet::new(),
        }
    }

    /// Restarts the expiry clock of a Lease only when its holder or renewTime
    /// changed, so re-deliveries (relists, unrelated metadata edits) do not keep a
    /// dead member alive. A Lease whose name is not its holder's is ignored:
    /// anyone who may write Leases in the namespace could otherwise keep a dead
    /// node, or one that runs no agent, a member.
    pub(crate) fn observe(&mut self, lease: &Lease, now: Instant) {
        let Some(name) = lease.metadata.name.clone() else {
            return;
        };
        let spec = lease.spec.as_ref();
        let holder = spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        if !holder.is_empty() && lease_name(&holder) != name {
            if self.forged.insert(name.clone()) {
                warn!(lease = %name, %holder, "ignoring a membership Lease held by a node other than the one it is named for");
            }
            self.leases.remove(&name);
            return;
        }
        self.forged.remove(&name);
        let renew_time = spec.and_then(|s| s.renew_time.clone());
        let reach = reach_of(lease);
        let restart_grace = restart_grace_of(lease);
        match self.leases.get_mut(&name) {
            Some(seen) if seen.holder == holder && seen.renew_time == renew_time => {
                seen.reach = reach;
                seen.restart_grace = restart_grace;
            }
            Some(seen) => {
                seen.holder = holder;
                seen.renew_time = renew_time;
                seen.observed_at = now;
                seen.reach = reach;
                seen.restart_grace = restart_grace;
            }
            None => {
                self.leases.insert(
                    name,
                    Observation {
                        holder,
                        renew_time,
                        observed_at: now,
                        reach,
                        restart_grace,
                    },
                );
            }
        }
    }

    pub(crate) fn forget(&mut self, name: &str) {
        self.leases.remove(name);
    }

    /// After a relist: Leases deleted while we were not watching are gone.
    pub(crate) fn retain(&mut self, names: &HashSet<String>) {
        self.leases.retain(|name, _| names.contains(name));
    }

    /// Time spent without a working view must not count against anyone: every
    /// member gets a full lease duration to show a renewal again.
    pub(crate) fn restart_clocks(&mut self, now: Instant) {
        for seen in self.leases.values_mut() {
            seen.observed_at = now;
        }
    }

    fn expiry(&self, seen: &Observation) -> Instant {
        let alive_for = seen
            .restart_grace
            .map_or(self.lease_duration, |grace| grace.max(self.lease_duration));
        seen.observed_at + alive_for
    }

    /// Holders of Leases renewed within the lease duration (or their restart
    /// grace), with what each can answer for.
    pub(crate) fn live(&self, now: Instant) -> BTreeMap<String, Reach> {
        self.leases
            .values()
            .filter(|seen| !seen.holder.is_empty() && now < self.expiry(seen))
            .map(|seen| (seen.holder.clone(), seen.reach.clone()))
            .collect()
    }

    /// When the next currently live Lease expires, so membership changes without
    /// waiting for an unrelated event.
    pub(crate) fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.leases
            .values()
            .map(|seen| self.expiry(seen))
            .filter(|&at| at > now)
            .min()
    }

    pub(crate) fn last_change(&self, name: &str) -> Option<Instant> {
        self.leases.get(name).map(|seen| seen.observed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::advert::tests::{with_families, with_grace};
    use crate::cluster::membership::tests::lease;
    use crate::cluster::Families;

    const SECOND: Duration = Duration::from_secs(1);

    fn members(names: &[&str]) -> BTreeMap<String, Reach> {
        names
            .iter()
            .map(|n| (n.to_string(), Reach::UNKNOWN))
            .collect()
    }

    #[test]
    fn a_change_of_what_a_member_reaches_is_taken_at_once_without_renewing_it() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        tracker.observe(&with_families(lease("v4", 1), "IPv4"), now);
        assert!(!tracker.live(now)["v4"].families.ipv6);
        let later = now + Duration::from_millis(600);
        tracker.observe(&with_families(lease("v4", 1), "IPv4,IPv6"), later);
        assert_eq!(tracker.live(later)["v4"].families, Families::BOTH);
        assert_eq!(tracker.last_change(&lease_name("v4")), Some(now));
    }

    #[test]
    fn expiry_follows_local_observation_not_written_timestamps() {
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        // renewTime far in the past: a skewed clock must not make it look expired.
        tracker.observe(&lease("a", 1_000), start);
        tracker.observe(&lease("b", 4_000_000_000), start);
        assert_eq!(tracker.live(start), members(&["a", "b"]));
        assert_eq!(tracker.next_expiry(start), Some(start + SECOND));

        let later = start + Duration::from_millis(600);
        tracker.observe(&lease("a", 1_001), later);
        // b re-delivered unchanged: its clock keeps running.
        tracker.observe(&lease("b", 4_000_000_000), later);
        let after_b_expired = start + Duration::from_millis(1_100);
        assert_eq!(tracker.live(after_b_expired), members(&["a"]));
        assert_eq!(tracker.next_expiry(after_b_expired), Some(later + SECOND));
        assert_eq!(tracker.live(later + SECOND), members(&[]));
        assert_eq!(tracker.next_expiry(later + SECOND), None);
    }

    #[test]
    fn a_departing_member_stays_alive_for_its_restart_grace() {
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        tracker.observe(&lease("a", 1), start);
        let left = start + Duration::from_millis(500);
        tracker.observe(&with_grace(lease("a", 2), "10"), left);
        assert_eq!(
            tracker.live(left + Duration::from_secs(9)),
            members(&["a"]),
            "within the grace"
        );
        assert_eq!(
            tracker.next_expiry(left),
            Some(left + Duration::from_secs(10))
        );
        assert!(
            tracker.live(left + Duration::from_secs(10)).is_empty(),
            "a node that does not come back fails over when the grace ends"
        );
        // Back in time: the successor's renewal clears the grace.
        let back = left + Duration::from_secs(3);
        tracker.observe(&lease("a", 3), back);
        assert!(tracker.live(back + SECOND).is_empty(), "plain lease again");
    }

    #[test]
    fn restarting_clocks_forgives_an_outage() {
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        tracker.observe(&lease("a", 1), start);
        let after_outage = start + Duration::from_secs(30);
        assert!(tracker.live(after_outage).is_empty());
        tracker.restart_clocks(after_outage);
        assert_eq!(tracker.live(after_outage), members(&["a"]));
        assert_eq!(tracker.last_change(&lease_name("a")), Some(after_outage));
    }

    #[test]
    fn forgetting_and_relisting_drop_members() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        for node in ["a", "b", "c"] {
            tracker.observe(&lease(node, 1), now);
        }
        tracker.forget(&lease_name("a"));
        tracker.retain(&[lease_name("b")].into());
        assert_eq!(tracker.live(now), members(&["b"]));
    }

    #[test]
    fn holderless_leases_are_not_members() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        let mut released = lease("a", 1);
        released.spec.as_mut().expect("spec").holder_identity = None;
        tracker.observe(&released, now);
        assert!(tracker.live(now).is_empty());
    }

    #[test]
    fn a_lease_held_by_another_node_than_its_name_says_is_ignored() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        tracker.observe(&lease("b", 1), now);
        let mut forged = lease("a", 1);
        forged.spec.as_mut().expect("spec").holder_identity = Some("b".into());
        tracker.observe(&forged, now);
        assert_eq!(tracker.live(now), members(&["b"]));
        // The rightful holder taking it back makes it count again.
        tracker.observe(&lease("a", 2), now);
        assert_eq!(tracker.live(now), members(&["a", "b"]));
    }
}
