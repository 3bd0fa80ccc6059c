//! Which members should announce: for every domain (the set of members that
//! may own some Service, as ownership computes it) at least
//! [`PER_DOMAIN`] of them, and beyond that as many as the budget's slots
//! allow, in a stable order. Every agent computes the same set from the same
//! Leases; each acts only on its own place in it (promoting or demoting
//! itself), so a disagreement for a moment changes who renews fast, never
//! who owns a Service.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::membership::{Member, Role, PER_DOMAIN};

mod keeper;
pub(crate) use keeper::{Facts, RoleKeeper};

/// The distinct domains of the current Services, each counted by the
/// Services that have it, so a recomputation of a few Services keeps the
/// rest.
#[derive(Debug, Default)]
pub(crate) struct Domains {
    by_key: HashMap<u64, (Vec<String>, usize)>,
}

impl Domains {
    /// Counts one Service in the domain of `candidates` (sorted by name),
    /// returning its key, for [`Domains::release`] when the Service goes
    /// or is recomputed.
    pub(crate) fn hold(&mut self, candidates: &[&str]) -> u64 {
        let key = domain_key(candidates);
        self.by_key
            .entry(key)
            .or_insert_with(|| (candidates.iter().map(|c| (*c).to_owned()).collect(), 0))
            .1 += 1;
        key
    }

    pub(crate) fn release(&mut self, key: u64) {
        if let Some((_, count)) = self.by_key.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.by_key.remove(&key);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[String]> {
        self.by_key.values().map(|(names, _)| names.as_slice())
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// FNV-1a over the names, each ended by a zero byte: stable and cheap; two
/// domains colliding would only merge their announcer counts.
fn domain_key(candidates: &[&str]) -> u64 {
    candidates
        .iter()
        .flat_map(|name| name.bytes().chain([0]))
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// A node's place in the announcer order: the same on every agent, and
/// spread (names sharing long prefixes do not cluster), so the announcers
/// are not always the first nodes by name.
fn rank_weight(node: &str) -> u64 {
    let mut z = domain_key(&[node]).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The members that should announce, among `members` (the eligible live
/// ones): settled announcers first (so a node joining, or a better-ranked
/// one coming back, displaces nobody), then the rest by rank; each taken
/// while a domain it belongs to has fewer than [`PER_DOMAIN`] (or all its
/// members), or while fewer than `slots` are taken. `passed_over` are
/// members chosen before that did not promote themselves in time (a node
/// whose slow Lease has not expired yet although it is gone): the next in
/// order takes their place. Without any domain (no Services yet) every
/// member is one domain's, so announcers are ready for the first Service.
pub(crate) fn wanted<'a>(
    domains: impl Iterator<Item = &'a [String]>,
    members: &BTreeMap<String, Member>,
    slots: usize,
    passed_over: &BTreeSet<String>,
) -> BTreeSet<String> {
    let all: Vec<String> = members.keys().cloned().collect();
    let mut domains: Vec<&[String]> = domains.collect();
    if domains.is_empty() {
        domains.push(&all);
    }
    let mut order: Vec<(&String, &Member)> = members
        .iter()
        .filter(|(node, _)| !passed_over.contains(*node))
        .collect();
    order.sort_by_key(|(node, member)| {
        let sticky = member.settled && member.role == Some(Role::Announcer);
        (
            !sticky,
            !member.settled,
            std::cmp::Reverse(rank_weight(node)),
            *node,
        )
    });
    let need: Vec<usize> = domains
        .iter()
        .map(|domain| {
            let available = domain
                .iter()
                .filter(|node| members.contains_key(*node) && !passed_over.contains(*node))
                .count();
            PER_DOMAIN.min(available)
        })
        .collect();
    let mut have = vec![0usize; domains.len()];
    let mut chosen = BTreeSet::new();
    for (node, _) in order {
        let within: Vec<usize> = (0..domains.len())
            .filter(|&d| domains[d].binary_search(node).is_ok())
            .collect();
        if within.is_empty() {
            continue;
        }
        let covers = within.iter().any(|&d| have[d] < need[d]);
        if !covers && chosen.len() >= slots {
            if have.iter().zip(&need).all(|(have, need)| have >= need) {
                break;
            }
            continue;
        }
        for d in within {
            have[d] += 1;
        }
        chosen.insert(node.clone());
    }
    chosen
}

#[cfg(test)]
mod tests;
