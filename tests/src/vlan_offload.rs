//! Receive VLAN offload without 8021q: a TC egress program on the client's
//! veth tags every frame it sends with VLAN 100 *as packet metadata*, which
//! is what a receiving NIC with `rx-vlan-offload` on hands its kernel; with
//! `tx-vlan-offload` off on that veth the kernel writes the tag into the
//! frame instead, which is what a NIC with the offload off delivers. veth
//! itself ignores its own `rx-vlan-offload` (an offloaded tag stays
//! metadata whatever it says), so the tests make the emulated NIC follow the
//! node interface's setting with [`EmulatedVlanNic::follow`]. Replies are
//! captured on the client with their tag, in the frame or in the packet
//! socket's auxiliary data.

use std::{
    mem::{size_of, zeroed},
    os::fd::{AsRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TcAttachType};

use crate::{
    netns::{run_ok, NetNs},
    packet_socket::{packet_socket, set_option},
};

/// The tag the emulation adds (`EMULATED_VLAN_ID` in the eBPF crate).
pub const EMULATED_VLAN: u16 = 100;
const PROGRAM: &str = "emulate_rx_vlan_offload";
const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const VLAN_VID_MASK: u16 = 0x0fff;

/// `ethtool -k` in `ns`: whether `feature` (as ethtool prints it, e.g.
/// `rx-vlan-offload`) is on.
pub fn feature_on(ns: &NetNs, interface: &str, feature: &str) -> bool {
    let out = run_ok(ns.command("ethtool").args(["-k", interface]));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{feature}:")))
        .unwrap_or_else(|| panic!("ethtool -k {interface} has no {feature}:\n{text}"));
    line.split(':')
        .nth(1)
        .is_some_and(|v| v.trim_start().starts_with("on"))
}

/// `ethtool -K` in `ns`, as an operator would.
pub fn set_feature(ns: &NetNs, interface: &str, feature: &str, on: bool) {
    run_ok(
        ns.command("ethtool")
            .args(["-K", interface, feature, if on { "on" } else { "off" }]),
    );
}

/// The client's veth made a NIC-with-VLAN-100 for the node behind it.
pub struct EmulatedVlanNic {
    _ebpf: aya::Ebpf,
}

impl EmulatedVlanNic {
    /// Attaches the tagging program to `interface` in `ns` (a TCX link,
    /// gone when this is dropped).
    pub fn attach(ns: &NetNs, interface: &str) -> Self {
        let mut ebpf = responder::bpf::object_loader()
            .load(responder::EBPF_OBJECT)
            .expect("load the eBPF object");
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .expect("the emulation program is in the object")
            .try_into()
            .expect("a TC classifier");
        responder::bpf::load_retrying(|| program.load()).expect("load the emulation program");
        ns.enter(|| program.attach(interface, TcAttachType::Egress))
            .expect("attach the emulation to the client's egress");
        EmulatedVlanNic { _ebpf: ebpf }
    }

    /// Makes the tags the node receives on `node_if` look like what a NIC
    /// with its current `rx-vlan-offload` setting delivers: metadata when on,
    /// in the frame when off.
    pub fn follow(node: &NetNs, node_if: &str, client: &NetNs, client_if: &str) {
        let offloaded = feature_on(node, node_if, "rx-vlan-offload");
        set_feature(client, client_if, "txvlan", offloaded);
    }
}

/// A frame seen on the client, with the 802.1Q id it carried (in the frame
/// or as metadata) and its bytes after the Ethernet addresses and any tag.
#[derive(Clone, Debug)]
pub struct Captured {
    pub vlan: Option<u16>,
    pub src: [u8; 6],
    pub ether_type: u16,
    pub payload: Vec<u8>,
}

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// Every frame on one interface, with tags: an ETH_P_ALL packet socket
/// with PACKET_AUXDATA (the kernel strips received tags into metadata
/// before taps see them).
pub struct TagCapture {
    socket: OwnedFd,
}

impl TagCapture {
    pub fn open(ns: &NetNs, interface: &str) -> Self {
        let ifindex = ns.ifindex(interface);
        let socket = ns
            .enter(|| packet_socket(ETH_P_ALL, ifindex))
            .expect("packet socket on the client");
        set_option(&socket, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1i32).expect("PACKET_AUXDATA");
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        set_option(&socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, timeout).expect("SO_RCVTIMEO");
        TagCapture { socket }
    }

    /// Frames received until `wanted` matches one (returned) or `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        wanted: impl Fn(&Captured) -> bool,
    ) -> Option<Captured> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(frame) = self.receive() {
                if wanted(&frame) {
                    return Some(frame);
                }
            }
        }
        None
    }

    fn receive(&self) -> Option<Captured> {
        let mut buffer = [0u8; 2048];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buffer.as_mut_ptr() as *mut libc::c_void,
            iov_len: buffer.len(),
        };
        // SAFETY: msghdr is plain data; its pointers are set below.
        let mut message: libc::msghdr = unsafe { zeroed() };
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        message.msg_controllen = size_of::<[u64; 16]>();
        // SAFETY: every buffer in `message` is live and of the size given.
        let len = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut message, 0) };
        if len < 14 {
            return None;
        }
        let frame = &buffer[..len as usize];
        let mut vlan = None;
        // SAFETY: walking the control messages the kernel just wrote.
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_PACKET
                    && (*header).cmsg_type == libc::PACKET_AUXDATA
                {
                    let aux = std::ptr::read_unaligned(libc::CMSG_DATA(header) as *const AuxData);
                    if aux.status & TP_STATUS_VLAN_VALID != 0 {
                        vlan = Some(aux.vlan_tci & VLAN_VID_MASK);
                    }
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
        }
        let mut ether_type = u16::from_be_bytes([frame[12], frame[13]]);
        let mut offset = 14;
        if ether_type == 0x8100 && frame.len() >= 18 {
            vlan = Some(u16::from_be_bytes([frame[14], frame[15]]) & VLAN_VID_MASK);
            ether_type = u16::from_be_bytes([frame[16], frame[17]]);
            offset = 18;
        }
        Some(Captured {
            vlan,
            src: frame[6..12].try_into().expect("6 bytes"),
            ether_type,
            payload: frame[offset..].to_vec(),
        })
    }
}

/// One `arping` request from `ns` on `interface` for `ip`, without waiting
/// for a reply (the client has no VLAN interface to take a tagged one).
pub fn arping_once(ns: &NetNs, interface: &str, ip: &str) {
    let _ = ns
        .command("arping")
        .args(["-c", "1", "-w", "1", "-I", interface, ip])
        .output()
        .expect("run arping");
}

/// One `ndisc6` solicitation from `ns` for `ip`.
pub fn ndisc6_once(ns: &NetNs, interface: &str, ip: &str) {
    let _ = ns
        .command("ndisc6")
        .args(["-r", "1", "-w", "500", ip, interface])
        .output()
        .expect("run ndisc6");
}

/// Whether `captured` is an ARP reply saying `ip` (dotted quad) is at `mac`.
pub fn is_arp_reply_for(captured: &Captured, ip: [u8; 4], mac: [u8; 6]) -> bool {
    let p = &captured.payload;
    captured.ether_type == 0x0806
        && p.len() >= 28
        && p[6..8] == [0, 2]
        && p[8..14] == mac
        && p[14..18] == ip
}

/// Whether `captured` is a Neighbor Advertisement for `target` from `mac`.
pub fn is_na_for(captured: &Captured, target: [u8; 16], mac: [u8; 6]) -> bool {
    let p = &captured.payload;
    captured.ether_type == 0x86dd
        && captured.src == mac
        && p.len() >= 40 + 24
        && p[6] == 58
        && p[40] == 136
        && p[48..64] == target
}
