//! Kernel side of the agent: the pin directory (`pins`) and `responder
//! cleanup`, which empties it (`cleanup`), loading, attaching
//! and adopting the XDP program (`program`), the VIP and counter maps
//! (`maps`) and the counter slot each VIP holds (`slots`), the stale-gate
//! heartbeat (`heartbeat`), read-only views of a pin directory for
//! `responder vips` / `stats` (`inspect`), the maps about the node's own
//! interfaces (`nic_maps`: own MACs, bond members) and the record of NIC
//! offloads turned off (`offloads`), and who claimed a VIP (`claims`: the
//! data plane's ring buffer and last claimant per VIP).

mod batch;
mod claims;
mod cleanup;
mod heartbeat;
mod inspect;
mod maps;
mod nic_maps;
mod offloads;
mod pins;
mod program;
mod slots;

pub(crate) use claims::ClaimReader;
pub use claims::{decode as decode_claim, drain as drain_claims};
pub use cleanup::cleanup;
pub(crate) use heartbeat::Heartbeat;
pub use heartbeat::{monotonic_now, StaleGate};
pub use inspect::{
    read_pinned_stats, read_pinned_vips, ClaimantRow, HeartbeatRow, LinkRow, PinnedStats, Totals,
    VipRow,
};
pub(crate) use maps::{BpfVipMap, StatsReader};
pub use pins::DEFAULT_PIN_PATH;
pub(crate) use program::{load, Loaded};
pub use program::{load_retrying, object_loader, AttachMode};
