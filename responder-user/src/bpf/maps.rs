//! The VIPS and VIP_STATS maps of a loaded program: writes for the agent's
//! reconciliation, counter reads for metrics, and decoding of counters
//! written by older or newer agents (their value layout may differ).

use std::{collections::BTreeMap, os::fd::AsFd as _, path::Path};

use aya::maps::{HashMap, IterableMap as _, Map, MapData, MapError, PerCpuHashMap, PerCpuValues};
use responder_common::{VipKey, VipStats, VipValue, PIN_VIP_STATS, VIPS_MAP, VIP_STATS_MAP};

use crate::{
    dataplane::VipMap,
    error::{privileges_or, Error},
};

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

fn sum_stats_words<const N: usize>(data: MapData) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let map = Map::from_map_data(data)
        .and_then(PerCpuHashMap::<MapData, VipKey, [u64; N]>::try_from)
        .map_err(|source| map_error("reading", PIN_VIP_STATS, source))?;
    let mut totals = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(|source| map_error("reading", PIN_VIP_STATS, source))?;
        let mut total = VipStats::default();
        per_cpu
            .iter()
            .for_each(|words| total.add(&decode_stats_prefix(words)));
        totals.insert(key, total);
    }
    Ok(totals)
}

/// The pinned counters summed over CPUs, whichever agent version wrote them.
pub(super) fn read_stats_any_layout(pin_path: &Path) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let path = pin_path.join(PIN_VIP_STATS);
    let data = MapData::from_pin(&path)
        .map_err(|source| map_error("opening pinned", PIN_VIP_STATS, source))?;
    let value_size = data
        .info()
        .map_err(|source| map_error("inspecting", PIN_VIP_STATS, source))?
        .value_size();
    match value_size {
        8 => sum_stats_words::<1>(data),
        16 => sum_stats_words::<2>(data),
        24 => sum_stats_words::<3>(data),
        32 => sum_stats_words::<4>(data),
        40 => sum_stats_words::<5>(data),
        48 => sum_stats_words::<6>(data),
        56 => sum_stats_words::<7>(data),
        64 => sum_stats_words::<8>(data),
        other => {
            tracing::warn!(
                value_size = other,
                "unknown counter layout in {}; counters not read",
                path.display()
            );
            Ok(BTreeMap::new())
        }
    }
}

pub(super) fn map_error(action: &'static str, map: &str, source: MapError) -> Error {
    privileges_or(&format!("{action} map {map}"), source, |source| {
        Error::Map {
            action,
            map: map.to_owned(),
            source,
        }
    })
}

/// The VIPS and VIP_STATS maps of a loaded program.
pub(crate) struct BpfVipMap {
    pub(super) nr_cpus: usize,
    pub(super) vips: HashMap<MapData, VipKey, VipValue>,
    pub(super) stats: PerCpuHashMap<MapData, VipKey, VipStats>,
}

const BPF_NOEXIST: u64 = 1;

fn os_error(error: &MapError) -> Option<i32> {
    match error {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    }
}

impl BpfVipMap {
    /// A second handle on the counters, for reading them from other tasks
    /// (metrics scrapes) while the agent keeps writing VIPs.
    pub(crate) fn stats_reader(&self) -> Result<StatsReader, Error> {
        let fd = self
            .stats
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| map_error("duplicating", VIP_STATS_MAP, MapError::from(e)))?;
        let stats = MapData::from_fd(fd)
            .and_then(Map::from_map_data)
            .and_then(PerCpuHashMap::try_from)
            .map_err(|source| map_error("opening", VIP_STATS_MAP, source))?;
        Ok(StatsReader { stats })
    }
}

/// Read access to the per-CPU VIP counters of a running agent.
pub(crate) struct StatsReader {
    stats: PerCpuHashMap<MapData, VipKey, VipStats>,
}

impl StatsReader {
    /// Every VIP key's counters summed over CPUs; entries removed while
    /// iterating are skipped.
    pub(crate) fn read(&self) -> Vec<(VipKey, VipStats)> {
        self.stats
            .iter()
            .filter_map(Result::ok)
            .map(|(key, per_cpu)| {
                let mut total = VipStats::default();
                per_cpu.iter().for_each(|s| total.add(s));
                (key, total)
            })
            .collect()
    }
}

impl VipMap for BpfVipMap {
    fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error> {
        // Counters first, so the program never sees a VIP without them; an
        // existing entry (value update) keeps its counts.
        let zeros = PerCpuValues::try_from(vec![VipStats::default(); self.nr_cpus])
            .map_err(|e| map_error("sizing", VIP_STATS_MAP, e.into()))?;
        match self.stats.insert(key, zeros, BPF_NOEXIST) {
            Err(e) if os_error(&e) != Some(libc::EEXIST) => {
                return Err(map_error("inserting into", VIP_STATS_MAP, e))
            }
            _ => {}
        }
        self.vips
            .insert(key, value, 0)
            .map_err(|e| map_error("inserting into", VIPS_MAP, e))
    }

    fn remove(&mut self, key: &VipKey) -> Result<(), Error> {
        for (name, result) in [
            (VIPS_MAP, self.vips.remove(key)),
            (VIP_STATS_MAP, self.stats.remove(key)),
        ] {
            match result {
                Err(e) if os_error(&e) != Some(libc::ENOENT) => {
                    return Err(map_error("removing from", name, e))
                }
                _ => {}
            }
        }
        Ok(())
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
