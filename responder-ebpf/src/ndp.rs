//! IPv6 Neighbor Discovery (RFC 4861): answer Neighbor Solicitations for our
//! VIPs with a Neighbor Advertisement built in place, and notice Neighbor
//! Advertisements from other hosts claiming them. Where the RFC leaves room,
//! the program accepts what Linux accepts (the kernel oracle checks it).
//!
//! Fields are checked and rewritten where they lie in the frame rather than
//! copied out: a few 16-byte addresses held in registers would spill past
//! the 512-byte BPF stack.

use core::mem::{offset_of, size_of};

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use responder_common::{
    csum::{finish, verifies},
    wire::{
        solicited_node, EthHdr, Ipv6Hdr, NdMsg, NdOptLinkAddr, ICMPV6_NA, ICMPV6_NS,
        IPPROTO_ICMPV6, IPV6_ALL_NODES, MAC_ALL_NODES, NA_FLAG_OVERRIDE, NA_FLAG_SOLICITED,
        NA_WITH_TLLA_LEN, ND_HOP_LIMIT, ND_OPT_SOURCE_LL_ADDR, ND_OPT_TARGET_LL_ADDR,
    },
    VipKey,
};

use crate::{
    csum::{add_frame_bytes, add_icmpv6_pseudo_header, MAX_ND_MESSAGE_LEN},
    hop_by_hop,
    nic::{claimed_by_another, vip_ifindex},
    packet::{bytes_eq, frame_len, ptr_at, read, Pass},
    program::{conflict, count_reply, lookup_vip, may_answer, Vip},
    vlan::Layer3,
};

const IPV6_HLEN: usize = size_of::<Ipv6Hdr>();
const ND_MSG_LEN: usize = size_of::<NdMsg>();
/// Option lengths count 8-byte units.
const ND_OPT_UNIT: usize = 8;
/// Options walked per message; more are passed. Real NS/NA carry one or two,
/// and the verifier needs a constant bound (as many as fit in the longest
/// message checksummed exceed its budget).
const MAX_ND_OPTIONS: usize = 16;
/// A link-layer address option for Ethernet is one unit long.
const ND_OPT_LINK_ADDR_UNITS: u8 = 1;
const MULTICAST_PREFIX: u8 = 0xff;
const UNSPECIFIED: [u8; 16] = [0; 16];
const LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IPPROTO_HOPOPTS: u8 = 0;

#[inline(always)]
pub fn respond(ctx: &XdpContext, l3: &Layer3) -> Result<u32, Pass> {
    let ip_at = ptr_at::<Ipv6Hdr>(ctx, l3.offset)?;
    // SAFETY (all dereferences below): `ptr_at` checked that the header is
    // inside the frame, and nothing else accesses the frame meanwhile.
    let ip = unsafe { &*ip_at };
    // Plain IPv6 traffic leaves here after a single load. ND follows the
    // IPv6 header directly or behind one Hop-by-Hop header (checked once
    // the message is known to be ND); other extension headers mean pass.
    let hop_by_hop_len = match ip.next_hdr {
        IPPROTO_ICMPV6 => 0,
        IPPROTO_HOPOPTS => {
            let [_, units]: [u8; 2] = read(ctx, l3.offset + IPV6_HLEN)?;
            (units as usize + 1) * 8
        }
        _ => return Err(Pass),
    };
    let icmp_offset = l3.offset + IPV6_HLEN + hop_by_hop_len;
    let msg = unsafe { &*ptr_at::<NdMsg>(ctx, icmp_offset)? };
    let is_solicitation = match msg.icmp_type {
        ICMPV6_NS => true,
        ICMPV6_NA => false,
        _ => return Err(Pass),
    };

    // RFC 4861 §7.1.1 / §7.1.2 checks that need neither lookup nor checksum.
    let message_len = (u16::from_be(ip.payload_len) as usize).wrapping_sub(hop_by_hop_len);
    if ip.ver_tc_flow[0] >> 4 != 6
        || ip.hop_limit != ND_HOP_LIMIT
        || msg.code != 0
        || msg.target[0] == MULTICAST_PREFIX
        || !(ND_MSG_LEN..=MAX_ND_MESSAGE_LEN).contains(&message_len)
        || icmp_offset + message_len > frame_len(ctx)
    {
        return Err(Pass);
    }
    if hop_by_hop_len != 0 {
        if !hop_by_hop::walk_enabled() {
            return Err(Pass);
        }
        hop_by_hop::accept(ctx, l3.offset, l3.offset + IPV6_HLEN, IPPROTO_ICMPV6)?;
    }
    let wanted_option = if is_solicitation {
        ND_OPT_SOURCE_LL_ADDR
    } else {
        ND_OPT_TARGET_LL_ADDR
    };
    let link_addr = link_addr_option(
        ctx,
        icmp_offset + ND_MSG_LEN,
        icmp_offset + message_len,
        wanted_option,
    )?;
    let from_unspecified = bytes_eq(&ip.src, &UNSPECIFIED);
    if is_solicitation {
        // Linux drops a multicast or loopback source before ND sees it.
        if ip.src[0] == MULTICAST_PREFIX || bytes_eq(&ip.src, &LOOPBACK) {
            return Err(Pass);
        }
        let group = solicited_node(&msg.target);
        if from_unspecified {
            // Duplicate Address Detection: the sender has no address yet,
            // so it has no link-layer address to announce, and it asks the
            // target's solicited-node group.
            if link_addr.is_some() || !bytes_eq(&ip.dst, &group) {
                return Err(Pass);
            }
        } else {
            // Where RFC 4861 §7.2.2 sends solicitations: the target's
            // group, the target itself (NUD), or all nodes. A multicast one
            // must carry the solicitor's link-layer address (§4.3): Linux
            // has nowhere to send the answer otherwise.
            let to_group = ip.dst[0] == MULTICAST_PREFIX;
            if !(bytes_eq(&ip.dst, &msg.target)
                || bytes_eq(&ip.dst, &group)
                || bytes_eq(&ip.dst, &IPV6_ALL_NODES))
                || (to_group && link_addr.is_none())
            {
                return Err(Pass);
            }
        }
    }

    let eth = unsafe { &*ptr_at::<EthHdr>(ctx, 0)? };
    let key = VipKey::v6(vip_ifindex(ctx), l3.vlan_outer, l3.vlan_inner, msg.target);
    let owned = lookup_vip(&key, &eth.dst)?;
    // Checksummed only once the VIP is known to be ours: solicitations for
    // other hosts are the common case on a shared segment.
    let acc = add_icmpv6_pseudo_header(ctx, 0, l3.offset, message_len as u32)?;
    if !verifies(add_frame_bytes(ctx, acc, icmp_offset, message_len)?) {
        return Err(Pass);
    }
    if is_solicitation {
        // From one of our own VIPs and with no link-layer address to answer
        // to, the answer would go to our own address: Linux resolves it and
        // never sends one.
        if !from_unspecified && link_addr.is_none() {
            let source = VipKey::v6(key.ifindex, key.vlan_outer, key.vlan_inner, ip.src);
            if lookup_vip(&source, &eth.dst).is_ok() {
                return Err(Pass);
            }
        }
        may_answer(&owned)?;
        let reply_to = if from_unspecified {
            MAC_ALL_NODES
        } else {
            link_addr.unwrap_or(eth.src)
        };
        if hop_by_hop_len != 0 {
            // The advertisement starts right after the IPv6 header, where
            // the Hop-by-Hop header was: its target must be there too.
            let target: [u8; 16] = read(ctx, icmp_offset + offset_of!(NdMsg, target))?;
            // Opaque, so that the compiler keeps this bounds check instead of
            // deriving it from the message's, which the verifier cannot.
            let msg_at = ptr_at::<NdMsg>(ctx, core::hint::black_box(l3.offset + IPV6_HLEN))?;
            // SAFETY: as above.
            unsafe { (*msg_at).target = target };
        }
        advertise(ctx, l3, &owned, reply_to, from_unspecified, owned.mac)
    } else {
        let claimant = link_addr.unwrap_or(eth.src);
        if claimed_by_another(&claimant, &owned.mac) {
            conflict(&key, &owned, &claimant);
        }
        Ok(xdp_action::XDP_PASS)
    }
}

/// Walks the options in `offset..end`: each must be non-empty and together
/// they must fill the message exactly. Returns the MAC of the first option of
/// `kind`, which must be one unit long; later ones are ignored whatever
/// their length, as Linux does.
#[inline(always)]
fn link_addr_option(
    ctx: &XdpContext,
    mut offset: usize,
    end: usize,
    kind: u8,
) -> Result<Option<[u8; 6]>, Pass> {
    let mut found = None;
    for _ in 0..MAX_ND_OPTIONS {
        if offset >= end {
            break;
        }
        // Every valid option spans at least one 8-byte unit, so one read of
        // a link-layer-address-sized option covers whatever this one is.
        let option: NdOptLinkAddr = read(ctx, offset)?;
        if option.len == 0 {
            return Err(Pass);
        }
        let next = offset + option.len as usize * ND_OPT_UNIT;
        if next > end {
            return Err(Pass);
        }
        if option.kind == kind && found.is_none() {
            if option.len != ND_OPT_LINK_ADDR_UNITS {
                return Err(Pass);
            }
            found = Some(option.mac);
        }
        offset = next;
    }
    if offset != end {
        return Err(Pass);
    }
    Ok(found)
}

/// Rewrites the NS into the NA answering it and bounces it back out. The
/// NS's addresses and target stay where they are until moved into place.
#[inline(always)]
fn advertise(
    ctx: &XdpContext,
    l3: &Layer3,
    vip: &Vip,
    reply_to: [u8; 6],
    duplicate_address_detection: bool,
    mac: [u8; 6],
) -> Result<u32, Pass> {
    let reply_len = l3.offset + IPV6_HLEN + NA_WITH_TLLA_LEN;
    let delta = reply_len as i32 - frame_len(ctx) as i32;
    // SAFETY: the helper only moves data_end (the NS is at least as long as
    // the reply's headers, so they keep their bytes); every packet pointer is
    // re-derived below.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Err(Pass);
    }
    // Cannot fail: the frame is now exactly `reply_len` long. The checks are
    // for the verifier, which does not know what the helper did.
    let eth_at = ptr_at::<EthHdr>(ctx, 0)?;
    let ip_at = ptr_at::<Ipv6Hdr>(ctx, l3.offset)?;
    let msg_at = ptr_at::<NdMsg>(ctx, l3.offset + IPV6_HLEN)?;
    let tlla_at = ptr_at::<NdOptLinkAddr>(ctx, l3.offset + IPV6_HLEN + ND_MSG_LEN)?;
    // SAFETY: `ptr_at` checked all four are inside the resized frame. The
    // references end before the frame is read back for the checksum.
    {
        let (eth, ip, msg, tlla) =
            unsafe { (&mut *eth_at, &mut *ip_at, &mut *msg_at, &mut *tlla_at) };
        eth.dst = reply_to;
        eth.src = mac;
        ip.ver_tc_flow = [0x60, 0, 0, 0];
        ip.payload_len = (NA_WITH_TLLA_LEN as u16).to_be();
        ip.next_hdr = IPPROTO_ICMPV6;
        // A DAD prober cannot receive unicast yet: tell all nodes, and without
        // S, which RFC 4861 §7.2.4 reserves for replies to a unicast source.
        let flags = if duplicate_address_detection {
            ip.dst = IPV6_ALL_NODES;
            NA_FLAG_OVERRIDE
        } else {
            ip.dst = ip.src;
            NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE
        };
        ip.src = msg.target;
        msg.icmp_type = ICMPV6_NA;
        // Not the solicitation's code when a Hop-by-Hop header was here.
        msg.code = 0;
        msg.checksum = 0;
        msg.flags = [flags, 0, 0, 0];
        *tlla = NdOptLinkAddr {
            kind: ND_OPT_TARGET_LL_ADDR,
            len: ND_OPT_LINK_ADDR_UNITS,
            mac,
        };
    }
    let acc = add_icmpv6_pseudo_header(ctx, 0, l3.offset, NA_WITH_TLLA_LEN as u32)?;
    let acc = add_frame_bytes(ctx, acc, l3.offset + IPV6_HLEN, NA_WITH_TLLA_LEN)?;
    // SAFETY: as above.
    unsafe { (*msg_at).checksum = finish(acc) };
    count_reply(vip);
    Ok(xdp_action::XDP_TX)
}
