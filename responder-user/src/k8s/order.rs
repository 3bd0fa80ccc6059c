//! The order in which both sides judge conflicting objects.

use std::sync::Arc;

use kube::Resource;

/// Objects oldest first (then by namespace and name), so of two that conflict
/// (overlapping pools, Services asking for one address) the newer one loses,
/// whichever process judges them.
pub(crate) fn oldest_first<K: Resource>(objects: &mut [Arc<K>]) {
    objects.sort_by(|a, b| {
        let key = |o: &K| {
            (
                o.meta().creation_timestamp.clone(),
                o.meta().namespace.clone(),
                o.meta().name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}
