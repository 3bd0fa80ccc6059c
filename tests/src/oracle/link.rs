//! The client ends of the two veth pairs: frames go out with `sendmmsg` on
//! one AF_PACKET socket and everything arriving comes back on another.

use std::{
    io,
    mem::zeroed,
    os::fd::{AsRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use super::OracleError;
use crate::{
    netns::NetNs,
    packet_socket::{packet_socket, set_option},
};

const ETH_P_ALL: u16 = 0x0003;
/// From linux/if_packet.h: frames this host sends are not captured.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const RECEIVE_BUFFER: libc::c_int = 32 << 20;
/// Room for any answer: the interfaces' MTU is 2000.
const FRAME_ROOM: usize = 4096;
const RECEIVE_BATCH: usize = 64;

pub struct ClientEnd {
    sender: OwnedFd,
    receiver: OwnedFd,
}

impl ClientEnd {
    /// Opens both sockets on `ifname` inside `ns`.
    pub fn open(ns: &NetNs, ifname: &str) -> Result<ClientEnd, OracleError> {
        ns.enter(|| {
            let ifindex = nix::net::if_::if_nametoindex(ifname)
                .map_err(|_| OracleError::NoInterface(ifname.to_owned()))?;
            let socket = |protocol| {
                packet_socket(protocol, ifindex)
                    .map_err(|error| OracleError::Socket("AF_PACKET", io::Error::other(error)))
            };
            let sender = socket(0)?;
            let receiver = socket(ETH_P_ALL)?;
            for (name, value) in [
                (PACKET_IGNORE_OUTGOING, 1),
                (libc::SO_RCVBUFFORCE, RECEIVE_BUFFER),
            ] {
                let level = if name == PACKET_IGNORE_OUTGOING {
                    libc::SOL_PACKET
                } else {
                    libc::SOL_SOCKET
                };
                set_option(&receiver, level, name, value)
                    .map_err(|error| OracleError::Socket("setsockopt", io::Error::other(error)))?;
            }
            Ok(ClientEnd { sender, receiver })
        })
    }

    /// Sends every frame, in order.
    pub fn send(&self, frames: &[Vec<u8>]) -> Result<(), OracleError> {
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|frame| libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            })
            .collect();
        let mut messages = messages(&mut iovecs);
        let mut sent = 0;
        // Each round sends at least one frame or yields on a full queue;
        // the cap only guards against a queue that never drains.
        for _ in 0..frames.len() * 1000 + 1000 {
            if sent == frames.len() {
                return Ok(());
            }
            let rest = &mut messages[sent..];
            // SAFETY: the messages point at iovecs that point at `frames`,
            // all alive for the call.
            let n = unsafe {
                libc::sendmmsg(
                    self.sender.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as u32,
                    0,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.raw_os_error() == Some(libc::ENOBUFS) {
                    std::thread::yield_now();
                    continue;
                }
                return Err(OracleError::Socket("sendmmsg", error));
            }
            sent += n as usize;
        }
        Err(OracleError::Socket(
            "sendmmsg",
            io::Error::other("the device queue never drained"),
        ))
    }

    /// Appends what arrives within `wait` (at least what is queued now).
    pub fn receive(&self, into: &mut Vec<Vec<u8>>, wait: Duration) -> Result<(), OracleError> {
        let deadline = Instant::now() + wait;
        let mut storage = vec![[0u8; FRAME_ROOM]; RECEIVE_BATCH];
        let mut iovecs: Vec<libc::iovec> = storage
            .iter_mut()
            .map(|buffer| libc::iovec {
                iov_base: buffer.as_mut_ptr() as *mut libc::c_void,
                iov_len: FRAME_ROOM,
            })
            .collect();
        let mut messages = messages(&mut iovecs);
        // A poll per round; the deadline bounds the rounds.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: self.receiver.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis() as libc::c_int) };
            if ready < 0 {
                return Err(OracleError::Socket("poll", io::Error::last_os_error()));
            }
            if ready == 0 {
                return Ok(());
            }
            // SAFETY: every message points at a FRAME_ROOM-byte buffer.
            let n = unsafe {
                libc::recvmmsg(
                    self.receiver.as_raw_fd(),
                    messages.as_mut_ptr(),
                    RECEIVE_BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.raw_os_error() == Some(libc::EAGAIN) {
                    continue;
                }
                return Err(OracleError::Socket("recvmmsg", error));
            }
            for (message, buffer) in messages.iter().zip(&storage).take(n as usize) {
                let len = (message.msg_len as usize).min(FRAME_ROOM);
                into.push(buffer[..len].to_vec());
            }
            if (n as usize) < RECEIVE_BATCH {
                // Drained: the caller decides whether to wait for more.
                return Ok(());
            }
        }
    }
}

/// One message per iovec; they point into `iovecs`, which must outlive them.
fn messages(iovecs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data; all-zero is valid.
            let mut message: libc::mmsghdr = unsafe { zeroed() };
            message.msg_hdr.msg_iov = iov;
            message.msg_hdr.msg_iovlen = 1;
            message
        })
        .collect()
}
