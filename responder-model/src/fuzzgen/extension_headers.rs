//! IPv6 extension headers between the IPv6 header and an ND message: mostly
//! a lone Hop-by-Hop Options header, whose options decide whether a host
//! accepts the packet (RFC 8200 §4.2, and Linux's padding and count limits),
//! sometimes Destination Options or Routing headers and chains of them.

use super::rng::Rng;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const DESTINATION_OPTIONS: u8 = 60;
const ICMPV6: u8 = 58;
const IPV6_HLEN: usize = 40;

/// The headers and the Next Header value that leads into them.
pub(super) struct Chain {
    pub(super) first: u8,
    pub(super) bytes: Vec<u8>,
}

/// A chain ending in ICMPv6.
pub(super) fn chain(rng: &mut Rng) -> Chain {
    let kinds: &[u8] = match rng.below(10) {
        0..6 => &[HOP_BY_HOP],
        6 => &[HOP_BY_HOP, DESTINATION_OPTIONS],
        7 => &[DESTINATION_OPTIONS],
        8 => &[HOP_BY_HOP, HOP_BY_HOP],
        _ => &[ROUTING],
    };
    let mut bytes: Vec<u8> = Vec::new();
    for (position, kind) in kinds.iter().enumerate() {
        let next = kinds.get(position + 1).copied().unwrap_or(ICMPV6);
        let header = match *kind {
            ROUTING => vec![next, 0, 0, 0, 0, 0, 0, 0],
            _ => options_header(rng, next, IPV6_HLEN + bytes.len()),
        };
        bytes.extend_from_slice(&header);
    }
    Chain {
        first: kinds[0],
        bytes,
    }
}

/// A Hop-by-Hop or Destination Options header starting `at` bytes into the
/// IPv6 packet (some options care about their alignment).
fn options_header(rng: &mut Rng, next: u8, at: usize) -> Vec<u8> {
    let mut header = vec![next, 0];
    // Around Linux's limit of 8 options that are not padding, or a few.
    let count = if rng.chance(10) {
        rng.between(7, 10)
    } else {
        rng.between(0, 3)
    };
    for _ in 0..count {
        option(rng, &mut header, at);
    }
    if rng.chance(5) {
        // An option cut off by the end of the header.
        header.push(rng.pick(&[0x1e, 0x05, 0x01]));
    }
    // Padded to 8-byte units, valid padding or not.
    let missing = (8 - header.len() % 8) % 8;
    match missing {
        0 => {}
        1 => header.push(0),
        _ if rng.chance(15) => header.extend(std::iter::repeat_n(0, missing)),
        _ => {
            header.extend_from_slice(&[1, (missing - 2) as u8]);
            let filler = if rng.chance(10) { 1 } else { 0 };
            header.extend(std::iter::repeat_n(filler, missing - 2));
        }
    }
    let units = header.len() / 8 - 1;
    header[1] = match rng.below(20) {
        0 => units as u8 + 1,
        1 => rng.bytes::<1>()[0],
        _ => units as u8,
    };
    header
}

/// Appends one option: padding runs, Router Alert, the options a host
/// refuses (Jumbo Payload without a jumbogram, CALIPSO without a DOI,
/// misaligned IOAM), and unknown ones with each action bit pattern.
fn option(rng: &mut Rng, header: &mut Vec<u8>, header_at: usize) {
    match rng.below(10) {
        0 => header.extend(std::iter::repeat_n(0, rng.between(1, 8))),
        1 => {
            let len = rng.between(0, 6);
            header.extend_from_slice(&[1, len as u8]);
            header.extend(std::iter::repeat_n(0, len));
        }
        2 | 3 => {
            let len = rng.pick(&[2, 2, 2, 3, 4]);
            header.extend_from_slice(&[5, len]);
            header.extend(std::iter::repeat_n(0, len as usize));
        }
        4 => header.extend_from_slice(&[0xc2, 4, 0, 1, 0, 0]),
        5 => header.extend_from_slice(&[7, 8, 0, 0, 0, 0, 0, 0, 0, 0]),
        6 => {
            // IOAM wants a 4-byte aligned option start; pad there or not.
            if rng.chance(50) {
                let offset = header_at + header.len();
                let pad = (4 - offset % 4) % 4;
                header.extend(std::iter::repeat_n(0, pad));
            }
            header.extend_from_slice(&[0x31, 2, 0, 0]);
        }
        _ => {
            let kind = rng.pick(&[0x1e, 0x3f, 0x5e, 0x9e, 0xde]);
            let len = rng.between(0, 6);
            header.extend_from_slice(&[kind, len as u8]);
            let data = rng.vec(len);
            header.extend_from_slice(&data);
        }
    }
}
