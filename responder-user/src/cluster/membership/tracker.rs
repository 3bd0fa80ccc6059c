//! Lease expiry as seen from this agent, in the style of client-go leader election.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;
use tracing::warn;

use super::advert::{declared_duration_of, reach_of, restart_grace_of, role_of};
use super::budget::Role;
use super::holder::session_continues;
use super::lease_name;
use crate::cluster::Reach;

#[derive(Debug)]
struct Observation {
    holder: String,
    renew_time: Option<MicroTime>,
    observed_at: Instant,
    reach: Reach,
    /// How long the holder says its Lease lasts (else the local setting).
    declared_duration: Option<Duration>,
    /// How long a departing holder asked to be considered alive.
    restart_grace: Option<Duration>,
    role: Option<Role>,
    /// The holder's session: `acquireTime`, which it sets when it (re)joins
    /// after its Lease had expired.
    session: Option<MicroTime>,
    /// From when the member may own Services again after (re)joining.
    settled_at: Instant,
    /// After an outage of this agent's view, until the member's next
    /// renewal is seen: one more Lease duration (see `restart_clocks`).
    recovering: bool,
}

/// A live member as ownership sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) reach: Reach,
    /// Live for at least the hold-down since it (re)joined: a flapping node
    /// does not pull Services back and forth.
    pub(crate) settled: bool,
    /// What it declares; `None` from an agent that predates roles.
    pub(crate) role: Option<Role>,
}

impl Member {
    /// Whether it announces: standbys own a Service only when no announcer can.
    pub(crate) fn announces(&self) -> bool {
        self.role != Some(Role::Standby)
    }
}

/// Whether a live member runs an agent from before roles: it counts every
/// member as an announcer, and so must everyone.
pub(crate) fn before_roles<'m>(mut live: impl Iterator<Item = &'m Member>) -> bool {
    live.any(|member| member.role.is_none())
}

/// `members` as ownership must see them while an agent from before roles
/// is live (`before_roles`): every one announcing. The standbys write
/// "announcer" within moments, but until each write is seen the old agent
/// and the new ones would pick different owners, both answering.
pub(crate) fn roles_in_force(
    mut members: BTreeMap<String, Member>,
    before_roles: bool,
) -> BTreeMap<String, Member> {
    if before_roles {
        for member in members.values_mut() {
            member.role = None;
        }
    }
    members
}

#[derive(Debug)]
pub(crate) struct LeaseTracker {
    lease_duration: Duration,
    hold_down: Duration,
    own_lease: String,
    /// When this node's own current session began, as its holder knows it
    /// (its own Lease may first be seen after it was renewed).
    own_session_started: Option<Instant>,
    leases: HashMap<String, Observation>,
    /// Leases whose holder is not the node their name is for, already
    /// warned about.
    forged: HashSet<String>,
}

impl LeaseTracker {
    pub(crate) fn new(lease_duration: Duration, hold_down: Duration, own_lease: String) -> Self {
        LeaseTracker {
            lease_duration,
            hold_down,
            own_lease,
            own_session_started: None,
            leases: HashMap::new(),
            forged: HashSet::new(),
        }
    }

    /// This node's holder rejoined (its Lease had lapsed) at `started`.
    /// Held down at least from then; never less than when this agent saw
    /// the new session, as the other agents count from when they see it.
    pub(crate) fn own_session_started(&mut self, started: Instant) {
        self.own_session_started = Some(started);
        if let Some(seen) = self.leases.get_mut(&self.own_lease) {
            seen.settled_at = seen.settled_at.max(started + self.hold_down);
        }
    }

    /// Restarts the expiry clock of a Lease only when its holder or renewTime
    /// changed, so re-deliveries (relists, unrelated metadata edits) do not keep a
    /// dead member alive. A Lease whose name is not its holder's is ignored:
    /// anyone who may write Leases in the namespace could otherwise keep a dead
    /// node, or one that runs no agent, a member. `listed` says the Lease
    /// comes from a (re)list rather than a change seen as it happened.
    pub(crate) fn observe(&mut self, lease: &Lease, now: Instant, listed: bool) {
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
        let session = spec.and_then(|s| s.acquire_time.clone());
        let own = name == self.own_lease;
        // This node's own Lease as its previous agent left it, lapsed: to the
        // others this node is no member until its holder rejoins, which they
        // hold down. Counted live (and settled) meanwhile, it would take
        // Services from their owners until its first renewal, both
        // answering. Its renewTime is this machine's clock: no skew.
        if own
            && listed
            && !holder.is_empty()
            && !self.leases.contains_key(&name)
            && !session_continues(lease, &holder, Timestamp::now())
        {
            return;
        }
        let hold_down_from = |now: Instant| now + self.hold_down;
        let held_for_what_is_left = |age: Duration| now + self.hold_down.saturating_sub(age);
        let own_rejoin = own.then_some(self.own_session_started).flatten();
        let seen = match self.leases.entry(name) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                // A Lease never seen before is a first join: nothing to hold
                // down. Listed at this agent's start, it may be a rejoin the
                // other agents saw happen and hold down: the Lease itself
                // says how long ago, so this agent holds it down for what is
                // left, as they do (a restarted agent that did not would
                // move Services they keep). This node's own Lease is first
                // seen in the session its holder keeps or has just begun:
                // likewise.
                let settled_at = match rejoined_for(lease) {
                    Some(age) if listed || own => held_for_what_is_left(age),
                    _ if own_rejoin.is_some() => hold_down_from(now),
                    _ => now,
                };
                entry.insert(Observation {
                    holder: holder.clone(),
                    renew_time: None,
                    observed_at: now,
                    reach: Reach::default(),
                    declared_duration: None,
                    restart_grace: None,
                    role: None,
                    session: session.clone(),
                    settled_at,
                    recovering: false,
                })
            }
        };
        // A new session (or a holder taking a released Lease back) is the
        // node rejoining: held down from when it is seen, by this node for
        // its own Lease too. Counted from when its holder began the rejoin,
        // this node would settle before the others, who see it later (the
        // renewal's write and its delivery, hundreds of milliseconds on a
        // busy control plane), and take its Services back while their
        // owners still answer.
        let rejoined = seen.session != session || (seen.holder.is_empty() && !holder.is_empty());
        let renewed = seen.renew_time != renew_time;
        if rejoined && !listed {
            seen.settled_at = own_rejoin.map_or(hold_down_from(now), |t| {
                hold_down_from(now).max(t + self.hold_down)
            });
        } else if renewed && !listed && seen.settled_at > now {
            // Each renewal seen as it happens says how long the session has
            // lasted (both times the holder's clock): a hold-down estimated
            // from a list, where the renewal shown may be a renew interval
            // old, ends when the others' ends rather than that much later
            // (with the Services it must hand over still answered here).
            if let Some(age) = rejoined_for(lease) {
                seen.settled_at = seen.settled_at.min(held_for_what_is_left(age));
            }
        }
        seen.session = session;
        if seen.holder != holder || renewed {
            seen.holder = holder;
            seen.renew_time = renew_time;
            seen.observed_at = now;
            seen.recovering = false;
        }
        seen.reach = reach_of(lease);
        seen.declared_duration = declared_duration_of(lease);
        seen.restart_grace = restart_grace_of(lease);
        seen.role = role_of(lease);
    }

    pub(crate) fn forget(&mut self, name: &str) {
        self.leases.remove(name);
    }

    /// After a relist: Leases deleted while we were not watching are gone.
    pub(crate) fn retain(&mut self, names: &HashSet<String>) {
        self.leases.retain(|name, _| names.contains(name));
    }

    /// Time spent without a working view must not count against anyone:
    /// every member gets two Lease durations to show a renewal again. A
    /// holder retries a failed renewal at most once per Lease duration
    /// (`holder`), so after an outage its first renewal may come a whole
    /// duration after the API server is back, and the usual one duration
    /// would expire a live member whose retry fell late.
    pub(crate) fn restart_clocks(&mut self, now: Instant) {
        for seen in self.leases.values_mut() {
            seen.observed_at = now;
            seen.recovering = true;
        }
    }

    /// How long `seen`'s Lease lasts after a renewal.
    fn duration(&self, seen: &Observation) -> Duration {
        seen.declared_duration.unwrap_or(self.lease_duration)
    }

    fn expiry(&self, seen: &Observation) -> Instant {
        let alive_for = self.duration(seen) * if seen.recovering { 2 } else { 1 };
        let alive_for = seen
            .restart_grace
            .map_or(alive_for, |grace| grace.max(alive_for));
        seen.observed_at + alive_for
    }

    /// Holders of Leases renewed within their duration (or restart grace),
    /// with what each can answer for and whether it has settled.
    pub(crate) fn live(&self, now: Instant) -> BTreeMap<String, Member> {
        self.leases
            .values()
            .filter(|seen| !seen.holder.is_empty() && now < self.expiry(seen))
            .map(|seen| {
                let member = Member {
                    reach: seen.reach.clone(),
                    settled: seen.settled_at <= now,
                    role: seen.role,
                };
                (seen.holder.clone(), member)
            })
            .collect()
    }

    /// When the next live Lease expires or member settles, so membership
    /// changes without waiting for an unrelated event.
    pub(crate) fn next_change(&self, now: Instant) -> Option<Instant> {
        self.leases
            .values()
            .flat_map(|seen| [self.expiry(seen), seen.settled_at])
            .filter(|&at| at > now)
            .min()
    }

    pub(crate) fn last_change(&self, name: &str) -> Option<Instant> {
        self.leases.get(name).map(|seen| seen.observed_at)
    }

    /// How long `name`'s Lease lasts after a renewal.
    pub(crate) fn duration_of(&self, name: &str) -> Duration {
        self.leases
            .get(name)
            .map_or(self.lease_duration, |seen| self.duration(seen))
    }
}

/// How long ago, by its holder's own clock (renewTime − acquireTime, so no
/// clock skew between nodes enters), a Lease's node began its current
/// session, when that session is a rejoin: `None` for a first join (the
/// session began when the Lease was created) or when the Lease does not say.
fn rejoined_for(lease: &Lease) -> Option<Duration> {
    /// A first join stamps acquireTime as it creates the Lease.
    const CREATION_SLACK: Duration = Duration::from_secs(1);
    let spec = lease.spec.as_ref()?;
    let acquired = spec.acquire_time.as_ref()?.0;
    let renewed = spec.renew_time.as_ref()?.0;
    let created = lease.metadata.creation_timestamp.as_ref()?.0;
    let after_creation = Duration::try_from(acquired.duration_since(created)).ok()?;
    if after_creation < CREATION_SLACK {
        return None;
    }
    Some(Duration::try_from(renewed.duration_since(acquired)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::advert::tests::{with_duration_ms, with_families, with_grace};
    use crate::cluster::membership::tests::lease;
    use crate::cluster::Families;

    const SECOND: Duration = Duration::from_secs(1);

    fn members(names: &[&str]) -> BTreeMap<String, Member> {
        names
            .iter()
            .map(|n| {
                let member = Member {
                    reach: Reach::UNKNOWN,
                    settled: true,
                    role: None,
                };
                (n.to_string(), member)
            })
            .collect()
    }

    /// A tracker without hold-down, for expiry alone.
    fn tracker() -> LeaseTracker {
        LeaseTracker::new(SECOND, Duration::ZERO, lease_name("self"))
    }

    #[test]
    fn a_change_of_what_a_member_reaches_is_taken_at_once_without_renewing_it() {
        let now = Instant::now();
        let mut tracker = tracker();
        tracker.observe(&with_families(lease("v4", 1), "IPv4"), now, false);
        assert!(!tracker.live(now)["v4"].reach.families.ipv6);
        let later = now + Duration::from_millis(600);
        tracker.observe(&with_families(lease("v4", 1), "IPv4,IPv6"), later, false);
        assert_eq!(tracker.live(later)["v4"].reach.families, Families::BOTH);
        assert_eq!(tracker.last_change(&lease_name("v4")), Some(now));
    }

    #[test]
    fn expiry_follows_local_observation_not_written_timestamps() {
        let start = Instant::now();
        let mut tracker = tracker();
        // renewTime far in the past: a skewed clock must not make it look expired.
        tracker.observe(&lease("a", 1_000), start, false);
        tracker.observe(&lease("b", 4_000_000_000), start, false);
        assert_eq!(tracker.live(start), members(&["a", "b"]));
        assert_eq!(tracker.next_change(start), Some(start + SECOND));

        let later = start + Duration::from_millis(600);
        tracker.observe(&lease("a", 1_001), later, false);
        // b re-delivered unchanged: its clock keeps running.
        tracker.observe(&lease("b", 4_000_000_000), later, false);
        let after_b_expired = start + Duration::from_millis(1_100);
        assert_eq!(tracker.live(after_b_expired), members(&["a"]));
        assert_eq!(tracker.next_change(after_b_expired), Some(later + SECOND));
        assert_eq!(tracker.live(later + SECOND), members(&[]));
        assert_eq!(tracker.next_change(later + SECOND), None);
    }

    #[test]
    fn a_departing_member_stays_alive_for_its_restart_grace() {
        let start = Instant::now();
        let mut tracker = tracker();
        tracker.observe(&lease("a", 1), start, false);
        let left = start + Duration::from_millis(500);
        tracker.observe(&with_grace(lease("a", 2), "10"), left, false);
        assert_eq!(
            tracker.live(left + Duration::from_secs(9)),
            members(&["a"]),
            "within the grace"
        );
        assert_eq!(
            tracker.next_change(left),
            Some(left + Duration::from_secs(10))
        );
        assert!(
            tracker.live(left + Duration::from_secs(10)).is_empty(),
            "a node that does not come back fails over when the grace ends"
        );
        // Back in time: the successor's renewal clears the grace.
        let back = left + Duration::from_secs(3);
        tracker.observe(&lease("a", 3), back, false);
        assert!(tracker.live(back + SECOND).is_empty(), "plain lease again");
    }

    #[test]
    fn restarting_clocks_forgives_an_outage() {
        let start = Instant::now();
        let mut tracker = tracker();
        tracker.observe(&lease("a", 1), start, false);
        let after_outage = start + Duration::from_secs(30);
        assert!(tracker.live(after_outage).is_empty());
        tracker.restart_clocks(after_outage);
        assert_eq!(tracker.live(after_outage), members(&["a"]));
        assert_eq!(tracker.last_change(&lease_name("a")), Some(after_outage));
        // A holder retries once per Lease duration: its first renewal after
        // the outage may come a whole duration late.
        let late = after_outage + SECOND * 3 / 2;
        assert_eq!(
            tracker.live(late),
            members(&["a"]),
            "two durations after an outage"
        );
        assert!(tracker.live(after_outage + SECOND * 2).is_empty());
        // Once a renewal is seen, one duration as usual.
        tracker.observe(&lease("a", 40), late, false);
        assert_eq!(tracker.live(late + SECOND * 9 / 10), members(&["a"]));
        assert!(tracker.live(late + SECOND * 11 / 10).is_empty());
    }

    #[test]
    fn forgetting_and_relisting_drop_members() {
        let now = Instant::now();
        let mut tracker = tracker();
        for node in ["a", "b", "c"] {
            tracker.observe(&lease(node, 1), now, false);
        }
        tracker.forget(&lease_name("a"));
        tracker.retain(&[lease_name("b")].into());
        assert_eq!(tracker.live(now), members(&["b"]));
    }

    #[test]
    fn holderless_leases_are_not_members() {
        let now = Instant::now();
        let mut tracker = tracker();
        let mut released = lease("a", 1);
        released.spec.as_mut().expect("spec").holder_identity = None;
        tracker.observe(&released, now, false);
        assert!(tracker.live(now).is_empty());
    }

    #[test]
    fn a_lease_held_by_another_node_than_its_name_says_is_ignored() {
        let now = Instant::now();
        let mut tracker = tracker();
        tracker.observe(&lease("b", 1), now, false);
        let mut forged = lease("a", 1);
        forged.spec.as_mut().expect("spec").holder_identity = Some("b".into());
        tracker.observe(&forged, now, false);
        assert_eq!(tracker.live(now), members(&["b"]));
        // The rightful holder taking it back makes it count again.
        tracker.observe(&lease("a", 2), now, false);
        assert_eq!(tracker.live(now), members(&["a", "b"]));
    }

    #[test]
    fn the_duration_a_holder_declares_is_the_one_that_counts() {
        let start = Instant::now();
        let mut tracker = tracker();
        tracker.observe(&with_duration_ms(lease("slow", 1), "8000"), start, false);
        tracker.observe(&lease("old", 1), start, false);
        assert_eq!(
            tracker.live(start + Duration::from_secs(5)),
            members(&["slow"]),
            "slow renews rarely and said so; old gets the local second"
        );
        assert_eq!(
            tracker.duration_of(&lease_name("slow")),
            Duration::from_secs(8)
        );
        assert_eq!(tracker.duration_of(&lease_name("old")), SECOND);
    }

    fn in_session(node: &str, renewal: i64, session: i64) -> Lease {
        let mut lease = lease(node, renewal);
        lease.spec.as_mut().expect("spec").acquire_time = Some(MicroTime(
            k8s_openapi::jiff::Timestamp::from_second(session).expect("timestamp"),
        ));
        lease
    }

    #[test]
    fn a_member_that_rejoins_settles_after_the_hold_down() {
        let hold_down = Duration::from_secs(10);
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND, hold_down, lease_name("self"));
        // Listed, or joining for the first time: nothing to hold down, or
        // every node would move Services as each one settles after a cold
        // start.
        tracker.observe(&in_session("a", 1, 1), start, true);
        assert!(tracker.live(start)["a"].settled);
        tracker.observe(&in_session("new", 1, 1), start, false);
        assert!(tracker.live(start)["new"].settled);
        // Its Lease expires, then it comes back in a new session.
        let back = start + Duration::from_secs(5);
        tracker.observe(&in_session("a", 2, 2), back, false);
        assert!(!tracker.live(back)["a"].settled, "held down");
        assert_eq!(tracker.next_change(back), Some(back + SECOND));
        let renewed = back + Duration::from_millis(900);
        tracker.observe(&in_session("a", 3, 2), renewed, false);
        assert!(
            !tracker.live(renewed)["a"].settled,
            "renewals keep the session"
        );
        assert_eq!(
            tracker.next_change(renewed + SECOND / 2),
            Some(renewed + SECOND)
        );
        // Renewed throughout, it settles when the hold-down ends.
        let mut at = renewed;
        while at < back + hold_down {
            at += Duration::from_millis(500);
            tracker.observe(
                &in_session("a", at.duration_since(start).as_millis() as i64, 2),
                at,
                false,
            );
        }
        assert!(tracker.live(at)["a"].settled);
    }

    fn created(mut lease: Lease, second: i64) -> Lease {
        lease.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(second).expect("timestamp"),
            ));
        lease
    }

    #[test]
    fn a_rejoin_listed_at_start_is_held_down_for_what_is_left() {
        let hold_down = Duration::from_secs(10);
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND, hold_down, lease_name("self"));
        // Created at 100, rejoined at 200, renewed at 203: held down for 7 s
        // more, as the agents that saw it rejoin at 200 hold it down.
        tracker.observe(&created(in_session("a", 203, 200), 100), start, true);
        // A first join (acquired as the Lease was created) settles at once.
        tracker.observe(&created(in_session("b", 203, 100), 100), start, true);
        // Long since rejoined: settled.
        tracker.observe(&created(in_session("c", 300, 200), 100), start, true);
        for (now, a_settled) in [
            (start, false),
            (start + Duration::from_millis(6_900), false),
            (start + Duration::from_secs(7), true),
        ] {
            // Each still renewed, so only the hold-down decides.
            for (node, session) in [("a", 200), ("b", 100), ("c", 200)] {
                let second = 203 + now.duration_since(start).as_secs() as i64;
                tracker.observe(&created(in_session(node, second, session), 100), now, false);
            }
            let live = tracker.live(now);
            assert_eq!(live["a"].settled, a_settled, "a at {:?}", now - start);
            assert!(live["b"].settled && live["c"].settled);
        }
    }

    #[test]
    fn this_nodes_own_rejoin_is_held_down_from_when_its_holder_began_it() {
        let hold_down = Duration::from_secs(10);
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND, hold_down, lease_name("self"));
        tracker.own_session_started(start);
        // First seen in a list, after the holder's first renewal: still held
        // down, as the other agents, who saw the new session, hold it down.
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let rejoined = created(in_session("self", now, now), now - 3_600);
        tracker.observe(
            &with_duration_ms(rejoined, "1000"),
            start + SECOND / 2,
            true,
        );
        assert!(!tracker.live(start + SECOND / 2)["self"].settled);
        assert_eq!(
            tracker.next_change(start + Duration::from_millis(900)),
            Some(start + SECOND / 2 + SECOND)
        );
    }

    /// This node's own Lease as its previous agent left it, renewed
    /// `seconds_ago` by this machine's clock (to the second), lasting 5 s,
    /// in a session begun an hour before that.
    fn own_left(seconds_ago: i64) -> Lease {
        let renewed = k8s_openapi::jiff::Timestamp::now().as_second() - seconds_ago;
        let lease = created(
            in_session("self", renewed, renewed - 3_600),
            renewed - 7_200,
        );
        with_duration_ms(lease, "5000")
    }

    #[test]
    fn a_restarted_agent_holds_its_own_lapsed_lease_down_until_it_rejoins() {
        let hold_down = Duration::from_secs(10);
        let start = Instant::now();
        // Its previous agent died a minute ago: the others hold this node
        // down once it rejoins, and own its Services meanwhile. Until its
        // holder's first renewal shows the new session, this agent must
        // not count itself a settled member and take them.
        let mut restarted = LeaseTracker::new(SECOND, hold_down, lease_name("self"));
        restarted.observe(&own_left(60), start, true);
        assert!(
            !restarted.live(start).contains_key("self"),
            "no member, as to the others"
        );
        // Its holder's first renewal, in a new session: a member, held down.
        let back = start + Duration::from_millis(50);
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let rejoined = created(in_session("self", now, now), now - 7_200);
        restarted.observe(&with_duration_ms(rejoined, "1000"), back, false);
        assert!(!restarted.live(back)["self"].settled);
        // Restarted within its Lease (a rolling update): the session goes
        // on, and so does its ownership.
        let mut updated = LeaseTracker::new(SECOND, hold_down, lease_name("self"));
        updated.observe(&own_left(0), start, true);
        assert!(updated.live(start)["self"].settled);
    }

    #[test]
    fn this_node_settles_after_its_rejoin_when_the_others_do() {
        let hold_down = Duration::from_secs(10);
        let start = Instant::now();
        let mut own_view = LeaseTracker::new(SECOND, hold_down, lease_name("self"));
        let mut peer_view = LeaseTracker::new(SECOND, hold_down, lease_name("peer"));
        for view in [&mut own_view, &mut peer_view] {
            view.observe(&in_session("self", 1, 1), start, false);
        }
        // The holder begins the rejoin; its write is seen 300 ms later, by
        // this agent's watch as by the peer's.
        own_view.own_session_started(start + SECOND);
        let seen = start + SECOND + Duration::from_millis(300);
        let mut at = seen;
        while at <= seen + hold_down + SECOND {
            let renewal = in_session("self", 2 + (at - start).as_millis() as i64, 2);
            for view in [&mut own_view, &mut peer_view] {
                view.observe(&renewal, at, false);
            }
            assert_eq!(
                own_view.live(at)["self"].settled,
                peer_view.live(at)["self"].settled,
                "at {:?}: this node settles when the others let it",
                at - start
            );
            at += Duration::from_millis(250);
        }
        assert!(own_view.live(at - Duration::from_millis(250))["self"].settled);
    }
}
