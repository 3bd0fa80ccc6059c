//! Interface discovery: which links the responder attaches to, followed through rtnetlink
//! link, address and route notifications rather than polling.
//!
//! Routes matter only for one thing: which links carry a default route (prefix length 0,
//! main table, IPv4 or IPv6), i.e. are the network namespace's uplink
//! ([`LinkInfo::carries_default_route`]). Route notifications can be many on a busy node
//! (a route per pod with some CNIs, IPv6 routes per veth), so every other route message is
//! dropped after a look at its first bytes, undecoded. A default-route change is not
//! applied as such but triggers a fresh dump of the routes: replace semantics, multipath
//! siblings and routes the kernel flushes without a notification (IPv4 routes of a link
//! taken down) are then the kernel's business, not ours.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::IpAddr,
};

use ipnet::IpNet;
use netlink_packet_core::{
    ErrorMessage, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::{
    address::AddressMessage, link::LinkMessage, route::RouteMessage, AddressFamily,
    RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::messages::{
    address_from_message, default_route_interfaces, link_from_message, parse_messages,
};
use super::{InterfaceFilter, LinkInfo};
use crate::netif::topology::Topology;

/// Large enough that a burst of link changes (e.g. a node starting many pods) rarely
/// overruns the socket; an overrun is still handled by re-dumping.
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NetwatchError {
    #[error("cannot open or subscribe the rtnetlink socket")]
    Socket(#[source] io::Error),
    #[error("rtnetlink socket failed")]
    Receive(#[source] io::Error),
    #[error("the kernel rejected an rtnetlink dump request")]
    Request(#[source] io::Error),
}

impl From<NetwatchError> for crate::error::Error {
    fn from(error: NetwatchError) -> Self {
        Self::Netwatch(Box::new(error))
    }
}

/// Snapshot of every link in the current network namespace, sorted by ifindex, with
/// [`LinkInfo::carries_default_route`] set from the routes.
pub async fn list_links() -> Result<Vec<LinkInfo>, NetwatchError> {
    loop {
        let mut session = Session::open(0)?;
        match session.synchronize().await {
            Ok(()) => return Ok(session.table.links().collect()),
            Err(SessionEnd::Resync(reason)) => warn!("re-dumping links: {reason}"),
            Err(SessionEnd::Fatal(error)) => return Err(error),
        }
    }
}

/// The accepted interfaces of the network namespace, and every address on any
/// of its interfaces (accepted or not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSnapshot {
    pub accepted: BTreeMap<u32, LinkInfo>,
    pub addresses: BTreeSet<IpAddr>,
    /// From every link, accepted or not.
    pub topology: Topology,
}

/// Publishes the accepted interfaces (by ifindex) of the current network namespace: first
/// once the initial link, address and route dumps are complete, then whenever a link,
/// address or default-route notification changes the accepted set or any accepted link's
/// details (addresses included; a veth gaining or losing the default route is accepted or
/// no longer). Runs until cancelled, or returns Ok once every receiver of `out` is gone.
pub async fn watch(
    filter: InterfaceFilter,
    out: watch::Sender<LinkSnapshot>,
) -> Result<(), NetwatchError> {
    let groups = (libc::RTMGRP_LINK
        | libc::RTMGRP_IPV4_IFADDR
        | libc::RTMGRP_IPV6_IFADDR
        | libc::RTMGRP_IPV4_ROUTE
        | libc::RTMGRP_IPV6_ROUTE) as u32;
    loop {
        // A fresh socket per resync: messages queued on the old one may predate the new
        // dump, and notifications lost in an overrun could leave stale links behind.
        let mut session = Session::open(groups)?;
        match session.follow(&filter, &out).await {
            Ok(()) => return Ok(()),
            Err(SessionEnd::Resync(reason)) => warn!("re-dumping links: {reason}"),
            Err(SessionEnd::Fatal(error)) => return Err(error),
        }
    }
}

/// [`watch`] running as a task: the accepted links as they change. Aborted
/// when dropped.
pub struct LinkWatch {
    links: watch::Receiver<LinkSnapshot>,
    task: tokio::task::JoinHandle<()>,
    open: bool,
}

impl LinkWatch {
    pub fn spawn(filter: InterfaceFilter) -> Self {
        let (links_tx, links) = watch::channel(LinkSnapshot::default());
        let task = tokio::spawn(async move {
            if let Err(e) = watch(filter, links_tx).await {
                tracing::error!(
                    "following interfaces failed: {}; the attached set stays as it is",
                    crate::error::display_chain(&e)
                );
            }
        });
        LinkWatch {
            links,
            task,
            open: true,
        }
    }

    /// The accepted links once they changed; never resolves once the watch
    /// has ended (it logged why), so the attached set stays as it is.
    pub async fn changed(&mut self) -> LinkSnapshot {
        if self.open {
            if self.links.changed().await.is_ok() {
                return self.links.borrow_and_update().clone();
            }
            self.open = false;
        }
        std::future::pending().await
    }

    /// Stops following, e.g. before tearing down, so nothing is re-attached.
    pub fn stop(&mut self) {
        self.task.abort();
        self.open = false;
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum SessionEnd {
    /// The view may have diverged from the kernel's; start over from a dump.
    Resync(String),
    Fatal(NetwatchError),
}

impl From<NetwatchError> for SessionEnd {
    fn from(error: NetwatchError) -> Self {
        Self::Fatal(error)
    }
}

/// One rtnetlink socket, subscribed before dumping so that no change between the dump and
/// the subscription is missed: notifications queued during the dump are applied in arrival
/// order, interleaved with the dump records, so the newest state wins.
struct Session {
    socket: TokioSocket,
    sequence: u32,
    table: LinkTable,
}

impl Session {
    fn open(groups: u32) -> Result<Self, NetwatchError> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE).map_err(NetwatchError::Socket)?;
        let raw = socket.socket_mut();
        raw.set_rx_buf_sz(RECEIVE_BUFFER_BYTES)
            .map_err(NetwatchError::Socket)?;
        raw.bind(&SocketAddr::new(0, groups))
            .map_err(NetwatchError::Socket)?;
        Ok(Self {
            socket,
            sequence: 0,
            table: LinkTable::default(),
        })
    }

    async fn synchronize(&mut self) -> Result<(), SessionEnd> {
        self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .await?;
        self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .await?;
        self.dump_default_routes().await
    }

    /// Rebuilds the set of links carrying a default route from IPv4 and IPv6 route dumps
    /// (one per family: an AF_UNSPEC dump would add multicast and MPLS routes).
    async fn dump_default_routes(&mut self) -> Result<(), SessionEnd> {
        self.table.uplinks_stale = false;
        self.table.dumping_uplinks = Some(BTreeSet::new());
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            self.dump(RouteNetlinkMessage::GetRoute(request)).await?;
        }
        self.table.uplinks = self.table.dumping_uplinks.take().unwrap_or_default();
        Ok(())
    }

    async fn follow(
        &mut self,
        filter: &InterfaceFilter,
        out: &watch::Sender<LinkSnapshot>,
    ) -> Result<(), SessionEnd> {
        self.synchronize().await?;
        loop {
            // Notifications that arrive during the dump mark it stale again: dump until
            // none did, so what is published matches the kernel's routes.
            while self.table.uplinks_stale {
                self.dump_default_routes().await?;
            }
            publish(
                out,
                LinkSnapshot {
                    accepted: self.table.accepted(filter),
                    addresses: self.table.all_addresses(),
                    topology: Topology::of(&self.table.links().collect::<Vec<_>>()),
                },
                filter,
            );
            if out.is_closed() {
                return Ok(());
            }
            for message in self.receive().await? {
                if let NetlinkPayload::InnerMessage(message) = message.payload {
                    self.table.apply(message, false);
                }
            }
        }
    }

    async fn dump(&mut self, request: RouteNetlinkMessage) -> Result<(), SessionEnd> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.sequence;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        self.socket
            .send_to(&bytes, &SocketAddr::new(0, 0))
            .await
            .map_err(NetwatchError::Socket)?;

        let mut interrupted = false;
        loop {
            for message in self.receive().await? {
                let ours = message.header.sequence_number == self.sequence;
                interrupted |= ours && message.header.flags & NLM_F_DUMP_INTR != 0;
                // A dump record, not a notification queued meanwhile.
                let dumped = ours && message.header.flags & NLM_F_MULTIPART != 0;
                match message.payload {
                    NetlinkPayload::InnerMessage(message) => self.table.apply(message, dumped),
                    NetlinkPayload::Done(_) if ours => {
                        return if interrupted {
                            Err(SessionEnd::Resync(
                                "links, addresses or routes changed while being dumped".into(),
                            ))
                        } else {
                            Ok(())
                        };
                    }
                    NetlinkPayload::Error(ErrorMessage {
                        code: Some(code), ..
                    }) if ours => {
                        let error = io::Error::from_raw_os_error(-code.get());
                        return Err(NetwatchError::Request(error).into());
                    }
                    _ => {}
                }
            }
        }
    }

    async fn receive(&mut self) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, SessionEnd> {
        match self.socket.recv_from_full().await {
            Ok((bytes, _)) => Ok(parse_messages(&bytes)),
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => Err(SessionEnd::Resync(
                "rtnetlink notifications overran the socket".into(),
            )),
            Err(error) => Err(NetwatchError::Receive(error).into()),
        }
    }
}

fn publish(out: &watch::Sender<LinkSnapshot>, snapshot: LinkSnapshot, filter: &InterfaceFilter) {
    out.send_if_modified(|current| {
        if *current == snapshot {
            return false;
        }
        let accepted = &snapshot.accepted;
        for (ifindex, link) in accepted {
            let previous = current.accepted.get(ifindex);
            match previous {
                None => info!(interface = %link.name, ifindex, "interface added"),
                Some(previous) if previous != link => {
                    debug!(interface = %link.name, ifindex, ?link, "interface changed")
                }
                Some(_) => {}
            }
            if filter.accepts_only_as_uplink(link)
                && !previous.is_some_and(|previous| filter.accepts_only_as_uplink(previous))
            {
                info!(
                    interface = %link.name,
                    ifindex,
                    kind = link.kind.as_deref().unwrap_or_default(),
                    "veth accepted because it carries the default route: it is the node's \
                     uplink (the node is itself a container or a network namespace)"
                );
            }
        }
        for (ifindex, link) in current.accepted.iter() {
            if !accepted.contains_key(ifindex) {
                info!(interface = %link.name, ifindex, "interface removed");
            }
        }
        *current = snapshot;
        true
    });
}

/// The kernel's links and addresses as last reported, and the links carrying a default
/// route as last dumped, before filtering.
#[derive(Default)]
struct LinkTable {
    links: BTreeMap<u32, LinkInfo>,
    // Kept apart from `links` because a link update carries no addresses and must not
    // erase the ones already known.
    addresses: BTreeMap<u32, BTreeSet<IpNet>>,
    /// Output interfaces of the main table's default routes, IPv4 and IPv6, as of the
    /// last route dump.
    uplinks: BTreeSet<u32>,
    /// While routes are being dumped: the output interfaces of the default routes dumped
    /// so far.
    dumping_uplinks: Option<BTreeSet<u32>>,
    /// A default route was added, changed or deleted, or a link carrying one went down,
    /// came up or away, since `uplinks` was dumped: dump the routes again.
    uplinks_stale: bool,
}

impl LinkTable {
    /// `dumped`: the message is a record of this socket's own dump, not a notification.
    fn apply(&mut self, message: RouteNetlinkMessage, dumped: bool) {
        match message {
            // The bridge driver reports port state on the link group with family AF_BRIDGE,
            // including an RTM_DELLINK when a port leaves the bridge; the link itself stays.
            RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link)
                if link.header.interface_family == AddressFamily::Bridge => {}
            RouteNetlinkMessage::NewLink(link) => {
                if let Some(link) = link_from_message(&link) {
                    // IPv4 drops the routes of a link taken down without a notification.
                    if self.uplinks.contains(&link.ifindex)
                        && self
                            .links
                            .get(&link.ifindex)
                            .is_none_or(|known| known.admin_up != link.admin_up)
                    {
                        self.uplinks_stale = true;
                    }
                    self.links.insert(link.ifindex, link);
                }
            }
            RouteNetlinkMessage::DelLink(link) => {
                self.links.remove(&link.header.index);
                self.addresses.remove(&link.header.index);
                if self.uplinks.contains(&link.header.index) {
                    self.uplinks_stale = true;
                }
            }
            RouteNetlinkMessage::NewRoute(route) => self.apply_route(&route, dumped),
            RouteNetlinkMessage::DelRoute(route) => self.apply_route(&route, false),
            RouteNetlinkMessage::NewAddress(address) => {
                if let Some(ip) = address_from_message(&address) {
                    self.addresses
                        .entry(address.header.index)
                        .or_default()
                        .insert(ip);
                }
            }
            RouteNetlinkMessage::DelAddress(address) => {
                if let (Some(ip), Some(known)) = (
                    address_from_message(&address),
                    self.addresses.get_mut(&address.header.index),
                ) {
                    known.remove(&ip);
                }
            }
            _ => {}
        }
    }

    fn apply_route(&mut self, route: &RouteMessage, dumped: bool) {
        let Some(interfaces) = default_route_interfaces(route) else {
            return;
        };
        match self.dumping_uplinks.as_mut() {
            Some(uplinks) if dumped => uplinks.extend(interfaces),
            _ => self.uplinks_stale = true,
        }
    }

    fn links(&self) -> impl Iterator<Item = LinkInfo> + '_ {
        self.links.values().map(|link| LinkInfo {
            addresses: self
                .addresses
                .get(&link.ifindex)
                .map(|addresses| addresses.iter().copied().collect())
                .unwrap_or_default(),
            carries_default_route: self.uplinks.contains(&link.ifindex),
            ..link.clone()
        })
    }

    fn all_addresses(&self) -> BTreeSet<IpAddr> {
        self.addresses
            .values()
            .flatten()
            .map(|net| net.addr())
            .collect()
    }

    fn accepted(&self, filter: &InterfaceFilter) -> BTreeMap<u32, LinkInfo> {
        self.links()
            .filter(|link| filter.accepts(link))
            .map(|link| (link.ifindex, link))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netif::filter::tests::everything;
    use crate::netif::messages::tests::{link_message, route};
    use netlink_packet_route::{
        address::AddressAttribute,
        link::{LinkAttribute, LinkFlags, LinkInfo as LinkInfoAttribute},
        route::RouteAttribute,
    };

    impl LinkTable {
        fn apply_notification(&mut self, message: RouteNetlinkMessage) {
            self.apply(message, false);
        }
    }

    #[test]
    fn table_follows_links_addresses_and_ignores_bridge_family() {
        let mut table = LinkTable::default();
        let up = link_message(
            LinkFlags::Up | LinkFlags::Running,
            vec![LinkAttribute::IfName("rsp0".into())],
        );
        table.apply_notification(RouteNetlinkMessage::NewLink(up.clone()));

        let mut address = AddressMessage::default();
        address.header.index = 4;
        address.attributes = vec![AddressAttribute::Address("192.0.2.1".parse().expect("ip"))];
        table.apply_notification(RouteNetlinkMessage::NewAddress(address.clone()));
        // A later link update must keep the addresses already known.
        table.apply_notification(RouteNetlinkMessage::NewLink(up.clone()));
        let accepted = table.accepted(&everything());
        assert_eq!(
            accepted[&4].addresses,
            vec!["192.0.2.1/0".parse::<IpNet>().expect("prefix")]
        );
        assert_eq!(
            table.all_addresses(),
            BTreeSet::from(["192.0.2.1".parse::<IpAddr>().expect("ip")])
        );

        let mut bridge_port_removed = up.clone();
        bridge_port_removed.header.interface_family = AddressFamily::Bridge;
        table.apply_notification(RouteNetlinkMessage::DelLink(bridge_port_removed));
        assert!(table.accepted(&everything()).contains_key(&4));

        table.apply_notification(RouteNetlinkMessage::DelAddress(address));
        assert!(table.accepted(&everything())[&4].addresses.is_empty());

        table.apply_notification(RouteNetlinkMessage::DelLink(up));
        assert!(table.accepted(&everything()).is_empty());
    }

    fn veth(ifindex: u32, name: &str, up: bool) -> LinkMessage {
        let mut message = link_message(
            if up {
                LinkFlags::Up | LinkFlags::Running
            } else {
                LinkFlags::empty()
            },
            vec![
                LinkAttribute::IfName(name.into()),
                LinkAttribute::LinkInfo(vec![LinkInfoAttribute::Kind(
                    netlink_packet_route::link::InfoKind::Veth,
                )]),
            ],
        );
        message.header.index = ifindex;
        message
    }

    /// `table` after a route dump that found `routes`.
    fn dump(table: &mut LinkTable, routes: &[RouteMessage]) {
        table.uplinks_stale = false;
        table.dumping_uplinks = Some(BTreeSet::new());
        for route in routes {
            table.apply(RouteNetlinkMessage::NewRoute(route.clone()), true);
        }
        table.uplinks = table.dumping_uplinks.take().unwrap_or_default();
    }

    #[test]
    fn table_marks_the_veth_carrying_the_default_route() {
        let mut table = LinkTable::default();
        table.apply_notification(RouteNetlinkMessage::NewLink(veth(4, "eth0", true)));
        table.apply_notification(RouteNetlinkMessage::NewLink(veth(5, "veth1234", true)));
        let default = route(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(4)]);
        let pod = route(AddressFamily::Inet, 32, vec![RouteAttribute::Oif(5)]);
        dump(&mut table, &[pod.clone(), default.clone()]);
        assert!(!table.uplinks_stale);
        let accepted = table.accepted(&everything());
        assert_eq!(accepted.keys().copied().collect::<Vec<_>>(), vec![4]);
        assert!(accepted[&4].carries_default_route);

        // Pod routes come and go without a re-dump.
        table.apply_notification(RouteNetlinkMessage::NewRoute(pod.clone()));
        table.apply_notification(RouteNetlinkMessage::DelRoute(pod));
        assert!(!table.uplinks_stale, "pod routes do not matter");

        // A default route changing calls for a re-dump, which decides.
        table.apply_notification(RouteNetlinkMessage::DelRoute(default.clone()));
        assert!(table.uplinks_stale);
        dump(&mut table, &[]);
        assert!(table.accepted(&everything()).is_empty());
        table.apply_notification(RouteNetlinkMessage::NewRoute(default.clone()));
        assert!(table.uplinks_stale);
        dump(&mut table, &[default]);
        assert!(table.accepted(&everything()).contains_key(&4));

        // IPv4 flushes the routes of a link taken down without telling.
        table.apply_notification(RouteNetlinkMessage::NewLink(veth(4, "eth0", true)));
        assert!(!table.uplinks_stale, "nothing changed");
        table.apply_notification(RouteNetlinkMessage::NewLink(veth(4, "eth0", false)));
        assert!(table.uplinks_stale, "the uplink went down");
        dump(&mut table, &[]);
        table.apply_notification(RouteNetlinkMessage::DelLink(veth(5, "veth1234", true)));
        assert!(!table.uplinks_stale, "not an uplink");
    }

    #[test]
    fn notification_during_a_route_dump_makes_it_stale() {
        let mut table = LinkTable {
            dumping_uplinks: Some(BTreeSet::new()),
            ..LinkTable::default()
        };
        let default = route(AddressFamily::Inet6, 0, vec![RouteAttribute::Oif(4)]);
        table.apply(RouteNetlinkMessage::NewRoute(default.clone()), true);
        table.apply(RouteNetlinkMessage::DelRoute(default), false);
        assert_eq!(table.dumping_uplinks, Some(BTreeSet::from([4])));
        assert!(table.uplinks_stale, "dumped again once this dump is done");
    }
}
