//! The VIP table the fuzzer's frames are aimed at, and its addresses.

use responder_common::{VipKey, VipValue};

use crate::model::{Nics, VipTable};

/// Frames arrive on loopback, which exists in every namespace.
pub const INGRESS_IFINDEX: u32 = 1;
/// An interface the frames never arrive on: its VIPs must never answer.
const DECOY_IFINDEX: u32 = 4242;

/// The MAC of most VIPs: the one an interface answering for them has.
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
pub(super) const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];

pub(super) const V4_A: [u8; 4] = [192, 0, 2, 10];
pub(super) const V4_B: [u8; 4] = [192, 0, 2, 11];
pub(super) const V4_C: [u8; 4] = [192, 0, 2, 12];
pub(super) const V4_DECOY: [u8; 4] = [192, 0, 2, 20];
pub(super) const V4_PEER: [u8; 4] = [192, 0, 2, 1];

const fn v6(prefix: [u8; 4], last: u8) -> [u8; 16] {
    [
        prefix[0], prefix[1], prefix[2], prefix[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
    ]
}
const DOC: [u8; 4] = [0x20, 0x01, 0x0d, 0xb8];
pub(super) const V6_A: [u8; 16] = v6(DOC, 0x10);
pub(super) const V6_B: [u8; 16] = v6(DOC, 0x11);
pub(super) const V6_C: [u8; 16] = v6(DOC, 0x12);
pub(super) const V6_DECOY: [u8; 16] = v6(DOC, 0x20);
pub(super) const V6_LINK_LOCAL: [u8; 16] = v6([0xfe, 0x80, 0, 0], 0x10);
pub(super) const V6_PEER: [u8; 16] = v6(DOC, 0x01);
pub(super) const V6_PEER_LINK_LOCAL: [u8; 16] = v6([0xfe, 0x80, 0, 0], 0x01);
/// Shares V6_A's solicited-node group without being a VIP.
pub(super) const V6_SAME_GROUP: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// (outer, inner) VLAN ids that some VIP is scoped to.
pub(super) const SCOPED_STACKS: [(u16, u16); 5] =
    [(0, 0), (100, 0), (200, 300), (0, 100), (4094, 0)];

/// The fuzzer's VIP table: a few VIPs on loopback, some VLAN-scoped, two
/// MACs (so unicast to the other MAC must be ignored), one decoy elsewhere.
pub fn vip_table() -> VipTable {
    let value = |mac| VipValue {
        mac,
        ..VipValue::default()
    };
    let i = INGRESS_IFINDEX;
    [
        (VipKey::v4(i, 0, 0, V4_A), value(MAC_A)),
        (VipKey::v4(i, 100, 0, V4_A), value(MAC_A)),
        (VipKey::v4(i, 200, 300, V4_A), value(MAC_A)),
        (VipKey::v4(i, 0, 0, V4_B), value(MAC_B)),
        (VipKey::v4(i, 0, 100, V4_C), value(MAC_A)),
        (VipKey::v4(i, 4094, 0, V4_C), value(MAC_B)),
        (VipKey::v4(DECOY_IFINDEX, 0, 0, V4_DECOY), value(MAC_A)),
        (VipKey::v6(i, 0, 0, V6_A), value(MAC_A)),
        (VipKey::v6(i, 100, 0, V6_A), value(MAC_A)),
        (VipKey::v6(i, 200, 300, V6_A), value(MAC_A)),
        (VipKey::v6(i, 0, 0, V6_B), value(MAC_B)),
        (VipKey::v6(i, 0, 100, V6_C), value(MAC_A)),
        (VipKey::v6(i, 4094, 0, V6_C), value(MAC_B)),
        (VipKey::v6(i, 0, 0, V6_LINK_LOCAL), value(MAC_A)),
        (VipKey::v6(DECOY_IFINDEX, 0, 0, V6_DECOY), value(MAC_A)),
    ]
    .into_iter()
    .collect()
}

/// The fuzzer node's interfaces: MAC_A and MAC_B are both its own, so a
/// claim by one on the other's VIP is no conflict, while claims from the
/// peer and OTHER_MAC are. No bonds: frames only arrive on loopback.
pub fn nics() -> Nics {
    Nics {
        own_macs: [MAC_A, MAC_B].into(),
        ..Nics::default()
    }
}
