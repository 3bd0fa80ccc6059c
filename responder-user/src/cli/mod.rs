//! The `responder` command line, one file per concern: arguments, `run`,
//! `controller`, what those two share, and the reports read from the pins.

pub(crate) mod args;
pub(crate) mod controller;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod shared;
pub(crate) mod status;

use anyhow::Context as _;

/// Worker threads of the agent's and the controller's runtime. Their work is
/// a handful of tasks waiting on the API server, netlink and timers; on a
/// 64-core node the default would start 64 workers for it.
const WORKER_THREADS: usize = 2;

/// The tokio runtime of a long-running subcommand, with glibc's malloc
/// tuned first (`responder::memory`): its arenas capped (the workers are the
/// threads that would each get one) and its mmap threshold fixed.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    responder::memory::tune_malloc();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}
