//! The responder's object loaded (never attached by this module) with its
//! VIP map filled, for the per-frame and the over-veth measurements.
use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::{maps::HashMap, programs::Xdp, Ebpf};
use responder_common::{VipKey, VipValue, COUNTER_SLOTS, NO_COUNTER_SLOT, PROGRAM_NAME, VIPS_MAP};
use responder_model::frames::{VIP4, VIP6};

use crate::testrun::LOOPBACK_IFINDEX;

/// The empty program in the responder's object (responder-ebpf main.rs).
pub(super) const BASELINE_PROGRAM: &str = "xdp_pass";
pub(super) const VLAN_ID: u16 = 100;
pub(super) const FEW_VIPS: usize = 10;
pub(super) const MANY_VIPS: usize = 100_000;

/// The keys the frames ask for, first, then fillers up to `count`.
pub(super) fn vip_keys(count: usize) -> Vec<VipKey> {
    let mut keys = vec![
        VipKey::v4(LOOPBACK_IFINDEX, 0, 0, VIP4),
        VipKey::v4(LOOPBACK_IFINDEX, VLAN_ID, 0, VIP4),
        VipKey::v6(LOOPBACK_IFINDEX, 0, 0, VIP6),
    ];
    for i in 0..count.saturating_sub(keys.len()) {
        let n = i as u32;
        keys.push(if i % 2 == 0 {
            // Other interfaces of a big node: the documentation /24s run out.
            VipKey::v4(1000 + n / 512, 0, 0, [203, 0, 113, (n / 2 % 256) as u8])
        } else {
            let mut addr = [
                0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ];
            addr[12..].copy_from_slice(&n.to_be_bytes());
            VipKey::v6(LOOPBACK_IFINDEX, 0, 0, addr)
        });
    }
    keys
}

/// Loads the object with both programs and fills its map with `vip_count`
/// VIPs, in counter slots as the agent hands them out (the first keys get
/// the first slots; keys past the array's end get none).
pub(super) fn load_with_vips(vip_count: usize, vips: &[VipKey], mac: [u8; 6]) -> Ebpf {
    let mut ebpf = responder::bpf::object_loader()
        .load(responder::EBPF_OBJECT)
        .expect("load the XDP object");
    for name in [PROGRAM_NAME, BASELINE_PROGRAM] {
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("{name} in the object"))
            .try_into()
            .expect("an XDP program");
        program
            .load()
            .unwrap_or_else(|e| panic!("load {name}: {e}"));
    }
    let mut map: HashMap<_, VipKey, VipValue> =
        HashMap::try_from(ebpf.map_mut(VIPS_MAP).expect("VIPS map")).expect("VIPS is a hash map");
    for (slot, key) in vips.iter().take(vip_count).enumerate() {
        let value = VipValue {
            mac,
            counter_slot: if slot < COUNTER_SLOTS {
                slot as u32
            } else {
                NO_COUNTER_SLOT
            },
            ..VipValue::default()
        };
        map.insert(key, value, 0).expect("insert VIP");
    }
    // The counter array starts zeroed, as the agent leaves a fresh slot.
    ebpf
}

pub(super) fn program_fd(ebpf: &Ebpf, name: &str) -> RawFd {
    let program: &Xdp = ebpf
        .program(name)
        .expect("program")
        .try_into()
        .expect("XDP");
    program.fd().expect("loaded").as_fd().as_raw_fd()
}
