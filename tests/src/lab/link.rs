//! Links every lab topology makes: root-namespace veths removed on drop, the
//! XDP program a veth peer needs so that XDP_TX frames reach it, MACs as text.
use std::process::{Command, Stdio};

use aya::programs::{Xdp, XdpMode};

use crate::netns::{run_ok, NetNs};

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An XDP program on the far side of a veth. Frames a driver-mode XDP
/// program sends with XDP_TX only reach the veth peer when the peer has an XDP
/// program too. The responder itself with no VIPs passes everything.
pub struct PassThrough {
    _ebpf: aya::Ebpf,
}

pub fn attach_pass_through(ns: &NetNs, ifname: &str) -> PassThrough {
    let mut ebpf = responder::bpf::object_loader()
        .load(responder::EBPF_OBJECT)
        .expect("load XDP object");
    let program: &mut Xdp = ebpf
        .program_mut(responder_common::PROGRAM_NAME)
        .expect("program in object")
        .try_into()
        .expect("XDP program");
    responder::bpf::load_retrying(|| program.load()).expect("load pass-through program");
    ns.enter(|| program.attach(ifname, XdpMode::Driver))
        .expect("attach pass-through XDP to the client veth");
    PassThrough { _ebpf: ebpf }
}

/// A root-namespace veth made here; deleting it deletes its peer too.
pub struct RootVeth(pub String);

impl Drop for RootVeth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// `ip link set dev <interface> up|down` in the root namespace.
pub fn set_root_link(interface: &str, state: &str) {
    run_ok(Command::new("ip").args(["link", "set", "dev", interface, state]));
}

/// The MAC of a root-namespace interface, lower case.
pub fn root_mac(interface: &str) -> String {
    let out = run_ok(Command::new("ip").args(["-br", "link", "show", "dev", interface]));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .expect("mac column")
        .to_lowercase()
}

/// Whether a root-namespace interface has an XDP program attached.
pub fn root_xdp_attached(interface: &str) -> bool {
    let out = run_ok(Command::new("ip").args(["link", "show", "dev", interface]));
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

pub fn sysctl(key: &str, value: &str) {
    run_ok(Command::new("sysctl").args(["-qw", &format!("{key}={value}")]));
}
