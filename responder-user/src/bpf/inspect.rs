//! Read-only views of a pin directory for `responder vips` and `responder
//! stats`: what the pins say, whether or not an agent runs. Formatting them
//! as tables is the CLI's job.

use std::{fs, io, net::IpAddr, path::Path, time::Duration};

use aya::{
    maps::{Array, HashMap, MapData},
    programs::links::{FdLink, PinnedLink},
};
use responder_common::{
    claims::Claimant, AgentState, VipKey, VipStats, VipValue, PIN_AGENT, PIN_LEGACY_VIP_STATS,
    PIN_LINK_PREFIX, PIN_VIPS, PIN_VIP_COUNTERS, VIP_FLAG_YIELDED,
};

use super::{
    claims::read_pinned_claimants,
    heartbeat::monotonic_now,
    maps::read_pinned_counters,
    pins::{map_error, open_pinned},
};
use crate::{
    error::{display_chain, Error},
    interface_names::InterfaceNames,
    netif::format_mac,
    vip::{key_addr, key_vlan},
};

/// One row of `responder vips`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct VipRow {
    pub ip: IpAddr,
    pub interface: String,
    pub ifindex: u32,
    /// `None` untagged, else `"100"` or `"100.200"`.
    pub vlan: Option<String>,
    pub mac: String,
    pub requests: u64,
    pub replies: u64,
    pub conflicts: u64,
    /// Requests left unanswered by the stale gate or a yielded VIP.
    pub stale: u64,
    /// Another MAC claimed the VIP while this node's agent was late or its
    /// view frozen: not answered until the agent re-asserts it.
    pub yielded: bool,
    /// The last other MAC the data plane saw claim the VIP on this key, if
    /// it remembers one (see `responder_common::claims`).
    pub claimant: Option<ClaimantRow>,
}

/// Who last claimed a VIP, for `responder vips`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ClaimantRow {
    pub mac: String,
    /// Whole seconds since the data plane recorded the claim.
    pub age_seconds: u64,
}

impl ClaimantRow {
    /// `claimant` as seen at `now` (CLOCK_MONOTONIC since boot).
    pub fn new(claimant: &Claimant, now: Duration) -> Self {
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        ClaimantRow {
            mac: format_mac(&claimant.mac),
            age_seconds: now_ns.saturating_sub(claimant.at_ns) / 1_000_000_000,
        }
    }
}

/// Reads the pinned maps of an agent (running or not), counters summed over
/// CPUs, sorted by address, interface and VLAN.
pub fn read_pinned_vips(pin_path: &Path) -> Result<Vec<VipRow>, Error> {
    let vips = read_pinned_vips_map(pin_path)?;
    let stats = read_pinned_counters(pin_path)?;
    let claimants = read_pinned_claimants(pin_path)?;
    let now = monotonic_now();
    let names = InterfaceNames::current();
    let mut rows = Vec::new();
    for (key, value) in vips {
        let total = stats.get(&key).copied().unwrap_or_default();
        let vlan = key_vlan(&key);
        rows.push(VipRow {
            ip: key_addr(&key),
            interface: names.name_of(key.ifindex).into_owned(),
            ifindex: key.ifindex,
            vlan: vlan.is_tagged().then(|| vlan.to_string()),
            mac: format_mac(&value.mac),
            requests: total.requests,
            replies: total.replies,
            conflicts: total.conflicts,
            stale: total.stale,
            yielded: value.flags & VIP_FLAG_YIELDED != 0,
            claimant: claimants.get(&key).map(|c| ClaimantRow::new(c, now)),
        });
    }
    rows.sort();
    Ok(rows)
}

/// Counters of `responder stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub requests: u64,
    pub replies: u64,
    pub conflicts: u64,
    pub stale: u64,
}

impl From<VipStats> for Totals {
    fn from(s: VipStats) -> Self {
        Totals {
            requests: s.requests,
            replies: s.replies,
            conflicts: s.conflicts,
            stale: s.stale,
        }
    }
}

/// One attached interface of `responder stats`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkRow {
    pub interface: String,
    /// None when the interface no longer exists (the link is defunct).
    pub ifindex: Option<u32>,
    pub link_id: u32,
    pub program_id: u32,
    /// Counters of the VIPs on this interface.
    pub counters: Totals,
    /// VIP keys on this interface the data plane has yielded.
    pub yielded: usize,
}

/// The `AGENT` entry of `responder stats`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HeartbeatRow {
    /// Seconds since the agent's last heartbeat; None if it never wrote one.
    pub heartbeat_age_seconds: Option<f64>,
    pub stale_after_seconds: f64,
    pub yield_after_seconds: f64,
    /// Whether the data plane considers the agent dead right now.
    pub stale: bool,
}

impl HeartbeatRow {
    pub fn new(state: &AgentState, now: Duration) -> Self {
        let seconds = |ns: u64| Duration::from_nanos(ns).as_secs_f64();
        let age = (state.heartbeat_ns != 0).then(|| {
            Duration::from_nanos(
                u64::try_from(now.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(state.heartbeat_ns),
            )
        });
        HeartbeatRow {
            heartbeat_age_seconds: age.map(|a| a.as_secs_f64()),
            stale_after_seconds: seconds(state.stale_after_ns),
            yield_after_seconds: seconds(state.yield_after_ns),
            stale: age.is_some_and(|a| a > Duration::from_nanos(state.stale_after_ns)),
        }
    }
}

/// `responder stats`: what the pins say, whether or not an agent runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PinnedStats {
    pub interfaces: Vec<LinkRow>,
    pub totals: Totals,
    /// VIP keys the data plane has yielded, on any interface.
    pub yielded: usize,
    /// None when nothing is pinned as `agent` (an agent older than the gate).
    pub agent: Option<HeartbeatRow>,
}

/// Reads the link pins, the counters and the heartbeat under `pin_path`.
pub fn read_pinned_stats(pin_path: &Path) -> Result<PinnedStats, Error> {
    let counters_pinned = [PIN_VIP_COUNTERS, PIN_LEGACY_VIP_STATS]
        .iter()
        .any(|name| pin_path.join(name).exists());
    if !counters_pinned {
        return Err(Error::NothingPinned {
            path: pin_path.to_owned(),
        });
    }
    let counters = read_pinned_counters(pin_path)?;
    let mut totals = VipStats::default();
    counters.values().for_each(|s| totals.add(s));
    let yielded: Vec<VipKey> = read_pinned_vips_map(pin_path)?
        .into_iter()
        .filter(|(_, value)| value.flags & VIP_FLAG_YIELDED != 0)
        .map(|(key, _)| key)
        .collect();
    let read_error = |source| Error::Filesystem {
        action: "reading",
        path: pin_path.to_owned(),
        source,
    };
    let mut interfaces = Vec::new();
    for entry in fs::read_dir(pin_path).map_err(read_error)? {
        let file_name = entry.map_err(read_error)?.file_name();
        let Some(name) = file_name
            .to_string_lossy()
            .strip_prefix(PIN_LINK_PREFIX)
            .map(str::to_owned)
        else {
            continue;
        };
        let path = pin_path.join(&file_name);
        let link_error = |e: aya::programs::links::LinkError| Error::Filesystem {
            action: "reading link pin",
            path: path.clone(),
            source: io::Error::other(display_chain(&e)),
        };
        let info = FdLink::from(PinnedLink::from_pin(&path).map_err(link_error)?)
            .info()
            .map_err(link_error)?;
        let ifindex = nix::net::if_::if_nametoindex(name.as_str()).ok();
        let mut on_interface = VipStats::default();
        counters
            .iter()
            .filter(|(key, _)| Some(key.ifindex) == ifindex)
            .for_each(|(_, s)| on_interface.add(s));
        interfaces.push(LinkRow {
            yielded: yielded
                .iter()
                .filter(|key| Some(key.ifindex) == ifindex)
                .count(),
            interface: name,
            ifindex,
            link_id: info.id(),
            program_id: info.program_id(),
            counters: on_interface.into(),
        });
    }
    interfaces.sort_by(|a, b| a.interface.cmp(&b.interface));
    let agent = match pin_path.join(PIN_AGENT).exists() {
        true => {
            let map: Array<MapData, AgentState> =
                Array::try_from(open_pinned(pin_path, PIN_AGENT)?)
                    .map_err(|source| map_error("reading", PIN_AGENT, source))?;
            let state = map
                .get(&0, 0)
                .map_err(|source| map_error("reading", PIN_AGENT, source))?;
            Some(HeartbeatRow::new(&state, monotonic_now()))
        }
        false => None,
    };
    Ok(PinnedStats {
        interfaces,
        totals: totals.into(),
        yielded: yielded.len(),
        agent,
    })
}

/// Every entry of the pinned VIPS map.
pub(super) fn read_pinned_vips_map(pin_path: &Path) -> Result<Vec<(VipKey, VipValue)>, Error> {
    let vips: HashMap<MapData, VipKey, VipValue> =
        HashMap::try_from(open_pinned(pin_path, PIN_VIPS)?)
            .map_err(|source| map_error("reading", PIN_VIPS, source))?;
    vips.iter()
        .map(|entry| entry.map_err(|source| map_error("reading", PIN_VIPS, source)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::heartbeat::{agent_state, StaleGate};

    #[test]
    fn heartbeat_row_reports_age_and_staleness() {
        let state = agent_state(
            Duration::from_secs(100),
            StaleGate {
                stale_after: Duration::from_secs(3),
                yield_after: Duration::from_secs(1),
            },
        );
        let fresh = HeartbeatRow::new(&state, Duration::from_millis(101_500));
        assert_eq!(fresh.heartbeat_age_seconds, Some(1.5));
        assert!(!fresh.stale);
        assert_eq!(
            (fresh.stale_after_seconds, fresh.yield_after_seconds),
            (3.0, 1.0)
        );
        assert!(HeartbeatRow::new(&state, Duration::from_secs(104)).stale);
        let never = HeartbeatRow::new(&AgentState::default(), Duration::from_secs(104));
        assert_eq!(never.heartbeat_age_seconds, None);
        assert!(!never.stale, "no heartbeat: the gate is off");
    }
}
