//! The node's own interfaces, as far as the data plane cares: which MACs
//! are this node's (their announcements are no conflict), which bond a
//! bond member belongs to (VIPs scoped to a bond answer on its members),
//! and the offload record the agent keeps next to the program's maps.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC, btf_maps::HashMap, macros::btf_map, programs::XdpContext,
};
use responder_common::nic::{
    NicOffloadRecord, OwnMacKey, MAX_BOND_MEMBERS, MAX_NIC_OFFLOADS, MAX_OWN_MACS,
};

/// Every MAC of every interface of this node, written by the agent.
#[btf_map]
static OWN_MACS: HashMap<OwnMacKey, u8, MAX_OWN_MACS, { BPF_F_NO_PREALLOC as usize }> =
    HashMap::new();

/// Bond (or team) member ifindex → the bond's ifindex, written by the agent.
/// In native mode the kernel runs the program on each member, so the
/// ingress ifindex is the member's while VIPs are keyed by the bond's.
#[btf_map]
static BOND_OF: HashMap<u32, u32, MAX_BOND_MEMBERS, 0> = HashMap::new();

/// Never read here: the agent pins it with the other maps so that the
/// receive offloads it turned off outlive it, for `responder cleanup` or
/// the next agent to turn back on.
#[btf_map]
static NIC_OFFLOADS: HashMap<
    u32,
    NicOffloadRecord,
    MAX_NIC_OFFLOADS,
    { BPF_F_NO_PREALLOC as usize },
> = HashMap::new();

/// The ifindex a request's VIPs are keyed on: the bond's for a frame that
/// arrived on one of its members, else the interface it arrived on. One
/// lookup, for ARP and Neighbor Discovery frames only.
#[inline(always)]
pub fn vip_ifindex(ctx: &XdpContext) -> u32 {
    let ingress = ctx.ingress_ifindex() as u32;
    // SAFETY: the value is copied out at once; the agent only inserts and
    // deletes whole entries.
    match unsafe { BOND_OF.get(&ingress) } {
        Some(bond) => *bond,
        None => ingress,
    }
}

/// Whether a claim on a VIP answered with `vip_mac` comes from someone
/// else: neither the VIP's own MAC nor any other interface of this node
/// (two NICs on one segment hear each other's announcements). Only called
/// on the rare claim path, never for a request.
#[inline(always)]
pub fn claimed_by_another(claimant: &[u8; 6], vip_mac: &[u8; 6]) -> bool {
    if crate::packet::bytes_eq(claimant, vip_mac) {
        return false;
    }
    OWN_MACS.get_ptr(OwnMacKey::new(*claimant)).is_none()
}
