//! Maps about the node's own network interfaces rather than its VIPs: the
//! MACs of every interface (announcements from them are not conflicts), the
//! bond each bond member belongs to (VIPs scoped to a bond answer on its
//! members), and which receive offloads the agent turned off (so `cleanup`
//! and a later agent can turn them back on).

/// Map names as written in the eBPF object (and shown by `bpftool map`).
pub const OWN_MACS_MAP: &str = "OWN_MACS";
pub const BOND_OF_MAP: &str = "BOND_OF";
pub const NIC_OFFLOADS_MAP: &str = "NIC_OFFLOADS";
/// File names under the pin directory.
pub const PIN_OWN_MACS: &str = "own_macs";
pub const PIN_BOND_OF: &str = "bond_of";
pub const PIN_NIC_OFFLOADS: &str = "nic_offloads";

/// Room for every interface of a busy node: each pod's host-side veth has
/// a MAC of its own.
pub const MAX_OWN_MACS: usize = 8192;
/// Bond and team members, far more than any node has.
pub const MAX_BOND_MEMBERS: usize = 1024;
/// Interfaces whose offloads the agent changed.
pub const MAX_NIC_OFFLOADS: usize = 1024;

/// Key of `OWN_MACS`: a MAC padded to 8 bytes so the key has no hidden
/// padding. The value (`u8`) is unused; presence is what counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnMacKey {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

impl OwnMacKey {
    pub const fn new(mac: [u8; 6]) -> Self {
        OwnMacKey { mac, _pad: [0; 2] }
    }
}

/// `NicOffloadRecord::turned_off` bit: `rx-vlan-hw-parse` (ethtool's
/// `rx-vlan-offload`, 802.1Q tags stripped into packet metadata).
pub const OFFLOAD_RX_VLAN_CTAG: u32 = 1;
/// `NicOffloadRecord::turned_off` bit: `rx-vlan-stag-hw-parse` (802.1ad).
pub const OFFLOAD_RX_VLAN_STAG: u32 = 2;

/// Value of `NIC_OFFLOADS`, keyed by ifindex (`u32`): which receive
/// offloads the agent turned off on that interface, to be turned back on
/// when the program goes away. The name guards against a recycled ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicOffloadRecord {
    /// `OFFLOAD_*` bits.
    pub turned_off: u32,
    /// Interface name, NUL-padded (IFNAMSIZ).
    pub ifname: [u8; 16],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data without implicit padding (see tests).
    unsafe impl aya::Pod for super::OwnMacKey {}
    unsafe impl aya::Pod for super::NicOffloadRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn own_mac_key_and_offload_record_have_no_hidden_padding() {
        assert_eq!(size_of::<OwnMacKey>(), 8);
        assert_eq!(offset_of!(OwnMacKey, _pad), 6);
        assert_eq!(size_of::<NicOffloadRecord>(), 20);
        assert_eq!(offset_of!(NicOffloadRecord, ifname), 4);
    }

    #[test]
    fn own_mac_key_zeroes_its_padding() {
        let key = OwnMacKey::new([2, 0, 0, 0, 0, 1]);
        assert_eq!(key._pad, [0, 0]);
    }
}
