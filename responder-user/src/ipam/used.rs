//! Addresses in use as maximal runs of consecutive addresses: finding the first free
//! address after any point costs one ordered lookup per run it jumps, so 10,000
//! addresses handed out in a row are one run, not 10,000 steps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::range::{predecessor, successor};

#[derive(Clone, Debug, Default)]
pub(crate) struct UsedRuns {
    /// start → end (inclusive); runs are disjoint, never adjacent, and of one family.
    runs: BTreeMap<IpAddr, IpAddr>,
}

impl UsedRuns {
    /// The run holding `address`. `IpAddr` orders every IPv4 address before every
    /// IPv6 one, so a run of the other family never contains it.
    pub(crate) fn run_containing(&self, address: IpAddr) -> Option<(IpAddr, IpAddr)> {
        let (&start, &end) = self.runs.range(..=address).next_back()?;
        (address <= end).then_some((start, end))
    }

    /// Returns false if it was already in use.
    pub(crate) fn insert(&mut self, address: IpAddr) -> bool {
        if self.run_containing(address).is_some() {
            return false;
        }
        let mut start = address;
        let mut end = address;
        if let Some(before) = predecessor(address).and_then(|p| self.run_containing(p)) {
            self.runs.remove(&before.0);
            start = before.0;
        }
        if let Some(after_end) = successor(address).and_then(|next| self.runs.remove(&next)) {
            end = after_end;
        }
        self.runs.insert(start, end);
        true
    }

    /// Returns false if it was not in use.
    pub(crate) fn remove(&mut self, address: IpAddr) -> bool {
        let Some((start, end)) = self.run_containing(address) else {
            return false;
        };
        self.runs.remove(&start);
        if let Some(before) = predecessor(address).filter(|_| start < address) {
            self.runs.insert(start, before);
        }
        if let Some(after) = successor(address).filter(|_| address < end) {
            self.runs.insert(after, end);
        }
        true
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> Vec<(IpAddr, IpAddr)> {
        self.runs.iter().map(|(s, e)| (*s, *e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn runs(used: &UsedRuns) -> Vec<(String, String)> {
        used.runs()
            .into_iter()
            .map(|(s, e)| (s.to_string(), e.to_string()))
            .collect()
    }

    fn pair(s: &str, e: &str) -> (String, String) {
        (s.to_owned(), e.to_owned())
    }

    #[test]
    fn merges_neighbours_into_one_run() {
        let mut used = UsedRuns::default();
        assert!(used.insert(ip("192.0.2.1")));
        assert!(used.insert(ip("192.0.2.3")));
        assert_eq!(runs(&used).len(), 2);
        assert!(used.insert(ip("192.0.2.2")));
        assert_eq!(runs(&used), [pair("192.0.2.1", "192.0.2.3")]);
        assert!(!used.insert(ip("192.0.2.2")), "already in use");
        assert_eq!(
            used.run_containing(ip("192.0.2.2")),
            Some((ip("192.0.2.1"), ip("192.0.2.3")))
        );
        assert_eq!(used.run_containing(ip("192.0.2.4")), None);
    }

    #[test]
    fn removing_splits_a_run() {
        let mut used = UsedRuns::default();
        for last in 1..=5 {
            used.insert(ip(&format!("192.0.2.{last}")));
        }
        assert!(used.remove(ip("192.0.2.3")));
        assert_eq!(
            runs(&used),
            [
                pair("192.0.2.1", "192.0.2.2"),
                pair("192.0.2.4", "192.0.2.5")
            ]
        );
        assert!(used.remove(ip("192.0.2.1")));
        assert!(used.remove(ip("192.0.2.5")));
        assert_eq!(
            runs(&used),
            [
                pair("192.0.2.2", "192.0.2.2"),
                pair("192.0.2.4", "192.0.2.4")
            ]
        );
        assert!(!used.remove(ip("192.0.2.3")), "not in use");
    }

    #[test]
    fn families_never_merge_and_edges_do_not_overflow() {
        let mut used = UsedRuns::default();
        used.insert(ip("255.255.255.255"));
        used.insert(ip("::"));
        used.insert(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        used.insert(ip("0.0.0.0"));
        assert_eq!(runs(&used).len(), 4);
        assert_eq!(used.run_containing(ip("::1")), None);
        assert!(used.remove(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(used.remove(ip("0.0.0.0")));
        assert_eq!(
            runs(&used),
            [pair("255.255.255.255", "255.255.255.255"), pair("::", "::")]
        );
    }
}
