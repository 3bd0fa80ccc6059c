//! Errors of the agent library. Messages are written for the operator: they
//! say what was being done and, where there is one, the fix.
//!
//! A leaf: nothing here names another module of the crate. Modules with an
//! error type of their own (`netif::watch`, `cluster`, `nic::kernel_floor`)
//! convert it into [`Error`] next to its definition, and the capability
//! note of [`Error::Privileges`] is made in `nic::capabilities`.

use std::{io, net::IpAddr, path::PathBuf};

/// A VIP specification or `--vip-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("invalid VIP `{spec}`: `{addr}` is not an IP address")]
    Address { spec: String, addr: String },
    #[error("invalid VIP `{spec}`: {addr} is {kind}, not a unicast address")]
    NotUnicast {
        spec: String,
        addr: IpAddr,
        kind: &'static str,
    },
    #[error("invalid VIP `{spec}`: empty interface name or VLAN id in the scope after `@`")]
    EmptyComponent { spec: String },
    #[error("invalid VIP `{spec}`: VLAN id `{vid}` is outside 1..=4094")]
    VlanRange { spec: String, vid: String },
    #[error("invalid VIP `{spec}`: interface `{interface}` is not one of the --interface ones ({attached})")]
    ScopeInterface {
        spec: String,
        interface: String,
        attached: String,
    },
    #[error("invalid VIP `{spec}`: it is already an address of interface {interface}")]
    OwnAddress { spec: String, interface: String },
    #[error("{}:{line}: {source}", path.display())]
    File {
        path: PathBuf,
        line: usize,
        source: Box<VipError>,
    },
    #[error("cannot read VIP file {}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Vip(#[from] VipError),
    #[error("unknown interface `{0}`")]
    UnknownInterface(String),
    #[error("interface `{0}` is not an Ethernet interface (no 6-byte MAC address, or loopback)")]
    NotEthernet(String),
    #[error("invalid duration `{input}`: {reason}")]
    Duration { input: String, reason: &'static str },
    #[error(
        "{action}: permission denied; the responder needs root, or CAP_BPF, CAP_NET_ADMIN, \
         CAP_NET_RAW and CAP_PERFMON{lacking}"
    )]
    Privileges {
        action: String,
        /// Which of them this process lacks, when it can tell
        /// (`nic::capabilities::lacking_note`).
        lacking: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "{} is not on a BPF filesystem: choose a --pin-path under a bpffs mount (usually \
         /sys/fs/bpf; mount it with `mount -t bpf bpf /sys/fs/bpf`)",
        path.display()
    )]
    NotBpffs { path: PathBuf },
    #[error("{} is not on a BPF filesystem, so it holds no responder pins; nothing removed", path.display())]
    NotPinDirectory { path: PathBuf },
    #[error(
        "nothing is pinned at {} (no responder agent has run with this pin path, or it was \
         cleaned up)",
        path.display()
    )]
    NothingPinned { path: PathBuf },
    #[error("{action} {}", path.display())]
    Filesystem {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("loading the XDP object")]
    Load(#[source] aya::EbpfError),
    #[error("the XDP object has no {0}")]
    MissingObject(&'static str),
    #[error("loading XDP program `{name}` into the kernel")]
    LoadProgram {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("attaching XDP to interface {interface} in {mode} mode")]
    Attach {
        interface: String,
        mode: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error(
        "XDP on interface {0} is attached through netlink rather than a BPF link (kernel older \
         than 5.9?), so it cannot be pinned"
    )]
    UnpinnableLink(String),
    #[error("pinning {}", path.display())]
    Pin {
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error("{action} map {map}")]
    Map {
        action: &'static str,
        map: String,
        source: aya::maps::MapError,
    },
    #[error("installing signal handlers")]
    Signals { source: io::Error },
    #[error("could not install {failed} VIP key(s) into the data plane (see the log above)")]
    Install { failed: usize },
    #[error("opening a socket to change the devices' multicast lists")]
    MulticastSocket { source: io::Error },
    #[error("opening a packet socket on interface {interface}")]
    PacketSocket {
        interface: String,
        source: io::Error,
    },
    /// A `netif::watch::NetwatchError` (converted there).
    #[error("listing network interfaces through rtnetlink")]
    Netwatch(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A `cluster::ClusterError` (converted there).
    #[error("the Kubernetes VIP source stopped")]
    Cluster(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A `nic::kernel_floor::KernelFloorError` (converted there).
    #[error(transparent)]
    KernelFloor(Box<dyn std::error::Error + Send + Sync>),
}

/// True when `error` or anything in its source chain is EPERM: the process
/// lacks the capabilities for a bpf() or socket() call. (EACCES is left out:
/// the verifier uses it for rejected programs.)
pub fn is_permission_denied(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.raw_os_error() == Some(libc::EPERM) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// `error` and its sources joined with ": ", for one-line log messages.
pub fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}
