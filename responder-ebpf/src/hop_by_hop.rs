//! A Hop-by-Hop Options header before a Neighbor Discovery message (RFC 8200
//! §4.3). RFC 4861 does not forbid one and Linux answers through it, so the
//! program accepts what Linux accepts (with its default sysctls): padding
//! runs of at most 7 zero bytes (RFC 4942 §2.1.9.5), Router Alert of
//! length 2, IOAM only 4-byte aligned (and then
//! skipped), no Jumbo Payload or CALIPSO, unknown options only when their
//! action bits say skip (RFC 8200 §4.2).

use aya_ebpf::programs::XdpContext;

use crate::packet::{load_bytes, read, Pass};

/// Set by the loader (see `responder_common::HOP_BY_HOP_WALK_GLOBAL`): in
/// read-only data, so that at 0 the verifier knows the walk is dead code
/// and never checks its `bpf_xdp_load_bytes` call, unknown before 5.18.
#[no_mangle]
static HOP_BY_HOP_WALK: u8 = 0;

/// Whether this kernel lets the program walk a Hop-by-Hop header.
#[inline(always)]
pub fn walk_enabled() -> bool {
    // SAFETY: a plain read of a static; volatile so that the compiler keeps
    // the load the loader's value decides, instead of folding the 0.
    unsafe { core::ptr::read_volatile(&HOP_BY_HOP_WALK) != 0 }
}

/// Longest header walked; longer ones are passed. Every byte walked costs
/// the verifier dearly (32 bytes exceed its budget), and 16 hold a Router
/// Alert or any padding with room to spare. With 14 bytes of options there
/// are at most 7 that are not padding, below Linux's limit of 8.
pub const MAX_HOP_BY_HOP_LEN: usize = 16;
/// Header lengths count 8-byte units beyond the first.
const UNIT: usize = 8;
const PAD1: u8 = 0;
const PADN: u8 = 1;
const ROUTER_ALERT: u8 = 5;
const CALIPSO: u8 = 7;
const IOAM: u8 = 0x31;
const JUMBO_PAYLOAD: u8 = 0xc2;
const MAX_PADDING: usize = 7;
const ROUTER_ALERT_LEN: u8 = 2;

/// The header's length in bytes, if it is at `offset` (with the IPv6
/// header at `ip_offset`), no longer than `MAX_HOP_BY_HOP_LEN`, followed by
/// `next`, and its options are all acceptable.
#[inline(always)]
pub fn accept(ctx: &XdpContext, ip_offset: usize, offset: usize, next: u8) -> Result<usize, Pass> {
    let [next_header, units]: [u8; 2] = read(ctx, offset)?;
    if next_header != next || units as usize >= MAX_HOP_BY_HOP_LEN / UNIT {
        return Err(Pass);
    }
    // Masked so that the verifier sees the bound the check above proved.
    let len = ((units as usize & (MAX_HOP_BY_HOP_LEN / UNIT - 1)) + 1) * UNIT;
    // One unit of slack: PadN data is tested a word at a time.
    let header: [u8; MAX_HOP_BY_HOP_LEN + UNIT] = load_bytes(ctx, offset, len)?;
    // IOAM wants its option 4-byte aligned from the IPv6 header.
    let alignment = offset - ip_offset;
    let mut at = 2;
    let mut padding = 0;
    for _ in 0..MAX_HOP_BY_HOP_LEN {
        if at >= len {
            break;
        }
        let kind = *header.get(at).ok_or(Pass)?;
        let data_len = *header.get(at + 1).ok_or(Pass)?;
        let option_len = if kind == PAD1 {
            1
        } else {
            data_len as usize + 2
        };
        if at + option_len > len {
            return Err(Pass);
        }
        if kind == PAD1 || kind == PADN {
            padding += option_len;
            // RFC 4942 §2.1.9.5: PadN carries zeros (at most 5 bytes of
            // them once the run is at most 7).
            let word: [u8; UNIT] = header
                .get(at..at + UNIT)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or(Pass)?;
            let data = (u64::MAX >> 16) & !(u64::MAX >> (UNIT * option_len.min(UNIT - 1)));
            if padding > MAX_PADDING || (kind == PADN && u64::from_be_bytes(word) & data != 0) {
                return Err(Pass);
            }
        } else {
            padding = 0;
            let acceptable = match kind {
                ROUTER_ALERT => data_len == ROUTER_ALERT_LEN,
                IOAM => (alignment + at).is_multiple_of(4),
                JUMBO_PAYLOAD | CALIPSO => false,
                _ => kind >> 6 == 0,
            };
            if !acceptable {
                return Err(Pass);
            }
        }
        at += option_len;
    }
    if at != len {
        return Err(Pass);
    }
    Ok(len)
}
