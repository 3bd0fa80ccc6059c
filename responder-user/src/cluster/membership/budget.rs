//! How the cluster's Lease write budget is spent: announcers renew fast, so
//! their death is seen within a Lease of under a second; standbys, which
//! carry nothing, renew slowly, so a thousand of them cost what a few
//! announcers do.

use std::time::Duration;

/// What a member does, as its Lease says (see `advert`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Renews at the fast cadence and may own Services.
    Announcer,
    /// Renews slowly and owns a Service only when no announcer can.
    Standby,
}

/// How many announce: a bounded set (the default), or every eligible node
/// (`--announcers all`, the membership as it was before roles: failover
/// then grows with the number of nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announcers {
    /// As many as the write budget affords at the fastest cadence, and at
    /// least [`PER_DOMAIN`] for every set of nodes that may own a Service.
    Budgeted,
    /// At most this many beyond the [`PER_DOMAIN`] coverage.
    AtMost(usize),
    All,
}

/// Announcers kept for every set of nodes that may own some Service: when
/// one dies, another is already announcing fast and takes its Services at
/// once, while a standby promotes itself.
pub(crate) const PER_DOMAIN: usize = 2;

/// The slow cadence's floor: a standby's Lease lasts four renewals too, so
/// a dead standby is seen within 40 s even in a small cluster.
const STANDBY_FASTEST: Cadence = Cadence {
    renew: Duration::from_secs(10),
    lease: Duration::from_secs(40),
};

/// The share of the budget standbys may use at most: the rest is the
/// announcers'.
const STANDBY_SHARE: f64 = 0.2;

/// How often a member renews its Lease and how long each renewal lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cadence {
    pub renew: Duration,
    pub lease: Duration,
}

impl Cadence {
    /// The cadence that keeps `members` renewals within `budget` writes per
    /// second: never faster than `fastest`, and the Lease lasting as many
    /// renewals as `fastest` allows (so as many may be lost).
    pub fn for_members(members: usize, budget: f64, fastest: Cadence) -> Cadence {
        let needed = Duration::from_secs_f64(members.max(1) as f64 / budget.max(f64::MIN_POSITIVE));
        let renew = needed.max(fastest.renew);
        let ratio = fastest.lease.as_secs_f64() / fastest.renew.as_secs_f64();
        Cadence {
            renew,
            lease: renew.mul_f64(ratio),
        }
    }

    fn writes_per_second(&self, members: usize) -> f64 {
        members as f64 / self.renew.as_secs_f64()
    }
}

/// The membership's counts, as the assigner sees them, and this node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Roster {
    /// Live members declaring [`Role::Announcer`], or predating roles.
    pub(crate) announcers: usize,
    pub(crate) standbys: usize,
    /// What this node should declare; `None` until the view is complete.
    pub(crate) role: Option<Role>,
}

impl Roster {
    pub(crate) const EMPTY: Roster = Roster {
        announcers: 0,
        standbys: 0,
        role: None,
    };
}

/// How a cluster of `members` spends `budget` writes per second: what
/// standbys use (at most a fifth, never faster than [`STANDBY_FASTEST`]),
/// and the rest for announcers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub budget: f64,
    pub fastest: Cadence,
}

impl Plan {
    fn standby_budget(&self) -> f64 {
        self.budget * STANDBY_SHARE
    }

    /// The standbys' cadence when there are `standbys` of them.
    pub fn standby(&self, standbys: usize) -> Cadence {
        let slowest_fast = STANDBY_FASTEST.renew.max(self.fastest.renew);
        let floor = Cadence {
            renew: slowest_fast,
            lease: slowest_fast * 4,
        };
        Cadence::for_members(standbys, self.standby_budget(), floor)
    }

    /// What the announcers may spend: the budget less what `standbys` use.
    fn announcer_budget(&self, standbys: usize) -> f64 {
        let used = match standbys {
            0 => 0.0,
            n => self.standby(n).writes_per_second(n),
        };
        (self.budget - used).max(f64::MIN_POSITIVE)
    }

    /// The announcers' cadence with `roster`'s counts: the fastest while
    /// the budget allows, slower (failover growing with it) when coverage
    /// needs more announcers than it affords.
    pub(crate) fn announcer(&self, roster: &Roster) -> Cadence {
        Cadence::for_members(
            roster.announcers,
            self.announcer_budget(roster.standbys),
            self.fastest,
        )
    }

    /// How many announcers `members` live members afford at the fastest
    /// cadence, the rest standing by.
    pub fn slots(&self, members: usize) -> usize {
        let mut slots = members;
        // The standbys' share shrinks as announcers grow: settle on the
        // largest count that fits (a few steps at most).
        while slots > 0 {
            let budget = self.announcer_budget(members - slots);
            if slots as f64 <= budget * self.fastest.renew.as_secs_f64() + 1e-9 {
                break;
            }
            slots -= 1;
        }
        slots
    }

    /// The cadence of a member with `role` in `roster`.
    pub(crate) fn cadence(&self, role: Role, roster: &Roster) -> Cadence {
        match role {
            Role::Announcer => self.announcer(roster),
            Role::Standby => self.standby(roster.standbys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_FASTEST: Cadence = Cadence {
        renew: Duration::from_millis(250),
        lease: Duration::from_secs(1),
    };
    const FASTEST: Cadence = Cadence {
        renew: Duration::from_millis(200),
        lease: Duration::from_millis(800),
    };

    #[test]
    fn the_cadence_follows_the_members_within_the_write_budget() {
        assert_eq!(Cadence::for_members(3, 50.0, OLD_FASTEST), OLD_FASTEST);
        assert_eq!(Cadence::for_members(12, 50.0, OLD_FASTEST), OLD_FASTEST);
        let hundred = Cadence::for_members(100, 50.0, OLD_FASTEST);
        assert_eq!(hundred.renew, Duration::from_secs(2));
        assert_eq!(
            hundred.lease,
            Duration::from_secs(8),
            "four renewals, as at 250 ms"
        );
        let thousand = Cadence::for_members(1000, 50.0, OLD_FASTEST);
        assert_eq!(thousand.renew, Duration::from_secs(20));
        assert_eq!(
            Cadence::for_members(0, 50.0, OLD_FASTEST),
            OLD_FASTEST,
            "alone, or before the first list"
        );
        assert_eq!(
            Cadence::for_members(100, 400.0, OLD_FASTEST),
            OLD_FASTEST,
            "a bigger budget keeps sub-second failover"
        );
    }

    #[test]
    fn a_small_cluster_announces_everywhere_and_a_large_one_keeps_within_the_budget() {
        let plan = Plan {
            budget: 90.0,
            fastest: FASTEST,
        };
        assert_eq!(plan.slots(3), 3);
        assert_eq!(plan.slots(13), 13, "13 × 5 + nothing for standbys");
        for members in [100, 300, 1000, 5000] {
            let slots = plan.slots(members);
            let roster = Roster {
                announcers: slots,
                standbys: members - slots,
                role: Some(Role::Announcer),
            };
            let announcer = plan.announcer(&roster);
            assert_eq!(announcer, FASTEST, "{members}: announcers stay fastest");
            let writes = announcer.writes_per_second(slots)
                + plan
                    .standby(members - slots)
                    .writes_per_second(members - slots);
            assert!(writes <= 90.0 + 1e-6, "{members}: {writes} writes/s");
            assert!(slots >= 12, "{members}: {slots} slots");
        }
        // The figures docs/agents.md gives ("Announcers and standbys").
        let slots: Vec<usize> = [18, 19, 100, 300, 1000].map(|n| plan.slots(n)).to_vec();
        assert_eq!(slots, [18, 17, 16, 14, 14]);
        let thousand = plan.standby(986);
        assert!(
            thousand.renew > Duration::from_secs(50) && thousand.lease == thousand.renew * 4,
            "{thousand:?}"
        );
        assert_eq!(plan.standby(5), plan.standby(1), "the standby floor");
        assert_eq!(plan.standby(5).renew, Duration::from_secs(10));
    }

    #[test]
    fn more_announcers_than_the_budget_affords_slow_down_together() {
        let plan = Plan {
            budget: 90.0,
            fastest: FASTEST,
        };
        let crowded = Roster {
            announcers: 40,
            standbys: 960,
            role: Some(Role::Announcer),
        };
        let cadence = plan.announcer(&crowded);
        assert!(cadence.renew > FASTEST.renew, "{cadence:?}");
        let writes = cadence.writes_per_second(40) + plan.standby(960).writes_per_second(960);
        assert!(writes <= 90.0 + 1e-6, "{writes}");
    }
}
