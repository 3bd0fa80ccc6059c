//! The ethtool ioctls (SIOCETHTOOL) for reading and changing netdev
//! features by name, as `ethtool -k` / `-K` do: ETHTOOL_GSSET_INFO and
//! ETHTOOL_GSTRINGS for the names, ETHTOOL_GFEATURES / ETHTOOL_SFEATURES for
//! the bits. No maintained crate covers the feature ioctls (the netlink
//! `ethtool` crate reads features but cannot set them), and four fixed
//! layouts from linux/ethtool.h are little code. Acts in the network
//! namespace of the calling thread.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;
const IFNAMSIZ: usize = 16;
/// Features are reported in blocks of 32.
const FEATURE_BITS_PER_BLOCK: usize = 32;
/// Bit of the ETHTOOL_SFEATURES return value: some requested change did not
/// take effect (the driver refused it or another feature depends on it).
const ETHTOOL_F_WISH: i32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("ethtool {action} on interface {interface}")]
pub struct EthtoolError {
    pub interface: String,
    pub action: &'static str,
    #[source]
    pub source: io::Error,
}

/// One feature's state, as `ethtool -k` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureState {
    /// The driver lets it be changed (not `[fixed]`).
    pub changeable: bool,
    /// What was asked for, by the kernel's default or by someone.
    pub requested: bool,
    /// What is in effect.
    pub active: bool,
}

/// The features of one interface, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    names: Vec<String>,
    states: Vec<FeatureState>,
}

impl Features {
    pub fn get(&self, name: &str) -> Option<FeatureState> {
        let index = self.names.iter().position(|n| n == name)?;
        self.states.get(index).copied()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// `struct ifreq` with `ifr_data`, the form SIOCETHTOOL takes.
#[repr(C)]
struct IfreqData {
    name: [u8; IFNAMSIZ],
    data: *mut libc::c_void,
    _union_rest: [u8; 16],
}

/// `struct ethtool_sset_info` asking for one string set's length.
#[repr(C)]
struct SsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    length: u32,
    _pad: u32,
}

/// An AF_INET datagram socket: the handle ethtool ioctls go through.
pub struct Ethtool {
    socket: OwnedFd,
}

impl Ethtool {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Ethtool {
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// SIOCETHTOOL on `interface` with the command buffer at `data`.
    fn ioctl(
        &self,
        interface: &str,
        action: &'static str,
        data: *mut libc::c_void,
    ) -> Result<i32, EthtoolError> {
        let error = |source| EthtoolError {
            interface: interface.to_owned(),
            action,
            source,
        };
        let bytes = interface.as_bytes();
        if bytes.is_empty() || bytes.len() >= IFNAMSIZ {
            return Err(error(io::Error::from_raw_os_error(libc::ENODEV)));
        }
        let mut request = IfreqData {
            name: [0; IFNAMSIZ],
            data,
            _union_rest: [0; 16],
        };
        request.name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: `request` is a valid ifreq whose data pointer refers to a
        // command buffer of the size its command implies, alive for the call.
        let ret = unsafe { libc::ioctl(self.socket.as_raw_fd(), SIOCETHTOOL, &mut request) };
        if ret < 0 {
            return Err(error(io::Error::last_os_error()));
        }
        Ok(ret)
    }

    fn feature_names(&self, interface: &str) -> Result<Vec<String>, EthtoolError> {
        let mut info = SsetInfo {
            cmd: ETHTOOL_GSSET_INFO,
            reserved: 0,
            sset_mask: 1 << ETH_SS_FEATURES,
            length: 0,
            _pad: 0,
        };
        self.ioctl(
            interface,
            "listing feature names",
            &mut info as *mut SsetInfo as *mut libc::c_void,
        )?;
        let count = info.length as usize;
        // struct ethtool_gstrings: cmd, string_set, len, then the strings.
        let mut buffer = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
        buffer[0] = ETHTOOL_GSTRINGS;
        buffer[1] = ETH_SS_FEATURES;
        buffer[2] = count as u32;
        self.ioctl(
            interface,
            "reading feature names",
            buffer.as_mut_ptr() as *mut libc::c_void,
        )?;
        let bytes: Vec<u8> = buffer[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes
            .chunks(ETH_GSTRING_LEN)
            .map(|name| {
                let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
                String::from_utf8_lossy(&name[..end]).into_owned()
            })
            .collect())
    }

    /// Every feature of `interface`, as `ethtool -k` lists them.
    pub fn features(&self, interface: &str) -> Result<Features, EthtoolError> {
        let names = self.feature_names(interface)?;
        let blocks = names.len().div_ceil(FEATURE_BITS_PER_BLOCK);
        // struct ethtool_gfeatures: cmd, size, then per block available,
        // requested, active, never_changed.
        let mut buffer = vec![0u32; 2 + blocks * 4];
        buffer[0] = ETHTOOL_GFEATURES;
        buffer[1] = blocks as u32;
        self.ioctl(
            interface,
            "reading features",
            buffer.as_mut_ptr() as *mut libc::c_void,
        )?;
        let states = (0..names.len())
            .map(|index| {
                let block = &buffer[2 + index / FEATURE_BITS_PER_BLOCK * 4..][..4];
                let bit = |word: u32| word & (1 << (index % FEATURE_BITS_PER_BLOCK)) != 0;
                FeatureState {
                    changeable: bit(block[0]) && !bit(block[3]),
                    requested: bit(block[1]),
                    active: bit(block[2]),
                }
            })
            .collect();
        Ok(Features { names, states })
    }

    /// Requests the named features on or off, as `ethtool -K` does. Names
    /// the interface does not have are ignored. Returns whether everything
    /// took effect (false when the driver kept some feature as it was).
    pub fn request(
        &self,
        interface: &str,
        features: &Features,
        changes: &[(&str, bool)],
    ) -> Result<bool, EthtoolError> {
        let blocks = features.names.len().div_ceil(FEATURE_BITS_PER_BLOCK);
        // struct ethtool_sfeatures: cmd, size, then per block valid, requested.
        let mut buffer = vec![0u32; 2 + blocks * 2];
        buffer[0] = ETHTOOL_SFEATURES;
        buffer[1] = blocks as u32;
        let mut any = false;
        for (name, on) in changes {
            let Some(index) = features.index(name) else {
                continue;
            };
            let bit = 1 << (index % FEATURE_BITS_PER_BLOCK);
            let block = 2 + index / FEATURE_BITS_PER_BLOCK * 2;
            buffer[block] |= bit;
            if *on {
                buffer[block + 1] |= bit;
            }
            any = true;
        }
        if !any {
            return Ok(true);
        }
        let ret = self.ioctl(
            interface,
            "changing features",
            buffer.as_mut_ptr() as *mut libc::c_void,
        )?;
        Ok(ret & ETHTOOL_F_WISH == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_features_read_like_ethtool_k() {
        // Loopback exists in every namespace and needs no privilege to read.
        let ethtool = Ethtool::open().expect("socket");
        let features = ethtool.features("lo").expect("read lo features");
        let loopback = features
            .get("loopback")
            .expect("lo has the loopback feature");
        assert!(loopback.active && !loopback.changeable, "{loopback:?}");
        assert_eq!(features.get("no-such-feature"), None);
    }

    #[test]
    fn unknown_interfaces_are_errors_naming_them() {
        let ethtool = Ethtool::open().expect("socket");
        let error = ethtool
            .features("rsp-no-such0")
            .expect_err("no such interface");
        assert_eq!(error.interface, "rsp-no-such0");
        assert_eq!(error.source.raw_os_error(), Some(libc::ENODEV));
        let too_long = ethtool
            .features("a-name-far-too-long")
            .expect_err("too long");
        assert_eq!(too_long.source.raw_os_error(), Some(libc::ENODEV));
    }
}
