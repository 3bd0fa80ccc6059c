//! A Hop-by-Hop Options header before an ND message (RFC 8200 §4.3): what
//! Linux accepts with its default sysctls, within the program's length
//! bound.

/// The program's choice: longer headers are passed (its verifier budget).
pub(crate) const MAX_HOP_BY_HOP_LEN: usize = 16;
const IPV6_HLEN: usize = 40;
const PAD1: u8 = 0;
const PADN: u8 = 1;
const ROUTER_ALERT: u8 = 5;
const CALIPSO: u8 = 7;
const IOAM: u8 = 0x31;
const JUMBO_PAYLOAD: u8 = 0xc2;
/// RFC 4942 §2.1.9.5 (and Linux): padding runs of at most 7 bytes.
const MAX_PADDING: usize = 7;
/// Linux's net.ipv6.max_hbh_opts_number.
const MAX_OPTIONS: usize = 8;

/// The length of the header right after the IPv6 header at `ip` in
/// `frame`, if it is acceptable and says `next` comes after it.
pub(super) fn accept(frame: &[u8], ip: usize, next: u8) -> Option<usize> {
    let at = ip + IPV6_HLEN;
    let header = frame.get(at..at + 2)?;
    let len = (header[1] as usize + 1) * 8;
    if header[0] != next || len > MAX_HOP_BY_HOP_LEN {
        return None;
    }
    let header = frame.get(at..at + len)?;
    let (mut offset, mut padding, mut options) = (2, 0, 0);
    while offset < len {
        let kind = header[offset];
        if kind == PAD1 {
            padding += 1;
            offset += 1;
        } else {
            let data = *header.get(offset + 1)? as usize;
            let option = header.get(offset..offset + 2 + data)?;
            match kind {
                PADN => {
                    padding += option.len();
                    if option[2..].iter().any(|&byte| byte != 0) {
                        return None;
                    }
                }
                _ => {
                    padding = 0;
                    options += 1;
                    let acceptable = match kind {
                        ROUTER_ALERT => data == 2,
                        // IOAM needs 4-byte alignment from the IPv6
                        // header; Linux then skips it (ioam6_enabled 0).
                        IOAM => (IPV6_HLEN + offset).is_multiple_of(4),
                        JUMBO_PAYLOAD | CALIPSO => false,
                        // RFC 8200 §4.2: the top two bits say what to do
                        // with an unknown option; only 00 is "skip".
                        _ => kind >> 6 == 0,
                    };
                    if !acceptable || options > MAX_OPTIONS {
                        return None;
                    }
                }
            }
            offset += option.len();
        }
        if padding > MAX_PADDING {
            return None;
        }
    }
    Some(len)
}
