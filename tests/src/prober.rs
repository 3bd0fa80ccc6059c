//! A client on an L2 segment asking "who has VIP" over a raw ARP socket, to
//! see exactly which MACs answer, and when; and a foreign host announcing a
//! VIP, to make split brain.
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    os::fd::{AsRawFd, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use responder_model::frames::{Arp, Ethernet, Vlan, BROADCAST_MAC, ETH_P_ARP};

use crate::{lab::link::format_mac, netns::NetNs, packet_socket::packet_socket};

/// Broadcasts ARP requests for VIPs from a client address and reads the
/// replies addressed to it.
pub struct ArpProber {
    fd: OwnedFd,
    mac: [u8; 6],
    client: Ipv4Addr,
}

/// What a stream of probes got back.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    /// Replies per answering MAC.
    pub replies: BTreeMap<String, u64>,
}

impl ArpProber {
    /// A prober on `interface` of `ns`, asking as `client`.
    pub fn on(ns: &NetNs, interface: &str, client: Ipv4Addr) -> Self {
        let mac = ns.mac(interface);
        let fd = ns.enter(|| {
            let ifindex = nix::net::if_::if_nametoindex(interface).expect("interface exists");
            packet_socket(ETH_P_ARP, ifindex)
                .unwrap_or_else(|e| panic!("ARP packet socket on {interface}: {e}"))
        });
        ArpProber { fd, mac, client }
    }

    fn broadcast(&self, arp: Arp) -> Vec<u8> {
        let ethernet = Ethernet {
            dst: BROADCAST_MAC,
            src: arp.sha,
            vlan: Vlan::Untagged,
        };
        let mut frame = arp.frame(&ethernet);
        // Ethernet's minimum frame size.
        frame.resize(60, 0);
        frame
    }

    fn request(&self, target: Ipv4Addr) -> Vec<u8> {
        self.broadcast(Arp::request(
            self.mac,
            self.client.octets(),
            target.octets(),
        ))
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: frame is a valid buffer of the length passed; the socket is bound.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert!(
            sent == frame.len() as isize,
            "send ARP frame: {}",
            std::io::Error::last_os_error()
        );
    }

    /// A gratuitous ARP claiming `vip` for `mac`: what another host that
    /// believes it owns the VIP sends.
    pub fn announce_foreign(&self, vip: Ipv4Addr, mac: [u8; 6]) {
        self.send(&self.broadcast(Arp::request(mac, vip.octets(), vip.octets())));
    }

    /// The sender MAC of an ARP reply for `target` waiting on the socket, if
    /// one arrives within `timeout`.
    fn receive_reply(&self, target: Ipv4Addr, timeout: Duration) -> Option<[u8; 6]> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pollfd, 1, millis) } <= 0 {
            return None;
        }
        let mut buf = [0u8; 1514];
        // SAFETY: buf is writable for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let frame = buf.get(..usize::try_from(n).ok()?)?;
        let arp = frame.get(14..42)?;
        // Only answers to our own requests: gratuitous replies are announcements, not answers.
        let answers_us = frame[12..14] == ETH_P_ARP.to_be_bytes()
            && arp[6..8] == [0, 2]
            && arp[14..18] == target.octets()
            && arp[18..24] == self.mac
            && arp[24..28] == self.client.octets();
        answers_us.then(|| arp[8..14].try_into().expect("6 bytes"))
    }

    /// Discards what arrived before a measurement starts (e.g. answers to the
    /// previous trial's last probes).
    fn drain(&self) {
        let mut buf = [0u8; 1514];
        // SAFETY: buf is writable for its length; MSG_DONTWAIT never blocks.
        while unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        } > 0
        {}
    }

    /// Sends one request for `target` and returns the sender MAC of every
    /// answer to it received within `wait` (several if several nodes answer).
    pub fn answers(&self, target: Ipv4Addr, wait: Duration) -> Vec<String> {
        self.drain();
        self.send(&self.request(target));
        let deadline = Instant::now() + wait;
        let mut macs = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return macs;
            }
            if let Some(mac) = self.receive_reply(target, left) {
                macs.push(format_mac(&mac));
            }
        }
    }

    /// Sends a request for `target` every `interval` for `duration`, then
    /// waits `interval` more for the last answers, and counts the replies
    /// per MAC.
    pub fn tally(&self, target: Ipv4Addr, interval: Duration, duration: Duration) -> Tally {
        self.tally_until(target, interval, duration, &AtomicBool::new(false))
    }

    /// [`Self::tally`] that also ends once `stop` is set (from another
    /// thread), whichever comes first.
    pub fn tally_until(
        &self,
        target: Ipv4Addr,
        interval: Duration,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Tally {
        let request = self.request(target);
        self.drain();
        let mut tally = Tally::default();
        let mut end = Instant::now() + duration;
        let mut next_send = Instant::now();
        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) && now < end {
                end = now;
            }
            if now >= end + interval {
                return tally;
            }
            if now >= next_send && now < end {
                self.send(&request);
                tally.sent += 1;
                next_send += interval;
            }
            let wait = next_send
                .min(end + interval)
                .saturating_duration_since(Instant::now());
            if let Some(mac) = self.receive_reply(target, wait) {
                *tally.replies.entry(format_mac(&mac)).or_default() += 1;
            }
        }
    }

    /// Sends a request for `target` every `interval` until a reply comes from
    /// a MAC other than `old_mac`; returns when that reply was received.
    pub fn first_reply_not_from(
        &self,
        target: Ipv4Addr,
        old_mac: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Option<(Instant, String)> {
        let request = self.request(target);
        self.drain();
        let deadline = Instant::now() + timeout;
        let mut next_send = Instant::now();
        while Instant::now() < deadline {
            if Instant::now() >= next_send {
                self.send(&request);
                next_send += interval;
            }
            let wait = next_send.saturating_duration_since(Instant::now());
            if let Some(mac) = self.receive_reply(target, wait) {
                let mac = format_mac(&mac);
                if !mac.eq_ignore_ascii_case(old_mac) {
                    return Some((Instant::now(), mac));
                }
            }
        }
        None
    }
}
