//! Answers read field by field, and the differences between the kernel's
//! and the responder's answers to one frame.

use std::fmt::Write as _;

use responder_common::csum;

use super::{be16, ETHERTYPE_ARP, ETHERTYPE_IPV6, ICMPV6, IPV6_HLEN};

const ARP_END: usize = 14 + 28;
const ND_BODY_LEN: usize = 24;

/// Named fields in wire order; every byte of the frame is in one of them.
pub type Fields = Vec<(&'static str, String)>;

/// One way the two answers to a frame differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// Not as many answers on each side (typically one and none).
    Answered { kernel: usize, responder: usize },
    /// A field of the `index`th answer.
    Field {
        index: usize,
        name: &'static str,
        kernel: String,
        responder: String,
    },
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn ipv4(bytes: &[u8]) -> String {
    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes")).to_string()
}

fn ipv6(bytes: &[u8]) -> String {
    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")).to_string()
}

/// The fields of an answer: ARP replies and Neighbor Advertisements field
/// by field, anything else (or what follows) as bytes.
pub fn fields(frame: &[u8]) -> Fields {
    let mut fields = vec![("length", frame.len().to_string())];
    if frame.len() < 14 {
        fields.push(("bytes", hex(frame)));
        return fields;
    }
    fields.push(("ethernet dst", mac(&frame[0..6])));
    fields.push(("ethernet src", mac(&frame[6..12])));
    fields.push(("ethertype", format!("{:04x}", be16(frame, 12))));
    let rest = match be16(frame, 12) {
        ETHERTYPE_ARP if frame.len() >= ARP_END => {
            let arp = &frame[14..ARP_END];
            fields.push(("arp htype", be16(arp, 0).to_string()));
            fields.push(("arp ptype", format!("{:04x}", be16(arp, 2))));
            fields.push(("arp hlen/plen", format!("{}/{}", arp[4], arp[5])));
            fields.push(("arp op", be16(arp, 6).to_string()));
            fields.push(("arp sha", mac(&arp[8..14])));
            fields.push(("arp spa", ipv4(&arp[14..18])));
            fields.push(("arp tha", mac(&arp[18..24])));
            fields.push(("arp tpa", ipv4(&arp[24..28])));
            ARP_END
        }
        ETHERTYPE_IPV6 if frame.len() >= 14 + IPV6_HLEN + ND_BODY_LEN => {
            icmpv6_fields(frame, &mut fields)
        }
        _ => 14,
    };
    fields.push(("trailing bytes", hex(&frame[rest..])));
    fields
}

/// IPv6 and ICMPv6 fields; returns where they end.
fn icmpv6_fields(frame: &[u8], fields: &mut Fields) -> usize {
    let ip = &frame[14..14 + IPV6_HLEN];
    let message_at = 14 + IPV6_HLEN;
    fields.push(("ipv6 version/class/flow", hex(&ip[0..4])));
    fields.push(("ipv6 payload length", be16(ip, 4).to_string()));
    fields.push(("ipv6 next header", ip[6].to_string()));
    fields.push(("ipv6 hop limit", ip[7].to_string()));
    fields.push(("ipv6 src", ipv6(&ip[8..24])));
    fields.push(("ipv6 dst", ipv6(&ip[24..40])));
    if ip[6] != ICMPV6 {
        return message_at;
    }
    let end = (message_at + be16(ip, 4) as usize).min(frame.len());
    let message = &frame[message_at..end.max(message_at + ND_BODY_LEN)];
    let src: [u8; 16] = ip[8..24].try_into().expect("16 bytes");
    let dst: [u8; 16] = ip[24..40].try_into().expect("16 bytes");
    let acc = csum::ipv6_pseudo_header(&src, &dst, message.len() as u32, ICMPV6);
    let valid = csum::verifies(csum::add_bytes(acc, message));
    fields.push(("icmpv6 type/code", format!("{}/{}", message[0], message[1])));
    fields.push(("icmpv6 checksum", hex(&message[2..4])));
    fields.push(("icmpv6 checksum valid", valid.to_string()));
    let flags = message[4];
    fields.push(("na flag R", (flags >> 7 & 1).to_string()));
    fields.push(("na flag S", (flags >> 6 & 1).to_string()));
    fields.push(("na flag O", (flags >> 5 & 1).to_string()));
    fields.push((
        "na reserved",
        hex(&[flags & 0x1f, message[5], message[6], message[7]]),
    ));
    fields.push(("na target", ipv6(&message[8..24])));
    let options = &message[ND_BODY_LEN..];
    let described = if options.len() == 8 && options[0] == 2 && options[1] == 1 {
        format!("TLLA {}", mac(&options[2..8]))
    } else {
        hex(options)
    };
    fields.push(("na options", described));
    message_at + message.len()
}

/// The differences between the answers each side gave to one frame.
pub fn compare(kernel: &[Vec<u8>], responder: &[Vec<u8>]) -> Vec<Difference> {
    if kernel.len() != responder.len() {
        return vec![Difference::Answered {
            kernel: kernel.len(),
            responder: responder.len(),
        }];
    }
    let mut differences = Vec::new();
    for (index, (ours, theirs)) in responder.iter().zip(kernel).enumerate() {
        let (kernel_fields, responder_fields) = (fields(theirs), fields(ours));
        let names = kernel_fields
            .iter()
            .chain(&responder_fields)
            .map(|(name, _)| *name);
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let value = |fields: &Fields| {
                fields
                    .iter()
                    .find(|(field, _)| *field == name)
                    .map_or_else(|| "(absent)".to_string(), |(_, value)| value.clone())
            };
            let (kernel, responder) = (value(&kernel_fields), value(&responder_fields));
            if kernel != responder {
                differences.push(Difference::Field {
                    index,
                    name,
                    kernel,
                    responder,
                });
            }
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;
    use responder_model::frames::{
        expected_na, Arp, Ethernet, Vlan, ALL_NODES6, BROADCAST_MAC, OUR_MAC, PEER4, PEER6,
        PEER_MAC, VIP4, VIP6,
    };

    fn eth() -> Ethernet {
        Ethernet {
            dst: BROADCAST_MAC,
            src: PEER_MAC,
            vlan: Vlan::Untagged,
        }
    }

    #[test]
    fn identical_answers_do_not_differ() {
        let na = expected_na(&eth(), PEER_MAC, OUR_MAC, VIP6, PEER6, true);
        let same = std::slice::from_ref(&na);
        assert_eq!(compare(same, same), vec![]);
        assert_eq!(compare(&[], &[]), vec![]);
    }

    #[test]
    fn one_answer_against_none() {
        let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4).frame(&eth());
        assert_eq!(
            compare(&[reply], &[]),
            vec![Difference::Answered {
                kernel: 1,
                responder: 0
            }]
        );
    }

    #[test]
    fn na_flags_and_checksum_are_named() {
        let with_s = expected_na(&eth(), PEER_MAC, OUR_MAC, VIP6, ALL_NODES6, true);
        let without_s = expected_na(&eth(), PEER_MAC, OUR_MAC, VIP6, ALL_NODES6, false);
        let differences = compare(&[with_s], &[without_s]);
        let names: Vec<&str> = differences
            .iter()
            .map(|difference| match difference {
                Difference::Field { name, .. } => *name,
                Difference::Answered { .. } => "answered",
            })
            .collect();
        assert_eq!(names, vec!["icmpv6 checksum", "na flag S"]);
        assert!(
            fields(&expected_na(&eth(), PEER_MAC, OUR_MAC, VIP6, PEER6, true))
                .contains(&("icmpv6 checksum valid", "true".to_string()))
        );
    }

    #[test]
    fn arp_trailer_is_its_own_field() {
        let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4).frame(&eth());
        let mut padded = reply.clone();
        padded.extend_from_slice(&[0x5a; 18]);
        let differences = compare(&[reply], &[padded]);
        let names: Vec<&str> = differences
            .iter()
            .filter_map(|difference| match difference {
                Difference::Field { name, .. } => Some(*name),
                Difference::Answered { .. } => None,
            })
            .collect();
        assert_eq!(names, vec!["length", "trailing bytes"]);
    }
}
