//! The differences between the kernel and the responder that the project
//! chose, each with its reason. A frame whose answers differ is excused by
//! one entry that explains every difference; anything else fails the run.
//! docs/tests.md ("The kernel oracle") mirrors this table.

use super::{
    answer::{fields, Difference},
    request::{solicited_node, Body, Request, HOP_BY_HOP},
    Vips,
};

/// The program's bounds (responder-ebpf: hop_by_hop.rs, ndp.rs).
const MAX_HOP_BY_HOP_LEN: usize = 16;
const MAX_ND_OPTIONS: usize = 16;

/// One intended difference.
pub struct Intended {
    pub name: &'static str,
    pub reason: &'static str,
    explains: fn(&Case) -> bool,
}

/// A frame, what each side answered, and how the answers differ.
pub struct Case<'a> {
    pub request: &'a Request<'a>,
    pub responder: &'a [Vec<u8>],
    pub differences: &'a [Difference],
    pub vips: &'a Vips,
}

impl Case<'_> {
    fn only_kernel_answers(&self) -> bool {
        self.differences
            == [Difference::Answered {
                kernel: 1,
                responder: 0,
            }]
    }

    fn only_responder_answers(&self) -> bool {
        self.differences
            == [Difference::Answered {
                kernel: 0,
                responder: 1,
            }]
    }

    /// Every difference is one of these fields.
    fn differs_only_in(&self, names: &[&str]) -> bool {
        self.differences.iter().all(|difference| {
            matches!(difference, Difference::Field { name, .. } if names.contains(name))
        })
    }

    fn responder_field(&self, name: &str) -> Option<String> {
        let answer = self.responder.first()?;
        fields(answer)
            .into_iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value)
    }
}

fn is_group_or_zero(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1 || *mac == [0; 6]
}

pub static INTENDED: &[Intended] = &[
    Intended {
        name: "ARP reply keeps the request's trailer",
        reason: "The responder answers in place and keeps whatever followed the ARP packet \
                 (Ethernet padding, trailers) instead of trimming the frame; the kernel builds \
                 a 42-byte reply that the NIC pads. A minimum-size request gets a reply of the \
                 same size either way.",
        explains: |case| {
            let Body::Arp(arp) = &case.request.body else {
                return false;
            };
            let trailer = &case.request.bytes[case.request.bytes.len() - arp.trailer_len..];
            let expected: String = trailer.iter().map(|b| format!("{b:02x}")).collect();
            arp.trailer_len > 0
                && !case.differences.is_empty()
                && case.differs_only_in(&["length", "trailing bytes"])
                && case.responder_field("trailing bytes") == Some(expected)
        },
    },
    Intended {
        name: "ARP request from a group or zero hardware address",
        reason: "The kernel answers it, to that broadcast, multicast or zero address. The \
                 responder does not (issue 12): such a 'reply' reaches every host or none and \
                 teaches no host where the VIP is.",
        explains: |case| {
            let Body::Arp(arp) = &case.request.body else {
                return false;
            };
            arp.op == 1 && is_group_or_zero(&arp.sha) && case.only_kernel_answers()
        },
    },
    Intended {
        name: "NS to a unicast address: Override flag",
        reason: "The kernel clears O in answers to unicast solicitations; RFC 4861 §7.2.4 says O \
                 SHOULD be set when the Target Link-Layer Address option is included and the \
                 target is no anycast or proxied address, which is the responder's case (the \
                 oracle sets force_tllao so that the kernel includes the option too).",
        explains: |case| {
            let Body::Nd(nd) = &case.request.body else {
                return false;
            };
            nd.is_solicitation()
                && !nd.is_dad()
                && !nd.to_multicast()
                && !case.differences.is_empty()
                && case.differs_only_in(&["na flag O", "icmpv6 checksum"])
                && case.responder_field("na flag O").as_deref() == Some("1")
                && case.responder_field("icmpv6 checksum valid").as_deref() == Some("true")
        },
    },
    Intended {
        name: "NS to another address or group of the host",
        reason: "The kernel accepts a solicitation sent to any of its addresses or joined groups \
                 (another VIP, another VIP's solicited-node group); the responder knows the \
                 target's alone and accepts the target, its solicited-node group and all-nodes, \
                 where RFC 4861 §7.2.2 and RFC 4862 §5.4.2 send solicitations.",
        explains: |case| {
            let Body::Nd(nd) = &case.request.body else {
                return false;
            };
            let ours = case
                .vips
                .v6
                .iter()
                .any(|vip| nd.dst == *vip || nd.dst == solicited_node(vip));
            nd.is_solicitation() && !nd.to_the_target() && ours && case.only_kernel_answers()
        },
    },
    Intended {
        name: "Unicast NS without SLLAO from a group or zero Ethernet source",
        reason: "The kernel answers a unicast solicitation without a Source Link-Layer Address \
                 option after resolving the solicitor, which no host can answer from a group \
                 or zero MAC; the responder answers the Ethernet source at once.",
        explains: |case| {
            let Body::Nd(nd) = &case.request.body else {
                return false;
            };
            nd.is_solicitation()
                && !nd.is_dad()
                && !nd.to_multicast()
                && nd.source_link_addr.is_none()
                && is_group_or_zero(&case.request.eth_src)
                && case.only_responder_answers()
        },
    },
    Intended {
        name: "NS behind extension headers the responder does not walk",
        reason: "The kernel walks any chain of extension headers before ICMPv6 (Destination \
                 Options, Routing, long Hop-by-Hop headers); the responder accepts one \
                 Hop-by-Hop header of at most 16 bytes, as far as its verifier budget goes. \
                 No ND implementation sends the others.",
        explains: |case| {
            let Body::Nd(nd) = &case.request.body else {
                return false;
            };
            let walked = match nd.extension_headers.as_slice() {
                [] => true,
                [(HOP_BY_HOP, len)] => *len <= MAX_HOP_BY_HOP_LEN,
                _ => false,
            };
            nd.is_solicitation() && !walked && case.only_kernel_answers()
        },
    },
    Intended {
        name: "ND message with more than 16 options",
        reason: "The responder walks at most 16 options (a constant bound for the verifier; real \
                 messages carry one or two) and passes longer lists; the kernel walks all.",
        explains: |case| {
            let Body::Nd(nd) = &case.request.body else {
                return false;
            };
            nd.options > MAX_ND_OPTIONS && case.only_kernel_answers()
        },
    },
    Intended {
        name: "ND message longer than 1024 bytes",
        reason: "The responder's checksum loop has a constant bound for the verifier; longer \
                 messages are passed. The kernel checksums any length.",
        explains: |case| {
            let Body::Nd(nd) = &case.request.body else {
                return false;
            };
            nd.message_len > 1024 && case.only_kernel_answers()
        },
    },
];

/// The entry that explains every difference of `case`, if one does.
pub fn explain(case: &Case) -> Option<&'static Intended> {
    INTENDED.iter().find(|intended| (intended.explains)(case))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{answer::compare, request::parse};
    use responder_model::frames::{
        expected_na, link_addr_option, Arp, Ethernet, Nd, Vlan, BROADCAST_MAC,
        ND_OPT_SOURCE_LL_ADDR, OUR_MAC, PEER4, PEER6, PEER_MAC, VIP4, VIP6,
    };

    fn vips() -> Vips {
        Vips {
            v4: vec![VIP4],
            v6: vec![VIP6],
        }
    }

    fn explained(frame: &[u8], kernel: &[Vec<u8>], responder: &[Vec<u8>]) -> Option<&'static str> {
        let request = parse(frame);
        let differences = compare(kernel, responder);
        assert!(!differences.is_empty(), "the answers differ");
        let vips = vips();
        let case = Case {
            request: &request,
            responder,
            differences: &differences,
            vips: &vips,
        };
        explain(&case).map(|intended| intended.name)
    }

    fn eth(dst: [u8; 6]) -> Ethernet {
        Ethernet {
            dst,
            src: PEER_MAC,
            vlan: Vlan::Untagged,
        }
    }

    #[test]
    fn a_kept_trailer_is_intended_only_if_it_is_the_request_s() {
        let mut request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&eth(BROADCAST_MAC));
        request.extend_from_slice(&[0x5a; 18]);
        let kernel = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4).frame(&eth(PEER_MAC));
        let mut responder = kernel.clone();
        responder[6..12].copy_from_slice(&OUR_MAC);
        let mut kernel_reply = kernel;
        kernel_reply[6..12].copy_from_slice(&OUR_MAC);
        let mut kept = responder.clone();
        kept.extend_from_slice(&[0x5a; 18]);
        assert_eq!(
            explained(&request, &[kernel_reply.clone()], &[kept]),
            Some("ARP reply keeps the request's trailer")
        );
        let mut zeroed = responder;
        zeroed.extend_from_slice(&[0; 18]);
        assert_eq!(explained(&request, &[kernel_reply], &[zeroed]), None);
    }

    #[test]
    fn the_override_flag_differs_only_for_unicast_solicitations() {
        let sllao = link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC);
        let unicast = Nd::solicitation(PEER6, VIP6, VIP6, vec![sllao.clone()]).frame(&eth(OUR_MAC));
        let ours = expected_na(&eth(OUR_MAC), PEER_MAC, OUR_MAC, VIP6, PEER6, true);
        let mut linux = ours.clone();
        // Linux: S without O, and the checksum that goes with it.
        let message_at = 14 + 40;
        linux[message_at + 4] = 0x40;
        linux[message_at + 2..message_at + 4].fill(0);
        let checksum = responder_common::csum::icmpv6(&VIP6, &PEER6, &linux[message_at..]);
        linux[message_at + 2..message_at + 4].copy_from_slice(&checksum.to_ne_bytes());
        assert_eq!(
            explained(
                &unicast,
                std::slice::from_ref(&linux),
                std::slice::from_ref(&ours)
            ),
            Some("NS to a unicast address: Override flag")
        );
        let group = responder_model::frames::solicited_node_group(VIP6).0;
        let multicast = Nd::solicitation(PEER6, group, VIP6, vec![sllao]).frame(&eth(OUR_MAC));
        assert_eq!(explained(&multicast, &[linux], &[ours]), None);
    }

    #[test]
    fn a_group_sender_explains_only_a_missing_answer_of_ours() {
        let request = Arp::request(BROADCAST_MAC, PEER4, VIP4).frame(&eth(BROADCAST_MAC));
        let reply = Arp::reply(OUR_MAC, VIP4, BROADCAST_MAC, PEER4).frame(&eth(BROADCAST_MAC));
        assert_eq!(
            explained(&request, std::slice::from_ref(&reply), &[]),
            Some("ARP request from a group or zero hardware address")
        );
        assert_eq!(explained(&request, &[], &[reply]), None);
    }
}

#[cfg(test)]
mod readme {
    use super::INTENDED;

    /// docs/tests.md mirrors the table: every entry appears there by name.
    #[test]
    fn the_readme_lists_every_intended_difference() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tests.md"))
                .expect("read docs/tests.md");
        for intended in INTENDED {
            assert!(
                readme.contains(&format!("| {} |", intended.name)),
                "docs/tests.md lacks the row {:?}",
                intended.name
            );
        }
    }
}
