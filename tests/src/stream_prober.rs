//! A client asking for several VIPs at once, each every few milliseconds,
//! and accounting for every single request: which MACs answered it, how
//! late, or that nothing did within a bounded timeout.
//!
//! ARP and ND answers carry no request id, so each request is sent from one
//! of `SLOTS` client addresses in turn (198.51.100.128 + slot,
//! 2001:db8:100::8000 + slot): an answer goes back to the address that asked
//! (ARP `tpa`, NA destination), which names the request as long as a slot is
//! reused only after the previous request in it timed out (checked:
//! `SLOTS × interval` must exceed twice the timeout). Latency is measured from the kernel's receive
//! timestamp of the answer (`SO_TIMESTAMPNS`), so a prober thread starved by
//! a busy machine reads answers late but does not count them late; a socket
//! overflow (`PACKET_STATISTICS` drops) is reported, never taken for a lost
//! answer.
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use responder_model::frames::{
    link_addr_option, solicited_node_group, Arp, Ethernet, Nd, Vlan, BROADCAST_MAC, ETH_P_ARP,
    ETH_P_IPV6, ND_OPT_SOURCE_LL_ADDR, ND_OPT_TARGET_LL_ADDR,
};

use crate::{
    lab::link::format_mac,
    netns::NetNs,
    packet_socket::{packet_socket, set_option},
};

/// Client addresses per family; one per request in flight per VIP.
pub const SLOTS: usize = 64;
const V4_BASE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 128);
const V6_BASE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x8000);
/// Answers the kernel may queue while the prober thread is not scheduled:
/// 4 MiB holds over 5,000 answers, more than 10 s of 4 VIPs every 10 ms.
const RCVBUF: libc::c_int = 4 << 20;
const ON: libc::c_int = 1;

/// One request: when it was sent (from the start of the run) and every
/// answer to it within the timeout, as (index into [`ProbeRun::macs`],
/// latency).
#[derive(Clone, Debug)]
pub struct Probe {
    pub sent: Duration,
    pub answers: Vec<(usize, Duration)>,
}

/// Everything a run saw.
#[derive(Debug)]
pub struct ProbeRun {
    pub targets: Vec<IpAddr>,
    pub interval: Duration,
    pub timeout: Duration,
    /// When the run started, on the test's monotonic clock (to place the
    /// test's own actions on the probes' time line).
    pub started: Instant,
    /// Per target, every request in the order sent.
    pub probes: Vec<Vec<Probe>>,
    /// Every MAC that answered, in order of first answer.
    pub macs: Vec<String>,
    /// Answers to no request in flight (after its timeout, or twice to one
    /// address): (target, received, MAC).
    pub stray: Vec<(usize, Duration, String)>,
    /// Frames the kernel dropped because the sockets were full.
    pub socket_drops: u32,
}

/// What one target's requests got in a time window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub sent: usize,
    /// Requests answered by nobody within the timeout, with their send times.
    pub unanswered: Vec<Duration>,
    /// Answers per MAC.
    pub by_mac: BTreeMap<String, usize>,
    /// Requests answered by more than one MAC.
    pub several: usize,
    pub max_latency: Duration,
    /// The longest time between two consecutive requests.
    pub max_gap: Duration,
}

impl ProbeRun {
    /// Where `at` falls on the run's time line.
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    pub fn target_index(&self, target: IpAddr) -> usize {
        self.targets
            .iter()
            .position(|t| *t == target)
            .unwrap_or_else(|| panic!("{target} was not probed"))
    }

    /// The requests for `target` sent in `[from, to)`.
    pub fn window(&self, target: IpAddr, from: Duration, to: Duration) -> &[Probe] {
        let probes = &self.probes[self.target_index(target)];
        let start = probes.partition_point(|p| p.sent < from);
        let end = probes.partition_point(|p| p.sent < to);
        &probes[start..end]
    }

    pub fn summary(&self, target: IpAddr, from: Duration, to: Duration) -> Summary {
        let probes = self.window(target, from, to);
        let mut summary = Summary {
            sent: probes.len(),
            ..Summary::default()
        };
        for pair in probes.windows(2) {
            summary.max_gap = summary.max_gap.max(pair[1].sent - pair[0].sent);
        }
        for probe in probes {
            if probe.answers.is_empty() {
                summary.unanswered.push(probe.sent);
            }
            if probe.answers.len() > 1 {
                summary.several += 1;
            }
            for (mac, latency) in &probe.answers {
                *summary.by_mac.entry(self.macs[*mac].clone()).or_default() += 1;
                summary.max_latency = summary.max_latency.max(*latency);
            }
        }
        summary
    }

    /// The first request for `target` sent at or after `from` that `mac`
    /// answered.
    pub fn first_answered_by(&self, target: IpAddr, mac: &str, from: Duration) -> Option<&Probe> {
        let probes = self.window(target, from, Duration::MAX);
        probes
            .iter()
            .find(|p| p.answers.iter().any(|(m, _)| self.macs[*m] == mac))
    }
}

/// Probes `targets` from the client `interface` of `ns`.
pub struct StreamProber {
    arp: OwnedFd,
    nd: OwnedFd,
    mac: [u8; 6],
    targets: Vec<IpAddr>,
}

impl StreamProber {
    pub fn on(ns: &NetNs, interface: &str, targets: &[IpAddr]) -> Self {
        let mac = ns.mac(interface);
        let (arp, nd) = ns.enter(|| {
            let ifindex = nix::net::if_::if_nametoindex(interface).expect("interface exists");
            let open = |protocol| {
                let fd = packet_socket(protocol, ifindex)
                    .unwrap_or_else(|e| panic!("packet socket on {interface}: {e}"));
                set_option(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF)
                    .expect("SO_RCVBUFFORCE");
                set_option(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, ON)
                    .expect("SO_TIMESTAMPNS");
                fd
            };
            (open(ETH_P_ARP), open(ETH_P_IPV6))
        });
        StreamProber {
            arp,
            nd,
            mac,
            targets: targets.to_vec(),
        }
    }

    fn request(&self, target: IpAddr, slot: usize) -> (&OwnedFd, Vec<u8>) {
        match target {
            IpAddr::V4(vip) => {
                let from = Ipv4Addr::from(u32::from(V4_BASE) + slot as u32);
                let arp = Arp::request(self.mac, from.octets(), vip.octets());
                let ethernet = Ethernet {
                    dst: BROADCAST_MAC,
                    src: self.mac,
                    vlan: Vlan::Untagged,
                };
                let mut frame = arp.frame(&ethernet);
                frame.resize(60, 0);
                (&self.arp, frame)
            }
            IpAddr::V6(vip) => {
                let from = Ipv6Addr::from(u128::from(V6_BASE) + slot as u128);
                let (group, group_mac) = solicited_node_group(vip.octets());
                let nd = Nd::solicitation(
                    from.octets(),
                    group,
                    vip.octets(),
                    vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, self.mac)],
                );
                let ethernet = Ethernet {
                    dst: group_mac,
                    src: self.mac,
                    vlan: Vlan::Untagged,
                };
                (&self.nd, nd.frame(&ethernet))
            }
        }
    }

    /// An answer to one of our requests: (target, slot, answering MAC).
    fn parse(&self, frame: &[u8]) -> Option<(usize, usize, [u8; 6])> {
        let ether_type = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
        let (target, slot, mac) = match ether_type {
            ETH_P_ARP => {
                let arp = frame.get(14..42)?;
                if arp[6..8] != [0, 2] || arp[18..24] != self.mac {
                    return None;
                }
                let vip = Ipv4Addr::from(<[u8; 4]>::try_from(&arp[14..18]).ok()?);
                let to = u32::from(Ipv4Addr::from(<[u8; 4]>::try_from(&arp[24..28]).ok()?));
                let slot = to.checked_sub(u32::from(V4_BASE))? as usize;
                (IpAddr::V4(vip), slot, arp[8..14].try_into().ok()?)
            }
            ETH_P_IPV6 => {
                let ip = frame.get(14..54)?;
                let icmp = frame.get(54..)?;
                // Next header ICMPv6, a Neighbor Advertisement.
                if ip[6] != 58 || *icmp.first()? != 136 || icmp.len() < 24 {
                    return None;
                }
                let to = u128::from(Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?));
                let slot = to.checked_sub(u128::from(V6_BASE))? as usize;
                let vip = Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).ok()?);
                // The target link-layer address is what the client learns.
                let mut options = &icmp[24..];
                let mut tlla = None;
                while options.len() >= 8 && options[1] > 0 {
                    let len = usize::from(options[1]) * 8;
                    if options[0] == ND_OPT_TARGET_LL_ADDR {
                        tlla = options.get(2..8).and_then(|m| m.try_into().ok());
                    }
                    options = options.get(len..).unwrap_or_default();
                }
                let mac = tlla.or_else(|| frame.get(6..12)?.try_into().ok())?;
                (IpAddr::V6(vip), slot, mac)
            }
            _ => return None,
        };
        let index = self.targets.iter().position(|t| *t == target)?;
        (slot < SLOTS).then_some((index, slot, mac))
    }

    /// Requests every target every `interval` until `stop` is set or
    /// `limit` has passed, whichever is first; each request waits at most
    /// `timeout` for answers.
    pub fn run(
        &self,
        interval: Duration,
        timeout: Duration,
        limit: Duration,
        stop: &AtomicBool,
    ) -> ProbeRun {
        assert!(
            interval * SLOTS as u32 > timeout * 2,
            "a slot must outlive its request's timeout"
        );
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let since_start = |at: SystemTime| at.duration_since(started_wall).unwrap_or_default();
        let mut run = ProbeRun {
            targets: self.targets.clone(),
            interval,
            timeout,
            started,
            probes: vec![Vec::new(); self.targets.len()],
            macs: Vec::new(),
            stray: Vec::new(),
            socket_drops: 0,
        };
        // Per target and slot: the request in flight there.
        let mut pending: Vec<[Option<usize>; SLOTS]> = vec![[None; SLOTS]; self.targets.len()];
        let mut sequence = 0usize;
        let mut next_send = started;
        let mut stopped_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if stopped_at.is_none() && (stop.load(Ordering::Relaxed) || now >= started + limit) {
                stopped_at = Some(now);
            }
            if let Some(stopped) = stopped_at {
                // The last requests get their full timeout, then the run ends.
                if now >= stopped + timeout + Duration::from_millis(50) {
                    self.receive(&mut run, &mut pending, &since_start);
                    break;
                }
            } else if now >= next_send {
                let slot = sequence % SLOTS;
                for (index, target) in self.targets.iter().enumerate() {
                    let (fd, frame) = self.request(*target, slot);
                    // Whatever was in this slot timed out long ago (see the
                    // assertion above); its answers are all in.
                    pending[index][slot] = None;
                    let sent = since_start(SystemTime::now());
                    send(fd, &frame);
                    run.probes[index].push(Probe {
                        sent,
                        answers: Vec::new(),
                    });
                    pending[index][slot] = Some(run.probes[index].len() - 1);
                }
                sequence += 1;
                next_send += interval;
                // Behind (the thread was not scheduled): skip the missed
                // ticks rather than burst, so a slot is never reused early.
                if next_send < now {
                    next_send = now + interval;
                }
            }
            let wake = match stopped_at {
                Some(stopped) => stopped + timeout + Duration::from_millis(50),
                None => next_send,
            };
            poll_both(
                &self.arp,
                &self.nd,
                wake.saturating_duration_since(Instant::now()),
            );
            self.receive(&mut run, &mut pending, &since_start);
        }
        run.socket_drops = drops(&self.arp) + drops(&self.nd);
        run
    }

    /// Reads every answer queued, then retires the requests whose timeout
    /// passed before the reading began (their answers were all queued).
    fn receive(
        &self,
        run: &mut ProbeRun,
        pending: &mut [[Option<usize>; SLOTS]],
        since_start: &impl Fn(SystemTime) -> Duration,
    ) {
        let began = since_start(SystemTime::now());
        for fd in [&self.arp, &self.nd] {
            while let Some((frame, received)) = receive_one(fd) {
                let Some((index, slot, mac)) = self.parse(&frame) else {
                    continue;
                };
                let received = since_start(received);
                let mac = format_mac(&mac);
                let in_time = pending[index][slot]
                    .filter(|&i| received.saturating_sub(run.probes[index][i].sent) <= run.timeout);
                match in_time {
                    Some(i) => {
                        let mac_index = match run.macs.iter().position(|m| *m == mac) {
                            Some(m) => m,
                            None => {
                                run.macs.push(mac);
                                run.macs.len() - 1
                            }
                        };
                        let probe = &mut run.probes[index][i];
                        let latency = received.saturating_sub(probe.sent);
                        probe.answers.push((mac_index, latency));
                    }
                    None => run.stray.push((index, received, mac)),
                }
            }
        }
        for (index, slots) in pending.iter_mut().enumerate() {
            for slot in slots.iter_mut() {
                if slot.is_some_and(|i| run.probes[index][i].sent + run.timeout < began) {
                    *slot = None;
                }
            }
        }
    }
}

fn send(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: frame is a valid buffer of the length passed; the socket is bound.
    let sent = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert!(
        sent == frame.len() as isize,
        "send probe: {}",
        std::io::Error::last_os_error()
    );
}

fn poll_both(a: &OwnedFd, b: &OwnedFd, wait: Duration) {
    let mut fds = [a, b].map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let millis = wait.as_millis().min(1000) as i32;
    // SAFETY: two valid pollfds.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
}

/// One queued frame and the kernel's receive time, without blocking.
fn receive_one(fd: &OwnedFd) -> Option<(Vec<u8>, SystemTime)> {
    let mut buf = [0u8; 1514];
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg describes valid writable buffers.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    let n = usize::try_from(n).ok()?;
    let mut received = SystemTime::now();
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                received = UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Some((buf[..n.min(buf.len())].to_vec(), received))
}

/// Frames the kernel dropped on `fd` for want of room (PACKET_STATISTICS).
fn drops(fd: &OwnedFd) -> u32 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: stats is writable for len bytes.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    assert_eq!(
        ret,
        0,
        "PACKET_STATISTICS: {}",
        std::io::Error::last_os_error()
    );
    stats.tp_drops
}
