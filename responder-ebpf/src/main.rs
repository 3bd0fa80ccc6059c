#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        bindings::{xdp_action, BPF_F_NO_PREALLOC},
        btf_maps::{HashMap, PerCpuHashMap},
        macros::{btf_map, xdp},
        programs::XdpContext,
    };
    use responder_common::{VipKey, VipStats, VipValue, MAX_VIPS};

    #[btf_map]
    static VIPS: HashMap<VipKey, VipValue, MAX_VIPS, { BPF_F_NO_PREALLOC as usize }> =
        HashMap::new();

    #[btf_map]
    static VIP_STATS: PerCpuHashMap<VipKey, VipStats, MAX_VIPS, { BPF_F_NO_PREALLOC as usize }> =
        PerCpuHashMap::new();

    #[xdp]
    pub fn responder(ctx: XdpContext) -> u32 {
        let key = VipKey::default();
        if unsafe { VIPS.get(&key) }.is_some() {
            if let Some(s) = VIP_STATS.get_ptr_mut(&key) {
                unsafe { (*s).requests += 1 };
            }
        }
        let _ = ctx;
        xdp_action::XDP_PASS
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
