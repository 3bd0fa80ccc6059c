//! Per-pool counters for `IPAddressPool` status and metrics.

use super::allocator::Allocator;
use super::family::IpFamily;
use super::pool::Pool;

/// Addresses of one family in one pool. Counts are exact `u128`s: a /64 has 2^64
/// addresses, which no `i64` holds; only the whole IPv6 space (2^128) saturates at
/// `u128::MAX`. Use `saturating_i64` for the CRD's int64 status fields (MetalLB
/// reports such pools as `math.MaxInt64` too) and `as f64` for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyCounts {
    /// Distinct addresses in use (an address shared by several Services counts once).
    pub assigned: u128,
    /// Addresses the pool may still hand out: avoidBuggyIPs taken into account, the
    /// reserved IPv6 anycast addresses never counted (a /64 has 2^64 − 129).
    pub available: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    pub pool: String,
    pub ipv4: FamilyCounts,
    pub ipv6: FamilyCounts,
}

pub fn saturating_i64(count: u128) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Allocator {
    /// Counters of an accepted pool; costs O(addresses in use in it).
    pub fn pool_status(&self, name: &str) -> Option<PoolStatus> {
        self.pools().get(name).map(|pool| PoolStatus {
            pool: name.to_owned(),
            ipv4: self.counts(pool, IpFamily::V4),
            ipv6: self.counts(pool, IpFamily::V6),
        })
    }

    /// Counters of every accepted pool, by name.
    pub fn pool_statuses(&self) -> Vec<PoolStatus> {
        let mut names: Vec<&str> = self.pools().pools().iter().map(Pool::name).collect();
        names.sort_unstable();
        names
            .into_iter()
            .filter_map(|name| self.pool_status(name))
            .collect()
    }

    fn counts(&self, pool: &Pool, family: IpFamily) -> FamilyCounts {
        let assigned = pool
            .ranges(family)
            .map(|r| self.ledger().used_in(r, pool.avoid_buggy_ips()))
            .sum();
        FamilyCounts {
            assigned,
            available: pool.capacity(family).saturating_sub(assigned),
        }
    }
}
