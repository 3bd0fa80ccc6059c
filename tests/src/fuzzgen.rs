//! Structure-aware frame generators for the differential fuzzer: valid ARP
//! and ND traffic aimed at a small VIP table, with single fields or random
//! combinations of fields broken, random VLAN stacks, option lists,
//! truncation and padding, plus plain random bytes. Seeded and in-tree, so a
//! run is reproduced from its seed alone.

use responder_common::{VipKey, VipValue};

use crate::model::{icmpv6_checksum, VipTable, MAX_ND_MESSAGE_LEN, MAX_ND_OPTIONS};

/// SplitMix64: tiny, fast, and good enough to pick fields.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// In `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below((high - low + 1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    pub fn vec(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.fill(&mut out);
        out
    }
}

/// Frames arrive on loopback, which exists in every namespace.
pub const INGRESS_IFINDEX: u32 = 1;
/// An interface the frames never arrive on: its VIPs must never answer.
pub const DECOY_IFINDEX: u32 = 4242;

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const BROADCAST: [u8; 6] = [0xff; 6];

const V4_A: [u8; 4] = [192, 0, 2, 10];
const V4_B: [u8; 4] = [192, 0, 2, 11];
const V4_C: [u8; 4] = [192, 0, 2, 12];
const V4_DECOY: [u8; 4] = [192, 0, 2, 20];
const V4_PEER: [u8; 4] = [192, 0, 2, 1];

const fn v6(prefix: [u8; 4], last: u8) -> [u8; 16] {
    [
        prefix[0], prefix[1], prefix[2], prefix[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
    ]
}
const DOC: [u8; 4] = [0x20, 0x01, 0x0d, 0xb8];
const V6_A: [u8; 16] = v6(DOC, 0x10);
const V6_B: [u8; 16] = v6(DOC, 0x11);
const V6_C: [u8; 16] = v6(DOC, 0x12);
const V6_DECOY: [u8; 16] = v6(DOC, 0x20);
const V6_LINK_LOCAL: [u8; 16] = v6([0xfe, 0x80, 0, 0], 0x10);
const V6_PEER: [u8; 16] = v6(DOC, 0x01);
const V6_PEER_LINK_LOCAL: [u8; 16] = v6([0xfe, 0x80, 0, 0], 0x01);
/// Shares V6_A's solicited-node group without being a VIP.
const V6_SAME_GROUP: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const V6_ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// (outer, inner) VLAN ids that some VIP is scoped to.
const SCOPED_STACKS: [(u16, u16); 5] = [(0, 0), (100, 0), (200, 300), (0, 100), (4094, 0)];

/// The fuzzer's VIP table: a few VIPs on loopback, some VLAN-scoped, two
/// MACs (so unicast to the other MAC must be ignored), one decoy elsewhere.
pub fn vip_table() -> VipTable {
    let value = |mac| VipValue {
        mac,
        ..VipValue::default()
    };
    let i = INGRESS_IFINDEX;
    [
        (VipKey::v4(i, 0, 0, V4_A), value(MAC_A)),
        (VipKey::v4(i, 100, 0, V4_A), value(MAC_A)),
        (VipKey::v4(i, 200, 300, V4_A), value(MAC_A)),
        (VipKey::v4(i, 0, 0, V4_B), value(MAC_B)),
        (VipKey::v4(i, 0, 100, V4_C), value(MAC_A)),
        (VipKey::v4(i, 4094, 0, V4_C), value(MAC_B)),
        (VipKey::v4(DECOY_IFINDEX, 0, 0, V4_DECOY), value(MAC_A)),
        (VipKey::v6(i, 0, 0, V6_A), value(MAC_A)),
        (VipKey::v6(i, 100, 0, V6_A), value(MAC_A)),
        (VipKey::v6(i, 200, 300, V6_A), value(MAC_A)),
        (VipKey::v6(i, 0, 0, V6_B), value(MAC_B)),
        (VipKey::v6(i, 0, 100, V6_C), value(MAC_A)),
        (VipKey::v6(i, 4094, 0, V6_C), value(MAC_B)),
        (VipKey::v6(i, 0, 0, V6_LINK_LOCAL), value(MAC_A)),
        (VipKey::v6(DECOY_IFINDEX, 0, 0, V6_DECOY), value(MAC_A)),
    ]
    .into_iter()
    .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    ArpRequest,
    ArpProbe,
    ArpGratuitous,
    ArpReply,
    NsMulticast,
    NsUnicast,
    NsDad,
    Na,
    OtherEthertype,
    RandomBytes,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::ArpRequest => "arp_request",
            Class::ArpProbe => "arp_probe",
            Class::ArpGratuitous => "arp_gratuitous",
            Class::ArpReply => "arp_reply",
            Class::NsMulticast => "ns_multicast",
            Class::NsUnicast => "ns_unicast",
            Class::NsDad => "ns_dad",
            Class::Na => "na",
            Class::OtherEthertype => "other_ethertype",
            Class::RandomBytes => "random_bytes",
        }
    }
}

/// One generated frame and how it came about.
pub struct Generated {
    pub class: Class,
    /// Some field or byte was deliberately broken (padding does not count).
    pub mutated: bool,
    pub frame: Vec<u8>,
}

/// Decides, field by field, whether to break it: none, exactly one (by
/// position), or each with some probability.
struct Mutations {
    single: Option<u32>,
    percent: u64,
    next: u32,
    hit: bool,
}

impl Mutations {
    fn new(rng: &mut Rng) -> Self {
        let (single, percent) = match rng.below(100) {
            0..40 => (None, 0),
            40..75 => (Some(rng.below(16) as u32), 0),
            _ => (None, 15),
        };
        Mutations {
            single,
            percent,
            next: 0,
            hit: false,
        }
    }

    fn field<T>(&mut self, rng: &mut Rng, valid: T, broken: impl FnOnce(&mut Rng) -> T) -> T {
        let index = self.next;
        self.next += 1;
        let mutate = match self.single {
            Some(chosen) => chosen == index,
            None => self.percent > 0 && rng.chance(self.percent),
        };
        if mutate {
            self.hit = true;
            broken(rng)
        } else {
            valid
        }
    }
}

fn any_mac(rng: &mut Rng) -> [u8; 6] {
    match rng.below(10) {
        0 => MAC_A,
        1 => MAC_B,
        2 => PEER_MAC,
        3 => OTHER_MAC,
        4 => BROADCAST,
        5 => [0; 6],
        6 => [0x33, 0x33, 0, 0, 0, 1],
        7 => [0x33, 0x33, 0xff, 0, 0, rng.pick(&[0x10, 0x11, 0x12])],
        8 => {
            let mut mac = rng.bytes::<6>();
            mac[0] |= 1;
            mac
        }
        _ => rng.bytes(),
    }
}

fn claimant_mac(rng: &mut Rng) -> [u8; 6] {
    rng.pick(&[OTHER_MAC, PEER_MAC, MAC_A, MAC_B])
}

fn vip4(rng: &mut Rng) -> [u8; 4] {
    rng.pick(&[V4_A, V4_A, V4_B, V4_C, V4_DECOY, [192, 0, 2, 99]])
}

fn any4(rng: &mut Rng) -> [u8; 4] {
    match rng.below(6) {
        0 => [0; 4],
        1 => [255; 4],
        2 => V4_PEER,
        3 => rng.bytes(),
        _ => vip4(rng),
    }
}

fn vip6(rng: &mut Rng) -> [u8; 16] {
    rng.pick(&[
        V6_A,
        V6_A,
        V6_B,
        V6_C,
        V6_LINK_LOCAL,
        V6_DECOY,
        V6_SAME_GROUP,
    ])
}

fn any6(rng: &mut Rng) -> [u8; 16] {
    match rng.below(8) {
        0 => [0; 16],
        1 => V6_ALL_NODES,
        2 => solicited_node(&vip6(rng)),
        3 => V6_PEER,
        4 => {
            let mut multicast = rng.bytes::<16>();
            multicast[0] = 0xff;
            multicast
        }
        5 => rng.bytes(),
        _ => vip6(rng),
    }
}

fn interesting_u8(rng: &mut Rng) -> u8 {
    match rng.below(4) {
        0 => 0,
        1 => 255,
        2 => rng.pick(&[1, 2, 6, 4, 58, 128, 135, 136]),
        _ => rng.bytes::<1>()[0],
    }
}

fn interesting_u16(rng: &mut Rng) -> u16 {
    match rng.below(4) {
        0 => 0,
        1 => 0xffff,
        2 => rng.pick(&[1, 2, 3, 0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8]),
        _ => rng.below(0x1_0000) as u16,
    }
}

fn solicited_node(addr: &[u8; 16]) -> [u8; 16] {
    let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&addr[13..]);
    group
}

fn multicast_mac(group: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// 0–3 tags: usually a stack some VIP is scoped to, with the usual TPIDs;
/// sometimes swapped TPIDs, random ids, priority bits, or a third tag.
fn vlan_tags(rng: &mut Rng) -> Vec<(u16, u16)> {
    let ids: Vec<u16> = match rng.below(20) {
        0..8 => vec![],
        8..16 => {
            let (outer, inner) = rng.pick(&SCOPED_STACKS);
            match (outer, inner, rng.below(4)) {
                (0, 0, 0) => vec![0],
                (0, 0, _) => vec![],
                (_, 0, _) => vec![outer],
                _ => vec![outer, inner],
            }
        }
        16..18 => (0..rng.between(1, 2))
            .map(|_| rng.below(0x1000) as u16)
            .collect(),
        _ => (0..3).map(|_| rng.pick(&[0, 100, 200, 300])).collect(),
    };
    let count = ids.len();
    ids.into_iter()
        .enumerate()
        .map(|(position, id)| {
            let tpid = if rng.chance(25) {
                rng.pick(&[0x8100, 0x88a8])
            } else if position + 1 < count {
                0x88a8
            } else {
                0x8100
            };
            let priority = if rng.chance(30) {
                (rng.below(16) as u16) << 12
            } else {
                0
            };
            (tpid, priority | id)
        })
        .collect()
}

fn ethernet(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ether_type: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1600);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    for (tpid, tci) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&tci.to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame
}

fn arp(rng: &mut Rng, m: &mut Mutations, class: Class) -> Vec<u8> {
    let vip = vip4(rng);
    let (oper, sha, spa, tpa, eth_dst) = match class {
        Class::ArpRequest => (1, PEER_MAC, V4_PEER, vip, BROADCAST),
        Class::ArpProbe => (1, PEER_MAC, [0; 4], vip, BROADCAST),
        Class::ArpGratuitous => (1, claimant_mac(rng), vip, vip, BROADCAST),
        _ => (
            2,
            claimant_mac(rng),
            vip,
            V4_PEER,
            rng.pick(&[BROADCAST, MAC_A, MAC_B, PEER_MAC]),
        ),
    };
    let eth_dst = if rng.chance(15) {
        rng.pick(&[MAC_A, MAC_B, OTHER_MAC])
    } else {
        eth_dst
    };
    let eth_dst = m.field(rng, eth_dst, any_mac);
    let eth_src = m.field(rng, sha, any_mac);
    let tags = vlan_tags(rng);
    let ether_type = m.field(rng, 0x0806, interesting_u16);
    let mut frame = ethernet(eth_dst, eth_src, &tags, ether_type);
    frame.extend_from_slice(&m.field(rng, 1u16, interesting_u16).to_be_bytes());
    frame.extend_from_slice(&m.field(rng, 0x0800u16, interesting_u16).to_be_bytes());
    frame.push(m.field(rng, 6, interesting_u8));
    frame.push(m.field(rng, 4, interesting_u8));
    frame.extend_from_slice(&m.field(rng, oper, interesting_u16).to_be_bytes());
    frame.extend_from_slice(&m.field(rng, sha, any_mac));
    frame.extend_from_slice(&m.field(rng, spa, any4));
    let tha = if oper == 2 { PEER_MAC } else { [0; 6] };
    frame.extend_from_slice(&m.field(rng, tha, any_mac));
    frame.extend_from_slice(&m.field(rng, tpa, any4));
    frame
}

fn link_addr_option(kind: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut option = vec![kind, 1];
    option.extend_from_slice(&mac);
    option
}

fn nonce_option(rng: &mut Rng) -> Vec<u8> {
    let mut option = vec![14, 1];
    option.extend_from_slice(&rng.bytes::<6>());
    option
}

/// Option lists that are wrong, odd, or at the program's limits.
fn random_options(rng: &mut Rng) -> Vec<u8> {
    let mut options = Vec::new();
    match rng.below(7) {
        0 | 1 => {
            for _ in 0..rng.below(5) {
                let kind = rng.pick(&[1, 1, 2, 2, 3, 5, 14, 0, 255]);
                let units = rng.pick(&[1, 1, 1, 0, 2, 3, 255]);
                options.extend_from_slice(&[kind, units]);
                let body = (units as usize * 8).clamp(8, 64) - 2;
                let at = options.len();
                options.extend_from_slice(&rng.vec(body));
                if units == 1 && rng.chance(50) {
                    options[at..at + 6].copy_from_slice(&claimant_mac(rng));
                }
            }
        }
        2 => {
            for _ in 0..rng.between(MAX_ND_OPTIONS - 2, MAX_ND_OPTIONS + 2) {
                options.extend_from_slice(&nonce_option(rng));
            }
            if rng.chance(50) {
                let at = rng.below(options.len() as u64 / 8) as usize * 8;
                options[at] = rng.pick(&[1, 2]);
                options[at + 2..at + 8].copy_from_slice(&claimant_mac(rng));
            }
        }
        3 => {
            // Around the checksum cap: 24 + 8 * units bytes of message.
            let cap_units = (MAX_ND_MESSAGE_LEN - 24) / 8;
            let units = rng.between(cap_units - 2, cap_units + 2);
            options.extend_from_slice(&[rng.pick(&[3, 14, 200]), units as u8]);
            options.extend_from_slice(&rng.vec(units * 8 - 2));
        }
        4 => {
            let kind = rng.pick(&[1, 2]);
            options.extend(link_addr_option(kind, claimant_mac(rng)));
            options.extend(link_addr_option(kind, claimant_mac(rng)));
        }
        5 => {
            options.extend(link_addr_option(rng.pick(&[1, 2]), claimant_mac(rng)));
            let len = rng.between(1, 7);
            options.extend_from_slice(&rng.vec(len));
        }
        _ => {
            options.extend_from_slice(&[rng.pick(&[1, 2, 14]), rng.pick(&[2, 3, 4])]);
            options.extend_from_slice(&rng.vec(6));
        }
    }
    options
}

fn neighbor_discovery(rng: &mut Rng, m: &mut Mutations, class: Class) -> Vec<u8> {
    let target = vip6(rng);
    let group = solicited_node(&target);
    let sender = rng.pick(&[V6_PEER, V6_PEER_LINK_LOCAL]);
    let sender_mac = PEER_MAC;
    let nonce = nonce_option(rng);
    let (src, dst, eth_dst, options, flags) = match class {
        Class::NsMulticast => {
            let mut options = link_addr_option(1, sender_mac);
            if rng.chance(20) {
                options.extend(&nonce);
            }
            (sender, group, multicast_mac(&group), options, 0)
        }
        Class::NsUnicast => {
            let options = if rng.chance(70) {
                link_addr_option(1, rng.pick(&[sender_mac, OTHER_MAC]))
            } else {
                Vec::new()
            };
            (sender, target, rng.pick(&[MAC_A, MAC_B]), options, 0)
        }
        Class::NsDad => {
            let options = if rng.chance(50) { nonce } else { Vec::new() };
            ([0; 16], group, multicast_mac(&group), options, 0)
        }
        _ => {
            let options = if rng.chance(70) {
                link_addr_option(2, claimant_mac(rng))
            } else {
                Vec::new()
            };
            let dst = rng.pick(&[V6_ALL_NODES, V6_PEER]);
            let eth_dst = if dst == V6_ALL_NODES {
                multicast_mac(&dst)
            } else {
                rng.pick(&[MAC_A, MAC_B, PEER_MAC])
            };
            let flags = rng.pick(&[0x20, 0x60, 0xa0, 0xe0, 0x00]);
            (target, dst, eth_dst, options, flags)
        }
    };
    let eth_dst = m.field(rng, eth_dst, any_mac);
    let eth_src = if class == Class::Na {
        claimant_mac(rng)
    } else {
        sender_mac
    };
    let eth_src = m.field(rng, eth_src, any_mac);
    let tags = vlan_tags(rng);
    let ether_type = m.field(rng, 0x86dd, interesting_u16);
    let src = m.field(rng, src, any6);
    let dst = m.field(rng, dst, any6);
    let target = m.field(rng, target, any6);
    let options = m.field(rng, options, random_options);
    let icmp_type = if matches!(class, Class::Na) { 136 } else { 135 };
    let mut message = vec![
        m.field(rng, icmp_type, interesting_u8),
        m.field(rng, 0, interesting_u8),
        0,
        0,
    ];
    message.extend_from_slice(&m.field(rng, [flags, 0, 0, 0], |rng| rng.bytes()));
    message.extend_from_slice(&target);
    message.extend_from_slice(&options);
    let payload_len = m.field(rng, message.len(), |rng| match rng.below(3) {
        0 => rng.below(0x1_0000) as usize,
        _ => message
            .len()
            .saturating_add_signed(rng.between(0, 32) as isize - 16),
    });
    // The checksum covers what payload_len claims, so a message cut short
    // by its own length field can still verify.
    let covered = payload_len.clamp(4, message.len());
    let checksum = icmpv6_checksum(&src, &dst, &message[..covered]);
    let checksum = m.field(rng, checksum, |rng| match rng.below(3) {
        0 => [0, 0],
        1 => [checksum[0], checksum[1] ^ 1],
        _ => rng.bytes(),
    });
    message[2..4].copy_from_slice(&checksum);

    let mut frame = ethernet(eth_dst, eth_src, &tags, ether_type);
    frame.extend_from_slice(&m.field(rng, [0x60, 0, 0, 0], |rng| {
        let mut first = rng.bytes::<4>();
        if rng.chance(50) {
            first[0] = 0x60 | (first[0] & 0x0f);
        }
        first
    }));
    frame.extend_from_slice(&(payload_len as u16).to_be_bytes());
    frame.push(m.field(rng, 58, interesting_u8));
    frame.push(m.field(rng, 255, interesting_u8));
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&message);
    frame
}

fn other_ethertype(rng: &mut Rng) -> Vec<u8> {
    let ether_type = rng.pick(&[0x0800, 0x86dd, 0x8847, 0x88cc, 0x0842]);
    let ether_type = if rng.chance(20) {
        rng.below(0x1_0000) as u16
    } else {
        ether_type
    };
    let mut frame = ethernet(any_mac(rng), PEER_MAC, &vlan_tags(rng), ether_type);
    let len = rng.between(0, 200);
    let payload = rng.vec(len);
    frame.extend_from_slice(&payload);
    if ether_type == 0x86dd && frame.len() >= 14 + 40 && rng.chance(50) {
        // ICMPv6 that is not ND, or ND-like bytes at random.
        frame[14] = 0x60;
        frame[14 + 6] = 58;
    }
    frame
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.between(14, 1600);
    let mut frame = rng.vec(len);
    if rng.chance(50) {
        let ether_type: u16 = rng.pick(&[0x0806, 0x86dd, 0x8100, 0x88a8]);
        frame[12..14].copy_from_slice(&ether_type.to_be_bytes());
    }
    frame
}

/// One frame of a random class.
pub fn generate(rng: &mut Rng) -> Generated {
    let class = match rng.below(100) {
        0..12 => Class::ArpRequest,
        12..18 => Class::ArpProbe,
        18..24 => Class::ArpGratuitous,
        24..32 => Class::ArpReply,
        32..46 => Class::NsMulticast,
        46..56 => Class::NsUnicast,
        56..64 => Class::NsDad,
        64..76 => Class::Na,
        76..84 => Class::OtherEthertype,
        _ => Class::RandomBytes,
    };
    let mut m = Mutations::new(rng);
    let mut frame = match class {
        Class::ArpRequest | Class::ArpProbe | Class::ArpGratuitous | Class::ArpReply => {
            arp(rng, &mut m, class)
        }
        Class::NsMulticast | Class::NsUnicast | Class::NsDad | Class::Na => {
            neighbor_discovery(rng, &mut m, class)
        }
        Class::OtherEthertype => other_ethertype(rng),
        Class::RandomBytes => random_bytes(rng),
    };
    let mut mutated = m.hit || class == Class::RandomBytes;
    if class != Class::RandomBytes {
        if rng.chance(4) && frame.len() > 14 {
            frame.truncate(rng.between(14, frame.len() - 1));
            mutated = true;
        }
        if rng.chance(3) {
            let at = rng.below(frame.len() as u64) as usize;
            frame[at] ^= 1 << rng.below(8);
            mutated = true;
        }
        // Ethernet padding: to the 60-byte minimum, or any trailer.
        match rng.below(10) {
            0..3 if frame.len() < 60 => frame.resize(60, 0),
            3 => {
                let len = rng.between(1, 64);
                let trailer = rng.vec(len);
                frame.extend_from_slice(&trailer);
            }
            _ => {}
        }
    }
    Generated {
        class,
        mutated,
        frame,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{respond, Verdict};

    /// The generator reaches both verdicts and both kinds of counting.
    #[test]
    fn generated_frames_reach_replies_and_conflicts() {
        let vips = vip_table();
        let mut rng = Rng::new(1);
        let (mut replies, mut conflicts, mut passes) = (0, 0, 0);
        for _ in 0..20_000 {
            let generated = generate(&mut rng);
            assert!(
                generated.frame.len() >= 14,
                "frames hold an Ethernet header"
            );
            let expected = respond(&vips, INGRESS_IFINDEX, &generated.frame);
            match (&expected.verdict, expected.counted) {
                (Verdict::Tx(_), _) => replies += 1,
                (Verdict::Pass, Some(_)) => conflicts += 1,
                (Verdict::Pass, None) => passes += 1,
            }
        }
        assert!(replies > 1_000, "{replies} replies");
        assert!(conflicts > 200, "{conflicts} conflicts");
        assert!(passes > 5_000, "{passes} passes");
    }
}
