//! `responder cleanup`: detaches and unpins everything an agent left under a
//! pin directory, restores the NIC offloads it turned off and leaves its
//! multicast groups.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use responder_common::{
    claims::PIN_CLAIMANTS,
    nic::{PIN_BOND_OF, PIN_NIC_OFFLOADS, PIN_OWN_MACS},
    PIN_AGENT, PIN_LEGACY_VIP_STATS, PIN_LINK_PREFIX, PIN_PROGRAM, PIN_VIPS, PIN_VIP_COUNTERS,
};

use super::{
    offloads::restore_pinned,
    pins::{is_bpffs, is_mount_point, STAGING_PREFIX},
};
use crate::{
    error::Error,
    netif::multicast::{groups_of, DeviceMulticast, Memberships},
};

/// Removes the pins an agent leaves under `pin_path` (links first, which
/// detaches XDP unless a running agent still holds the link), then the
/// directory if it is empty. Returns what was removed; nothing is fine.
/// Only names the agent creates are touched, and only on bpffs, so a wrong
/// `--pin-path` cannot delete unrelated files.
pub fn cleanup(pin_path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !pin_path.exists() {
        return Ok(Vec::new());
    }
    if !is_bpffs(pin_path)? {
        return Err(Error::NotBpffs {
            path: pin_path.to_owned(),
        });
    }
    leave_multicast_groups(pin_path);
    let read_error = |source| Error::Filesystem {
        action: "reading",
        path: pin_path.to_owned(),
        source,
    };
    let mut pins = Vec::new();
    for entry in fs::read_dir(pin_path).map_err(read_error)? {
        let name = entry
            .map_err(read_error)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        let order = match name.as_str() {
            n if n.starts_with(PIN_LINK_PREFIX) => 0,
            PIN_PROGRAM => 1,
            PIN_VIPS | PIN_VIP_COUNTERS | PIN_LEGACY_VIP_STATS | PIN_AGENT => 2,
            PIN_OWN_MACS | PIN_BOND_OF | PIN_NIC_OFFLOADS | PIN_CLAIMANTS => 2,
            n if n.starts_with(STAGING_PREFIX) => 2,
            _ => continue,
        };
        pins.push((order, pin_path.join(name)));
    }
    pins.sort();
    let mut removed = Vec::new();
    let mut offloads_restored = false;
    for (order, pin) in pins {
        // Once XDP is detached (links, then the program, come first) and
        // before the record goes.
        if order == 2 && !offloads_restored {
            restore_pinned(pin_path)?;
            offloads_restored = true;
        }
        match fs::remove_file(&pin) {
            Ok(()) => removed.push(pin),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Filesystem {
                    action: "removing",
                    path: pin,
                    source,
                })
            }
        }
    }
    if is_mount_point(pin_path) {
        return Ok(removed);
    }
    match fs::remove_dir(pin_path) {
        Ok(()) => removed.push(pin_path.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %pin_path.display(), "pin directory not removed: {e}"),
    }
    Ok(removed)
}

/// Leaves the solicited-node groups the agent joined for the pinned IPv6
/// VIPs: they outlive the agent on purpose, and go with its pins. Best
/// effort: what cannot be read or left is logged.
fn leave_multicast_groups(pin_path: &Path) {
    if !pin_path.join(PIN_VIPS).exists() {
        return;
    }
    let keys: Vec<_> = match super::inspect::read_pinned_vips_map(pin_path) {
        Ok(entries) => entries.into_iter().map(|(key, _)| key).collect(),
        Err(e) => {
            tracing::warn!("reading the pinned VIPs to leave their multicast groups: {e}");
            return;
        }
    };
    let groups = groups_of(&keys);
    if groups.is_empty() {
        return;
    }
    let mut multicast = match DeviceMulticast::open() {
        Ok(multicast) => multicast,
        Err(e) => {
            tracing::warn!("leaving the IPv6 VIPs' multicast groups: {e}");
            return;
        }
    };
    for group in groups {
        match multicast.leave(group) {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                tracing::warn!(ifindex = group.0, "leaving a solicited-node group: {e}")
            }
            _ => {}
        }
    }
}
