//! Decoding rtnetlink link, address and route messages into what the link watch keeps:
//! links as [`LinkInfo`], addresses as prefixes, and the output interfaces of default
//! routes. Only default routes of the main table are decoded; other routes are skipped
//! undecoded, after a look at their first bytes.

use std::collections::BTreeSet;

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable,
};
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage},
    link::{InfoPortKind, LinkAttribute, LinkFlags, LinkInfo as LinkInfoAttribute, LinkMessage},
    route::{RouteAttribute, RouteHeader, RouteMessage, RouteType},
    AddressFamily, RouteNetlinkMessage,
};
use tracing::warn;

use super::LinkInfo;

pub(super) fn parse_messages(mut bytes: &[u8]) -> Vec<NetlinkMessage<RouteNetlinkMessage>> {
    let mut messages = Vec::new();
    while let Ok(buffer) = NetlinkBuffer::new_checked(bytes) {
        let length = buffer.length() as usize;
        if !is_default_route_or_other(&buffer) {
            // Kept as its header alone: a dump's sequence number and flags still count.
            if let Ok(header) = NetlinkHeader::parse(&buffer) {
                messages.push(NetlinkMessage::new(header, NetlinkPayload::Noop));
            }
            bytes = bytes.get((length + 3) & !3..).unwrap_or_default();
            continue;
        }
        match NetlinkMessage::deserialize(&bytes[..length]) {
            Ok(message) => messages.push(message),
            // Skipping one undecodable message beats failing the whole watch; the next
            // notification about that link carries its full state again.
            Err(error) => warn!("skipping undecodable rtnetlink message: {error}"),
        }
        let aligned = (length + 3) & !3;
        bytes = bytes.get(aligned..).unwrap_or_default();
    }
    messages
}

/// Whether the message needs decoding: anything but a route, or an IPv4 or IPv6 route
/// with a destination prefix length of 0 (the only routes that matter), judged from the
/// rtmsg header's first two bytes (family, destination length).
fn is_default_route_or_other(buffer: &NetlinkBuffer<&[u8]>) -> bool {
    const INET: u8 = libc::AF_INET as u8;
    const INET6: u8 = libc::AF_INET6 as u8;
    !matches!(
        buffer.message_type(),
        libc::RTM_NEWROUTE | libc::RTM_DELROUTE
    ) || matches!(buffer.payload(), [INET | INET6, 0, ..])
}

pub(super) fn link_from_message(message: &LinkMessage) -> Option<LinkInfo> {
    let mut name = None;
    let mut mac = [0; 6];
    let mut master = None;
    let mut kind = None;
    let mut port_kind = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(ifname) => name = Some(ifname.clone()),
            LinkAttribute::Address(address) => {
                if let Ok(address) = <[u8; 6]>::try_from(address.as_slice()) {
                    mac = address;
                }
            }
            LinkAttribute::Controller(ifindex) if *ifindex != 0 => master = Some(*ifindex),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfoAttribute::Kind(info_kind) => kind = Some(info_kind.to_string()),
                        LinkInfoAttribute::PortKind(info_port_kind) => {
                            port_kind = Some(info_port_kind.clone())
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let flags = message.header.flags;
    Some(LinkInfo {
        name: name?,
        ifindex: message.header.index,
        mac,
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::Up | LinkFlags::Running),
        loopback: flags.contains(LinkFlags::Loopback),
        noarp: flags.contains(LinkFlags::Noarp),
        master: master.filter(|_| port_kind != Some(InfoPortKind::Vrf)),
        kind,
        addresses: Vec::new(),
        carries_default_route: false,
    })
}

/// For a default route (destination prefix length 0) of the main table, IPv4 or IPv6: its
/// output interfaces (RTA_OIF, and each multipath nexthop's), none for a route that sends
/// nowhere (blackhole, unreachable, prohibit). None for any other route. Routes through
/// nexthop objects (RTA_NH_ID) are seen only as far as the kernel expands them in route
/// messages (it does unless `net.ipv4.nexthop_compat_mode` is 0).
pub(super) fn default_route_interfaces(route: &RouteMessage) -> Option<BTreeSet<u32>> {
    let header = &route.header;
    if header.destination_prefix_length != 0
        || !matches!(
            header.address_family,
            AddressFamily::Inet | AddressFamily::Inet6
        )
    {
        return None;
    }
    // RTA_TABLE, when present, holds the table id; the header's field only its low byte.
    let table = route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let mut interfaces = BTreeSet::new();
    if header.kind == RouteType::Unicast {
        for attribute in &route.attributes {
            match attribute {
                RouteAttribute::Oif(ifindex) => {
                    interfaces.insert(*ifindex);
                }
                RouteAttribute::MultiPath(hops) => {
                    interfaces.extend(hops.iter().map(|hop| hop.interface_index))
                }
                _ => {}
            }
        }
    }
    interfaces.remove(&0);
    Some(interfaces)
}

pub(super) fn address_from_message(message: &AddressMessage) -> Option<IpNet> {
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is always our own.
    let local = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
    let ip = local.or_else(|| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
    })?;
    IpNet::new(ip, message.header.prefix_len).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::netif::filter::tests::link;
    use netlink_packet_core::{Emitable, NLM_F_DUMP_INTR, NLM_F_MULTIPART};
    use netlink_packet_route::route::{RouteAddress, RouteNextHop};

    pub(crate) fn link_message(flags: LinkFlags, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = 4;
        message.header.flags = flags;
        message.attributes = attributes;
        message
    }

    #[test]
    fn link_message_is_decoded() {
        let message = link_message(
            LinkFlags::Up | LinkFlags::Running | LinkFlags::Broadcast,
            vec![
                LinkAttribute::IfName("rsp0".into()),
                LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
                LinkAttribute::LinkInfo(vec![LinkInfoAttribute::Kind(
                    netlink_packet_route::link::InfoKind::Dummy,
                )]),
            ],
        );
        let decoded = link_from_message(&message).expect("named link decodes");
        assert_eq!(
            decoded,
            LinkInfo {
                kind: Some("dummy".into()),
                ifindex: 4,
                mac: [2, 0, 0, 0, 0, 1],
                ..link("rsp0")
            }
        );
    }

    #[test]
    fn admin_up_without_carrier_has_no_carrier() {
        let message = link_message(LinkFlags::Up, vec![LinkAttribute::IfName("rsp0".into())]);
        let link = link_from_message(&message).expect("decodes");
        assert!(link.admin_up && !link.carrier);
    }

    #[test]
    fn bridge_port_has_master_but_vrf_member_does_not() {
        let port = |kind| {
            link_message(
                LinkFlags::Up | LinkFlags::Running,
                vec![
                    LinkAttribute::IfName("rsp0".into()),
                    LinkAttribute::Controller(9),
                    LinkAttribute::LinkInfo(vec![LinkInfoAttribute::PortKind(kind)]),
                ],
            )
        };
        let master = |kind| link_from_message(&port(kind)).expect("decodes").master;
        assert_eq!(master(InfoPortKind::Bridge), Some(9));
        assert_eq!(master(InfoPortKind::Bond), Some(9));
        assert_eq!(master(InfoPortKind::Vrf), None);
    }

    #[test]
    fn local_address_wins_over_peer_address() {
        let mut address = AddressMessage::default();
        address.header.prefix_len = 32;
        address.attributes = vec![
            AddressAttribute::Address("198.51.100.2".parse().expect("ip")),
            AddressAttribute::Local("198.51.100.1".parse().expect("ip")),
        ];
        assert_eq!(
            address_from_message(&address),
            Some("198.51.100.1/32".parse().expect("prefix"))
        );
        address.header.prefix_len = 33;
        assert_eq!(address_from_message(&address), None, "no such prefix");
    }

    /// A unicast route of the main table with a destination prefix length of
    /// `prefix_length` (to 10.0.0.0 or 2001:db8:: unless 0), then `attributes`.
    pub(crate) fn route(
        family: AddressFamily,
        prefix_length: u8,
        attributes: Vec<RouteAttribute>,
    ) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = family;
        message.header.destination_prefix_length = prefix_length;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.kind = RouteType::Unicast;
        if prefix_length != 0 {
            message
                .attributes
                .push(RouteAttribute::Destination(match family {
                    AddressFamily::Inet6 => RouteAddress::Inet6("2001:db8::".parse().expect("ip")),
                    _ => RouteAddress::Inet("10.0.0.0".parse().expect("ip")),
                }));
        }
        message.attributes.extend(attributes);
        message
    }

    fn gateway_v4() -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet("192.0.2.1".parse().expect("ip")))
    }

    fn hop(ifindex: u32) -> RouteNextHop {
        let mut hop = RouteNextHop::default();
        hop.interface_index = ifindex;
        hop.attributes = vec![gateway_v4()];
        hop
    }

    fn interfaces(ifindexes: &[u32]) -> Option<BTreeSet<u32>> {
        Some(ifindexes.iter().copied().collect())
    }

    #[test]
    fn default_route_of_the_main_table_names_its_output_interface() {
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let default = route(family, 0, vec![gateway_v4(), RouteAttribute::Oif(4)]);
            assert_eq!(
                default_route_interfaces(&default),
                interfaces(&[4]),
                "{family:?}"
            );
        }
        let mut by_attribute = route(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(4)]);
        by_attribute.header.table = RouteHeader::RT_TABLE_UNSPEC;
        by_attribute.attributes.push(RouteAttribute::Table(254));
        assert_eq!(
            default_route_interfaces(&by_attribute),
            interfaces(&[4]),
            "RTA_TABLE names the main table"
        );
    }

    #[test]
    fn multipath_default_route_names_each_nexthop() {
        let multipath = route(
            AddressFamily::Inet,
            0,
            vec![RouteAttribute::MultiPath(vec![hop(4), hop(5)])],
        );
        assert_eq!(default_route_interfaces(&multipath), interfaces(&[4, 5]));
    }

    #[test]
    fn other_tables_and_other_routes_are_ignored() {
        let mut other_table = route(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(4)]);
        other_table.header.table = 100;
        assert_eq!(default_route_interfaces(&other_table), None, "table 100");
        let mut local = route(AddressFamily::Inet6, 0, vec![RouteAttribute::Oif(4)]);
        local.header.table = 255;
        assert_eq!(default_route_interfaces(&local), None, "local table");
        let mut vrf = route(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(4)]);
        vrf.header.table = 252;
        vrf.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(default_route_interfaces(&vrf), None, "RTA_TABLE wins");
        let pod = route(AddressFamily::Inet, 32, vec![RouteAttribute::Oif(4)]);
        assert_eq!(default_route_interfaces(&pod), None, "a pod route");
        let mut blackhole = route(AddressFamily::Inet, 0, Vec::new());
        blackhole.header.kind = RouteType::BlackHole;
        assert_eq!(
            default_route_interfaces(&blackhole),
            interfaces(&[]),
            "a default route, through no interface"
        );
    }

    /// The route as the kernel sends it, for `parse_messages`.
    fn encoded(route: RouteMessage, flags: u16, sequence: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let mut message = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)),
        );
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn only_default_routes_are_decoded() {
        let default = route(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(4)]);
        let pod = route(AddressFamily::Inet, 32, vec![RouteAttribute::Oif(9)]);
        let v6_pod = route(AddressFamily::Inet6, 128, vec![RouteAttribute::Oif(9)]);
        let mut bytes = encoded(pod, NLM_F_MULTIPART | NLM_F_DUMP_INTR, 3);
        bytes.extend(encoded(default.clone(), 0, 0));
        bytes.extend(encoded(v6_pod, 0, 0));
        assert_eq!(default.buffer_len() % 4, 0, "records stay aligned");
        let messages = parse_messages(&bytes);
        assert_eq!(messages.len(), 3);
        assert!(matches!(messages[0].payload, NetlinkPayload::Noop));
        assert_eq!(
            (messages[0].header.flags, messages[0].header.sequence_number),
            (NLM_F_MULTIPART | NLM_F_DUMP_INTR, 3),
            "an ignored record keeps the header a dump checks"
        );
        assert!(matches!(
            &messages[1].payload,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(decoded)) if *decoded == default
        ));
        assert!(matches!(messages[2].payload, NetlinkPayload::Noop));
    }
}
