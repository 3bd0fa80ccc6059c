//! XDP program answering ARP requests and IPv6 Neighbor Solicitations for the
//! VIPs in `VIPS`, in place with XDP_TX. Anything it does not answer goes to
//! the kernel untouched.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod arp;
#[cfg(target_arch = "bpf")]
mod csum;
#[cfg(target_arch = "bpf")]
mod ndp;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod vlan;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        bindings::{xdp_action, BPF_F_NO_PREALLOC},
        btf_maps::{HashMap, PerCpuHashMap},
        macros::{btf_map, xdp},
        programs::XdpContext,
    };
    use responder_common::{
        wire::{ETH_P_ARP_BE, ETH_P_IPV6_BE},
        VipKey, VipStats, VipValue, MAX_VIPS,
    };

    use crate::{
        arp, ndp,
        packet::{bytes_eq, Pass},
        vlan,
    };

    #[btf_map]
    static VIPS: HashMap<VipKey, VipValue, MAX_VIPS, { BPF_F_NO_PREALLOC as usize }> =
        HashMap::new();

    #[btf_map]
    static VIP_STATS: PerCpuHashMap<VipKey, VipStats, MAX_VIPS, { BPF_F_NO_PREALLOC as usize }> =
        PerCpuHashMap::new();

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

    /// The reply MAC for `key` when the VIP is ours and the frame was sent to
    /// us at L2 (broadcast, multicast or our unicast MAC). Frames unicast to
    /// another host are that host's business: passed and not counted.
    #[inline(always)]
    pub(crate) fn vip_mac(key: &VipKey, eth_dst: &[u8; 6]) -> Result<[u8; 6], Pass> {
        // SAFETY: the map is BPF_F_NO_PREALLOC, so a concurrent delete cannot
        // recycle the element under us; the MAC is copied out at once anyway.
        let mac = unsafe { VIPS.get(key) }.ok_or(Pass)?.mac;
        let group_addressed = eth_dst[0] & 1 != 0;
        if !group_addressed && !bytes_eq(eth_dst, &mac) {
            return Err(Pass);
        }
        Ok(mac)
    }

    /// Counts a request answered with XDP_TX.
    #[inline(always)]
    pub(crate) fn count_reply(key: &VipKey) {
        // The agent creates the counters with the VIP; a missing entry only
        // means the VIP is being added or removed right now.
        if let Some(stats) = VIP_STATS.get_ptr_mut(key) {
            // SAFETY: per-CPU value, and XDP does not preempt itself on a CPU.
            unsafe {
                (*stats).requests += 1;
                (*stats).replies += 1;
            }
        }
    }

    /// Counts another MAC claiming one of our VIPs.
    #[inline(always)]
    pub(crate) fn count_conflict(key: &VipKey) {
        if let Some(stats) = VIP_STATS.get_ptr_mut(key) {
            // SAFETY: as in `count_reply`.
            unsafe { (*stats).conflicts += 1 };
        }
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
