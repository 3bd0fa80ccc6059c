//! Interface names by ifindex, for labels and log lines about VIP keys, which
//! carry only the ifindex.

use std::{borrow::Cow, collections::HashMap};

/// The names of the interfaces of this network namespace at one moment,
/// read in one listing however many keys need naming.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceNames(HashMap<u32, String>);

impl InterfaceNames {
    /// One `if_nameindex(3)` listing. On failure (out of memory or file
    /// descriptors) every interface gets the `#ifindex` placeholder rather
    /// than the scrape or warning failing.
    pub fn current() -> Self {
        match nix::net::if_::if_nameindex() {
            Ok(interfaces) => interfaces
                .iter()
                .map(|i| (i.index(), i.name().to_string_lossy().into_owned()))
                .collect(),
            Err(error) => {
                tracing::debug!(%error, "listing interface names failed");
                InterfaceNames::default()
            }
        }
    }

    /// The interface's name, or `#ifindex` for one that is gone (a VIP key
    /// can outlive its interface until the agent notices).
    pub fn name_of(&self, ifindex: u32) -> Cow<'_, str> {
        match self.0.get(&ifindex) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("#{ifindex}")),
        }
    }
}

impl FromIterator<(u32, String)> for InterfaceNames {
    fn from_iter<I: IntoIterator<Item = (u32, String)>>(pairs: I) -> Self {
        InterfaceNames(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_interfaces_and_marks_gone_ones() {
        let names: InterfaceNames = [(2, "eth0".to_owned())].into_iter().collect();
        assert_eq!(names.name_of(2), "eth0");
        assert_eq!(names.name_of(7), "#7");
    }

    #[test]
    fn lists_the_loopback_interface() {
        // Every network namespace has `lo`, whatever its ifindex.
        let names = InterfaceNames::current();
        assert!(names.0.values().any(|n| n == "lo"), "{names:?}");
    }
}
