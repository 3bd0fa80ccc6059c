//! Interface discovery: which links the responder attaches to, followed through rtnetlink
//! link and address notifications rather than polling.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::IpAddr,
};

use ipnet::IpNet;
use netlink_packet_core::{
    ErrorMessage, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage},
    link::{InfoPortKind, LinkAttribute, LinkFlags, LinkInfo as LinkInfoAttribute, LinkMessage},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{InterfaceFilter, LinkInfo};
use crate::nic::topology::Topology;

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

/// Snapshot of every link in the current network namespace, sorted by ifindex.
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
/// once the initial link and address dumps are complete, then whenever a link or address
/// notification changes the accepted set or any accepted link's details (addresses
/// included). Runs until cancelled, or returns Ok once every receiver of `out` is gone.
pub async fn watch(
    filter: InterfaceFilter,
    out: watch::Sender<LinkSnapshot>,
) -> Result<(), NetwatchError> {
    let groups = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
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
            .await
    }

    async fn follow(
        &mut self,
        filter: &InterfaceFilter,
        out: &watch::Sender<LinkSnapshot>,
    ) -> Result<(), SessionEnd> {
        self.synchronize().await?;
        loop {
            publish(
                out,
                LinkSnapshot {
                    accepted: self.table.accepted(filter),
                    addresses: self.table.all_addresses(),
                    topology: Topology::of(&self.table.links().collect::<Vec<_>>()),
                },
            );
            if out.is_closed() {
                return Ok(());
            }
            for message in self.receive().await? {
                if let NetlinkPayload::InnerMessage(message) = message.payload {
                    self.table.apply(message);
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
                match message.payload {
                    NetlinkPayload::InnerMessage(message) => self.table.apply(message),
                    NetlinkPayload::Done(_) if ours => {
                        return if interrupted {
                            Err(SessionEnd::Resync(
                                "links or addresses changed while being dumped".into(),
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

fn parse_messages(mut bytes: &[u8]) -> Vec<NetlinkMessage<RouteNetlinkMessage>> {
    let mut messages = Vec::new();
    while let Ok(buffer) = NetlinkBuffer::new_checked(bytes) {
        let length = buffer.length() as usize;
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

fn publish(out: &watch::Sender<LinkSnapshot>, snapshot: LinkSnapshot) {
    out.send_if_modified(|current| {
        if *current == snapshot {
            return false;
        }
        let accepted = &snapshot.accepted;
        for (ifindex, link) in accepted {
            match current.accepted.get(ifindex) {
                None => info!(interface = %link.name, ifindex, "interface added"),
                Some(previous) if previous != link => {
                    debug!(interface = %link.name, ifindex, ?link, "interface changed")
                }
                Some(_) => {}
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

/// The kernel's links and addresses as last reported, before filtering.
#[derive(Default)]
struct LinkTable {
    links: BTreeMap<u32, LinkInfo>,
    // Kept apart from `links` because a link update carries no addresses and must not
    // erase the ones already known.
    addresses: BTreeMap<u32, BTreeSet<IpNet>>,
}

impl LinkTable {
    fn apply(&mut self, message: RouteNetlinkMessage) {
        match message {
            // The bridge driver reports port state on the link group with family AF_BRIDGE,
            // including an RTM_DELLINK when a port leaves the bridge; the link itself stays.
            RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link)
                if link.header.interface_family == AddressFamily::Bridge => {}
            RouteNetlinkMessage::NewLink(link) => {
                if let Some(link) = link_from_message(&link) {
                    self.links.insert(link.ifindex, link);
                }
            }
            RouteNetlinkMessage::DelLink(link) => {
                self.links.remove(&link.header.index);
                self.addresses.remove(&link.header.index);
            }
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

    fn links(&self) -> impl Iterator<Item = LinkInfo> + '_ {
        self.links.values().map(|link| LinkInfo {
            addresses: self
                .addresses
                .get(&link.ifindex)
                .map(|addresses| addresses.iter().copied().collect())
                .unwrap_or_default(),
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

fn link_from_message(message: &LinkMessage) -> Option<LinkInfo> {
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
    })
}

fn address_from_message(message: &AddressMessage) -> Option<IpNet> {
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
mod tests {
    use super::*;
    use crate::netif::filter::tests::{everything, link};

    fn link_message(flags: LinkFlags, attributes: Vec<LinkAttribute>) -> LinkMessage {
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
    fn table_follows_links_addresses_and_ignores_bridge_family() {
        let mut table = LinkTable::default();
        let up = link_message(
            LinkFlags::Up | LinkFlags::Running,
            vec![LinkAttribute::IfName("rsp0".into())],
        );
        table.apply(RouteNetlinkMessage::NewLink(up.clone()));

        let mut address = AddressMessage::default();
        address.header.index = 4;
        address.attributes = vec![AddressAttribute::Address("192.0.2.1".parse().expect("ip"))];
        table.apply(RouteNetlinkMessage::NewAddress(address.clone()));
        // A later link update must keep the addresses already known.
        table.apply(RouteNetlinkMessage::NewLink(up.clone()));
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
        table.apply(RouteNetlinkMessage::DelLink(bridge_port_removed));
        assert!(table.accepted(&everything()).contains_key(&4));

        table.apply(RouteNetlinkMessage::DelAddress(address));
        assert!(table.accepted(&everything())[&4].addresses.is_empty());

        table.apply(RouteNetlinkMessage::DelLink(up));
        assert!(table.accepted(&everything()).is_empty());
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
}
