//! A neighbor responder in userspace, built the way MetalLB's layer-2 speaker
//! answers: one packet socket per protocol on the interface, and per frame
//! read the request, look the address up, write the reply. It is the
//! benchmark's stand-in for "what a speaker costs", not a product.
use std::{
    collections::HashSet,
    io,
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use responder_common::csum;
use responder_model::frames::{
    expected_na, Arp, Ethernet, Vlan, ALL_NODES6, ALL_NODES_MAC, ETH_P_ARP, ETH_P_IPV6,
    ND_OPT_SOURCE_LL_ADDR,
};

use crate::{
    bench::threads::{current_tid, own_thread_runtime},
    netns::NetNs,
    packet_socket::{packet_socket, set_option, PacketSocketError},
};

/// How often a blocked read wakes up to check for stop.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Upper bound on a responder's life, should its owner never stop it.
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Default, Clone, Copy, Debug)]
pub struct ResponderStats {
    pub replies: u64,
}

pub struct UserspaceResponder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<ResponderStats, PacketSocketError>>>,
    /// Kernel thread ids of `threads`, for their CPU time while running.
    tids: Arc<Mutex<Vec<i32>>>,
}

impl UserspaceResponder {
    /// Answers ARP for `vips4` and NS for `vips6` on `ifname` in `ns` with `mac`.
    pub fn start(
        ns: &NetNs,
        ifname: &str,
        mac: [u8; 6],
        vips4: &[[u8; 4]],
        vips6: &[[u8; 16]],
    ) -> Result<Self, PacketSocketError> {
        let (arp_socket, ipv6_socket) = ns.enter(|| -> Result<_, PacketSocketError> {
            let ifindex = nix::net::if_::if_nametoindex(ifname)
                .map_err(|_| PacketSocketError::NoInterface(ifname.to_owned()))?;
            Ok((
                packet_socket(ETH_P_ARP, ifindex)?,
                packet_socket(ETH_P_IPV6, ifindex)?,
            ))
        })?;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: READ_TIMEOUT.as_micros() as libc::suseconds_t,
        };
        set_option(&arp_socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, timeout)?;
        set_option(&ipv6_socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, timeout)?;
        let stop = Arc::new(AtomicBool::new(false));
        let tids = Arc::new(Mutex::new(Vec::new()));
        let vips4: HashSet<[u8; 4]> = vips4.iter().copied().collect();
        let vips6: HashSet<[u8; 16]> = vips6.iter().copied().collect();
        let arp = {
            let (stop, tids) = (Arc::clone(&stop), Arc::clone(&tids));
            thread::spawn(move || {
                note_tid(&tids);
                serve(&arp_socket, &stop, |frame| arp_reply(frame, mac, &vips4))
            })
        };
        let ndp = {
            let (stop, tids) = (Arc::clone(&stop), Arc::clone(&tids));
            thread::spawn(move || {
                note_tid(&tids);
                serve(&ipv6_socket, &stop, |frame| na_reply(frame, mac, &vips6))
            })
        };
        let started = Instant::now();
        while tids.lock().expect("tids").len() < 2 && started.elapsed() < READ_TIMEOUT {
            thread::yield_now();
        }
        Ok(UserspaceResponder {
            stop,
            threads: vec![arp, ndp],
            tids,
        })
    }

    /// On-CPU time of the responder's threads so far (scheduler accounting,
    /// in nanoseconds).
    pub fn runtime(&self) -> Duration {
        let tids = self.tids.lock().expect("tids").clone();
        tids.into_iter().map(own_thread_runtime).sum()
    }

    /// Stops both threads; their summed counts.
    pub fn stop(mut self) -> Result<ResponderStats, PacketSocketError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = ResponderStats::default();
        for thread in self.threads.drain(..) {
            let stats = thread.join().map_err(|_| PacketSocketError::Thread)??;
            total.replies += stats.replies;
        }
        Ok(total)
    }
}

impl Drop for UserspaceResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn note_tid(tids: &Mutex<Vec<i32>>) {
    tids.lock().expect("tids").push(current_tid());
}

fn serve(
    socket: &OwnedFd,
    stop: &AtomicBool,
    reply: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<ResponderStats, PacketSocketError> {
    let give_up = Instant::now() + MAX_LIFETIME;
    let mut buffer = [0u8; 2048];
    let mut replies = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
        // SAFETY: `buffer` is writable for its length.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr() as *mut libc::c_void,
                buffer.len(),
                0,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(PacketSocketError::Socket("recv", error)),
            }
        }
        let Some(frame) = reply(&buffer[..n as usize]) else {
            continue;
        };
        // SAFETY: `frame` is readable for its length.
        let sent = unsafe {
            libc::send(
                socket.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if sent < 0 {
            let error = io::Error::last_os_error();
            // A full queue loses this reply, as a busy speaker would.
            if error.raw_os_error() == Some(libc::ENOBUFS) {
                continue;
            }
            return Err(PacketSocketError::Socket("send", error));
        }
        replies += 1;
    }
    Ok(ResponderStats { replies })
}

/// The ARP reply to an untagged request for one of `vips`.
fn arp_reply(frame: &[u8], mac: [u8; 6], vips: &HashSet<[u8; 4]>) -> Option<Vec<u8>> {
    let arp = frame.get(14..42)?;
    if arp[..8] != [0, 1, 0x08, 0x00, 6, 4, 0, 1] {
        return None;
    }
    let sha: [u8; 6] = arp[8..14].try_into().ok()?;
    let spa: [u8; 4] = arp[14..18].try_into().ok()?;
    let tpa: [u8; 4] = arp[24..28].try_into().ok()?;
    if spa == tpa || !vips.contains(&tpa) {
        return None;
    }
    let eth = Ethernet {
        dst: sha,
        src: mac,
        vlan: Vlan::Untagged,
    };
    Some(Arp::reply(mac, tpa, sha, spa).frame(&eth))
}

/// The NA answering a valid, untagged NS for one of `vips`.
fn na_reply(frame: &[u8], mac: [u8; 6], vips: &HashSet<[u8; 16]>) -> Option<Vec<u8>> {
    let ipv6 = frame.get(14..)?;
    if ipv6.len() < 40 + 24 || ipv6[0] >> 4 != 6 || ipv6[6] != 58 || ipv6[7] != 255 {
        return None;
    }
    let payload_len = u16::from_be_bytes([ipv6[4], ipv6[5]]) as usize;
    let src: [u8; 16] = ipv6[8..24].try_into().ok()?;
    let dst: [u8; 16] = ipv6[24..40].try_into().ok()?;
    let icmp = ipv6.get(40..40 + payload_len)?;
    if icmp.len() < 24 || icmp[0] != 135 || icmp[1] != 0 {
        return None;
    }
    let target: [u8; 16] = icmp[8..24].try_into().ok()?;
    if !vips.contains(&target) {
        return None;
    }
    let acc = csum::ipv6_pseudo_header(&src, &dst, payload_len as u32, 58);
    if !csum::verifies(csum::add_bytes(acc, icmp)) {
        return None;
    }
    let mut options = &icmp[24..];
    let mut sllao = None;
    // Each option is at least 8 bytes, so the loop is bounded by the payload.
    while options.len() >= 8 {
        let len = options[1] as usize * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        if options[0] == ND_OPT_SOURCE_LL_ADDR && len == 8 {
            sllao = Some(<[u8; 6]>::try_from(&options[2..8]).ok()?);
        }
        options = &options[len..];
    }
    let request_eth = Ethernet {
        dst: [0; 6],
        src: [0; 6],
        vlan: Vlan::Untagged,
    };
    let dad = src == [0; 16];
    let reply = if dad {
        expected_na(&request_eth, ALL_NODES_MAC, mac, target, ALL_NODES6, false)
    } else {
        let eth_src: [u8; 6] = frame[6..12].try_into().ok()?;
        expected_na(
            &request_eth,
            sllao.unwrap_or(eth_src),
            mac,
            target,
            src,
            true,
        )
    };
    Some(reply)
}
