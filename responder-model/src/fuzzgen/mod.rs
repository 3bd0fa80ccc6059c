//! Structure-aware frame generators for the differential fuzzer: valid ARP
//! and ND traffic aimed at a small VIP table, with single fields or random
//! combinations of fields broken, random VLAN stacks, option lists,
//! truncation and padding, plus plain random bytes. Seeded and in-tree, so a
//! run is reproduced from its seed alone.

mod arp;
mod extension_headers;
mod fields;
mod neighbor_discovery;
mod rng;
mod table;

pub use rng::Rng;
pub use table::{nics, vip_table, INGRESS_IFINDEX, MAC_A};

use arp::arp;
use fields::{any_mac, ethernet, vlan_tags};
use neighbor_discovery::neighbor_discovery;
use table::{V4_PEER, V6_PEER, V6_PEER_LINK_LOCAL};

use crate::frames::PEER_MAC;

/// The host the generated requests come from. The differential fuzzer keeps
/// one; the kernel oracle gives every frame its own, so that answers can be
/// told apart and no frame meets neighbour state another one left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    pub mac: [u8; 6],
    pub v4: [u8; 4],
    pub v6: [u8; 16],
    pub v6_link_local: [u8; 16],
}

impl Default for Requester {
    fn default() -> Self {
        Requester {
            mac: PEER_MAC,
            v4: V4_PEER,
            v6: V6_PEER,
            v6_link_local: V6_PEER_LINK_LOCAL,
        }
    }
}

/// What the generated frames look like beyond their class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub requester: Requester,
    /// Structured frames carry random VLAN stacks; without, they are
    /// untagged (a kernel interface answers on its own VLAN only).
    pub vlan_tags: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            requester: Requester::default(),
            vlan_tags: true,
        }
    }
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
pub(super) struct Mutations {
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

    pub(super) fn field<T>(
        &mut self,
        rng: &mut Rng,
        valid: T,
        broken: impl FnOnce(&mut Rng) -> T,
    ) -> T {
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

fn other_ethertype(rng: &mut Rng, profile: &Profile) -> Vec<u8> {
    let ether_type = rng.pick(&[0x0800, 0x86dd, 0x8847, 0x88cc, 0x0842]);
    let ether_type = if rng.chance(20) {
        rng.below(0x1_0000) as u16
    } else {
        ether_type
    };
    let tags = vlan_tags(rng, profile);
    let mut frame = ethernet(any_mac(rng), profile.requester.mac, &tags, ether_type);
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

/// One frame of a random class, from the default requester, with VLAN tags.
pub fn generate(rng: &mut Rng) -> Generated {
    generate_with(rng, &Profile::default())
}

/// One frame of a random class shaped by `profile`.
pub fn generate_with(rng: &mut Rng, profile: &Profile) -> Generated {
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
            arp(rng, &mut m, class, profile)
        }
        Class::NsMulticast | Class::NsUnicast | Class::NsDad | Class::Na => {
            neighbor_discovery(rng, &mut m, class, profile)
        }
        Class::OtherEthertype => other_ethertype(rng, profile),
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
    use crate::model::{respond_with_nics, Verdict};

    /// The generator reaches both verdicts and both kinds of counting.
    #[test]
    fn generated_frames_reach_replies_and_conflicts() {
        let vips = vip_table();
        let nics = nics();
        let mut rng = Rng::new(1);
        let (mut replies, mut conflicts, mut passes) = (0, 0, 0);
        for _ in 0..20_000 {
            let generated = generate(&mut rng);
            assert!(
                generated.frame.len() >= 14,
                "frames hold an Ethernet header"
            );
            let expected = respond_with_nics(&vips, &nics, INGRESS_IFINDEX, &generated.frame);
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
