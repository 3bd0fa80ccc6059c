//! Internet checksum (RFC 1071) in the form the data plane needs.
//!
//! Words are summed in memory order (`u16::from_ne_bytes`) and the result is
//! stored with `to_ne_bytes`: the one's-complement sum is byte-order
//! independent (RFC 1071 §2(B)), so neither the XDP program nor the host ever
//! swaps bytes. Accumulate in a `u64` and fold once at the end.

/// Adds `bytes` to `acc`, 16 bits at a time; an odd trailing byte is padded
/// with zero as RFC 1071 specifies.
#[inline(always)]
pub fn add_bytes(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i + 1 < bytes.len() {
        acc += u16::from_ne_bytes([bytes[i], bytes[i + 1]]) as u64;
        i += 2;
    }
    if i < bytes.len() {
        acc += u16::from_ne_bytes([bytes[i], 0]) as u64;
    }
    acc
}

/// Adds one 16-bit word as it was read from memory.
#[inline(always)]
pub fn add_word(acc: u64, word_ne: u16) -> u64 {
    acc + word_ne as u64
}

/// Folds the carries back in: the one's-complement sum, not yet inverted.
#[inline(always)]
pub fn fold(mut acc: u64) -> u16 {
    // Four rounds fold any u64 to 16 bits; a loop with a data-dependent exit
    // would cost the verifier more than it saves.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum field value (memory order) for data summed into `acc`.
#[inline(always)]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// True when data summed *including* its checksum field verifies.
#[inline(always)]
pub fn verifies(acc: u64) -> bool {
    fold(acc) == 0xffff
}

/// The IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet.
#[inline(always)]
pub fn ipv6_pseudo_header(src: &[u8; 16], dst: &[u8; 16], upper_len: u32, next_hdr: u8) -> u64 {
    let mut acc = add_bytes(0, src);
    acc = add_bytes(acc, dst);
    acc = add_bytes(acc, &upper_len.to_be_bytes());
    add_bytes(acc, &[0, 0, 0, next_hdr])
}

/// Checksum of an ICMPv6 message whose checksum field is zero.
pub fn icmpv6(src: &[u8; 16], dst: &[u8; 16], message: &[u8]) -> u16 {
    let acc = ipv6_pseudo_header(src, dst, message.len() as u32, crate::wire::IPPROTO_ICMPV6);
    finish(add_bytes(acc, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add_bytes(0, &data)).to_ne_bytes(), [0xdd, 0xf2]);
        assert_eq!(finish(add_bytes(0, &data)).to_ne_bytes(), [0x22, 0x0d]);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(add_bytes(0, &[0xab]), add_bytes(0, &[0xab, 0x00]));
    }

    #[test]
    fn carries_fold_back_in() {
        let data = [0xff; 64];
        assert_eq!(fold(add_bytes(0, &data)), 0xffff);
        assert_eq!(fold(0x1_0000_0000), 1);
        assert_eq!(fold(0x0001_fffe), 0xffff);
    }

    /// A Neighbor Solicitation captured from Linux 6.x: fe80::1 asking
    /// for 2001:db8::10 to its solicited-node group, with an SLLAO.
    #[test]
    fn icmpv6_neighbor_solicitation_vector() {
        let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x10];
        let mut msg = [
            135, 0, 0, 0, 0, 0, 0, 0, // type, code, checksum, reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // target
            1, 1, 0x02, 0, 0, 0, 0, 1, // SLLAO 02:00:00:00:00:01
        ];
        let c = icmpv6(&src, &dst, &msg);
        // Independently computed big-endian sum (see reference below).
        assert_eq!(
            c.to_ne_bytes(),
            reference_checksum(&src, &dst, &msg).to_be_bytes()
        );
        msg[2..4].copy_from_slice(&c.to_ne_bytes());
        let acc = ipv6_pseudo_header(&src, &dst, msg.len() as u32, 58);
        assert!(verifies(add_bytes(acc, &msg)));
        msg[30] ^= 1;
        assert!(!verifies(add_bytes(
            ipv6_pseudo_header(&src, &dst, 32, 58),
            &msg
        )));
    }

    /// Textbook big-endian implementation, to check the memory-order one.
    fn reference_checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
        let mut pseudo = [0u8; 40];
        pseudo[..16].copy_from_slice(src);
        pseudo[16..32].copy_from_slice(dst);
        pseudo[32..36].copy_from_slice(&(msg.len() as u32).to_be_bytes());
        pseudo[39] = 58;
        let mut sum: u32 = 0;
        for chunk in pseudo.chunks(2).chain(msg.chunks(2)) {
            let hi = chunk[0] as u32;
            let lo = *chunk.get(1).unwrap_or(&0) as u32;
            sum += (hi << 8) | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}
