//! Split-brain detection. The data plane counts, per VIP key, the packets in
//! which another MAC claimed the VIP; a counter that grew since the agent
//! last looked means another node answers for an address this one owns, and
//! is logged the second it is seen.
//!
//! It also names the other MAC (issue #22): each claim the data plane
//! reports through its ring buffer (at most one per VIP per second) becomes a
//! [`ClaimReport`], logged as one line with what the agent did about it, and
//! kept as the VIP's last claimant in [`Claimants`] for whoever reports on
//! the VIP (the Kubernetes Events among them).

use std::{
    collections::BTreeMap,
    fmt::{self, Display},
    net::IpAddr,
    sync::{Arc, Mutex},
};

use responder_common::{claims::MAX_CLAIMANTS, VipKey};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::{
    interface_names::InterfaceNames,
    netif::format_mac,
    vip::{key_addr, key_vlan},
};

/// What the agent did about a claim on one of its VIPs (see
/// `agent::core::defence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defence {
    /// Sent one announcement to take the address back.
    Defended,
    /// Defended less than `DEFEND_INTERVAL` ago: nothing sent now.
    DefendedRecently,
    /// The data plane had yielded the VIP while the agent was late; the agent
    /// re-asserted it.
    TookBack,
    /// The Kubernetes view is frozen: the VIP is yielded to the claimant
    /// until it recovers.
    Yielded,
    /// Yielded already (frozen view): nothing more to do.
    StillYielded,
    /// The VIP is no longer installed here.
    NotInstalled,
    /// The VIP's state could not be read; nothing was done.
    Failed,
}

impl Display for Defence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Defence::Defended => "defended",
            Defence::DefendedRecently => "defended recently",
            Defence::TookBack => "took back",
            Defence::Yielded => "yielded",
            Defence::StillYielded => "still yielded",
            Defence::NotInstalled => "not installed",
            Defence::Failed => "failed",
        })
    }
}

/// One claim the data plane reported: another MAC announced `ip` on the
/// interface and VLAN stack of `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimReport {
    pub key: VipKey,
    pub ip: IpAddr,
    /// The claimant's MAC.
    pub mac: [u8; 6],
    /// The interface by name (`#<ifindex>` when unknown).
    pub interface: String,
    pub defence: Defence,
    /// When the agent read the report.
    pub seen: Instant,
}

impl ClaimReport {
    pub(crate) fn new(
        key: VipKey,
        mac: [u8; 6],
        names: &InterfaceNames,
        defence: Defence,
        seen: Instant,
    ) -> Self {
        ClaimReport {
            key,
            ip: key_addr(&key),
            mac,
            interface: names.name_of(key.ifindex).into_owned(),
            defence,
            seen,
        }
    }

    /// The claimant as `aa:bb:cc:dd:ee:ff`.
    pub fn claimant(&self) -> String {
        format_mac(&self.mac)
    }

    /// One sentence for a Kubernetes Event or a status line: which MAC
    /// claimed the address where, and what this node did.
    pub fn summary(&self) -> String {
        let vlan = key_vlan(&self.key);
        let vlan = match vlan.is_tagged() {
            true => format!(" VLAN {vlan}"),
            false => String::new(),
        };
        format!(
            "{} claimed {} on {}{vlan}; this node {}",
            self.claimant(),
            self.ip,
            self.interface,
            self.defence
        )
    }

    /// Logs the report as one line: VIP, claimant, interface, VLAN, the
    /// Service if known, and what the agent did.
    pub(crate) fn log(&self, service: Option<&str>) {
        tracing::warn!(
            ip = %self.ip,
            claimant = %self.claimant(),
            interface = %self.interface,
            vlan = %key_vlan(&self.key),
            service = service.unwrap_or(""),
            action = %self.defence,
            "another MAC claims a VIP this node answers for"
        );
    }
}

/// The last claimant of each VIP key, shared: the agent records, others
/// read, and whoever subscribed (the Kubernetes Event writer) hears of each
/// report. Holds at most `MAX_CLAIMANTS` keys, as the data plane's map does;
/// past that the oldest report goes.
#[derive(Clone, Debug)]
pub struct Claimants {
    last: Arc<Mutex<BTreeMap<VipKey, ClaimReport>>>,
    told: broadcast::Sender<ClaimReport>,
}

/// Reports a subscriber may fall behind by before it misses some: the data
/// plane reports a VIP at most once a second, so this is a burst of claims
/// on as many VIPs at once.
const TOLD_BACKLOG: usize = 256;

impl Default for Claimants {
    fn default() -> Self {
        Claimants {
            last: Arc::default(),
            told: broadcast::channel(TOLD_BACKLOG).0,
        }
    }
}

impl Claimants {
    pub(crate) fn record(&self, report: ClaimReport) {
        // Nobody subscribed (no Kubernetes source) is no error.
        let _ = self.told.send(report.clone());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(report.key, report);
        if last.len() > MAX_CLAIMANTS {
            if let Some(oldest) = last.values().min_by_key(|r| r.seen).map(|r| r.key) {
                last.remove(&oldest);
            }
        }
    }

    /// Each report recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClaimReport> {
        self.told.subscribe()
    }

    /// The last claim on `key`.
    pub fn last_for_key(&self, key: &VipKey) -> Option<ClaimReport> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.get(key).cloned()
    }

    /// The latest claim on `ip`, whatever the interface or VLAN: what a
    /// Service's Event names.
    pub fn last_for_ip(&self, ip: IpAddr) -> Option<ClaimReport> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.values()
            .filter(|r| r.ip == ip)
            .max_by_key(|r| r.seen)
            .cloned()
    }
}

/// The conflict counter of every VIP key at one moment.
pub(crate) type ConflictCounts = BTreeMap<VipKey, u64>;

/// A VIP key whose conflict counter grew between two looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConflictGrowth {
    pub key: VipKey,
    /// Conflicts since the previous look.
    pub(crate) delta: u64,
    /// The counter now.
    pub(crate) total: u64,
}

/// The keys whose counter grew from `previous` to `current`, in key order.
///
/// A key missing from `previous` counts from zero: counters are created
/// zeroed when a VIP is installed. A smaller value than before means the key
/// was removed and re-added in between, so its counter restarted from zero.
pub(crate) fn conflict_growth(
    previous: &ConflictCounts,
    current: &ConflictCounts,
) -> Vec<ConflictGrowth> {
    current
        .iter()
        .filter_map(|(key, &total)| {
            let before = previous.get(key).copied().unwrap_or(0);
            let delta = if total >= before {
                total - before
            } else {
                total
            };
            (delta > 0).then_some(ConflictGrowth {
                key: *key,
                delta,
                total,
            })
        })
        .collect()
}

/// [`conflict_growth`], with one warning per grown key, naming interfaces
/// from `names`.
pub(crate) fn warn_on_new_conflicts<S: Display>(
    previous: &ConflictCounts,
    current: &ConflictCounts,
    names: &InterfaceNames,
    service_of: impl Fn(&VipKey) -> Option<S>,
) -> Vec<ConflictGrowth> {
    let growth = conflict_growth(previous, current);
    for grown in &growth {
        let service = service_of(&grown.key).map(|s| s.to_string());
        tracing::warn!(
            ip = %key_addr(&grown.key),
            interface = %names.name_of(grown.key.ifindex),
            vlan = %key_vlan(&grown.key),
            service = service.as_deref().unwrap_or(""),
            delta = grown.delta,
            total = grown.total,
            "another MAC claimed a VIP this node answers for (split brain?)"
        );
    }
    growth
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        net::IpAddr,
        sync::{Arc, Mutex},
    };

    use super::*;

    fn key(ip: &str, ifindex: u32, vlan: u16) -> VipKey {
        match ip.parse().expect("ip") {
            IpAddr::V4(a) => VipKey::v4(ifindex, vlan, 0, a.octets()),
            IpAddr::V6(a) => VipKey::v6(ifindex, vlan, 0, a.octets()),
        }
    }

    fn counts(entries: &[(VipKey, u64)]) -> ConflictCounts {
        entries.iter().copied().collect()
    }

    #[test]
    fn conflict_growth_is_per_vip_key_and_survives_counter_resets() {
        let untagged = key("192.0.2.1", 2, 0);
        let tagged = key("192.0.2.1", 2, 100);
        let readded = key("192.0.2.2", 2, 0);
        let new_v6 = key("2001:db8::1", 3, 0);
        let quiet_v6 = key("2001:db8::2", 3, 0);
        let previous = counts(&[(untagged, 2), (tagged, 5), (readded, 4)]);
        let current = counts(&[
            // Unchanged: nothing to say.
            (untagged, 2),
            // Same address, other VLAN: its own counter.
            (tagged, 8),
            // Re-added in between: the counter restarted.
            (readded, 1),
            // New VIP: counts from zero.
            (new_v6, 3),
            (quiet_v6, 0),
        ]);
        let grown: Vec<(VipKey, u64, u64)> = conflict_growth(&previous, &current)
            .into_iter()
            .map(|g| (g.key, g.delta, g.total))
            .collect();
        assert_eq!(
            grown,
            [(readded, 1, 1), (tagged, 3, 8), (new_v6, 3, 3)],
            "in key order: ifindex, then VLAN, then address"
        );
        assert!(conflict_growth(&current, &current).is_empty());
        assert!(conflict_growth(&current, &ConflictCounts::new()).is_empty());
    }

    /// Collects what a fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn report(ip: &str, ifindex: u32, mac: u8, seen: Instant) -> ClaimReport {
        let names: InterfaceNames = [(2, "eth0".to_owned())].into_iter().collect();
        ClaimReport::new(
            key(ip, ifindex, 0),
            [2, 0, 0, 0, 0, mac],
            &names,
            Defence::Defended,
            seen,
        )
    }

    #[test]
    fn a_claim_report_names_the_mac_interface_and_action() {
        let names: InterfaceNames = [(2, "eth0".to_owned())].into_iter().collect();
        let now = Instant::now();
        let tagged = ClaimReport::new(
            key("192.0.2.10", 2, 100),
            [2, 0, 0, 0, 0, 0xb],
            &names,
            Defence::Yielded,
            now,
        );
        assert_eq!(tagged.claimant(), "02:00:00:00:00:0b");
        assert_eq!(
            tagged.summary(),
            "02:00:00:00:00:0b claimed 192.0.2.10 on eth0 VLAN 100; this node yielded"
        );
        let unknown = ClaimReport::new(
            key("2001:db8::1", u32::MAX, 0),
            [2, 0, 0, 0, 0, 2],
            &names,
            Defence::DefendedRecently,
            now,
        );
        assert_eq!(
            unknown.summary(),
            "02:00:00:00:00:02 claimed 2001:db8::1 on #4294967295; this node defended recently"
        );
    }

    #[test]
    fn claimants_keep_the_last_per_key_and_the_latest_per_ip() {
        let claimants = Claimants::default();
        let t0 = Instant::now();
        let later = |s| t0 + std::time::Duration::from_secs(s);
        claimants.record(report("192.0.2.10", 2, 1, t0));
        claimants.record(report("192.0.2.10", 3, 2, later(1)));
        claimants.record(report("192.0.2.10", 2, 3, later(2)));
        let on_eth0 = claimants
            .last_for_key(&key("192.0.2.10", 2, 0))
            .expect("eth0");
        assert_eq!(on_eth0.mac, [2, 0, 0, 0, 0, 3]);
        let latest = claimants
            .last_for_ip("192.0.2.10".parse().expect("ip"))
            .expect("claimed");
        assert_eq!(latest.mac, [2, 0, 0, 0, 0, 3]);
        assert!(claimants
            .last_for_ip("192.0.2.11".parse().expect("ip"))
            .is_none());
    }

    #[test]
    fn claimants_are_bounded_and_forget_the_oldest() {
        let claimants = Claimants::default();
        let t0 = Instant::now();
        for i in 0..=MAX_CLAIMANTS as u32 {
            let ip = std::net::Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i)).to_string();
            let seen = t0 + std::time::Duration::from_millis(u64::from(i));
            claimants.record(report(&ip, 2, 1, seen));
        }
        assert_eq!(claimants.last.lock().expect("lock").len(), MAX_CLAIMANTS);
        assert!(claimants.last_for_key(&key("2001:db8::", 2, 0)).is_none());
        assert!(claimants.last_for_key(&key("2001:db8::1", 2, 0)).is_some());
    }

    #[test]
    fn a_claim_report_is_logged_as_one_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let claim = report("192.0.2.10", 2, 0xb, Instant::now());
        tracing::subscriber::with_default(subscriber, || claim.log(Some("default/web")));
        let log = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("UTF-8");
        assert_eq!(log.lines().count(), 1, "{log}");
        for field in [
            "WARN",
            "ip=192.0.2.10",
            "claimant=02:00:00:00:00:0b",
            "interface=eth0",
            "vlan=-",
            "service=\"default/web\"",
            "action=defended",
        ] {
            assert!(log.contains(field), "{field} missing: {log}");
        }
    }

    #[test]
    fn warns_once_per_grown_key_with_its_labels() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // Interfaces that cannot exist: named by placeholder.
        let v4 = key("198.51.100.7", u32::MAX - 1, 42);
        let v6 = key("2001:db8::7", u32::MAX, 0);
        let previous = counts(&[(v4, 1)]);
        let current = counts(&[(v4, 4), (v6, 2)]);
        let grown = tracing::subscriber::with_default(subscriber, || {
            warn_on_new_conflicts(&previous, &current, &InterfaceNames::default(), |key| {
                (*key == v4).then_some("default/web")
            })
        });
        assert_eq!(grown.len(), 2);
        let log = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("UTF-8");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        for (line, expected) in lines.iter().zip([
            [
                "ip=198.51.100.7",
                "interface=#4294967294",
                "vlan=42",
                "service=\"default/web\"",
                "delta=3",
                "total=4",
            ],
            [
                "ip=2001:db8::7",
                "interface=#4294967295",
                "vlan=-",
                "service=\"\"",
                "delta=2",
                "total=2",
            ],
        ]) {
            assert!(line.contains("WARN"), "{line}");
            for field in expected {
                assert!(line.contains(field), "{field} missing: {line}");
            }
        }
    }
}
