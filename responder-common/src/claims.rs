//! Who claimed a VIP (issue #22): when another MAC announces a VIP this node
//! answers for (the conflict path, RFC 5227 §2.4), the data plane reports the
//! claimant's MAC to the agent through a ring buffer, and keeps the last
//! claimant of each VIP in a pinned map that `responder vips` reads.
//!
//! Only the conflict branch writes here, never a request being answered, and
//! both the per-VIP interval and the per-CPU budget below bound what a flood
//! of conflicting frames can push to userspace.

use crate::VipKey;

/// Map names as written in the eBPF object (and shown by `bpftool map`).
pub const CLAIMS_MAP: &str = "CLAIMS";
pub const CLAIMANTS_MAP: &str = "CLAIMANTS";
pub const CLAIM_BUDGET_MAP: &str = "CLAIM_BUDGET";
/// File name of `CLAIMANTS` under the pin directory. The ring buffer and the
/// budget are the loaded program's alone and not pinned: only the agent that
/// loaded the program reads the ring, and a restarted agent loads a new one.
pub const PIN_CLAIMANTS: &str = "claimants";

/// Bytes of the `CLAIMS` ring buffer (a power of two, a multiple of the
/// page size): about 1,300 records of 48 bytes plus the kernel's 8-byte
/// header each, several seconds of the largest budget below on any machine.
pub const CLAIMS_RING_BYTES: usize = 64 * 1024;
/// Entries of the `CLAIMANTS` LRU map: VIPs with a remembered claimant. More
/// claimed VIPs than this evict the least recently claimed.
pub const MAX_CLAIMANTS: usize = 4096;
/// A VIP is reported at most once per this interval (and its `CLAIMANTS`
/// entry rewritten at most that often), whatever the rate of claims.
pub const CLAIM_REPORT_INTERVAL_NS: u64 = 1_000_000_000;
/// Reports each CPU may send per second, all VIPs together: a flood claiming
/// many VIPs at once reaches the agent as at most this many records per
/// second per CPU.
pub const CLAIM_REPORTS_PER_CPU_SECOND: u32 = 64;

/// One record of the `CLAIMS` ring buffer: `mac` announced the VIP `key`
/// names (interface, VLAN stack, family, address) from another host.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    /// When, on CLOCK_MONOTONIC (`bpf_ktime_get_ns`).
    pub at_ns: u64,
    pub key: VipKey,
    /// The claimant: the ARP sender hardware address, or for an NA its
    /// Target Link-Layer Address option (else the Ethernet source).
    pub mac: [u8; 6],
    pub _pad: [u8; 6],
}

/// Value of `CLAIMANTS`, keyed by `VipKey`: the last claimant reported for
/// the VIP, and when. Doubles as the per-VIP rate limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claimant {
    /// CLOCK_MONOTONIC nanoseconds of the last claim recorded (reported, or
    /// dropped by the per-CPU budget).
    pub at_ns: u64,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// The single per-CPU element of `CLAIM_BUDGET`: reports sent by this CPU
/// in the current one-second window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimBudget {
    pub window_start_ns: u64,
    pub reports: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data without implicit padding (see tests).
    unsafe impl aya::Pod for super::Claim {}
    unsafe impl aya::Pod for super::Claimant {}
    unsafe impl aya::Pod for super::ClaimBudget {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn claim_records_have_no_hidden_padding() {
        assert_eq!(size_of::<Claim>(), 48);
        assert_eq!(offset_of!(Claim, at_ns), 0);
        assert_eq!(offset_of!(Claim, key), 8);
        assert_eq!(offset_of!(Claim, mac), 36);
        assert_eq!(offset_of!(Claim, _pad), 42);
        // The kernel aligns ring buffer records to 8 bytes.
        assert!(align_of::<Claim>() <= 8);
        assert_eq!(size_of::<Claimant>(), 16);
        assert_eq!(offset_of!(Claimant, mac), 8);
        assert_eq!(offset_of!(Claimant, _pad), 14);
        assert_eq!(size_of::<ClaimBudget>(), 16);
        assert_eq!(offset_of!(ClaimBudget, reports), 8);
    }

    #[test]
    fn ring_size_is_a_power_of_two_of_whole_pages() {
        assert!(CLAIMS_RING_BYTES.is_power_of_two());
        assert_eq!(CLAIMS_RING_BYTES % 4096, 0);
    }
}
