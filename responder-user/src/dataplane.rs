//! Reconciliation of the desired VIPs into the data-plane maps.
//!
//! Every source (command line, `--vip-file`, Kubernetes) produces a set
//! of [`VipSpec`]s; `sources::DesiredVips` keeps the latest set per source and
//! their union is handed to [`Dataplane::apply`], which diffs it against what is
//! installed: new keys are inserted and then announced, keys no longer wanted
//! are removed at once. Applying the same set twice changes nothing. When the
//! attached interfaces change, [`Dataplane::set_interfaces`] re-expands the
//! same set onto the new ones.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use responder_common::{VipKey, VipValue, VIP_FLAG_YIELDED};

use crate::{
    error::{display_chain, Error},
    garp::{Announce, Rounds},
    netif::Interface,
    vip::{self, key_addr, key_vlan, Placement, VipSpec},
};

/// Write access to the VIPS map and its counters; a trait so reconciliation is
/// testable without a kernel.
pub(crate) trait VipMap {
    /// Inserts or overwrites `key`, with zeroed counters if it is new.
    fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error>;
    /// Removes `key` and its counters; removing an absent key succeeds.
    fn remove(&mut self, key: &VipKey) -> Result<(), Error>;
    /// The `VIP_FLAG_*` bits of `key` as the data plane left them (it sets
    /// [`VIP_FLAG_YIELDED`] on its own); 0 for an absent key.
    fn flags(&self, key: &VipKey) -> Result<u32, Error>;
}

/// What one [`Dataplane::apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ApplyReport {
    pub added: usize,
    /// Keys whose value (the interface MAC) changed; re-announced.
    pub updated: usize,
    pub removed: usize,
    /// Specs skipped because they do not fit the attached interfaces.
    pub rejected: usize,
    /// Map operations that failed; retried by the next apply or
    /// [`Dataplane::retry_failed`].
    pub failed: usize,
    /// (VIP, interface) pairs left out because the interface's kernel has the
    /// VIP's IP family disabled; installed once it is enabled.
    pub family_disabled: usize,
}

pub(crate) struct Dataplane<M, A> {
    interfaces: Vec<Interface>,
    map: M,
    announcer: A,
    desired: BTreeSet<VipSpec>,
    installed: BTreeMap<VipKey, VipValue>,
    /// Keys no longer wanted stay installed while set: after adopting a
    /// previous agent's VIPs, until the sources that may still want them
    /// have spoken.
    hold_removals: bool,
    /// Map operations the last reconcile could not do.
    failed: usize,
    /// (VIP, interface name) pairs left out for a disabled IP family, to warn
    /// once per pair rather than on every reconcile.
    family_disabled: BTreeSet<(IpAddr, String)>,
    /// Installed keys known to be yielded (by the agent, or by the data
    /// plane as last read).
    yielded: BTreeSet<VipKey>,
    /// On-link VIPs answered everywhere for want of a subnet, to warn once.
    off_link: BTreeSet<IpAddr>,
    /// Keys the last reconcile announced, for callers that re-assert right
    /// after it and need not restart their bursts.
    just_announced: BTreeSet<VipKey>,
}

impl<M: VipMap, A: Announce> Dataplane<M, A> {
    /// `map` must start empty, or hold exactly what [`Dataplane::adopt`]
    /// is told.
    pub(crate) fn new(interfaces: Vec<Interface>, map: M, mut announcer: A) -> Self {
        announcer.set_interfaces(&interfaces);
        Dataplane {
            interfaces,
            map,
            announcer,
            desired: BTreeSet::new(),
            installed: BTreeMap::new(),
            hold_removals: false,
            failed: 0,
            family_disabled: BTreeSet::new(),
            yielded: BTreeSet::new(),
            just_announced: BTreeSet::new(),
            off_link: BTreeSet::new(),
        }
    }

    /// Starts from entries already in the map (copied from a previous
    /// agent): the next reconcile keeps, without rewriting or re-announcing,
    /// those still wanted and removes the others.
    pub(crate) fn adopt(&mut self, installed: BTreeMap<VipKey, VipValue>) {
        self.installed = installed;
    }

    /// From now on keys no longer wanted are kept (fail-static) until
    /// [`Dataplane::release_removals`].
    pub(crate) fn hold_removals(&mut self) {
        self.hold_removals = true;
    }

    /// Removes, at once, the keys held since [`Dataplane::hold_removals`]
    /// that are still not wanted.
    pub(crate) fn release_removals(&mut self) -> ApplyReport {
        self.hold_removals = false;
        self.reconcile(&[])
    }

    #[cfg(test)]
    pub(crate) fn map(&self) -> &M {
        &self.map
    }

    #[cfg(test)]
    pub(crate) fn map_mut(&mut self) -> &mut M {
        &mut self.map
    }

    #[cfg(test)]
    pub(crate) fn announcer(&self) -> &A {
        &self.announcer
    }

    #[cfg(test)]
    pub(crate) fn announcer_mut(&mut self) -> &mut A {
        &mut self.announcer
    }

    pub(crate) fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    pub(crate) fn installed(&self) -> &BTreeMap<VipKey, VipValue> {
        &self.installed
    }

    /// Makes the maps hold exactly the keys of `desired` on the current
    /// interfaces. Invalid specs are logged and skipped so one bad dynamic VIP
    /// cannot block the others; callers that must not lose anything validate
    /// first. A spec scoped to an interface that is not attached right now
    /// waits, silently, until it is.
    pub(crate) fn apply(&mut self, desired: &BTreeSet<VipSpec>) -> ApplyReport {
        self.desired = desired.clone();
        self.reconcile(&[])
    }

    /// Replaces the attached interfaces and re-expands the last desired set
    /// onto them: keys of interfaces that left are removed, keys of new ones
    /// installed and announced, keys whose interface changed its MAC rewritten.
    pub(crate) fn set_interfaces(&mut self, interfaces: Vec<Interface>) -> ApplyReport {
        self.announcer.set_interfaces(&interfaces);
        let previous = std::mem::replace(&mut self.interfaces, interfaces);
        self.reconcile(&previous)
    }

    /// Reconciles again when the last reconcile left map operations undone
    /// (e.g. ENOMEM in a burst of inserts): sources only speak when their
    /// set changes, so without this a failed key would wait for an unrelated
    /// change.
    pub(crate) fn retry_failed(&mut self) -> Option<ApplyReport> {
        (self.failed > 0).then(|| self.reconcile(&[]))
    }

    /// Re-reads, with `ipv6_enabled`, whether each interface handles IPv6,
    /// and reconciles when that changed: turning `disable_ipv6` on or off
    /// sends no netlink event for an interface without IPv6 addresses.
    pub(crate) fn refresh_ipv6(
        &mut self,
        ipv6_enabled: impl Fn(&str) -> bool,
    ) -> Option<ApplyReport> {
        let mut changed = false;
        for interface in &mut self.interfaces {
            let now = ipv6_enabled(&interface.name);
            if interface.ipv6 != now {
                tracing::info!(interface = %interface.name, enabled = now, "IPv6 state of the interface changed");
                interface.ipv6 = now;
                changed = true;
            }
        }
        changed.then(|| self.reconcile(&[]))
    }

    /// Removes every installed VIP (shutdown).
    pub(crate) fn clear(&mut self) -> ApplyReport {
        self.apply(&BTreeSet::new())
    }

    /// `previous` names the keys of interfaces that just left, for the log.
    fn reconcile(&mut self, previous: &[Interface]) -> ApplyReport {
        let mut report = ApplyReport::default();
        self.just_announced.clear();
        let mut wanted = BTreeMap::new();
        let mut family_disabled = BTreeSet::new();
        let mut off_link = BTreeSet::new();
        for spec in &self.desired {
            let dormant = match &spec.scope.placement {
                Placement::Interface(name) => !self.interfaces.iter().any(|i| &i.name == name),
                _ => false,
            };
            if dormant {
                continue;
            }
            match vip::validate(spec, &self.interfaces) {
                Ok(()) => {
                    if vip::placed_off_link(spec, &self.interfaces) {
                        off_link.insert(spec.addr);
                    }
                    wanted.extend(vip::expand(spec, &self.interfaces));
                    family_disabled.extend(
                        vip::family_disabled_on(spec, &self.interfaces)
                            .map(|i| (spec.addr, i.name.clone())),
                    );
                }
                Err(e) => {
                    tracing::error!("skipping VIP: {e}");
                    report.rejected += 1;
                }
            }
        }

        for (addr, interface) in family_disabled.difference(&self.family_disabled) {
            tracing::warn!(
                %addr,
                interface,
                "not answering for VIP on this interface: IPv6 is disabled there \
                 (net.ipv6.conf.{interface}.disable_ipv6), so the node would drop the traffic \
                 it draws; answered once IPv6 is enabled"
            );
        }
        report.family_disabled = family_disabled.len();
        self.family_disabled = family_disabled;
        // One line per change, not per VIP: ten thousand Services on an
        // interface without addresses are one misconfiguration.
        let newly_off_link: Vec<_> = off_link.difference(&self.off_link).collect();
        if !newly_off_link.is_empty() {
            const SHOWN: usize = 5;
            let shown: Vec<String> = newly_off_link
                .iter()
                .take(SHOWN)
                .map(ToString::to_string)
                .collect();
            tracing::warn!(
                count = newly_off_link.len(),
                vips = %shown.join(", "),
                more = newly_off_link.len().saturating_sub(SHOWN),
                "no attached interface has an address in a subnet containing these VIPs; \
                 answering for them on every attached interface"
            );
        }
        self.off_link = off_link;

        let gone: Vec<VipKey> = self
            .installed
            .keys()
            .filter(|k| !self.hold_removals && !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.announcer.withdraw(&key);
            let interface = self.name_of(key.ifindex, previous).to_owned();
            match self.map.remove(&key) {
                Ok(()) => {
                    self.installed.remove(&key);
                    self.yielded.remove(&key);
                    report.removed += 1;
                    tracing::info!(addr = %key_addr(&key), interface, vlan = %key_vlan(&key), "VIP removed");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::error!(addr = %key_addr(&key), interface, "removing VIP: {}", display_chain(&e));
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
                tracing::error!(addr = %key_addr(&key), "installing VIP: {}", display_chain(&e));
                continue;
            }
            self.installed.insert(key, value);
            if previous.is_some() {
                report.updated += 1;
            } else {
                report.added += 1;
            }
            tracing::info!(addr = %key_addr(&key), interface = self.name_of(key.ifindex, &[]), vlan = %key_vlan(&key), "VIP installed");
            self.announcer.announce(key, value.mac, Rounds::Burst);
            self.just_announced.insert(key);
        }
        self.failed = report.failed;
        report
    }

    /// Re-asserts every installed key `which` selects: the
    /// value is written again (clearing a yield the data plane set) and a
    /// full announcement burst sent, whatever the map held. For VIPs this
    /// node gains or regains, whose neighbours may point elsewhere. Keys in
    /// `except` are left alone. Returns how many keys were re-asserted.
    pub(crate) fn reassert(
        &mut self,
        which: impl Fn(&VipKey) -> bool,
        except: &BTreeSet<VipKey>,
    ) -> usize {
        let keys: Vec<(VipKey, VipValue)> = self
            .installed
            .iter()
            .filter(|(key, _)| which(key) && !except.contains(key))
            .map(|(key, value)| (*key, *value))
            .collect();
        let mut reasserted = 0;
        for (key, value) in keys {
            if let Err(e) = self.map.insert(&key, &value) {
                self.failed += 1;
                tracing::error!(addr = %key_addr(&key), "re-asserting VIP: {}", display_chain(&e));
                continue;
            }
            self.announcer.announce(key, value.mac, Rounds::Burst);
            self.yielded.remove(&key);
            reasserted += 1;
        }
        reasserted
    }

    /// One announcement round for `key`, answering another MAC's claim.
    pub(crate) fn defend(&mut self, key: &VipKey) {
        if let Some(value) = self.installed.get(key) {
            self.announcer.announce(*key, value.mac, Rounds::Once);
        }
    }

    /// Makes the data plane stop answering for `key` (as it does itself
    /// when the agent's heartbeat is late), leaving it installed.
    pub(crate) fn yield_key(&mut self, key: &VipKey) -> Result<(), Error> {
        let Some(value) = self.installed.get(key) else {
            return Ok(());
        };
        let yielded = VipValue {
            flags: value.flags | VIP_FLAG_YIELDED,
            ..*value
        };
        self.announcer.withdraw(key);
        self.map.insert(key, &yielded)?;
        self.yielded.insert(*key);
        Ok(())
    }

    /// Whether the data plane currently refuses to answer for `key`.
    pub(crate) fn is_yielded(&mut self, key: &VipKey) -> Result<bool, Error> {
        let yielded = self.map.flags(key)? & VIP_FLAG_YIELDED != 0;
        match yielded {
            true => self.yielded.insert(*key),
            false => self.yielded.remove(key),
        };
        Ok(yielded)
    }

    /// The keys the last reconcile announced.
    pub(crate) fn just_announced(&self) -> &BTreeSet<VipKey> {
        &self.just_announced
    }

    /// How many installed keys are known to be yielded.
    /// The keys last known to be yielded to another MAC.
    pub(crate) fn yielded_keys(&self) -> &BTreeSet<VipKey> {
        &self.yielded
    }

    pub(crate) fn yielded_count(&self) -> usize {
        self.yielded.len()
    }

    fn name_of<'a>(&'a self, ifindex: u32, previous: &'a [Interface]) -> &'a str {
        self.interfaces
            .iter()
            .chain(previous)
            .find(|i| i.ifindex == ifindex)
            .map_or("?", |i| i.name.as_str())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::fakes::*;

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
        let report = dp.apply(&set(&["198.51.100.1", "192.0.2.11@eth1"]));
        assert_eq!(
            report,
            ApplyReport {
                added: 1,
                rejected: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(3, 0, 0, 11)]
        );
    }

    #[test]
    fn ipv6_vips_wait_on_interfaces_with_ipv6_disabled_and_the_rest_is_served() {
        let mut dp = dataplane();
        let mut eth1_without_ipv6 = eth1();
        eth1_without_ipv6.ipv6 = false;
        dp.set_interfaces(vec![eth0(), eth1_without_ipv6]);
        let report = dp.apply(&set(&["2001:db8::10", "192.0.2.10"]));
        assert_eq!(
            report,
            ApplyReport {
                added: 3,
                family_disabled: 1,
                ..Default::default()
            },
            "IPv4 on both, IPv6 on eth0 only"
        );
        let v6_on: Vec<u32> = dp
            .map
            .entries
            .keys()
            .filter(|k| k.family == responder_common::FAMILY_IPV6)
            .map(|k| k.ifindex)
            .collect();
        assert_eq!(v6_on, vec![2]);

        assert_eq!(dp.refresh_ipv6(|_| false).map(|r| r.removed), Some(1));
        assert_eq!(dp.refresh_ipv6(|_| false), None, "nothing changed");
        let report = dp.refresh_ipv6(|_| true).expect("IPv6 enabled on both");
        assert_eq!((report.added, report.family_disabled), (2, 0));
        assert_eq!(dp.map.entries.len(), 4);
    }

    #[test]
    fn spec_scoped_to_an_absent_interface_waits_for_it() {
        let mut dp = dataplane();
        assert_eq!(
            dp.apply(&set(&["192.0.2.10@eth9"])),
            ApplyReport::default(),
            "neither installed nor rejected"
        );
        let report = dp.set_interfaces(vec![eth0(), interface("eth9", 9, MAC1, &[])]);
        assert_eq!(report.added, 1);
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(9, 0, 0, 10)]
        );
    }

    #[test]
    fn interface_leaving_removes_its_keys_and_returning_reinstalls_them() {
        let mut dp = dataplane();
        dp.apply(&set(&["192.0.2.10", "192.0.2.11@eth1.7"]));
        dp.announcer.announced.clear();

        let report = dp.set_interfaces(vec![eth0()]);
        assert_eq!(
            report,
            ApplyReport {
                removed: 2,
                ..Default::default()
            }
        );
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(2, 0, 0, 10)]
        );
        assert_eq!(
            dp.announcer.withdrawn,
            vec![v4(3, 0, 0, 10), v4(3, 7, 0, 11)]
        );
        assert_eq!(dp.announcer.interfaces, vec![2]);

        // Recreated under a new ifindex: the same specs land on it again.
        let report = dp.set_interfaces(vec![eth0(), interface("eth1", 30, MAC1, &[])]);
        assert_eq!(report.added, 2);
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(2, 0, 0, 10), v4(30, 0, 0, 10), v4(30, 7, 0, 11)]
        );
        assert_eq!(
            dp.announcer.announced,
            vec![(v4(30, 0, 0, 10), MAC1), (v4(30, 7, 0, 11), MAC1)],
            "only the new keys are announced"
        );
        assert_eq!(dp.announcer.interfaces, vec![2, 30]);
        assert_eq!(
            dp.set_interfaces(vec![eth0(), interface("eth1", 30, MAC1, &[])]),
            ApplyReport::default(),
            "an unchanged interface set changes nothing"
        );
    }

    #[test]
    fn new_own_address_on_an_interface_withdraws_the_vip() {
        let mut dp = dataplane();
        dp.apply(&set(&["192.0.2.10"]));
        let report =
            dp.set_interfaces(vec![eth0(), interface("eth1", 3, MAC1, &["192.0.2.10/24"])]);
        assert_eq!(
            report,
            ApplyReport {
                removed: 2,
                rejected: 1,
                ..Default::default()
            }
        );
        assert!(dp.map.entries.is_empty());
    }

    #[test]
    fn clear_after_interfaces_left_removes_everything() {
        let mut dp = dataplane();
        dp.apply(&set(&["192.0.2.10"]));
        dp.set_interfaces(Vec::new());
        assert!(dp.map.entries.is_empty());
        assert_eq!(dp.clear(), ApplyReport::default());
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
    fn failed_writes_are_retried_without_a_new_desired_set() {
        let mut dp = dataplane();
        assert_eq!(dp.retry_failed(), None, "nothing to retry");
        dp.map.fail_inserts = true;
        dp.apply(&set(&["192.0.2.10@eth0"]));
        assert_eq!(
            dp.retry_failed().map(|r| r.failed),
            Some(1),
            "still failing"
        );
        dp.map.fail_inserts = false;
        assert_eq!(dp.retry_failed().map(|r| r.added), Some(1));
        assert_eq!(dp.retry_failed(), None, "done once it worked");
        assert_eq!(dp.map.entries.len(), 1);
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
    fn adopted_entries_still_wanted_are_kept_without_rewrite_and_others_removed() {
        let mut dp = dataplane();
        let adopted: BTreeMap<VipKey, VipValue> = [
            (v4(2, 0, 0, 10), value(MAC0)),
            (v4(2, 0, 0, 99), value(MAC0)),
        ]
        .into();
        dp.map.entries = adopted.clone();
        dp.adopt(adopted);
        let report = dp.apply(&set(&["192.0.2.10@eth0"]));
        assert_eq!(
            report,
            ApplyReport {
                removed: 1,
                ..Default::default()
            }
        );
        assert_eq!(dp.map.writes, 1, "only the removal touches the map");
        assert!(
            dp.announcer.announced.is_empty(),
            "kept VIPs are not re-announced"
        );
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(2, 0, 0, 10)]
        );
    }

    #[test]
    fn held_removals_wait_until_released() {
        let mut dp = dataplane();
        dp.apply(&set(&["192.0.2.10@eth0"]));
        dp.hold_removals();
        let report = dp.apply(&set(&["192.0.2.11@eth0"]));
        assert_eq!((report.added, report.removed), (1, 0));
        assert_eq!(dp.map.entries.len(), 2, "the unwanted key is held");
        let report = dp.release_removals();
        assert_eq!(report.removed, 1);
        assert_eq!(
            dp.map.entries.keys().copied().collect::<Vec<_>>(),
            vec![v4(2, 0, 0, 11)]
        );
    }
}
