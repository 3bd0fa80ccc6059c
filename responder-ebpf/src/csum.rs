//! Checksums summed straight from the frame, in loops the verifier can bound.

use core::mem::offset_of;

use aya_ebpf::programs::XdpContext;
use responder_common::{
    csum::{add_bytes, add_word},
    wire::{Ipv6Hdr, IPPROTO_ICMPV6},
};

use crate::packet::{read, Pass};

/// Longest ND message checksummed; longer ones are passed to the kernel.
/// The verifier needs a constant loop bound, and a real NS or NA is 24 bytes
/// plus a few 8-byte options, far below this.
pub const MAX_ND_MESSAGE_LEN: usize = 1024;

/// Bytes summed per iteration: one bounds check per option-sized chunk.
const CHUNK: usize = 8;

/// Adds the `len` bytes at `offset` to `acc`. `len` is a multiple of 8 and
/// at most `MAX_ND_MESSAGE_LEN`: ND messages whose options exactly fill them
/// always are (24-byte body, 8-byte option units), and so are the 32 bytes
/// of IPv6 addresses.
#[inline(always)]
pub fn add_frame_bytes(
    ctx: &XdpContext,
    mut acc: u64,
    offset: usize,
    len: usize,
) -> Result<u64, Pass> {
    let mut done = 0;
    for _ in 0..MAX_ND_MESSAGE_LEN / CHUNK {
        if done >= len {
            break;
        }
        let words: [u16; CHUNK / 2] = read(ctx, offset + done)?;
        for word in words {
            acc = add_word(acc, word);
        }
        done += CHUNK;
    }
    Ok(acc)
}

/// Adds the pseudo-header (RFC 8200 §8.1) of an ICMPv6 message of
/// `upper_len` bytes that directly follows the IPv6 header at `ip_offset`.
#[inline(always)]
pub fn add_icmpv6_pseudo_header(
    ctx: &XdpContext,
    acc: u64,
    ip_offset: usize,
    upper_len: u32,
) -> Result<u64, Pass> {
    const ADDRESSES_LEN: usize = 32;
    let acc = add_frame_bytes(
        ctx,
        acc,
        ip_offset + offset_of!(Ipv6Hdr, src),
        ADDRESSES_LEN,
    )?;
    Ok(add_bytes(
        add_bytes(acc, &upper_len.to_be_bytes()),
        &[0, 0, 0, IPPROTO_ICMPV6],
    ))
}
