//! Naming the other MAC (issue #22): a claim on one of our VIPs from another
//! host is reported to the agent as one ring buffer record (VIP key and
//! claimant MAC), at most once per VIP per second and at most
//! `CLAIM_REPORTS_PER_CPU_SECOND` per CPU per second, and the last claimant
//! of each VIP is kept in `CLAIMANTS` for `responder vips`.
//!
//! A ring buffer rather than aya-log: aya-log formats in userspace from
//! records of its own, so the agent would parse text back into a MAC and a
//! VIP; it offers no per-VIP rate limit, and its reader lives in the
//! program's loader, not where the agent's decisions are. A typed record
//! is what the defence logic needs, and it is read with the same AsyncFd
//! loop aya-log would have used. Only `program::conflict` calls in here,
//! on the rare branch where another MAC claims a VIP: a request being
//! answered never reaches this code.

use aya_ebpf::{
    btf_maps::{LruHashMap, PerCpuArray, RingBuf},
    helpers::bpf_ktime_get_ns,
    macros::btf_map,
};
use responder_common::{
    claims::{
        Claim, ClaimBudget, Claimant, CLAIMS_RING_BYTES, CLAIM_REPORTS_PER_CPU_SECOND,
        CLAIM_REPORT_INTERVAL_NS, MAX_CLAIMANTS,
    },
    VipKey,
};

/// Claims for the agent to read.
#[btf_map]
static CLAIMS: RingBuf<Claim, CLAIMS_RING_BYTES> = RingBuf::new();

/// The last reported claimant per VIP key; also the per-VIP rate limit.
/// Pinned as `claimants`.
#[btf_map]
static CLAIMANTS: LruHashMap<VipKey, Claimant, MAX_CLAIMANTS> = LruHashMap::new();

/// Reports sent per CPU in the current second: the global bound.
#[btf_map]
static CLAIM_BUDGET: PerCpuArray<ClaimBudget, 1> = PerCpuArray::new();

const SECOND_NS: u64 = 1_000_000_000;

/// `claimant` claimed the VIP `key` names: remembered and reported, unless
/// the VIP was reported less than `CLAIM_REPORT_INTERVAL_NS` ago (nothing
/// then) or this CPU spent its budget for the second (remembered only).
/// Two CPUs racing on one VIP may both report it: harmless, and bounded.
#[inline(always)]
pub fn report(key: &VipKey, claimant: &[u8; 6]) {
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(last) = CLAIMANTS.get_ptr(key) {
        // SAFETY: a pointer into the map's value, read at once; an LRU
        // value may be rewritten concurrently, which only skews the
        // interval check.
        let at_ns = unsafe { (*last).at_ns };
        if now.wrapping_sub(at_ns) < CLAIM_REPORT_INTERVAL_NS {
            return;
        }
    }
    let remembered = Claimant {
        at_ns: now,
        mac: *claimant,
        _pad: [0; 2],
    };
    let _ = CLAIMANTS.insert(key, &remembered, 0);
    let Some(budget) = CLAIM_BUDGET.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, and XDP does not preempt itself on a CPU.
    unsafe {
        if now.wrapping_sub((*budget).window_start_ns) >= SECOND_NS {
            (*budget).window_start_ns = now;
            (*budget).reports = 0;
        }
        if (*budget).reports >= CLAIM_REPORTS_PER_CPU_SECOND {
            return;
        }
        (*budget).reports += 1;
    }
    let claim = Claim {
        at_ns: now,
        key: *key,
        mac: *claimant,
        _pad: [0; 6],
    };
    // A full ring drops the record: the agent is behind, and the claimant
    // stays in CLAIMANTS and the conflict counter.
    let _ = CLAIMS.output(&claim, 0);
}
