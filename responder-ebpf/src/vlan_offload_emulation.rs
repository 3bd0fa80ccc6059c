//! Test support, never attached by the agent: a TC egress program for the
//! client side of a veth that tags every frame it sends with 802.1Q VLAN
//! `EMULATED_VLAN_ID` *as packet metadata* (`bpf_skb_vlan_push`), not in the
//! frame. That is what a receiving NIC with `rx-vlan-offload` on hands the
//! kernel, and this machine has no 8021q module to make tagged frames with.
//! With `tx-vlan-offload` off on the sending veth, the kernel writes the tag
//! into the frame instead: a NIC with the offload off.

use aya_ebpf::{
    bindings::TC_ACT_OK, helpers::bpf_skb_vlan_push, macros::classifier, programs::TcContext,
};
use responder_common::wire::ETH_P_8021Q_BE;

/// The VLAN the emulated requests arrive on.
const EMULATED_VLAN_ID: u16 = 100;

#[classifier]
pub fn emulate_rx_vlan_offload(ctx: TcContext) -> i32 {
    // SAFETY: `ctx.skb.skb` is the program's own context. A failed push
    // leaves the frame untagged, which the test would see as no reply.
    unsafe { bpf_skb_vlan_push(ctx.skb.skb, ETH_P_8021Q_BE, EMULATED_VLAN_ID) };
    TC_ACT_OK as i32
}
