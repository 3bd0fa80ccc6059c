//! This node's role over time: promoted at once when the announcer set
//! wants it, demoted only after it has not been wanted for a while (a
//! demotion moves its Services), and other members chosen that do not
//! promote themselves in time passed over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::{wanted, Domains};
use crate::cluster::membership::{before_roles, Announcers, Member, Plan, Role, Roster};

/// What deciding needs, all of it read from the current view.
pub(crate) struct Facts<'a> {
    pub(crate) own: &'a str,
    /// Every live member, eligible or not: the counts the budget divides.
    pub(crate) live: &'a BTreeMap<String, Member>,
    /// The live members that are eligible nodes: those that may announce.
    pub(crate) eligible: &'a BTreeMap<String, Member>,
    pub(crate) domains: &'a Domains,
}

#[derive(Debug)]
pub(crate) struct RoleKeeper {
    mode: Announcers,
    plan: Plan,
    /// How long a member chosen may take to declare itself an announcer.
    grace: Duration,
    /// How long this node announces on after it is no longer wanted.
    demote_after: Duration,
    wanted_since: BTreeMap<String, Instant>,
    passed_over: BTreeSet<String>,
    unwanted_since: Option<Instant>,
}

impl RoleKeeper {
    pub(crate) fn new(mode: Announcers, plan: Plan, demote_after: Duration) -> Self {
        RoleKeeper {
            mode,
            plan,
            // A live standby sees it is wanted as soon as the others do and
            // writes at once; a few of the fastest Leases cover a slow
            // control plane.
            grace: (plan.fastest.lease * 3).max(Duration::from_secs(2)),
            demote_after,
            wanted_since: BTreeMap::new(),
            passed_over: BTreeSet::new(),
            unwanted_since: None,
        }
    }

    /// The roster this node publishes for its Lease holder at `now`.
    pub(crate) fn decide(&mut self, facts: &Facts<'_>, now: Instant) -> Roster {
        let announcers = facts.live.values().filter(|m| m.announces()).count();
        let roster = |role| Roster {
            announcers,
            standbys: facts.live.len() - announcers,
            role: Some(role),
        };
        // An agent that predates roles announces wherever it is a
        // candidate and counts everyone as one: so must everyone.
        let slots = match self.mode {
            Announcers::All => return roster(Role::Announcer),
            _ if before_roles(facts.live.values()) => return roster(Role::Announcer),
            Announcers::Budgeted => self.plan.slots(facts.live.len()),
            Announcers::AtMost(most) => most,
        };
        if !facts.eligible.contains_key(facts.own) {
            self.unwanted_since = None;
            return roster(Role::Standby);
        }
        let chosen = self.choose(facts, slots, now);
        let declared = facts.live.get(facts.own).and_then(|m| m.role);
        let role = if chosen.contains(facts.own) {
            self.unwanted_since = None;
            Role::Announcer
        } else if declared == Some(Role::Announcer) {
            let since = *self.unwanted_since.get_or_insert(now);
            match now.duration_since(since) >= self.demote_after {
                true => Role::Standby,
                false => Role::Announcer,
            }
        } else {
            self.unwanted_since = None;
            Role::Standby
        };
        roster(role)
    }

    /// The announcer set, passing over members chosen for longer than the
    /// grace that still declare themselves standbys.
    fn choose(&mut self, facts: &Facts<'_>, slots: usize, now: Instant) -> BTreeSet<String> {
        self.passed_over.retain(|node| {
            facts
                .eligible
                .get(node)
                .is_some_and(|member| !member.announces())
        });
        loop {
            let chosen = wanted(
                facts.domains.iter(),
                facts.eligible,
                slots,
                &self.passed_over,
            );
            let waiting: BTreeSet<&String> = chosen
                .iter()
                .filter(|node| node.as_str() != facts.own && !facts.eligible[*node].announces())
                .collect();
            self.wanted_since.retain(|node, _| waiting.contains(node));
            for node in &waiting {
                self.wanted_since.entry((*node).clone()).or_insert(now);
            }
            let late: Vec<String> = self
                .wanted_since
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= self.grace)
                .map(|(node, _)| node.clone())
                .collect();
            if late.is_empty() {
                return chosen;
            }
            for node in late {
                tracing::info!(%node, grace = ?self.grace, "a node chosen to announce did not promote itself in time; passing it over");
                self.wanted_since.remove(&node);
                self.passed_over.insert(node);
            }
        }
    }

    /// When a decision may change without any event: a grace or the
    /// demotion delay running out.
    pub(crate) fn next_change(&self) -> Option<Instant> {
        self.wanted_since
            .values()
            .map(|since| *since + self.grace)
            .chain(self.unwanted_since.map(|since| since + self.demote_after))
            .min()
    }
}

#[cfg(test)]
mod tests;
