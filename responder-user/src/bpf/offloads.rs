//! The `NIC_OFFLOADS` record: which receive VLAN offloads this agent (or
//! one it adopted) turned off, per ifindex. Pinned with the other maps, so
//! a restarted agent keeps the duty of turning them back on and `responder
//! cleanup` can do it after a SIGKILL. See `crate::nic::vlan_offload` for
//! why and when.

use std::path::Path;

use aya::{
    maps::{HashMap, IterableMap as _, MapData},
    Ebpf,
};
use responder_common::nic::{NicOffloadRecord, NIC_OFFLOADS_MAP, PIN_NIC_OFFLOADS};

use super::{
    nic_maps::copy_pinned,
    pins::{map_error, open_pinned, PinDir},
};
use crate::{
    error::{display_chain, Error},
    netif::Interface,
    nic::vlan_offload::{self, EthtoolNic, Nic, VlanOffloadPolicy},
};

const IFNAMSIZ: usize = 16;

fn encode_name(name: &str) -> [u8; IFNAMSIZ] {
    let mut encoded = [0u8; IFNAMSIZ];
    let bytes = name.as_bytes();
    let len = bytes.len().min(IFNAMSIZ - 1);
    encoded[..len].copy_from_slice(&bytes[..len]);
    encoded
}

fn decode_name(encoded: &[u8; IFNAMSIZ]) -> String {
    let end = encoded.iter().position(|b| *b == 0).unwrap_or(IFNAMSIZ);
    String::from_utf8_lossy(&encoded[..end]).into_owned()
}

/// Turns back on what `map` records, for interfaces that are still the ones
/// recorded (same name at the same ifindex: a deleted or recreated one
/// starts from its driver's defaults), and empties the record.
fn restore_recorded(map: &mut HashMap<MapData, u32, NicOffloadRecord>, nic: &dyn Nic) {
    let records: Vec<(u32, NicOffloadRecord)> = map.iter().filter_map(Result::ok).collect();
    for (ifindex, record) in records {
        let name = decode_name(&record.ifname);
        let current = nix::net::if_::if_nametoindex(name.as_str()).ok();
        if current == Some(ifindex) {
            vlan_offload::restore(nic, &name, record.turned_off);
        }
        let _ = map.remove(&ifindex);
    }
}

/// The record of a loaded program, restoring what it says when dropped
/// unless the pins are kept for a next agent.
pub(crate) struct Offloads {
    map: HashMap<MapData, u32, NicOffloadRecord>,
    nic: Option<EthtoolNic>,
    policy: VlanOffloadPolicy,
    restore_on_drop: bool,
}

impl Offloads {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, Error> {
        let map = ebpf
            .take_map(NIC_OFFLOADS_MAP)
            .ok_or(Error::MissingObject(NIC_OFFLOADS_MAP))?;
        let nic = EthtoolNic::open()
            .map_err(|e| {
                tracing::warn!(
                    "cannot open an ethtool socket ({e}); NIC offloads are left as they are"
                )
            })
            .ok();
        Ok(Offloads {
            map: HashMap::try_from(map).map_err(|e| map_error("opening", NIC_OFFLOADS_MAP, e))?,
            nic,
            policy: VlanOffloadPolicy::default(),
            restore_on_drop: true,
        })
    }

    pub(super) fn copy_previous(&mut self, pin_path: &Path) -> Result<(), Error> {
        copy_pinned(pin_path, PIN_NIC_OFFLOADS, &mut self.map).map(drop)
    }

    pub(super) fn pin(&self, pins: &mut PinDir) -> Result<(), Error> {
        pins.pin_replacing(PIN_NIC_OFFLOADS, |path| self.map.map().pin(path))
    }
    pub(super) fn set_policy(&mut self, policy: VlanOffloadPolicy) {
        self.policy = policy;
    }

    /// Before attaching to `interface`: turns its tag-stripping offloads
    /// off (per the policy) and records what changed.
    pub(super) fn prepare(&mut self, interface: &Interface) {
        let (VlanOffloadPolicy::TurnOff, Some(nic)) = (self.policy, &self.nic) else {
            return;
        };
        let recorded = self
            .map
            .get(&interface.ifindex, 0)
            .map(|record| record.turned_off)
            .unwrap_or(0);
        let record = vlan_offload::turn_off(nic, &interface.name, recorded);
        let result = if record == 0 {
            self.map.remove(&interface.ifindex).or(Ok(()))
        } else {
            let value = NicOffloadRecord {
                turned_off: record,
                ifname: encode_name(&interface.name),
            };
            self.map.insert(interface.ifindex, value, 0)
        };
        if let Err(e) = result {
            tracing::warn!(interface = %interface.name, "recording the offloads turned off: {}", display_chain(&e));
        }
    }

    /// The pins stay for a next agent, and so does the duty to restore.
    pub(super) fn keep(&mut self) {
        self.restore_on_drop = false;
    }
}

impl Drop for Offloads {
    fn drop(&mut self) {
        if let (true, Some(nic)) = (self.restore_on_drop, &self.nic) {
            restore_recorded(&mut self.map, nic);
        }
    }
}

/// For `responder cleanup`: turns back on what the pinned record under
/// `pin_path` says was turned off. Nothing pinned is fine.
pub(super) fn restore_pinned(pin_path: &Path) -> Result<(), Error> {
    if !pin_path.join(PIN_NIC_OFFLOADS).exists() {
        return Ok(());
    }
    let mut map: HashMap<MapData, u32, NicOffloadRecord> =
        HashMap::try_from(open_pinned(pin_path, PIN_NIC_OFFLOADS)?)
            .map_err(|e| map_error("opening pinned", PIN_NIC_OFFLOADS, e))?;
    match EthtoolNic::open() {
        Ok(nic) => restore_recorded(&mut map, &nic),
        Err(e) => tracing::warn!("cannot open an ethtool socket ({e}); NIC offloads not restored"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_round_trip_and_are_cut_to_ifnamsiz() {
        assert_eq!(decode_name(&encode_name("eth0")), "eth0");
        assert_eq!(
            decode_name(&encode_name("exactly15chars_")),
            "exactly15chars_"
        );
        assert_eq!(
            decode_name(&encode_name("sixteen-chars-xx")),
            "sixteen-chars-x"
        );
    }
}
