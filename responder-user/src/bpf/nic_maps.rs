//! The `OWN_MACS` and `BOND_OF` maps of a loaded program: kept equal to the
//! sets the agent computes from its links (`crate::netif::topology`), and
//! carried over from a previous agent's pins on adoption so the new program
//! never runs a moment without them.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use aya::{
    maps::{HashMap, IterableMap as _, MapData, MapError},
    Ebpf, Pod,
};
use responder_common::nic::{OwnMacKey, BOND_OF_MAP, OWN_MACS_MAP, PIN_BOND_OF, PIN_OWN_MACS};

use super::pins::{map_error, open_pinned, PinDir};
use crate::error::Error;

/// What [`sync_plan`] found to change.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SyncPlan<K, V> {
    pub(super) upsert: Vec<(K, V)>,
    pub(super) remove: Vec<K>,
}

/// The writes that turn map contents `current` into `desired`.
pub(super) fn sync_plan<K: Ord + Copy, V: PartialEq + Copy>(
    current: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
) -> SyncPlan<K, V> {
    SyncPlan {
        upsert: desired
            .iter()
            .filter(|(key, value)| current.get(key) != Some(value))
            .map(|(key, value)| (*key, *value))
            .collect(),
        remove: current
            .keys()
            .filter(|key| !desired.contains_key(key))
            .copied()
            .collect(),
    }
}

fn contents<K: Pod + Ord, V: Pod>(
    map: &HashMap<MapData, K, V>,
    name: &str,
) -> Result<BTreeMap<K, V>, Error> {
    map.iter()
        .map(|entry| entry.map_err(|e| map_error("reading", name, e)))
        .collect()
}

/// Makes `map` hold exactly `desired`: additions and changes first, so a
/// key that stays is never missing in between, then removals.
fn sync<K: Pod + Ord + Copy, V: Pod + PartialEq + Copy>(
    map: &mut HashMap<MapData, K, V>,
    name: &str,
    desired: &BTreeMap<K, V>,
) -> Result<(), Error> {
    let plan = sync_plan(&contents(map, name)?, desired);
    for (key, value) in &plan.upsert {
        map.insert(key, value, 0)
            .map_err(|e| map_error("inserting into", name, e))?;
    }
    for key in &plan.remove {
        match map.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) if is_enoent(&e) => {}
            Err(e) => return Err(map_error("removing from", name, e)),
        }
    }
    Ok(())
}

fn is_enoent(error: &MapError) -> bool {
    matches!(error, MapError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::ENOENT))
}

/// Copies what a previous agent pinned as `pin` into `map`, if it did.
pub(super) fn copy_pinned<K: Pod + Ord + Copy, V: Pod + PartialEq + Copy>(
    pin_path: &Path,
    pin: &str,
    map: &mut HashMap<MapData, K, V>,
) -> Result<usize, Error> {
    if !pin_path.join(pin).exists() {
        return Ok(0);
    }
    let previous: HashMap<MapData, K, V> = HashMap::try_from(open_pinned(pin_path, pin)?)
        .map_err(|e| map_error("reading the previous", pin, e))?;
    let entries = contents(&previous, pin)?;
    sync(map, pin, &entries)?;
    Ok(entries.len())
}

/// The program's maps about the node's interfaces.
pub(crate) struct NicMaps {
    own_macs: HashMap<MapData, OwnMacKey, u8>,
    bond_of: HashMap<MapData, u32, u32>,
}

impl NicMaps {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, Error> {
        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(Error::MissingObject(name));
        let own_macs = take(OWN_MACS_MAP)?;
        let bond_of = take(BOND_OF_MAP)?;
        Ok(NicMaps {
            own_macs: HashMap::try_from(own_macs)
                .map_err(|e| map_error("opening", OWN_MACS_MAP, e))?,
            bond_of: HashMap::try_from(bond_of)
                .map_err(|e| map_error("opening", BOND_OF_MAP, e))?,
        })
    }

    /// Takes over the previous agent's entries, before its links run the
    /// new program.
    pub(super) fn copy_previous(&mut self, pin_path: &Path) -> Result<(), Error> {
        let macs = copy_pinned(pin_path, PIN_OWN_MACS, &mut self.own_macs)?;
        let members = copy_pinned(pin_path, PIN_BOND_OF, &mut self.bond_of)?;
        if macs + members > 0 {
            tracing::info!(
                own_macs = macs,
                bond_members = members,
                "copied the previous agent's interface maps"
            );
        }
        Ok(())
    }

    pub(super) fn pin(&self, pins: &mut PinDir) -> Result<(), Error> {
        pins.pin_replacing(PIN_OWN_MACS, |path| self.own_macs.map().pin(path))?;
        pins.pin_replacing(PIN_BOND_OF, |path| self.bond_of.map().pin(path))
    }

    /// Makes `OWN_MACS` exactly `macs`.
    pub(crate) fn set_own_macs(&mut self, macs: &BTreeSet<[u8; 6]>) -> Result<(), Error> {
        let desired = macs.iter().map(|mac| (OwnMacKey::new(*mac), 1u8)).collect();
        sync(&mut self.own_macs, OWN_MACS_MAP, &desired)
    }

    /// Makes `BOND_OF` exactly `members` (member ifindex → bond ifindex).
    pub(crate) fn set_bond_members(&mut self, members: &BTreeMap<u32, u32>) -> Result<(), Error> {
        sync(&mut self.bond_of, BOND_OF_MAP, members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_plan_writes_only_the_difference() {
        let current = BTreeMap::from([(1u32, 10u32), (2, 10), (3, 11)]);
        let desired = BTreeMap::from([(1u32, 10u32), (3, 12), (4, 12)]);
        assert_eq!(
            sync_plan(&current, &desired),
            SyncPlan {
                upsert: vec![(3, 12), (4, 12)],
                remove: vec![2],
            }
        );
        let same = sync_plan(&desired, &desired);
        assert!(same.upsert.is_empty() && same.remove.is_empty());
    }
}
