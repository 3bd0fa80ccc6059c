//! The VIPS map and the VIP_COUNTERS array of a loaded program: writes for
//! the agent's reconciliation (each key with a counter slot), counter reads
//! for metrics, and reading the counters another agent pinned, whichever
//! layout it used (slot-indexed array, or the per-CPU hash keyed by VIP of
//! agents before counter slots; value sizes may differ too).

use std::{
    collections::BTreeMap,
    os::fd::AsFd as _,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use aya::{
    maps::{
        HashMap, IterableMap as _, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues,
    },
    util::nr_cpus,
};
use responder_common::{
    VipKey, VipStats, VipValue, NO_COUNTER_SLOT, PIN_LEGACY_VIP_STATS, PIN_VIPS, PIN_VIP_COUNTERS,
    VIPS_MAP, VIP_COUNTERS_MAP,
};

use super::{
    batch,
    pins::{map_error, open_pinned},
    slots::{CounterSlots, Slot},
};
use crate::{dataplane::VipMap, error::Error, vip::key_addr};

/// Counters from their leading `u64`s: an older agent's value may be shorter
/// (missing counters are 0) or a newer one's longer (extra ones ignored).
pub(super) fn decode_stats_prefix(words: &[u64]) -> VipStats {
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    VipStats {
        requests: word(0),
        replies: word(1),
        conflicts: word(2),
        stale: word(3),
    }
}

fn sum_per_cpu<const N: usize>(per_cpu: &PerCpuValues<[u64; N]>) -> VipStats {
    let mut total = VipStats::default();
    per_cpu
        .iter()
        .for_each(|words| total.add(&decode_stats_prefix(words)));
    total
}

/// Calls `$read::<N>(args…)` for a counter value of `$size` bytes, N u64s.
macro_rules! by_counter_words {
    ($size:expr, $read:ident($($arg:expr),*)) => {
        match $size {
            8 => Some($read::<1>($($arg),*)),
            16 => Some($read::<2>($($arg),*)),
            24 => Some($read::<3>($($arg),*)),
            32 => Some($read::<4>($($arg),*)),
            40 => Some($read::<5>($($arg),*)),
            48 => Some($read::<6>($($arg),*)),
            56 => Some($read::<7>($($arg),*)),
            64 => Some($read::<8>($($arg),*)),
            _ => None,
        }
    };
}

/// The legacy layout: a per-CPU hash from VIP key to counters.
fn sum_hash_words<const N: usize>(data: MapData) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let error = |source| map_error("reading", PIN_LEGACY_VIP_STATS, source);
    let map = Map::from_map_data(data)
        .and_then(PerCpuHashMap::<MapData, VipKey, [u64; N]>::try_from)
        .map_err(error)?;
    let mut totals = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(error)?;
        totals.insert(key, sum_per_cpu(&per_cpu));
    }
    Ok(totals)
}

/// The current layout: a per-CPU array indexed by each VIP's counter slot.
fn sum_array_words<const N: usize>(
    data: MapData,
    slots: &[(VipKey, u32)],
) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let error = |source| map_error("reading", PIN_VIP_COUNTERS, source);
    let map = Map::from_map_data(data)
        .and_then(PerCpuArray::<MapData, [u64; N]>::try_from)
        .map_err(error)?;
    let mut totals = BTreeMap::new();
    for (key, slot) in slots {
        let total = match map.get(slot, 0) {
            Ok(per_cpu) => sum_per_cpu(&per_cpu),
            // No slot (NO_COUNTER_SLOT) or one beyond this array: no counts.
            Err(MapError::OutOfBounds { .. }) => VipStats::default(),
            Err(source) => return Err(error(source)),
        };
        totals.insert(*key, total);
    }
    Ok(totals)
}

/// The counters pinned under `pin_path`, summed over CPUs, by VIP key,
/// whichever agent version wrote them; empty when none are pinned.
pub(super) fn read_pinned_counters(pin_path: &Path) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let (pin, slots) = if pin_path.join(PIN_VIP_COUNTERS).exists() {
        let vips: HashMap<MapData, VipKey, VipValue> =
            HashMap::try_from(open_pinned(pin_path, PIN_VIPS)?)
                .map_err(|source| map_error("reading", PIN_VIPS, source))?;
        let mut slots = Vec::new();
        for entry in vips.iter() {
            let (key, value) = entry.map_err(|source| map_error("reading", PIN_VIPS, source))?;
            slots.push((key, value.counter_slot));
        }
        (PIN_VIP_COUNTERS, Some(slots))
    } else if pin_path.join(PIN_LEGACY_VIP_STATS).exists() {
        (PIN_LEGACY_VIP_STATS, None)
    } else {
        return Ok(BTreeMap::new());
    };
    let path = pin_path.join(pin);
    let data =
        MapData::from_pin(&path).map_err(|source| map_error("opening pinned", pin, source))?;
    let value_size = data
        .info()
        .map_err(|source| map_error("inspecting", pin, source))?
        .value_size();
    let read = match &slots {
        Some(slots) => by_counter_words!(value_size, sum_array_words(data, slots)),
        None => by_counter_words!(value_size, sum_hash_words(data)),
    };
    read.unwrap_or_else(|| {
        tracing::warn!(
            value_size,
            "unknown counter layout in {}; counters not read",
            path.display()
        );
        Ok(BTreeMap::new())
    })
}

/// Copies the previous agent's VIPs (flags cleared: this agent re-asserts
/// them) and their counters summed over CPUs into the new maps, each key
/// with a counter slot of this agent's. Counters are read from the old
/// layout, whatever it was (see `read_pinned_counters`). The VIPs are
/// returned as the agent writes them (no flags, no slot), so its first
/// reconcile finds them unchanged.
pub(super) fn copy_previous_entries(
    pin_path: &Path,
    map: &mut BpfVipMap,
) -> Result<BTreeMap<VipKey, VipValue>, Error> {
    let mut copied = BTreeMap::new();
    let vips_path = pin_path.join(PIN_VIPS);
    if !vips_path.exists() {
        return Ok(copied);
    }
    let old_vips: HashMap<MapData, VipKey, VipValue> =
        HashMap::try_from(open_pinned(pin_path, PIN_VIPS)?)
            .map_err(|source| map_error("reading the previous", PIN_VIPS, source))?;
    let old_counters = read_pinned_counters(pin_path)?;
    for entry in old_vips.iter() {
        let (key, old) =
            entry.map_err(|source| map_error("reading the previous", PIN_VIPS, source))?;
        let value = VipValue {
            mac: old.mac,
            ..VipValue::default()
        };
        let total = old_counters.get(&key).copied().unwrap_or_default();
        map.insert_counted(&key, &value, Some(total))?;
        copied.insert(key, value);
    }
    tracing::info!(
        vips = copied.len(),
        "copied the previous agent's VIPs and counters"
    );
    Ok(copied)
}

/// The VIPS map and the VIP_COUNTERS array of a loaded program, and which
/// counter slot each installed key holds.
pub(crate) struct BpfVipMap {
    pub(super) nr_cpus: usize,
    pub(super) vips: HashMap<MapData, VipKey, VipValue>,
    pub(super) counters: PerCpuArray<MapData, VipStats>,
    /// Shared with the [`StatsReader`]s, which read the counters by slot.
    pub(super) slots: Arc<Mutex<CounterSlots>>,
}

fn os_error(error: &MapError) -> Option<i32> {
    match error {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    }
}

fn locked(slots: &Mutex<CounterSlots>) -> MutexGuard<'_, CounterSlots> {
    // The table stays consistent whatever a panicking holder did: each
    // method changes it in one step.
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BpfVipMap {
    /// A second handle on the counters, for reading them from other tasks
    /// (metrics scrapes) while the agent keeps writing VIPs.
    pub(crate) fn stats_reader(&self) -> Result<StatsReader, Error> {
        let fd = self
            .counters
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| map_error("duplicating", VIP_COUNTERS_MAP, MapError::from(e)))?;
        let counters = MapData::from_fd(fd)
            .and_then(Map::from_map_data)
            .and_then(PerCpuArray::try_from)
            .map_err(|source| map_error("opening", VIP_COUNTERS_MAP, source))?;
        Ok(StatsReader {
            counters,
            slots: Arc::clone(&self.slots),
            batch_refused: AtomicBool::new(false),
        })
    }

    /// Installs `key` with counters starting at `start` (on one CPU; the
    /// sum is what is read), keeping the slot it already has. A key that
    /// finds no free slot is installed without counters.
    pub(super) fn insert_counted(
        &mut self,
        key: &VipKey,
        value: &VipValue,
        start: Option<VipStats>,
    ) -> Result<(), Error> {
        let slot = locked(&self.slots).assign(key);
        let counter_slot = match slot {
            Some(Slot { index, fresh }) => {
                if fresh || start.is_some() {
                    let mut per_cpu = vec![VipStats::default(); self.nr_cpus];
                    per_cpu[0] = start.unwrap_or_default();
                    let written = PerCpuValues::try_from(per_cpu)
                        .map_err(|e| map_error("sizing", VIP_COUNTERS_MAP, e.into()))
                        .and_then(|values| {
                            self.counters
                                .set(index, values, 0)
                                .map_err(|e| map_error("writing", VIP_COUNTERS_MAP, e))
                        });
                    if let Err(e) = written {
                        if fresh {
                            locked(&self.slots).release(key);
                        }
                        return Err(e);
                    }
                }
                index
            }
            None => {
                let capacity = locked(&self.slots).capacity();
                tracing::warn!(addr = %key_addr(key), capacity, "every counter slot is taken: the VIP is answered but not counted");
                NO_COUNTER_SLOT
            }
        };
        let value = VipValue {
            counter_slot,
            ..*value
        };
        self.vips.insert(key, value, 0).map_err(|e| {
            if slot.is_some_and(|slot| slot.fresh) {
                locked(&self.slots).release(key);
            }
            map_error("inserting into", VIPS_MAP, e)
        })
    }
}

/// Read access to the per-CPU VIP counters of a running agent.
pub(crate) struct StatsReader {
    counters: PerCpuArray<MapData, VipStats>,
    slots: Arc<Mutex<CounterSlots>>,
    /// Set once the kernel refused a batch lookup: one slot per syscall
    /// from then on.
    batch_refused: AtomicBool,
}

impl StatsReader {
    /// Every counted key's counters summed over CPUs; a slot that cannot
    /// be read right now is skipped.
    pub(crate) fn read(&self) -> Vec<(VipKey, VipStats)> {
        let assigned = locked(&self.slots).assigned();
        match self.read_batched(&assigned) {
            Ok(counters) => counters,
            Err(error) => {
                if !self.batch_refused.swap(true, Ordering::Relaxed) {
                    tracing::info!(%error, "this kernel does not look per-CPU arrays up in batches; reading the counters one VIP at a time");
                }
                assigned
                    .into_iter()
                    .filter_map(|(key, slot)| {
                        let per_cpu = self.counters.get(&slot, 0).ok()?;
                        let mut total = VipStats::default();
                        per_cpu.iter().for_each(|s| total.add(s));
                        Some((key, total))
                    })
                    .collect()
            }
        }
    }

    /// The same, through `BPF_MAP_LOOKUP_BATCH`: the slots up to the highest
    /// one assigned, a few hundred per syscall.
    fn read_batched(&self, assigned: &[(VipKey, u32)]) -> std::io::Result<Vec<(VipKey, VipStats)>> {
        if self.batch_refused.load(Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        let Some(highest) = assigned.iter().map(|(_, slot)| *slot).max() else {
            return Ok(Vec::new());
        };
        let cpus = nr_cpus().map_err(|(_, error)| error)?;
        let mut totals = vec![VipStats::default(); highest as usize + 1];
        batch::for_each_per_cpu::<VipStats>(
            self.counters.map().fd().as_fd(),
            highest + 1,
            cpus,
            |slot, per_cpu| {
                if let Some(total) = totals.get_mut(slot as usize) {
                    per_cpu.iter().for_each(|s| total.add(s));
                }
            },
        )?;
        Ok(assigned
            .iter()
            .map(|(key, slot)| (*key, totals[*slot as usize]))
            .collect())
    }
}

impl VipMap for BpfVipMap {
    fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error> {
        // A new key's counters are zeroed before the program can find it;
        // an existing key (value update) keeps its slot and counts.
        self.insert_counted(key, value, None)
    }

    fn remove(&mut self, key: &VipKey) -> Result<(), Error> {
        match self.vips.remove(key) {
            Err(e) if os_error(&e) != Some(libc::ENOENT) => {
                Err(map_error("removing from", VIPS_MAP, e))
            }
            _ => {
                locked(&self.slots).release(key);
                Ok(())
            }
        }
    }

    fn flags(&self, key: &VipKey) -> Result<u32, Error> {
        match self.vips.get(key, 0) {
            Ok(value) => Ok(value.flags),
            Err(MapError::KeyNotFound) => Ok(0),
            Err(e) => Err(map_error("reading", VIPS_MAP, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_decode_from_older_and_newer_layouts() {
        let current = VipStats {
            requests: 5,
            replies: 4,
            conflicts: 3,
            stale: 2,
        };
        assert_eq!(decode_stats_prefix(&[5, 4, 3, 2]), current);
        assert_eq!(
            decode_stats_prefix(&[5, 4, 3]),
            VipStats {
                stale: 0,
                ..current
            },
            "an agent without the stale counter"
        );
        assert_eq!(
            decode_stats_prefix(&[5, 4, 3, 2, 99]),
            current,
            "counters a newer agent added are ignored"
        );
        assert_eq!(decode_stats_prefix(&[]), VipStats::default());
    }
}
