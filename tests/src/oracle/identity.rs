//! Who asks: a requester of its own for every generated frame, and the
//! markers sent after each frame that tell where its answers end.

use responder_model::fuzzgen::Requester;

/// IPv4 requesters come from two documentation /24s (host parts 1–254);
/// a batch must hold fewer frames than this so its requesters differ.
pub const IPV4_POOL: u64 = 2 * 254;
const IPV4_NETWORKS: [[u8; 3]; 2] = [[198, 51, 100], [203, 0, 113]];
/// 2001:db8:5e::/48 and fe80::5e00:0:0:0/80 hold the IPv6 requesters.
const IPV6_PREFIX: [u8; 6] = [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x5e];
const LINK_LOCAL_PREFIX: [u8; 10] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x5e, 0];
/// Locally administered unicast MACs: requesters 02:5e:00:…, markers
/// 02:5e:ff:ff:….
const REQUESTER_MAC: [u8; 2] = [0x02, 0x5e];
const MARKER_MAC: [u8; 4] = [0x02, 0x5e, 0xff, 0xff];

/// The requester of frame `index`: its MAC and IPv6 addresses are unique
/// over a run of 2^24 frames, its IPv4 address within any `IPV4_POOL`
/// consecutive frames.
pub fn requester(index: u64) -> Requester {
    let i = index.to_be_bytes();
    let pool = index % IPV4_POOL;
    let network = IPV4_NETWORKS[(pool / 254) as usize];
    let mut v6 = [0u8; 16];
    v6[..6].copy_from_slice(&IPV6_PREFIX);
    v6[8..].copy_from_slice(&i);
    let mut v6_link_local = [0u8; 16];
    v6_link_local[..10].copy_from_slice(&LINK_LOCAL_PREFIX);
    v6_link_local[10..].copy_from_slice(&i[2..]);
    Requester {
        mac: [REQUESTER_MAC[0], REQUESTER_MAC[1], 0, i[5], i[6], i[7]],
        v4: [network[0], network[1], network[2], (pool % 254) as u8 + 1],
        v6,
        v6_link_local,
    }
}

/// The MAC of marker `index`.
pub fn marker_mac(index: u16) -> [u8; 6] {
    let [high, low] = index.to_be_bytes();
    [
        MARKER_MAC[0],
        MARKER_MAC[1],
        MARKER_MAC[2],
        MARKER_MAC[3],
        high,
        low,
    ]
}

/// An ARP probe (RFC 5227) for `vip` from marker `index`. Both sides
/// answer a probe at once and it leaves no neighbour entry behind, so its
/// answer marks the end of the answers to the frame sent before it.
pub fn marker(index: u16, vip: [u8; 4]) -> Vec<u8> {
    let mac = marker_mac(index);
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&vip);
    frame
}

/// The marker an answer answers, if it is one: an ARP reply to a marker's
/// MAC for the unspecified address.
pub fn answered_marker(answer: &[u8]) -> Option<u16> {
    if answer.len() < 42
        || answer[12..14] != [0x08, 0x06]
        || answer[20..22] != [0, 2]
        || answer[32..36] != MARKER_MAC
        || answer[38..42] != [0; 4]
    {
        return None;
    }
    Some(u16::from_be_bytes([answer[36], answer[37]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requesters_differ_within_the_ipv4_pool() {
        let first = requester(7);
        let same_v4 = requester(7 + IPV4_POOL);
        assert_eq!(first.v4, same_v4.v4);
        assert_ne!(first.mac, same_v4.mac);
        assert_ne!(first.v6, same_v4.v6);
        let all: std::collections::BTreeSet<[u8; 4]> =
            (0..IPV4_POOL).map(|index| requester(index).v4).collect();
        assert_eq!(all.len() as u64, IPV4_POOL);
        assert!(all.iter().all(|v4| v4[3] != 0 && v4[3] != 255));
    }

    #[test]
    fn requester_macs_are_unicast_and_never_markers() {
        let mac = requester(0x00ab_cdef).mac;
        assert_eq!(mac, [0x02, 0x5e, 0, 0xab, 0xcd, 0xef]);
        assert_eq!(mac[0] & 1, 0);
        assert_ne!(mac[..4], MARKER_MAC);
    }

    #[test]
    fn a_marker_answer_names_its_marker() {
        let probe = marker(513, [192, 0, 2, 10]);
        // The answer as either side builds it: sender and target swapped.
        let mut answer = probe.clone();
        answer[0..6].copy_from_slice(&marker_mac(513));
        answer[21] = 2;
        answer[32..38].copy_from_slice(&marker_mac(513));
        answer[38..42].fill(0);
        assert_eq!(answered_marker(&answer), Some(513));
        assert_eq!(answered_marker(&probe), None, "the probe itself");
    }
}
