use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::cluster::Reach;

fn member(role: Option<Role>, settled: bool) -> Member {
    Member {
        reach: Reach::UNKNOWN,
        settled,
        role,
    }
}

fn standbys(names: &[String]) -> BTreeMap<String, Member> {
    names
        .iter()
        .map(|name| (name.clone(), member(Some(Role::Standby), true)))
        .collect()
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    names.sort();
    names
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

#[test]
fn one_domain_gets_the_slots_and_no_more() {
    let nodes = names("node", 1000);
    let members = standbys(&nodes);
    let chosen = wanted([nodes.as_slice()].into_iter(), &members, 12, &none());
    assert_eq!(chosen.len(), 12);
    let again = wanted([nodes.as_slice()].into_iter(), &members, 12, &none());
    assert_eq!(chosen, again, "stable");
    let first_by_name: BTreeSet<String> = nodes[..12].iter().cloned().collect();
    assert_ne!(chosen, first_by_name, "spread, not the first names");
}

#[test]
fn without_services_the_members_are_one_domain() {
    let nodes = names("node", 5);
    let members = standbys(&nodes);
    assert_eq!(wanted(std::iter::empty(), &members, 3, &none()).len(), 3);
    assert_eq!(
        wanted(std::iter::empty(), &members, 0, &none()).len(),
        PER_DOMAIN,
        "coverage even without slots"
    );
}

#[test]
fn every_domain_keeps_two_announcers_whatever_the_slots() {
    let left = names("left", 10);
    let right = names("right", 10);
    let lonely = vec!["lonely".to_owned()];
    let members = standbys(&[left.clone(), right.clone(), lonely.clone()].concat());
    let domains = [left.as_slice(), right.as_slice(), lonely.as_slice()];
    let chosen = wanted(domains.into_iter(), &members, 0, &none());
    let count = |domain: &[String]| domain.iter().filter(|n| chosen.contains(*n)).count();
    assert_eq!(count(&left), PER_DOMAIN);
    assert_eq!(count(&right), PER_DOMAIN);
    assert_eq!(count(&lonely), 1, "a domain of one has one");
    assert_eq!(chosen.len(), 5);
}

#[test]
fn members_that_may_own_nothing_never_announce() {
    let domain = names("edge", 3);
    let mut members = standbys(&domain);
    members.extend(standbys(&names("internal", 50)));
    let chosen = wanted([domain.as_slice()].into_iter(), &members, 20, &none());
    assert_eq!(chosen, domain.iter().cloned().collect());
}

#[test]
fn settled_announcers_keep_their_place_against_better_ranked_standbys() {
    let nodes = names("node", 40);
    let mut members = standbys(&nodes);
    let first = wanted([nodes.as_slice()].into_iter(), &members, 4, &none());
    // The four that would not be chosen on rank alone announce already.
    let others: Vec<String> = nodes
        .iter()
        .filter(|n| !first.contains(*n))
        .take(4)
        .cloned()
        .collect();
    for node in &others {
        members.insert(node.clone(), member(Some(Role::Announcer), true));
    }
    let chosen = wanted([nodes.as_slice()].into_iter(), &members, 4, &none());
    assert_eq!(chosen, others.iter().cloned().collect());
    // A joining announcer (not settled) takes no settled one's place.
    let joining = first.iter().next().expect("one").clone();
    members.insert(joining.clone(), member(Some(Role::Announcer), false));
    let chosen = wanted([nodes.as_slice()].into_iter(), &members, 4, &none());
    assert!(!chosen.contains(&joining));
}

#[test]
fn a_member_chosen_that_does_not_promote_is_passed_over() {
    let nodes = names("node", 10);
    let members = standbys(&nodes);
    let chosen = wanted([nodes.as_slice()].into_iter(), &members, 2, &none());
    let gone = chosen.iter().next().expect("one").clone();
    let passed: BTreeSet<String> = [gone.clone()].into();
    let next = wanted([nodes.as_slice()].into_iter(), &members, 2, &passed);
    assert_eq!(next.len(), 2);
    assert!(!next.contains(&gone));
    assert_eq!(next.intersection(&chosen).count(), 1, "the other stays");
}

#[test]
fn domains_are_counted_by_services_and_forgotten_with_the_last() {
    let mut domains = Domains::default();
    let a = domains.hold(&["a", "b"]);
    let again = domains.hold(&["a", "b"]);
    let c = domains.hold(&["c"]);
    assert_eq!(a, again);
    assert_ne!(a, domains_key_of(&["ab"]), "names are delimited");
    assert_eq!(domains.len(), 2);
    domains.release(a);
    assert_eq!(domains.len(), 2);
    domains.release(a);
    domains.release(c);
    assert_eq!(domains.len(), 0);
}

fn domains_key_of(candidates: &[&str]) -> u64 {
    super::domain_key(candidates)
}
