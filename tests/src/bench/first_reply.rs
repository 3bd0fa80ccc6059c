//! Before a responder is measured: proof that it answers at all, with a
//! real reply. One request at a time from the client until an ARP reply or
//! a Neighbor Advertisement for the VIP, from the node's MAC, comes back.
//! It also lets farpd claim the VIP, which it does only after asking the
//! segment whether another host owns it.
use std::{
    os::fd::{AsRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use responder_model::frames::{ETH_P_ARP, ETH_P_IPV6};

use crate::{netns::NetNs, packet_socket::packet_socket};

/// How often the request is repeated while nothing answers.
const RETRY: Duration = Duration::from_millis(100);

/// What a valid answer must say.
#[derive(Clone, Copy)]
pub(super) enum Answer {
    /// An ARP reply: `sha` = the node, `spa` = the VIP.
    Arp { node_mac: [u8; 6], vip: [u8; 4] },
    /// A Neighbor Advertisement for the VIP with the node's MAC in its
    /// Target Link-Layer Address option.
    Na { node_mac: [u8; 6], vip: [u8; 16] },
}

impl Answer {
    fn protocol(self) -> u16 {
        match self {
            Answer::Arp { .. } => ETH_P_ARP,
            Answer::Na { .. } => ETH_P_IPV6,
        }
    }

    fn accepts(self, frame: &[u8]) -> bool {
        match self {
            Answer::Arp { node_mac, vip } => {
                frame.len() >= 42
                    && frame[6..12] == node_mac
                    && frame[12..14] == ETH_P_ARP.to_be_bytes()
                    && frame[20..22] == [0, 2]
                    && frame[22..28] == node_mac
                    && frame[28..32] == vip
            }
            Answer::Na { node_mac, vip } => {
                frame.len() >= 86
                    && frame[6..12] == node_mac
                    && frame[12..14] == ETH_P_IPV6.to_be_bytes()
                    && frame[20] == 58
                    && frame[54] == 136
                    && frame[62..78] == vip
                    && frame[78..80] == [2, 1]
                    && frame[80..86] == node_mac
            }
        }
    }
}

/// Sends `request` on `ifname` in `ns` every 100 ms until `answer` comes
/// back, for at most `timeout`. Returns how long that took.
pub(super) fn wait_for_answer(
    ns: &NetNs,
    ifname: &str,
    request: &[u8],
    answer: Answer,
    timeout: Duration,
) -> Option<Duration> {
    let (sender, receiver) = ns.enter(|| {
        let ifindex = nix::net::if_::if_nametoindex(ifname).expect("client interface");
        (
            packet_socket(0, ifindex).expect("send socket"),
            packet_socket(answer.protocol(), ifindex).expect("receive socket"),
        )
    });
    let start = Instant::now();
    let mut buffer = [0u8; 256];
    while start.elapsed() < timeout {
        send(&sender, request);
        let retry_at = Instant::now() + RETRY;
        while let Some(wait) = retry_at.checked_duration_since(Instant::now()) {
            let Some(len) = receive(&receiver, &mut buffer, wait) else {
                break;
            };
            if answer.accepts(&buffer[..len]) {
                return Some(start.elapsed());
            }
        }
    }
    None
}

fn send(socket: &OwnedFd, frame: &[u8]) {
    // SAFETY: `frame` is valid for reads of its length.
    let sent = unsafe { libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert!(
        sent == frame.len() as isize,
        "send a request: {}",
        std::io::Error::last_os_error()
    );
}

/// One frame, if one arrives within `wait`.
fn receive(socket: &OwnedFd, buffer: &mut [u8], wait: Duration) -> Option<usize> {
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = wait.as_millis().clamp(1, 1000) as libc::c_int;
    // SAFETY: `poll` is one valid pollfd.
    if unsafe { libc::poll(&mut poll, 1, millis) } <= 0 {
        return None;
    }
    // SAFETY: `buffer` is writable for its length.
    let len = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(len).ok()
}
