//! Which interfaces the responder attaches to: by name, by regex, and never
//! to those container runtimes and CNI plugins create.

use std::collections::BTreeSet;

use regex::Regex;

use super::LinkInfo;

/// Name prefixes of interfaces that container runtimes and CNI plugins create; answering
/// neighbor requests there would hijack pod traffic.
pub const DEFAULT_EXCLUDED_PREFIXES: &[&str] = &[
    "docker",
    "veth",
    "cali",
    "cni",
    "flannel",
    "kube-ipvs",
    "lxc",
    "cilium",
];

/// Decides which interfaces the responder attaches to.
#[derive(Clone, Debug)]
pub struct InterfaceFilter {
    names: BTreeSet<String>,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl InterfaceFilter {
    /// `names` non-empty selects exactly those interfaces and disables both regexes and the
    /// default exclusions. Otherwise every interface matching `include` (all when None),
    /// not matching `exclude` and not starting with a [`DEFAULT_EXCLUDED_PREFIXES`] entry is
    /// selected. Regexes are unanchored: anchor them (`^eth[0-9]+$`) to match whole names.
    pub fn new(names: Vec<String>, include: Option<Regex>, exclude: Option<Regex>) -> Self {
        Self {
            names: names.into_iter().collect(),
            include,
            exclude,
        }
    }

    /// Down, loopback and NOARP links are never accepted, even when named: no neighbor
    /// request can be answered there. Bond/bridge ports are accepted only when named,
    /// because an operator may know the port sees the frames (e.g. active-backup bonds).
    pub fn accepts(&self, link: &LinkInfo) -> bool {
        if !link.admin_up || link.loopback || link.noarp {
            return false;
        }
        if !self.names.is_empty() {
            return self.names.contains(&link.name);
        }
        link.master.is_none()
            && self
                .include
                .as_ref()
                .is_none_or(|re| re.is_match(&link.name))
            && !self
                .exclude
                .as_ref()
                .is_some_and(|re| re.is_match(&link.name))
            && !DEFAULT_EXCLUDED_PREFIXES
                .iter()
                .any(|prefix| link.name.starts_with(prefix))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn link(name: &str) -> LinkInfo {
        LinkInfo {
            name: name.into(),
            ifindex: 7,
            mac: [0x02, 0, 0, 0, 0, 7],
            admin_up: true,
            carrier: true,
            loopback: false,
            noarp: false,
            master: None,
            kind: None,
            addresses: Vec::new(),
        }
    }

    fn regex(pattern: &str) -> Option<Regex> {
        Some(Regex::new(pattern).expect("test regex compiles"))
    }

    pub(crate) fn everything() -> InterfaceFilter {
        InterfaceFilter::new(Vec::new(), None, None)
    }

    #[test]
    fn default_filter_accepts_plain_up_interface() {
        assert!(everything().accepts(&link("eth0")));
        assert!(everything().accepts(&link("bond0")));
    }

    #[test]
    fn default_filter_rejects_each_default_exclusion() {
        for prefix in DEFAULT_EXCLUDED_PREFIXES {
            let name = format!("{prefix}0abc");
            assert!(
                !everything().accepts(&link(&name)),
                "{name} must be excluded"
            );
        }
        assert!(
            everything().accepts(&link("eth-docker")),
            "only prefixes are excluded"
        );
    }

    #[test]
    fn down_loopback_noarp_and_ports_are_rejected() {
        let filter = everything();
        assert!(!filter.accepts(&LinkInfo {
            admin_up: false,
            ..link("eth0")
        }));
        assert!(!filter.accepts(&LinkInfo {
            loopback: true,
            ..link("lo")
        }));
        assert!(!filter.accepts(&LinkInfo {
            noarp: true,
            ..link("wg0")
        }));
        assert!(!filter.accepts(&LinkInfo {
            master: Some(9),
            ..link("eth1")
        }));
    }

    #[test]
    fn explicit_names_select_exactly_those() {
        let filter = InterfaceFilter::new(
            vec!["eth1".into(), "veth0".into()],
            regex("^eth0$"),
            regex("eth1"),
        );
        assert!(
            filter.accepts(&link("eth1")),
            "names override the exclude regex"
        );
        assert!(
            filter.accepts(&link("veth0")),
            "names override default exclusions"
        );
        assert!(
            !filter.accepts(&link("eth0")),
            "include regex is ignored with names"
        );
        assert!(!filter.accepts(&link("eth2")));
        assert!(filter.accepts(&LinkInfo {
            master: Some(9),
            ..link("eth1")
        }));
    }

    #[test]
    fn explicit_names_still_require_up_arp_capable_links() {
        let filter = InterfaceFilter::new(vec!["eth1".into(), "lo".into()], None, None);
        assert!(!filter.accepts(&LinkInfo {
            admin_up: false,
            ..link("eth1")
        }));
        assert!(!filter.accepts(&LinkInfo {
            noarp: true,
            ..link("eth1")
        }));
        assert!(!filter.accepts(&LinkInfo {
            loopback: true,
            ..link("lo")
        }));
    }

    #[test]
    fn include_regex_limits_the_selection() {
        let filter = InterfaceFilter::new(Vec::new(), regex("^(eth|ens)[0-9]+$"), None);
        assert!(filter.accepts(&link("eth0")));
        assert!(filter.accepts(&link("ens3")));
        assert!(!filter.accepts(&link("bond0")));
        assert!(!filter.accepts(&link("eth0.100")));
    }

    #[test]
    fn exclude_regex_and_default_exclusions_apply_on_top_of_include() {
        let filter = InterfaceFilter::new(Vec::new(), regex("^(eth|veth)"), regex("^eth9$"));
        assert!(filter.accepts(&link("eth0")));
        assert!(!filter.accepts(&link("eth9")));
        assert!(!filter.accepts(&link("veth1")));
    }
}
