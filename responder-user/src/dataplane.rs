//! Reconciliation of the desired VIPs into the data-plane maps.
//!
//! Every source (command line, `--vip-file`, later Kubernetes) produces a set
//! of [`VipSpec`]s; [`DesiredVips`] keeps the latest set per source and their
//! union is handed to [`Dataplane::apply`], which diffs it against what is
//! installed: new keys are inserted and then announced, keys no longer wanted
//! are removed at once. Applying the same set twice changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use responder_common::{VipKey, VipValue};

use crate::{
    announce::Announce,
    error::{Error, VipError},
    netif::Interface,
    vip::{self, key_addr, key_vlan, VipSpec},
};

/// Write access to the VIPS and VIP_STATS maps; a trait so reconciliation is
/// testable without a kernel.
pub trait VipMap {
    /// Inserts or overwrites `key`, with zeroed counters if it is new.
    fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error>;
    /// Removes `key` and its counters; removing an absent key succeeds.
    fn remove(&mut self, key: &VipKey) -> Result<(), Error>;
}

/// The latest VIP set of each source.
#[derive(Debug, Default)]
pub struct DesiredVips {
    sources: BTreeMap<String, BTreeSet<VipSpec>>,
}

impl DesiredVips {
    /// Replaces the set of `source`; returns whether it changed.
    pub fn set(&mut self, source: &str, vips: BTreeSet<VipSpec>) -> bool {
        if self.sources.get(source) == Some(&vips) {
            return false;
        }
        self.sources.insert(source.to_owned(), vips);
        true
    }

    /// Every VIP any source wants.
    pub fn union(&self) -> BTreeSet<VipSpec> {
        self.sources.values().flatten().cloned().collect()
    }
}

/// What one [`Dataplane::apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub added: usize,
    /// Keys whose value (the interface MAC) changed; re-announced.
    pub updated: usize,
    pub removed: usize,
    /// Specs skipped because they do not fit the attached interfaces.
    pub rejected: usize,
    /// Map operations that failed; retried by the next apply.
    pub failed: usize,
}

pub struct Dataplane<M, A> {
    interfaces: Vec<Interface>,
    map: M,
    announcer: A,
    installed: BTreeMap<VipKey, VipValue>,
}

impl<M: VipMap, A: Announce> Dataplane<M, A> {
    /// `map` must start empty (the agent refuses to reuse pins).
    pub fn new(interfaces: Vec<Interface>, map: M, announcer: A) -> Self {
        Dataplane {
            interfaces,
            map,
            announcer,
            installed: BTreeMap::new(),
        }
    }

    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    pub fn installed(&self) -> &BTreeMap<VipKey, VipValue> {
        &self.installed
    }

    /// Checks `spec` against the attached interfaces (see [`vip::validate`]).
    pub fn validate(&self, spec: &VipSpec) -> Result<(), VipError> {
        vip::validate(spec, &self.interfaces)
    }

    /// Makes the maps hold exactly the keys of `desired`. Invalid specs are
    /// logged and skipped so one bad dynamic VIP cannot block the others;
    /// callers that must not lose anything validate first.
    pub fn apply(&mut self, desired: &BTreeSet<VipSpec>) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut wanted = BTreeMap::new();
        for spec in desired {
            match self.validate(spec) {
                Ok(()) => wanted.extend(vip::expand(spec, &self.interfaces)),
                Err(e) => {
                    tracing::error!("skipping VIP: {e}");
                    report.rejected += 1;
                }
            }
        }

        let gone: Vec<VipKey> = self
            .installed
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.announcer.withdraw(&key);
            match self.map.remove(&key) {
                Ok(()) => {
                    self.installed.remove(&key);
                    report.removed += 1;
                    tracing::info!(addr = %key_addr(&key), interface = self.name_of(key.ifindex), vlan = %key_vlan(&key), "VIP removed");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::error!(addr = %key_addr(&key), "removing VIP: {e}");
                }
            }
        }

        for (key, value) in wanted {
            let previous = self.installed.get(&key).copied();
            if previous == Some(value) {
                continue;
            }
            if let Err(e) = self.map.insert(&key, &value) {
                report.failed += 1;
                tracing::error!(addr = %key_addr(&key), "installing VIP: {e}");
                continue;
            }
            self.installed.insert(key, value);
            if previous.is_some() {
                report.updated += 1;
            } else {
                report.added += 1;
            }
            tracing::info!(addr = %key_addr(&key), interface = self.name_of(key.ifindex), vlan = %key_vlan(&key), "VIP installed");
            self.announcer.announce(key, value.mac);
        }
        report
    }

    /// Removes every installed VIP (shutdown).
    pub fn clear(&mut self) -> ApplyReport {
        self.apply(&BTreeSet::new())
    }

    fn name_of(&self, ifindex: u32) -> &str {
        self.interfaces
            .iter()
            .find(|i| i.ifindex == ifindex)
            .map_or("?", |i| i.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[derive(Default)]
    struct FakeMap {
        entries: BTreeMap<VipKey, VipValue>,
        fail_inserts: bool,
        fail_removes: bool,
        writes: usize,
    }

    impl VipMap for FakeMap {
        fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error> {
            if self.fail_inserts {
                return Err(Error::UnknownInterface("injected insert failure".into()));
            }
            self.writes += 1;
            self.entries.insert(*key, *value);
            Ok(())
        }

        fn remove(&mut self, key: &VipKey) -> Result<(), Error> {
            if self.fail_removes {
                return Err(Error::UnknownInterface("injected remove failure".into()));
            }
            self.writes += 1;
            self.entries.remove(key);
            Ok(())
        }
    }

    #[derive(Default)]
    struct FakeAnnouncer {
        announced: Vec<(VipKey, [u8; 6])>,
        withdrawn: Vec<VipKey>,
    }

    impl Announce for FakeAnnouncer {
        fn announce(&mut self, key: VipKey, mac: [u8; 6]) {
            self.announced.push((key, mac));
        }

        fn withdraw(&mut self, key: &VipKey) {
            self.withdrawn.push(*key);
        }
    }

    const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn dataplane() -> Dataplane<FakeMap, FakeAnnouncer> {
        let interfaces = vec![
            Interface {
                name: "eth0".into(),
                ifindex: 2,
                mac: MAC0,
                up: true,
                addrs: vec!["198.51.100.1".parse().expect("addr")],
            },
            Interface {
                name: "eth1".into(),
                ifindex: 3,
                mac: MAC1,
                up: true,
                addrs: vec![],
            },
        ];
        Dataplane::new(interfaces, FakeMap::default(), FakeAnnouncer::default())
    }

    fn set(specs: &[&str]) -> BTreeSet<VipSpec> {
        specs
            .iter()
            .map(|s| s.parse().expect("test spec"))
            .collect()
    }

    fn v4(ifindex: u32, outer: u16, inner: u16, last: u8) -> VipKey {
        VipKey::v4(ifindex, outer, inner, [192, 0, 2, last])
    }

    fn value(mac: [u8; 6]) -> VipValue {
        VipValue {
            mac,
            ..Default::default()
        }
    }

    #[test]
    fn inserts_expanded_keys_and_announces_them() {
        let mut dp = dataplane();
        let report = dp.apply(&set(&["192.0.2.10", "192.0.2.11@eth1.100.200"]));
        assert_eq!(
            report,
            ApplyReport {
                added: 3,
                ..Default::default()
            }
        );
        let expected: BTreeMap<VipKey, VipValue> = [
            (v4(2, 0, 0, 10), value(MAC0)),
            (v4(3, 0, 0, 10), value(MAC1)),
            (v4(3, 100, 200, 11), value(MAC1)),
        ]
        .into();
        assert_eq!(dp.map.entries, expected);
        assert_eq!(dp.installed(), &expected);
        assert_eq!(
            dp.announcer.announced,
            vec![
                (v4(2, 0, 0, 10), MAC0),
                (v4(3, 0, 0, 10), MAC1),
                (v4(3, 100, 200, 11), MAC1)
            ]
        );
    }

    #[test]
    fn applying_the_same_set_twice_changes_nothing() {
        let mut dp = dataplane();
        let desired = set(&["192.0.2.10", "2001:db8::10@*.7"]);
        dp.apply(&desired);
        let writes = dp.map.writes;
        let announced = dp.announcer.announced.len();
        assert_eq!(dp.apply(&desired), ApplyReport::default());
        assert_eq!(dp.map.writes, writes, "no map writes on a no-op apply");
        assert_eq!(
            dp.announcer.announced.len(),
            announced,
            "no re-announcement"
        );
    }

    #[test]
    fn removes_gone_keys_and_keeps_the_rest() {
        let mut dp = dataplane();
        dp.apply(&set(&["192.0.2.10", "192.0.2.11@eth0"]));
        dp.announcer.announced.clear();
        let report = dp.apply(&set(&["192.0.2.10@eth1", "192.0.2.12@eth0.5"]));
        assert_eq!(
            report,
            ApplyReport {
                added: 1,
                removed: 2,
                ..Default::default()
            }
        );
        let keys: Vec<VipKey> = dp.map.entries.keys().copied().collect();
        assert_eq!(keys, vec![v4(2, 5, 0, 12), v4(3, 0, 0, 10)]);
        assert_eq!(
            dp.announcer.withdrawn,
            vec![v4(2, 0, 0, 10), v4(2, 0, 0, 11)]
        );
        assert_eq!(dp.announcer.announced, vec![(v4(2, 5, 0, 12), MAC0)]);
    }

    #[test]
    fn overlapping_specs_install_one_key() {
        let mut dp = dataplane();
        let report = dp.apply(&set(&["192.0.2.10", "192.0.2.10@eth0", "192.0.2.10@*"]));
        assert_eq!(report.added, 2);
        assert_eq!(dp.map.entries.len(), 2);
    }

    #[test]
    fn invalid_specs_are_skipped_not_fatal() {
        let mut dp = dataplane();
        let report = dp.apply(&set(&[
            "192.0.2.10@eth9",
            "198.51.100.1",
            "192.0.2.11@eth1",
        ]));
        assert_eq!(
            report,
            ApplyReport {
                added: 1,
                rejected: 2,
                ..Default::default()
            }
        );
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(3, 0, 0, 11)]
        );
    }

    #[test]
    fn failed_writes_are_retried_by_the_next_apply() {
        let mut dp = dataplane();
        dp.map.fail_inserts = true;
        let desired = set(&["192.0.2.10@eth0"]);
        assert_eq!(
            dp.apply(&desired),
            ApplyReport {
                failed: 1,
                ..Default::default()
            }
        );
        assert!(dp.installed().is_empty());
        assert!(
            dp.announcer.announced.is_empty(),
            "nothing announced before it is installed"
        );
        dp.map.fail_inserts = false;
        assert_eq!(dp.apply(&desired).added, 1);

        dp.map.fail_removes = true;
        assert_eq!(
            dp.clear(),
            ApplyReport {
                failed: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            dp.installed().len(),
            1,
            "a key that could not be removed stays tracked"
        );
        dp.map.fail_removes = false;
        assert_eq!(dp.clear().removed, 1);
        assert!(dp.map.entries.is_empty());
    }

    #[test]
    fn changed_mac_is_rewritten_and_reannounced() {
        let mut dp = dataplane();
        let desired = set(&["192.0.2.10@eth1"]);
        dp.apply(&desired);
        dp.interfaces[1].mac = [2, 0, 0, 0, 0, 0xc];
        assert_eq!(
            dp.apply(&desired),
            ApplyReport {
                updated: 1,
                ..Default::default()
            }
        );
        assert_eq!(dp.map.entries[&v4(3, 0, 0, 10)].mac, [2, 0, 0, 0, 0, 0xc]);
        assert_eq!(
            dp.announcer.announced.last(),
            Some(&(v4(3, 0, 0, 10), [2, 0, 0, 0, 0, 0xc]))
        );
    }

    #[test]
    fn desired_vips_is_the_union_of_sources() {
        let mut desired = DesiredVips::default();
        assert!(desired.set("cli", set(&["192.0.2.10"])));
        assert!(desired.set("file", set(&["192.0.2.10", "192.0.2.11@eth0"])));
        assert!(
            !desired.set("file", set(&["192.0.2.11@eth0", "192.0.2.10"])),
            "same set is no change"
        );
        assert_eq!(desired.union(), set(&["192.0.2.10", "192.0.2.11@eth0"]));
        assert!(desired.set("file", BTreeSet::new()));
        assert_eq!(desired.union(), set(&["192.0.2.10"]));
    }
}
