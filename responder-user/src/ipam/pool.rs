//! `IPAddressPool`s: parsed and checked one by one, so a bad pool is refused with its
//! reasons while the others carry on, and indexed by address for O(log n) lookups.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::error::{NotAdmitted, PoolError, PoolProblem};
use super::family::IpFamily;
use super::policy::{selection_key, ServiceAllocation, ServiceAllocationSpec};
use super::range::{is_buggy, reserved_anycast, AddressRange, ReservedAnycast};
use super::request::ServiceRequest;

/// An `IPAddressPool` as written; `Deserialize` reads its `spec` (camelCase, as in the
/// CRD) and the controller fills `name` from the metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Absent means true.
    #[serde(default)]
    pub auto_assign: Option<bool>,
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocationSpec>,
}

impl PoolSpec {
    pub fn new(name: impl Into<String>, addresses: &[&str]) -> Self {
        PoolSpec {
            name: name.into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }
}

/// One `spec.addresses` entry, with its text kept for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolEntry {
    pub text: String,
    pub range: AddressRange,
}

/// An accepted pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    name: String,
    entries: Vec<PoolEntry>,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    allocation: Option<ServiceAllocation>,
}

impl Pool {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn entries(&self) -> &[PoolEntry] {
        &self.entries
    }

    /// This family's ranges in the order the pool lists them: the allocation order.
    pub fn ranges(&self, family: IpFamily) -> impl Iterator<Item = &AddressRange> {
        self.entries
            .iter()
            .map(|e| &e.range)
            .filter(move |r| r.family() == family)
    }

    pub fn has_family(&self, family: IpFamily) -> bool {
        self.ranges(family).next().is_some()
    }

    pub fn auto_assign(&self) -> bool {
        self.auto_assign
    }

    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips
    }

    pub fn service_allocation(&self) -> Option<&ServiceAllocation> {
        self.allocation.as_ref()
    }

    pub fn admits(&self, service: &ServiceRequest) -> Result<(), NotAdmitted> {
        self.allocation
            .as_ref()
            .map_or(Ok(()), |allocation| allocation.admits(service))
    }

    /// Addresses of the family the pool may hand out (never the reserved anycast
    /// addresses), saturating at `u128::MAX`.
    pub fn capacity(&self, family: IpFamily) -> u128 {
        self.ranges(family)
            .map(|r| r.usable_count(self.avoid_buggy_ips))
            .fold(0, u128::saturating_add)
    }
}

/// Where an address falls among the pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Located<'a> {
    In(&'a Pool),
    /// Inside a range of a pool that skips it (avoidBuggyIPs).
    Avoided(&'a Pool),
    /// Inside a range of a pool, but a reserved anycast address, which no pool
    /// hands out.
    Reserved(&'a Pool, ReservedAnycast),
    Outside,
}

/// The accepted pools and the refusals, from one set of `IPAddressPool`s.
#[derive(Clone, Debug, Default)]
pub struct PoolSet {
    pools: Vec<Pool>,
    by_name: BTreeMap<String, usize>,
    /// First address of every accepted range → (last address, pool, entry); the ranges
    /// are disjoint, so the one holding an address is the last starting at or below it.
    by_start: BTreeMap<IpAddr, (IpAddr, usize, usize)>,
    /// Pool indexes in the order automatic allocation tries them.
    order: Vec<usize>,
    refused: Vec<PoolError>,
}

impl PoolSet {
    /// Checks each pool on its own: malformed, reversed or mixed-family entries,
    /// entries overlapping each other or an already accepted pool, bad
    /// `serviceAllocation`. Pools are taken in the given order and an overlap refuses
    /// the later pool, so pass them oldest first (by creationTimestamp) and a newly
    /// added pool can never evict one in use.
    pub fn build(specs: impl IntoIterator<Item = PoolSpec>) -> PoolSet {
        let mut set = PoolSet::default();
        for spec in specs {
            match set.check(&spec) {
                Ok(pool) => set.accept(pool),
                Err(problems) => set.refused.push(PoolError {
                    pool: spec.name,
                    problems,
                }),
            }
        }
        set.order = (0..set.pools.len()).collect();
        let pools = &set.pools;
        set.order.sort_by(|&a, &b| {
            let key = |i: usize| selection_key(pools[i].allocation.as_ref(), &pools[i].name);
            key(a).cmp(&key(b))
        });
        set
    }

    fn check(&self, spec: &PoolSpec) -> Result<Pool, Vec<PoolProblem>> {
        let mut problems = Vec::new();
        if spec.name.is_empty() {
            problems.push(PoolProblem::MissingName);
        } else if self.by_name.contains_key(&spec.name)
            || self.refused.iter().any(|r| r.pool == spec.name)
        {
            problems.push(PoolProblem::DuplicateName);
        }
        if spec.addresses.is_empty() {
            problems.push(PoolProblem::NoAddresses);
        }
        let mut entries: Vec<PoolEntry> = Vec::new();
        for text in &spec.addresses {
            let range = match AddressRange::parse(text) {
                Ok(range) => range,
                Err(e) => {
                    problems.push(PoolProblem::InvalidEntry(e));
                    continue;
                }
            };
            if let Some(earlier) = entries.iter().find(|e| e.range.overlaps(&range)) {
                problems.push(PoolProblem::OverlapWithinPool {
                    entry: text.clone(),
                    other_entry: earlier.text.clone(),
                });
            } else if let Some((pool, entry)) = self.overlapping(&range) {
                problems.push(PoolProblem::OverlapsPool {
                    entry: text.clone(),
                    other_pool: pool.name.clone(),
                    other_entry: entry.text.clone(),
                });
            }
            entries.push(PoolEntry {
                text: text.clone(),
                range,
            });
        }
        let allocation = match &spec.service_allocation {
            None => None,
            Some(allocation) => match ServiceAllocation::from_spec(allocation) {
                Ok(allocation) => Some(allocation),
                Err(more) => {
                    problems.extend(more);
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Pool {
            name: spec.name.clone(),
            entries,
            auto_assign: spec.auto_assign.unwrap_or(true),
            avoid_buggy_ips: spec.avoid_buggy_ips,
            allocation,
        })
    }

    fn accept(&mut self, pool: Pool) {
        let index = self.pools.len();
        for (entry_index, entry) in pool.entries.iter().enumerate() {
            self.by_start.insert(
                entry.range.first(),
                (entry.range.last(), index, entry_index),
            );
        }
        self.by_name.insert(pool.name.clone(), index);
        self.pools.push(pool);
    }

    /// The accepted entry overlapping `range`, if any.
    fn overlapping(&self, range: &AddressRange) -> Option<(&Pool, &PoolEntry)> {
        let (_, &(last, pool, entry)) = self.by_start.range(..=range.last()).next_back()?;
        (last >= range.first()).then(|| (&self.pools[pool], &self.pools[pool].entries[entry]))
    }

    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.by_name.get(name).map(|&i| &self.pools[i])
    }

    /// Accepted pools, in the order given to `build`.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Refused pools with their reasons, in the order given to `build`.
    pub fn refused(&self) -> &[PoolError] {
        &self.refused
    }

    pub fn refusal(&self, name: &str) -> Option<&PoolError> {
        self.refused.iter().find(|r| r.pool == name)
    }

    pub fn locate(&self, address: IpAddr) -> Located<'_> {
        let Some((_, &(last, pool, _))) = self.by_start.range(..=address).next_back() else {
            return Located::Outside;
        };
        // IpAddr orders IPv4 before IPv6, so a range of the other family ends below.
        if address > last {
            return Located::Outside;
        }
        let pool = &self.pools[pool];
        if let Some(reserved) = reserved_anycast(address) {
            Located::Reserved(pool, reserved)
        } else if pool.avoid_buggy_ips && is_buggy(address) {
            Located::Avoided(pool)
        } else {
            Located::In(pool)
        }
    }

    /// Accepted pools in the order automatic allocation tries them.
    pub fn in_selection_order(&self) -> impl Iterator<Item = &Pool> {
        self.order.iter().map(|&i| &self.pools[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::range::RangeError;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn accepts_both_families_in_one_pool() {
        let set = PoolSet::build([PoolSpec::new(
            "dual",
            &[
                "192.0.2.0/24",
                "2001:db8::/64",
                "198.51.100.10-198.51.100.20",
            ],
        )]);
        assert!(set.refused().is_empty(), "{:?}", set.refused());
        let pool = set.get("dual").unwrap();
        assert_eq!(pool.ranges(IpFamily::V4).count(), 2);
        assert_eq!(pool.capacity(IpFamily::V4), 256 + 11);
        assert_eq!(
            pool.capacity(IpFamily::V6),
            (1 << 64) - 1 - 128,
            "without the Subnet-Router and RFC 2526 anycast addresses"
        );
        assert!(pool.auto_assign(), "autoAssign defaults to true");
    }

    #[test]
    fn bad_pool_is_refused_with_every_reason_and_others_carry_on() {
        let set = PoolSet::build([
            PoolSpec::new("good", &["192.0.2.0/24"]),
            PoolSpec::new(
                "bad",
                &[
                    "192.0.2.300/24",
                    "198.51.100.9-198.51.100.1",
                    "203.0.113.1-2001:db8::1",
                ],
            ),
            PoolSpec::new("also-good", &["203.0.113.0/24"]),
        ]);
        assert_eq!(set.pools().len(), 2);
        assert!(set.get("good").is_some() && set.get("also-good").is_some());
        let refusal = set.refusal("bad").unwrap();
        assert!(matches!(
            refusal.problems[..],
            [
                PoolProblem::InvalidEntry(RangeError::InvalidCidr { .. }),
                PoolProblem::InvalidEntry(RangeError::Reversed { .. }),
                PoolProblem::InvalidEntry(RangeError::MixedFamilies { .. }),
            ]
        ));
        let text = refusal.to_string();
        assert!(text.starts_with("address pool \"bad\" refused: "), "{text}");
        assert!(text.contains("198.51.100.9-198.51.100.1"), "{text}");
    }

    #[test]
    fn overlap_refuses_the_later_pool_and_names_both_entries() {
        let set = PoolSet::build([
            PoolSpec::new("old", &["192.0.2.0/24"]),
            PoolSpec::new("new", &["198.51.100.0/24", "192.0.2.128-192.0.3.10"]),
        ]);
        assert!(set.get("old").is_some());
        assert_eq!(
            set.refusal("new").unwrap().to_string(),
            "address pool \"new\" refused: entry \"192.0.2.128-192.0.3.10\" overlaps entry \
             \"192.0.2.0/24\" of pool \"old\""
        );
        assert_eq!(
            set.locate(ip("198.51.100.1")),
            Located::Outside,
            "refused pools hold nothing"
        );
    }

    #[test]
    fn overlap_detection_covers_containment_and_neighbours() {
        let set = PoolSet::build([
            PoolSpec::new("a", &["192.0.2.10-192.0.2.20", "2001:db8::/64"]),
            PoolSpec::new("inside", &["192.0.2.15"]),
            PoolSpec::new("around", &["192.0.2.0/24"]),
            PoolSpec::new("v6-inside", &["2001:db8::1:0/112"]),
            PoolSpec::new(
                "adjacent",
                &["192.0.2.21-192.0.2.30", "192.0.2.0-192.0.2.9"],
            ),
            PoolSpec::new("same-pool", &["198.51.100.0/24", "198.51.100.7"]),
        ]);
        let refused: Vec<_> = set.refused().iter().map(|r| r.pool.as_str()).collect();
        assert_eq!(refused, ["inside", "around", "v6-inside", "same-pool"]);
        assert!(matches!(
            set.refusal("same-pool").unwrap().problems[..],
            [PoolProblem::OverlapWithinPool { .. }]
        ));
    }

    #[test]
    fn refuses_empty_unnamed_and_duplicate_pools() {
        let set = PoolSet::build([
            PoolSpec::new("empty", &[]),
            PoolSpec::new("", &["192.0.2.0/24"]),
            PoolSpec::new("twice", &["198.51.100.0/24"]),
            PoolSpec::new("twice", &["203.0.113.0/24"]),
        ]);
        assert_eq!(
            set.refusal("empty").unwrap().problems,
            [PoolProblem::NoAddresses]
        );
        assert_eq!(
            set.refusal("").unwrap().problems,
            [PoolProblem::MissingName]
        );
        assert_eq!(
            set.refusal("twice").unwrap().problems,
            [PoolProblem::DuplicateName]
        );
        assert_eq!(
            set.get("twice").unwrap().entries()[0].text,
            "198.51.100.0/24"
        );
    }

    #[test]
    fn locate_finds_the_pool_and_honours_avoid_buggy_ips() {
        let set = PoolSet::build([
            PoolSpec {
                avoid_buggy_ips: true,
                ..PoolSpec::new("careful", &["192.0.2.0/24"])
            },
            PoolSpec::new("v6", &["2001:db8::/64"]),
        ]);
        assert!(matches!(set.locate(ip("192.0.2.7")), Located::In(p) if p.name() == "careful"));
        assert!(matches!(set.locate(ip("192.0.2.255")), Located::Avoided(_)));
        assert!(matches!(set.locate(ip("2001:db8::ffff")), Located::In(p) if p.name() == "v6"));
        assert!(matches!(
            set.locate(ip("2001:db8::")),
            Located::Reserved(p, ReservedAnycast::SubnetRouter { .. }) if p.name() == "v6"
        ));
        assert!(matches!(
            set.locate(ip("2001:db8::fdff:ffff:ffff:ffff")),
            Located::Reserved(
                _,
                ReservedAnycast::Subnet {
                    anycast_id: 127,
                    ..
                }
            )
        ));
        assert_eq!(set.locate(ip("192.0.3.0")), Located::Outside);
        assert_eq!(set.locate(ip("2001:db8:1::")), Located::Outside);
        assert_eq!(set.locate(ip("10.0.0.1")), Located::Outside);
    }

    #[test]
    fn deserializes_a_metallb_spec() {
        let mut spec: PoolSpec = serde_json::from_str(
            r#"{"addresses":["192.0.2.0/24"],"autoAssign":false,"avoidBuggyIPs":true,
                "serviceAllocation":{"priority":5,"namespaces":["prod"],
                  "serviceSelectors":[{"matchLabels":{"tier":"web"}}]}}"#,
        )
        .unwrap();
        spec.name = "expensive".into();
        let set = PoolSet::build([spec]);
        let pool = set.get("expensive").unwrap();
        assert!(!pool.auto_assign() && pool.avoid_buggy_ips());
        assert_eq!(pool.service_allocation().unwrap().priority(), Some(5));
        assert_eq!(pool.capacity(IpFamily::V4), 254);
    }
}
