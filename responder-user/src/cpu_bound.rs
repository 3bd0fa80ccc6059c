//! Long synchronous work inside the async agent.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` (recomputing ten thousand Services, writing as many map
/// entries) without holding up the tasks queued on this worker — the Lease
/// renewals and the heartbeat among them. On a multi-threaded runtime the
/// worker's queue is handed to another thread first (`block_in_place`);
/// elsewhere (unit tests) it simply runs.
///
/// Measured before this: an agent starting with 10,000 Services let its own
/// Lease go unrenewed for longer than half its duration while both workers
/// were busy, froze its view and recomputed everything again.
pub(crate) fn cpu_bound<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
