use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::cluster::membership::Cadence;
use crate::cluster::Reach;

const PLAN: Plan = Plan {
    budget: 90.0,
    fastest: Cadence {
        renew: Duration::from_millis(200),
        lease: Duration::from_millis(800),
    },
};
const DEMOTE_AFTER: Duration = Duration::from_secs(10);

fn members(count: usize, role: Option<Role>) -> BTreeMap<String, Member> {
    (0..count)
        .map(|i| {
            let member = Member {
                reach: Reach::UNKNOWN,
                settled: true,
                role,
            };
            (format!("node-{i:02}"), member)
        })
        .collect()
}

fn keeper(mode: Announcers) -> RoleKeeper {
    RoleKeeper::new(mode, PLAN, DEMOTE_AFTER)
}

fn decide(
    keeper: &mut RoleKeeper,
    own: &str,
    live: &BTreeMap<String, Member>,
    now: Instant,
) -> Roster {
    let domains = Domains::default();
    let facts = Facts {
        own,
        live,
        eligible: live,
        domains: &domains,
    };
    keeper.decide(&facts, now)
}

/// The nodes the set wants among `live`, by asking each of them.
fn chosen(live: &BTreeMap<String, Member>, mode: Announcers, now: Instant) -> Vec<String> {
    live.keys()
        .filter(|own| decide(&mut keeper(mode), own, live, now).role == Some(Role::Announcer))
        .cloned()
        .collect()
}

#[test]
fn an_agent_before_roles_makes_everyone_announce() {
    let now = Instant::now();
    let mut live = members(30, Some(Role::Standby));
    live.insert(
        "old".into(),
        Member {
            reach: Reach::UNKNOWN,
            settled: true,
            role: None,
        },
    );
    assert_eq!(chosen(&live, Announcers::AtMost(2), now).len(), 31);
    let roster = decide(&mut keeper(Announcers::AtMost(2)), "node-00", &live, now);
    assert_eq!(
        (roster.announcers, roster.standbys),
        (1, 30),
        "the old agent counts as announcing"
    );
}

#[test]
fn all_means_every_node_announces() {
    let live = members(50, Some(Role::Standby));
    assert_eq!(chosen(&live, Announcers::All, Instant::now()).len(), 50);
}

#[test]
fn a_bounded_set_is_chosen_and_the_others_stand_by() {
    let now = Instant::now();
    let live = members(40, Some(Role::Standby));
    assert_eq!(chosen(&live, Announcers::AtMost(3), now).len(), 3);
    let affordable = PLAN.slots(40);
    assert!((12..40).contains(&affordable), "{affordable}");
    assert_eq!(chosen(&live, Announcers::Budgeted, now).len(), affordable);
    let ineligible = BTreeMap::new();
    let domains = Domains::default();
    let facts = Facts {
        own: "node-00",
        live: &live,
        eligible: &ineligible,
        domains: &domains,
    };
    assert_eq!(
        keeper(Announcers::AtMost(3)).decide(&facts, now).role,
        Some(Role::Standby)
    );
}

#[test]
fn an_announcer_no_longer_wanted_stands_down_only_after_the_delay() {
    let start = Instant::now();
    let mut live = members(10, Some(Role::Standby));
    let wanted = chosen(&live, Announcers::AtMost(2), start);
    let extra = live
        .keys()
        .find(|n| !wanted.contains(n))
        .expect("one")
        .clone();
    for node in wanted.iter().chain([&extra]) {
        live.get_mut(node).expect("member").role = Some(Role::Announcer);
    }
    let mut keeper = keeper(Announcers::AtMost(2));
    assert_eq!(
        decide(&mut keeper, &extra, &live, start).role,
        Some(Role::Announcer)
    );
    assert_eq!(keeper.next_change(), Some(start + DEMOTE_AFTER));
    let almost = start + DEMOTE_AFTER - Duration::from_millis(1);
    assert_eq!(
        decide(&mut keeper, &extra, &live, almost).role,
        Some(Role::Announcer)
    );
    assert_eq!(
        decide(&mut keeper, &extra, &live, start + DEMOTE_AFTER).role,
        Some(Role::Standby)
    );
}

#[test]
fn a_chosen_node_that_does_not_promote_is_passed_over_after_the_grace() {
    let start = Instant::now();
    let live = members(10, Some(Role::Standby));
    let first: std::collections::BTreeSet<String> = chosen(&live, Announcers::AtMost(2), start)
        .into_iter()
        .collect();
    let successors = super::super::wanted(std::iter::empty(), &live, 2, &first);
    let successor = successors.iter().next().expect("one");
    let mut keeper = keeper(Announcers::AtMost(2));
    assert_eq!(
        decide(&mut keeper, successor, &live, start).role,
        Some(Role::Standby)
    );
    let grace = keeper.next_change().expect("waiting for the chosen") - start;
    assert!(grace >= Duration::from_secs(2), "{grace:?}");
    // Neither chosen node ever declares itself: both are passed over, and
    // the next ones are wanted.
    let roster = decide(&mut keeper, successor, &live, start + grace);
    assert_eq!(roster.role, Some(Role::Announcer));
    assert_eq!(keeper.passed_over, first);
    // Once one of them declares itself after all, it is no longer passed over.
    let mut late = live.clone();
    let back = first.iter().next().expect("one");
    late.get_mut(back).expect("member").role = Some(Role::Announcer);
    decide(&mut keeper, successor, &late, start + grace);
    assert!(!keeper.passed_over.contains(back));
}
