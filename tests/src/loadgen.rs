//! A load generator for neighbor responders: sends prebuilt request frames on
//! an AF_PACKET socket with `sendmmsg` as fast as it can for a fixed time,
//! while another thread counts the valid replies coming back.
//!
//! The receive sockets are bound to ETH_P_ARP and ETH_P_IPV6 rather than
//! ETH_P_ALL: protocol-specific packet sockets never see the frames this host
//! sends, so every frame counted was received.
use std::{
    io,
    mem::{size_of, zeroed},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use responder_common::wire::{ICMPV6_NA, IPPROTO_ICMPV6};
use responder_model::frames::{ARP_REPLY, ETH_P_ARP, ETH_P_IPV6};

use crate::netns::NetNs;

/// Frames per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;
/// Room for any reply frame.
const FRAME_ROOM: usize = 256;
/// Time left for replies still in flight after the last send.
const DRAIN: Duration = Duration::from_millis(200);
/// Receive buffer big enough to ride out scheduling gaps of the receiver.
const RECEIVE_BUFFER: libc::c_int = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("{0}: {1}")]
    Socket(&'static str, io::Error),
    #[error("interface {0} not found in the namespace")]
    NoInterface(String),
    #[error("a load generator thread panicked")]
    Thread,
}

/// The replies that count: answers for the VIPs, addressed to the generator.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedReplies {
    pub generator_mac: [u8; 6],
    pub vip4: [u8; 4],
    pub vip6: [u8; 16],
}

impl ExpectedReplies {
    fn classify(&self, frame: &[u8]) -> Reply {
        if frame.len() < 14 || frame[..6] != self.generator_mac {
            return Reply::Other;
        }
        let ether_type = u16::from_be_bytes([frame[12], frame[13]]);
        let payload = &frame[14..];
        match ether_type {
            ETH_P_ARP if payload.len() >= 28 => {
                let oper = u16::from_be_bytes([payload[6], payload[7]]);
                let spa = &payload[14..18];
                let tha = &payload[18..24];
                if oper == ARP_REPLY && spa == self.vip4 && tha == self.generator_mac {
                    Reply::Arp
                } else {
                    Reply::Other
                }
            }
            ETH_P_IPV6 if payload.len() >= 40 + 24 => {
                let next_header = payload[6];
                let icmp = &payload[40..];
                if next_header == IPPROTO_ICMPV6 && icmp[0] == ICMPV6_NA && icmp[8..24] == self.vip6
                {
                    Reply::Na
                } else {
                    Reply::Other
                }
            }
            _ => Reply::Other,
        }
    }
}

enum Reply {
    Arp,
    Na,
    Other,
}

/// What one load run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadResult {
    /// Frames the kernel accepted from `sendmmsg`.
    pub sent: u64,
    /// Time from the first to the last send.
    pub send_time: Duration,
    pub arp_replies: u64,
    pub na_replies: u64,
    /// Frames of the watched protocols that were not valid replies.
    pub other_frames: u64,
    /// Frames the receive sockets dropped for lack of buffer (PACKET_STATISTICS).
    pub receiver_drops: u64,
    /// CPU time (user + system, from getrusage) of the sending thread; with
    /// tick accounting this includes softirq work run in its context.
    pub sender_cpu: Duration,
    pub receiver_cpu: Duration,
}

impl LoadResult {
    pub fn replies(&self) -> u64 {
        self.arp_replies + self.na_replies
    }
}

/// Sends `frames` round-robin out of `ifname` in `ns` for `duration`.
pub fn run(
    ns: &NetNs,
    ifname: &str,
    frames: &[Vec<u8>],
    expected: ExpectedReplies,
    duration: Duration,
) -> Result<LoadResult, LoadgenError> {
    let (sender, receivers) = ns.enter(|| -> Result<_, LoadgenError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| LoadgenError::NoInterface(ifname.to_owned()))?;
        let sender = packet_socket(0, ifindex)?;
        let receivers = [
            packet_socket(ETH_P_ARP, ifindex)?,
            packet_socket(ETH_P_IPV6, ifindex)?,
        ];
        for receiver in &receivers {
            set_option(
                receiver,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                RECEIVE_BUFFER,
            )?;
        }
        Ok((sender, receivers))
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let receiving = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || receive(&receivers, expected, &stop))
    };
    let frames = frames.to_vec();
    let sending = thread::spawn(move || send(&sender, &frames, duration));
    let sent = sending.join().map_err(|_| LoadgenError::Thread)?;
    thread::sleep(DRAIN);
    stop.store(true, Ordering::Relaxed);
    let received = receiving.join().map_err(|_| LoadgenError::Thread)?;
    let (sent, send_time, sender_cpu) = sent?;
    Ok(LoadResult {
        sent,
        send_time,
        sender_cpu,
        ..received?
    })
}

fn send(
    socket: &OwnedFd,
    frames: &[Vec<u8>],
    duration: Duration,
) -> Result<(u64, Duration, Duration), LoadgenError> {
    let mut iovecs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| {
            let frame = &frames[i % frames.len()];
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            }
        })
        .collect();
    let mut messages = one_iovec_messages(&mut iovecs);
    let cpu_start = thread_cpu();
    let start = Instant::now();
    let deadline = start + duration;
    let mut sent = 0u64;
    // The deadline bounds the loop; the batch cap only guards a broken clock.
    let max_batches = duration.as_micros() as u64;
    for _ in 0..max_batches {
        if Instant::now() >= deadline {
            break;
        }
        // SAFETY: `messages` points at `iovecs`, which point at `frames`;
        // all outlive the call.
        let n =
            unsafe { libc::sendmmsg(socket.as_raw_fd(), messages.as_mut_ptr(), BATCH as u32, 0) };
        if n < 0 {
            let error = io::Error::last_os_error();
            // A full device queue is the load we asked for, not a failure.
            if error.raw_os_error() == Some(libc::ENOBUFS) {
                thread::yield_now();
                continue;
            }
            return Err(LoadgenError::Socket("sendmmsg", error));
        }
        sent += n as u64;
    }
    let send_time = start.elapsed();
    Ok((sent, send_time, thread_cpu() - cpu_start))
}

/// One `mmsghdr` per iovec, for sendmmsg/recvmmsg; they point into `iovecs`,
/// which must outlive them.
fn one_iovec_messages(iovecs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut message: libc::mmsghdr = unsafe { zeroed() };
            message.msg_hdr.msg_iov = iov;
            message.msg_hdr.msg_iovlen = 1;
            message
        })
        .collect()
}

fn receive(
    sockets: &[OwnedFd; 2],
    expected: ExpectedReplies,
    stop: &AtomicBool,
) -> Result<LoadResult, LoadgenError> {
    let cpu_start = thread_cpu();
    let mut storage = vec![[0u8; FRAME_ROOM]; BATCH];
    let mut iovecs: Vec<libc::iovec> = storage
        .iter_mut()
        .map(|buffer| libc::iovec {
            iov_base: buffer.as_mut_ptr() as *mut libc::c_void,
            iov_len: FRAME_ROOM,
        })
        .collect();
    let mut messages = one_iovec_messages(&mut iovecs);
    let buffers = buffers_ptrs(&iovecs);
    let mut result = LoadResult::default();
    let mut polls: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Bounded by the stop flag; the cap stops a receiver whose owner vanished.
    let give_up = Instant::now() + Duration::from_secs(3600);
    while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
        // SAFETY: `polls` is a live array of the length given.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 50) };
        if ready < 0 {
            return Err(LoadgenError::Socket("poll", io::Error::last_os_error()));
        }
        for socket in sockets {
            drain_socket(socket, &mut messages, &mut result, &expected, &buffers)?;
        }
    }
    for socket in sockets {
        result.receiver_drops += packet_drops(socket)?;
    }
    result.receiver_cpu = thread_cpu() - cpu_start;
    Ok(result)
}

/// The receive buffers, read back through the iovecs `recvmmsg` filled.
fn buffers_ptrs(iovecs: &[libc::iovec]) -> Vec<*const u8> {
    iovecs.iter().map(|iov| iov.iov_base as *const u8).collect()
}

fn drain_socket(
    socket: &OwnedFd,
    messages: &mut [libc::mmsghdr],
    result: &mut LoadResult,
    expected: &ExpectedReplies,
    buffers: &[*const u8],
) -> Result<(), LoadgenError> {
    // A socket cannot hold more than its buffer; the cap bounds the loop.
    for _ in 0..(RECEIVE_BUFFER as usize / BATCH) {
        // SAFETY: every message points at a FRAME_ROOM-byte buffer alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                messages.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EAGAIN) {
                return Ok(());
            }
            return Err(LoadgenError::Socket("recvmmsg", error));
        }
        for (message, buffer) in messages.iter().zip(buffers).take(n as usize) {
            let len = (message.msg_len as usize).min(FRAME_ROOM);
            // SAFETY: the kernel wrote `len` bytes into this buffer.
            let frame = unsafe { std::slice::from_raw_parts(*buffer, len) };
            match expected.classify(frame) {
                Reply::Arp => result.arp_replies += 1,
                Reply::Na => result.na_replies += 1,
                Reply::Other => result.other_frames += 1,
            }
        }
        if (n as usize) < BATCH {
            return Ok(());
        }
    }
    Ok(())
}

/// An AF_PACKET raw socket bound to `ifindex`; protocol 0 receives nothing.
pub(crate) fn packet_socket(protocol: u16, ifindex: u32) -> Result<OwnedFd, LoadgenError> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.to_be() as i32,
        )
    };
    if fd < 0 {
        return Err(LoadgenError::Socket(
            "socket(AF_PACKET)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data.
    let mut address: libc::sockaddr_ll = unsafe { zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = ifindex as i32;
    // SAFETY: `address` is a valid sockaddr_ll of the length given.
    let ret = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            &address as *const libc::sockaddr_ll as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if ret < 0 {
        return Err(LoadgenError::Socket(
            "bind(AF_PACKET)",
            io::Error::last_os_error(),
        ));
    }
    Ok(socket)
}

pub(crate) fn set_option<T>(
    socket: &OwnedFd,
    level: i32,
    name: i32,
    value: T,
) -> Result<(), LoadgenError> {
    // SAFETY: `value` lives for the call and its size is passed.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const T as *const libc::c_void,
            size_of::<T>() as u32,
        )
    };
    if ret < 0 {
        return Err(LoadgenError::Socket(
            "setsockopt",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Frames the socket dropped since the last call (the kernel resets the count).
fn packet_drops(socket: &OwnedFd) -> Result<u64, LoadgenError> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` is writable for `len` bytes.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut stats as *mut libc::tpacket_stats as *mut libc::c_void,
            &mut len,
        )
    };
    if ret < 0 {
        return Err(LoadgenError::Socket(
            "PACKET_STATISTICS",
            io::Error::last_os_error(),
        ));
    }
    Ok(stats.tp_drops as u64)
}

/// User + system CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data filled by the kernel.
    let mut usage: libc::rusage = unsafe { zeroed() };
    // SAFETY: `usage` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}
