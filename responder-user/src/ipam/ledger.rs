//! Who holds which address, and the lowest address of a range a Service may take:
//! either the first free one (found by jumping over runs of used addresses) or a lower
//! used one it may share (found among addresses carrying its sharing key).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::error::SharingConflict;
use super::range::{is_skipped, successor, AddressRange};
use super::request::Sharing;
use super::sharing::AddressUse;
use super::used::UsedRuns;
use crate::k8s::ServiceRef;

#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    uses: BTreeMap<IpAddr, AddressUse>,
    runs: UsedRuns,
    /// (sharing key, address) for every address held under a sharing key.
    keyed: BTreeSet<(String, IpAddr)>,
}

impl Ledger {
    pub(crate) fn check(
        &self,
        address: IpAddr,
        service: &ServiceRef,
        sharing: &Sharing,
    ) -> Result<(), SharingConflict> {
        self.uses
            .get(&address)
            .map_or(Ok(()), |used| used.admits(address, service, sharing))
    }

    /// Records a holder; the caller has checked it with `check`.
    pub(crate) fn add(&mut self, address: IpAddr, service: &ServiceRef, sharing: &Sharing) {
        if let Some(key) = &sharing.key {
            self.keyed.insert((key.clone(), address));
        }
        self.runs.insert(address);
        self.uses
            .entry(address)
            .or_default()
            .holders
            .insert(service.clone(), sharing.clone());
    }

    pub(crate) fn remove(&mut self, address: IpAddr, service: &ServiceRef) {
        let Some(used) = self.uses.get_mut(&address) else {
            return;
        };
        let Some(gone) = used.holders.remove(service) else {
            return;
        };
        if let Some(key) = gone.key {
            if !used.holders.values().any(|s| s.key.as_ref() == Some(&key)) {
                self.keyed.remove(&(key, address));
            }
        }
        if used.holders.is_empty() {
            self.uses.remove(&address);
            self.runs.remove(address);
        }
    }

    /// The lowest address of `range` that `service` may take, skipping reserved
    /// anycast addresses, and .0/.255 when `avoid_buggy`. Costs O((runs of used addresses jumped + addresses held under the
    /// same sharing key) · log n), never the size of the range.
    pub(crate) fn first_available(
        &self,
        range: &AddressRange,
        avoid_buggy: bool,
        service: &ServiceRef,
        sharing: &Sharing,
    ) -> Option<IpAddr> {
        let free = self.first_free(range, avoid_buggy);
        let shared = sharing.key.as_ref().and_then(|key| {
            let bounds = (key.clone(), range.first())..=(key.clone(), range.last());
            self.keyed
                .range(bounds)
                .map(|(_, address)| *address)
                // Stop at the first free address: nothing above it can win.
                .take_while(|address| free.is_none_or(|f| *address < f))
                .filter(|address| !is_skipped(*address, avoid_buggy))
                .find(|address| self.check(*address, service, sharing).is_ok())
        });
        shared.or(free)
    }

    fn first_free(&self, range: &AddressRange, avoid_buggy: bool) -> Option<IpAddr> {
        let mut candidate = range.first_allowed_from(range.first(), avoid_buggy)?;
        while let Some((_, end)) = self.runs.run_containing(candidate) {
            candidate = range.first_allowed_from(successor(end)?, avoid_buggy)?;
        }
        Some(candidate)
    }

    /// Distinct addresses in use inside `range`, counting only those the pool may hand
    /// out (not .0/.255 when it avoids them, never a reserved anycast address), as
    /// `AddressRange::usable_count` does.
    pub(crate) fn used_in(&self, range: &AddressRange, avoid_buggy: bool) -> u128 {
        self.uses
            .range(range.first()..=range.last())
            .filter(|(address, _)| !is_skipped(**address, avoid_buggy))
            .count() as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::port::ServicePort;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(text: &str) -> AddressRange {
        AddressRange::parse(text).unwrap()
    }

    fn svc(name: &str) -> ServiceRef {
        ServiceRef::new("default", name)
    }

    fn plain() -> Sharing {
        Sharing::default()
    }

    fn keyed(key: &str, port: u16) -> Sharing {
        Sharing {
            key: Some(key.into()),
            backend: None,
            ports: vec![ServicePort::tcp(port)],
        }
    }

    #[test]
    fn first_free_jumps_used_runs_and_buggy_addresses() {
        let mut ledger = Ledger::default();
        let r = range("192.0.2.0/23");
        assert_eq!(
            ledger.first_available(&r, false, &svc("x"), &plain()),
            Some(ip("192.0.2.0"))
        );
        assert_eq!(
            ledger.first_available(&r, true, &svc("x"), &plain()),
            Some(ip("192.0.2.1"))
        );
        for last in 1..=254 {
            ledger.add(
                ip(&format!("192.0.2.{last}")),
                &svc(&format!("s{last}")),
                &plain(),
            );
        }
        assert_eq!(
            ledger.first_available(&r, true, &svc("x"), &plain()),
            Some(ip("192.0.3.1"))
        );
        assert_eq!(
            ledger.first_available(&r, false, &svc("x"), &plain()),
            Some(ip("192.0.2.0"))
        );
        ledger.remove(ip("192.0.2.100"), &svc("s100"));
        assert_eq!(
            ledger.first_available(&r, true, &svc("x"), &plain()),
            Some(ip("192.0.2.100"))
        );
    }

    #[test]
    fn full_range_has_nothing() {
        let mut ledger = Ledger::default();
        let r = range("192.0.2.0/30");
        for last in 0..=3 {
            ledger.add(
                ip(&format!("192.0.2.{last}")),
                &svc(&format!("s{last}")),
                &plain(),
            );
        }
        assert_eq!(ledger.first_available(&r, false, &svc("x"), &plain()), None);
        let top = range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
        ledger.add(top.first(), &svc("a"), &plain());
        ledger.add(top.last(), &svc("b"), &plain());
        assert_eq!(
            ledger.first_available(&top, false, &svc("x"), &plain()),
            None
        );
    }

    #[test]
    fn a_lower_shareable_address_wins_over_a_free_one() {
        let mut ledger = Ledger::default();
        let r = range("192.0.2.0/24");
        ledger.add(ip("192.0.2.0"), &svc("plain"), &plain());
        ledger.add(ip("192.0.2.1"), &svc("dns-tcp"), &keyed("dns", 53));
        ledger.add(ip("192.0.2.2"), &svc("web"), &keyed("web", 80));
        let claim = keyed("dns", 5353);
        assert_eq!(
            ledger.first_available(&r, false, &svc("dns-udp"), &claim),
            Some(ip("192.0.2.1"))
        );
        // Same key but the port is taken: the first free address instead.
        assert_eq!(
            ledger.first_available(&r, false, &svc("dns-2"), &keyed("dns", 53)),
            Some(ip("192.0.2.3"))
        );
        assert_eq!(
            ledger.first_available(&r, false, &svc("other"), &keyed("other", 1)),
            Some(ip("192.0.2.3"))
        );
    }

    #[test]
    fn removing_the_last_keyed_holder_drops_the_key_index() {
        let mut ledger = Ledger::default();
        let a = ip("192.0.2.1");
        ledger.add(a, &svc("one"), &keyed("k", 1));
        ledger.add(a, &svc("two"), &keyed("k", 2));
        ledger.remove(a, &svc("one"));
        assert!(ledger.keyed.contains(&("k".into(), a)));
        ledger.remove(a, &svc("two"));
        assert!(ledger.keyed.is_empty() && ledger.uses.is_empty());
        assert_eq!(ledger.runs.run_containing(a), None);
    }

    #[test]
    fn counts_used_addresses_per_range() {
        let mut ledger = Ledger::default();
        ledger.add(ip("192.0.2.0"), &svc("a"), &plain());
        ledger.add(ip("192.0.2.5"), &svc("b"), &plain());
        ledger.add(ip("192.0.2.5"), &svc("c"), &plain());
        ledger.add(ip("198.51.100.1"), &svc("d"), &plain());
        assert_eq!(ledger.used_in(&range("192.0.2.0/24"), false), 2);
        assert_eq!(ledger.used_in(&range("192.0.2.0/24"), true), 1);
    }
}
