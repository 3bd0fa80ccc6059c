//! AF_PACKET sockets bound to one interface, for the tests' own frames:
//! the benchmark's answer check, the MetalLB-style userspace responder and
//! the cluster tests' ARP prober.
use std::{
    io,
    mem::{size_of, zeroed},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

#[derive(Debug, thiserror::Error)]
pub enum PacketSocketError {
    #[error("{0}: {1}")]
    Socket(&'static str, io::Error),
    #[error("interface {0} not found in the namespace")]
    NoInterface(String),
    #[error("a thread serving a packet socket panicked")]
    Thread,
}

/// An AF_PACKET raw socket bound to `ifindex`; protocol 0 receives nothing.
pub fn packet_socket(protocol: u16, ifindex: u32) -> Result<OwnedFd, PacketSocketError> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.to_be() as i32,
        )
    };
    if fd < 0 {
        return Err(PacketSocketError::Socket(
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
        return Err(PacketSocketError::Socket(
            "bind(AF_PACKET)",
            io::Error::last_os_error(),
        ));
    }
    Ok(socket)
}

pub fn set_option<T>(
    socket: &OwnedFd,
    level: i32,
    name: i32,
    value: T,
) -> Result<(), PacketSocketError> {
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
        return Err(PacketSocketError::Socket(
            "setsockopt",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
