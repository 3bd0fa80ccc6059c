//! What a frame is to the oracle: which neighbour-cache entry it touches,
//! what the kernel sent, whom a solicitation or an advertisement is for;
//! and which VIPs the oracle's kernel side owns.

use super::*;

/// What a frame does to the kernel's neighbour table: a solicitation
/// creates or reads the entry of its source, an advertisement updates the
/// entry of its target. A batch holds at most one frame per entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Touches {
    Source([u8; 16]),
    Target([u8; 16]),
}

pub(super) fn touches(frame: &[u8]) -> Option<Touches> {
    match parse(frame).body {
        Body::Nd(nd) if nd.is_solicitation() && !nd.is_dad() => Some(Touches::Source(nd.src)),
        Body::Nd(nd) if nd.is_advertisement() => Some(Touches::Target(nd.target)),
        _ => None,
    }
}

/// The kernel's frames: answers, solicitations (possibly to resolve a
/// requester), and the rest of its own traffic.
pub(super) enum KernelOutput {
    Answer,
    Solicitation {
        eth_src: [u8; 6],
        src: [u8; 16],
        target: [u8; 16],
    },
    Own,
}

pub(super) fn kernel_output(frame: &[u8]) -> KernelOutput {
    if frame.len() < 14 {
        return KernelOutput::Own;
    }
    match be16(frame, 12) {
        ETHERTYPE_ARP if frame.len() >= 22 && be16(frame, 20) == 2 => KernelOutput::Answer,
        ETHERTYPE_IPV6 if frame.len() >= 14 + IPV6_HLEN + 24 && frame[20] == ICMPV6 => {
            let message = &frame[14 + IPV6_HLEN..];
            match message[0] {
                ICMPV6_NA => KernelOutput::Answer,
                ICMPV6_NS => KernelOutput::Solicitation {
                    eth_src: frame[6..12].try_into().expect("6 bytes"),
                    src: frame[22..38].try_into().expect("16 bytes"),
                    target: message[8..24].try_into().expect("16 bytes"),
                },
                _ => KernelOutput::Own,
            }
        }
        _ => KernelOutput::Own,
    }
}

/// The source of a solicitation that is not DAD: the requester the kernel
/// may have to resolve before it can answer.
pub(super) fn solicitor(frame: &[u8]) -> Option<[u8; 16]> {
    match parse(frame).body {
        Body::Nd(nd) if nd.is_solicitation() && !nd.is_dad() => Some(nd.src),
        _ => None,
    }
}

/// Where an advertisement goes: the requester it answers.
pub(super) fn answered_address(frame: &[u8]) -> Option<[u8; 16]> {
    (frame.len() >= 14 + IPV6_HLEN && be16(frame, 12) == ETHERTYPE_IPV6)
        .then(|| frame[38..54].try_into().expect("16 bytes"))
}

/// The untagged VIPs the fuzzer's table has on its ingress interface.
pub(super) fn oracle_vips() -> Vips {
    let mut vips = Vips::default();
    for key in vip_table().keys() {
        if key.ifindex != INGRESS_IFINDEX || key.vlan_outer != 0 || key.vlan_inner != 0 {
            continue;
        }
        if key.family == responder_common::FAMILY_IPV4 {
            vips.v4
                .push(key.addr[..4].try_into().expect("IPv4 address"));
        } else {
            vips.v6.push(key.addr);
        }
    }
    vips
}
