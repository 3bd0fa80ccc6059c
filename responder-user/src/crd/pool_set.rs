//! The pool set MetalLB's `IPAddressPool` objects make, as the controller
//! and every agent must read it alike: an address the controller hands out
//! from a pool that an agent judges refused would never be answered.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::IPAddressPool;
use crate::ipam::PoolSet;
use crate::k8s::oldest_first;

/// The pool set the objects `pools` make, overlaps judged oldest first (as
/// the controller and every agent must judge them alike), and why each
/// refused pool was refused: its spec's reading error where it did not read,
/// else the set's own refusal.
pub(crate) fn pool_set_of(pools: &[Arc<IPAddressPool>]) -> (PoolSet, BTreeMap<String, String>) {
    let mut sorted = pools.to_vec();
    oldest_first(&mut sorted);
    let mut unreadable = BTreeMap::new();
    let specs: Vec<_> = sorted
        .iter()
        .map(|pool| {
            let (spec, error) = pool.pool_spec();
            if let Some(error) = error {
                unreadable.insert(pool.name().to_owned(), error);
            }
            spec
        })
        .collect();
    let set = PoolSet::build(specs);
    let refused = set
        .refused()
        .iter()
        .map(|refusal| {
            let reason = unreadable
                .remove(&refusal.pool)
                .unwrap_or_else(|| refusal.to_string());
            (refusal.pool.clone(), reason)
        })
        .collect();
    (set, refused)
}
