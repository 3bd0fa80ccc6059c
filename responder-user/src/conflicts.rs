//! Split-brain detection. The data plane counts, per VIP key, the packets in
//! which another MAC claimed the VIP; a counter that grew since the agent
//! last looked means another node answers for an address this one owns, and
//! is logged the second it is seen.

use std::{collections::BTreeMap, fmt::Display};

use responder_common::VipKey;

use crate::{
    interface_names::InterfaceNames,
    vip::{key_addr, key_vlan},
};

/// The conflict counter of every VIP key at one moment.
pub(crate) type ConflictCounts = BTreeMap<VipKey, u64>;

/// A VIP key whose conflict counter grew between two looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConflictGrowth {
    pub(crate) key: VipKey,
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
