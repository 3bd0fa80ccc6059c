//! Types shared by the XDP program (`responder-ebpf`) and the agent
//! (`responder-user`). Everything here is `#[repr(C)]` with explicit padding so
//! the kernel, the program, the agent and `bpftool map dump` agree byte for
//! byte; `tests` below pin every size and offset.
#![no_std]

pub mod claims;
pub mod csum;
pub mod nic;
pub mod wire;

/// Name of the XDP program in the object file and of its pin.
pub const PROGRAM_NAME: &str = "responder";
/// Map names as written in the eBPF object (and shown by `bpftool map`).
pub const VIPS_MAP: &str = "VIPS";
pub const VIP_COUNTERS_MAP: &str = "VIP_COUNTERS";
pub const AGENT_MAP: &str = "AGENT";
/// Read-only global of the program: 1 when the kernel has
/// `bpf_xdp_load_bytes` (Linux 5.18), which walking a Hop-by-Hop header
/// before a Neighbor Solicitation needs. At 0 the verifier drops that code
/// as dead, so the program still loads on older kernels (and such frames
/// pass to the kernel).
pub const HOP_BY_HOP_WALK_GLOBAL: &str = "HOP_BY_HOP_WALK";
/// File names under the pin directory (default `/sys/fs/bpf/responder`).
pub const PIN_PROGRAM: &str = "prog";
pub const PIN_VIPS: &str = "vips";
pub const PIN_VIP_COUNTERS: &str = "vip_counters";
/// Where agents before counter slots pinned their counters: a per-CPU hash
/// keyed by `VipKey`. Read when adopting such an agent's pins, then removed.
pub const PIN_LEGACY_VIP_STATS: &str = "vip_stats";
pub const PIN_AGENT: &str = "agent";
/// Link pins are `link_<ifname>`.
pub const PIN_LINK_PREFIX: &str = "link_";

/// Capacity of the VIP map. Entries are allocated on demand
/// (BPF_F_NO_PREALLOC), so an idle node does not pay for it.
pub const MAX_VIPS: usize = 131_072;

/// Elements of the per-CPU counter array, one per VIP key that has
/// counters. An array is allocated whole, on every CPU: 32 bytes × this ×
/// CPUs (512 KiB per CPU). Keys beyond it are answered but not counted.
pub const COUNTER_SLOTS: usize = 16_384;
/// `VipValue::counter_slot` of a key without counters: out of the array's
/// range, so the data plane's lookup finds nothing.
pub const NO_COUNTER_SLOT: u32 = u32::MAX;

pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

/// Which (interface, VLAN stack, address) a VIP is answered on.
///
/// One exact-match lookup per request: the agent expands an unscoped VIP into
/// one key per attached interface, so the data plane never tries wildcards.
/// VLAN ids are host byte order (readable in `bpftool map dump`), 0 = no tag.
/// IPv4 addresses occupy `addr[..4]`, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    pub ifindex: u32,
    /// Outermost tag (802.1ad S-tag or the only 802.1Q tag), 0 if untagged.
    pub vlan_outer: u16,
    /// Second tag of a QinQ stack, 0 if fewer than two tags.
    pub vlan_inner: u16,
    /// `FAMILY_IPV4` or `FAMILY_IPV6`.
    pub family: u8,
    pub _pad: [u8; 3],
    /// Network byte order.
    pub addr: [u8; 16],
}

impl VipKey {
    pub const fn v4(ifindex: u32, vlan_outer: u16, vlan_inner: u16, addr: [u8; 4]) -> Self {
        Self::from_words(
            ifindex,
            vlan_outer,
            vlan_inner,
            FAMILY_IPV4,
            [u32::from_ne_bytes(addr), 0, 0, 0],
        )
    }

    pub const fn v6(ifindex: u32, vlan_outer: u16, vlan_inner: u16, addr: [u8; 16]) -> Self {
        Self::from_words(
            ifindex,
            vlan_outer,
            vlan_inner,
            FAMILY_IPV6,
            [
                word(&addr, 0),
                word(&addr, 4),
                word(&addr, 8),
                word(&addr, 12),
            ],
        )
    }

    /// The address the key answers for.
    pub fn ip(&self) -> core::net::IpAddr {
        if self.family == FAMILY_IPV4 {
            core::net::IpAddr::from([self.addr[0], self.addr[1], self.addr[2], self.addr[3]])
        } else {
            core::net::IpAddr::from(self.addr)
        }
    }

    /// The key written as seven 32-bit words. Built field by field, the
    /// zeroed parts become calls to a byte-at-a-time `memset` in the XDP
    /// program, on the path of every ARP request and NS.
    const fn from_words(
        ifindex: u32,
        vlan_outer: u16,
        vlan_inner: u16,
        family: u8,
        addr: [u32; 4],
    ) -> Self {
        let [outer0, outer1] = vlan_outer.to_ne_bytes();
        let [inner0, inner1] = vlan_inner.to_ne_bytes();
        let words = [
            ifindex,
            u32::from_ne_bytes([outer0, outer1, inner0, inner1]),
            u32::from_ne_bytes([family, 0, 0, 0]),
            addr[0],
            addr[1],
            addr[2],
            addr[3],
        ];
        // SAFETY: VipKey is #[repr(C)], 28 bytes with 4-byte alignment and
        // no implicit padding (see the layout test), and any bytes are a
        // valid VipKey; the words are laid out in field order.
        unsafe { core::mem::transmute::<[u32; 7], VipKey>(words) }
    }
}

/// Bytes `at..at + 4` of `bytes` as a word in memory order.
const fn word(bytes: &[u8; 16], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// What the data plane needs to answer for a VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipValue {
    /// Source MAC of replies: the MAC of the interface the key names.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// `VIP_FLAG_*` bits; the agent writes 0, the data plane may set bits.
    pub flags: u32,
    /// Index of the VIP's counters in the per-CPU `VIP_COUNTERS` array, so
    /// counting a reply costs no second hash lookup; `NO_COUNTER_SLOT` for
    /// none. Older agents wrote 0 here (a reserved field).
    pub counter_slot: u32,
}

/// Set by the data plane in `VipValue::flags` when another MAC announced the
/// VIP while the agent's heartbeat was late: this node stops answering for it
/// so the new owner wins without waiting for the stale bound. The agent clears
/// it (by rewriting the value) when it re-asserts ownership.
pub const VIP_FLAG_YIELDED: u32 = 1;

/// Liveness of the agent, the single entry of the `AGENT` array map.
///
/// All times are nanoseconds of CLOCK_MONOTONIC, the clock
/// `bpf_ktime_get_ns` reads. `heartbeat_ns == 0` switches the gate off: the
/// program answers regardless (no agent has ever written it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentState {
    /// When the agent last proved it is alive.
    pub heartbeat_ns: u64,
    /// Heartbeat age beyond which nothing is answered any more.
    pub stale_after_ns: u64,
    /// Heartbeat age beyond which another MAC announcing a VIP makes this
    /// node yield it at once.
    pub yield_after_ns: u64,
}

/// Per-CPU counters for one VIP (one element of `VIP_COUNTERS`); the agent
/// sums the CPUs when it reads them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipStats {
    /// Valid ARP requests / Neighbor Solicitations for the VIP.
    pub requests: u64,
    /// Replies sent with XDP_TX.
    pub replies: u64,
    /// Another MAC claimed the VIP (gratuitous ARP, ARP reply, or NA).
    pub conflicts: u64,
    /// Requests (also in `requests`) left unanswered because the agent's
    /// heartbeat was stale or the VIP was yielded.
    pub stale: u64,
}

impl VipStats {
    pub fn add(&mut self, other: &VipStats) {
        self.requests += other.requests;
        self.replies += other.replies;
        self.conflicts += other.conflicts;
        self.stale += other.stale;
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data without implicit padding (see tests).
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipValue {}
    unsafe impl aya::Pod for super::VipStats {}
    unsafe impl aya::Pod for super::AgentState {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn vip_key_layout_has_no_hidden_padding() {
        assert_eq!(size_of::<VipKey>(), 28);
        assert_eq!(offset_of!(VipKey, ifindex), 0);
        assert_eq!(offset_of!(VipKey, vlan_outer), 4);
        assert_eq!(offset_of!(VipKey, vlan_inner), 6);
        assert_eq!(offset_of!(VipKey, family), 8);
        assert_eq!(offset_of!(VipKey, _pad), 9);
        assert_eq!(offset_of!(VipKey, addr), 12);
    }

    #[test]
    fn vip_value_and_stats_layout() {
        assert_eq!(size_of::<VipValue>(), 16);
        assert_eq!(offset_of!(VipValue, mac), 0);
        assert_eq!(offset_of!(VipValue, _pad), 6);
        assert_eq!(offset_of!(VipValue, flags), 8);
        // Where older agents had a zeroed reserved field: their pinned
        // values still read back with the same size and offsets.
        assert_eq!(offset_of!(VipValue, counter_slot), 12);
        assert_eq!(size_of::<VipStats>(), 32);
        assert_eq!(offset_of!(VipStats, conflicts), 16);
        assert_eq!(offset_of!(VipStats, stale), 24);
    }

    #[test]
    fn agent_state_layout_has_no_hidden_padding() {
        assert_eq!(size_of::<AgentState>(), 24);
        assert_eq!(offset_of!(AgentState, heartbeat_ns), 0);
        assert_eq!(offset_of!(AgentState, stale_after_ns), 8);
        assert_eq!(offset_of!(AgentState, yield_after_ns), 16);
    }

    #[test]
    fn stats_add_sums_every_counter() {
        let counters = |n| VipStats {
            requests: n,
            replies: 2 * n,
            conflicts: 3 * n,
            stale: 4 * n,
        };
        let mut total = counters(1);
        total.add(&counters(10));
        assert_eq!(total, counters(11));
    }

    #[test]
    fn keys_built_from_words_equal_keys_built_from_fields() {
        let v6 = [
            0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        assert_eq!(
            VipKey::v6(7, 100, 200, v6),
            VipKey {
                ifindex: 7,
                vlan_outer: 100,
                vlan_inner: 200,
                family: FAMILY_IPV6,
                _pad: [0; 3],
                addr: v6,
            }
        );
        let mut v4 = [0; 16];
        v4[..4].copy_from_slice(&[192, 0, 2, 10]);
        assert_eq!(
            VipKey::v4(3, 4094, 0, [192, 0, 2, 10]),
            VipKey {
                ifindex: 3,
                vlan_outer: 4094,
                vlan_inner: 0,
                family: FAMILY_IPV4,
                _pad: [0; 3],
                addr: v4,
            }
        );
    }

    #[test]
    fn v4_key_zero_fills_the_tail() {
        let k = VipKey::v4(3, 100, 0, [192, 0, 2, 10]);
        assert_eq!(&k.addr[..4], &[192, 0, 2, 10]);
        assert!(k.addr[4..].iter().all(|b| *b == 0));
        assert_eq!(k.family, FAMILY_IPV4);
    }
}
