//! XDP program answering ARP requests and IPv6 Neighbor Solicitations for the
//! VIPs in `VIPS`, in place with XDP_TX. Anything it does not answer goes to
//! the kernel untouched.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod arp;
#[cfg(target_arch = "bpf")]
mod claims;
#[cfg(target_arch = "bpf")]
mod csum;
#[cfg(target_arch = "bpf")]
mod hop_by_hop;
#[cfg(target_arch = "bpf")]
mod ndp;
#[cfg(target_arch = "bpf")]
mod nic;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod vlan;
#[cfg(target_arch = "bpf")]
mod vlan_offload_emulation;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        bindings::{xdp_action, BPF_F_NO_PREALLOC},
        btf_maps::{Array, HashMap, PerCpuArray},
        helpers::bpf_ktime_get_ns,
        macros::{btf_map, xdp},
        programs::XdpContext,
    };
    use responder_common::{
        wire::{ETH_P_ARP_BE, ETH_P_IPV6_BE},
        AgentState, VipKey, VipStats, VipValue, COUNTER_SLOTS, MAX_VIPS, VIP_FLAG_YIELDED,
    };

    use crate::{
        arp, claims, ndp,
        packet::{bytes_eq, Pass},
        vlan,
    };

    #[btf_map]
    static VIPS: HashMap<VipKey, VipValue, MAX_VIPS, { BPF_F_NO_PREALLOC as usize }> =
        HashMap::new();

    /// Counters, indexed by `VipValue::counter_slot`: the VIP's own
    /// lookup already found the index, and an array element is found
    /// without hashing.
    #[btf_map]
    static VIP_COUNTERS: PerCpuArray<VipStats, COUNTER_SLOTS> = PerCpuArray::new();

    /// The agent's heartbeat, written by the agent once a second.
    #[btf_map]
    static AGENT: Array<AgentState, 1> = Array::new();

    #[xdp]
    pub fn responder(ctx: XdpContext) -> u32 {
        match try_respond(&ctx) {
            Ok(action) => action,
            Err(Pass) => xdp_action::XDP_PASS,
        }
    }

    #[inline(always)]
    fn try_respond(ctx: &XdpContext) -> Result<u32, Pass> {
        let l3 = vlan::parse(ctx)?;
        match l3.ether_type_be {
            ETH_P_ARP_BE => arp::respond(ctx, &l3),
            ETH_P_IPV6_BE => ndp::respond(ctx, &l3),
            _ => Err(Pass),
        }
    }

    /// A VIP of ours that a frame sent to us at L2 is about.
    pub(crate) struct Vip {
        /// Source MAC of replies.
        pub(crate) mac: [u8; 6],
        /// The entry in `VIPS`: read for its flags and counter slot, written
        /// only to mark the VIP yielded.
        value: *mut VipValue,
    }

    /// The VIP `key` names, when it is ours and the frame was sent to us at
    /// L2 (broadcast, multicast or our unicast MAC). Frames unicast to
    /// another host are that host's business: passed and not counted.
    #[inline(always)]
    pub(crate) fn lookup_vip(key: &VipKey, eth_dst: &[u8; 6]) -> Result<Vip, Pass> {
        let value = VIPS.get_ptr_mut(key).ok_or(Pass)?;
        // SAFETY: the map is BPF_F_NO_PREALLOC, so a concurrent delete cannot
        // recycle the element while the program runs.
        let mac = unsafe { (*value).mac };
        let group_addressed = eth_dst[0] & 1 != 0;
        if !group_addressed && !bytes_eq(eth_dst, &mac) {
            return Err(Pass);
        }
        Ok(Vip { mac, value })
    }

    /// How long ago the agent last wrote its heartbeat, with its limits.
    /// `None` while no heartbeat was ever written: without an agent keeping
    /// time the gate stays open (tests load the program bare).
    #[inline(always)]
    fn heartbeat_age() -> Option<(u64, AgentState)> {
        let agent = *AGENT.get(0)?;
        if agent.heartbeat_ns == 0 {
            return None;
        }
        // SAFETY: the helper has no preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        // The agent may write a heartbeat after `now` was read on this CPU:
        // such a heartbeat is as fresh as can be, not billions of years old.
        Some((now.saturating_sub(agent.heartbeat_ns), agent))
    }

    /// Whether a valid request for `vip` may be answered. A dead agent can no
    /// longer withdraw VIPs that moved elsewhere, so past the stale bound, or
    /// once the VIP was yielded to a new owner, the kernel gets the request
    /// and this node stays silent.
    #[inline(always)]
    pub(crate) fn may_answer(vip: &Vip) -> Result<(), Pass> {
        let Some((age, agent)) = heartbeat_age() else {
            return Ok(());
        };
        // SAFETY: as in `lookup_vip`.
        let yielded = unsafe { (*vip.value).flags } & VIP_FLAG_YIELDED != 0;
        if age > agent.stale_after_ns || yielded {
            if let Some(stats) = counters(vip) {
                // SAFETY: as in `count_reply`.
                unsafe {
                    (*stats).requests += 1;
                    (*stats).stale += 1;
                }
            }
            return Err(Pass);
        }
        Ok(())
    }

    /// The VIP's counters on this CPU, if the agent gave it a slot.
    #[inline(always)]
    fn counters(vip: &Vip) -> Option<*mut VipStats> {
        // SAFETY: as in `lookup_vip`.
        let slot = unsafe { (*vip.value).counter_slot };
        VIP_COUNTERS.get_ptr_mut(slot)
    }

    /// Counts a request answered with XDP_TX.
    #[inline(always)]
    pub(crate) fn count_reply(vip: &Vip) {
        if let Some(stats) = counters(vip) {
            // SAFETY: per-CPU value, and XDP does not preempt itself on a CPU.
            unsafe {
                (*stats).requests += 1;
                (*stats).replies += 1;
            }
        }
    }

    /// `claimant` claims one of our VIPs (`key`, found as `vip`): counted,
    /// reported to the agent (rate-limited, see `claims`), and if the agent
    /// has been silent for a while the claimant is most likely the VIP's new
    /// owner, so this node yields it at once rather than at the stale bound.
    #[inline(always)]
    pub(crate) fn conflict(key: &VipKey, vip: &Vip, claimant: &[u8; 6]) {
        if let Some(stats) = counters(vip) {
            // SAFETY: as in `count_reply`.
            unsafe { (*stats).conflicts += 1 };
        }
        if let Some((age, agent)) = heartbeat_age() {
            if age > agent.yield_after_ns {
                // SAFETY: as in `lookup_vip`. Racing the agent is harmless:
                // a value it rewrites meanwhile is one it re-asserted.
                unsafe { (*vip.value).flags |= VIP_FLAG_YIELDED };
            }
        }
        claims::report(key, claimant);
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

/// The empty program the benchmarks measure the responder against: the cost
/// of running any XDP program at all.
#[cfg(target_arch = "bpf")]
mod baseline {
    use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

    #[xdp]
    pub fn xdp_pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }
}
