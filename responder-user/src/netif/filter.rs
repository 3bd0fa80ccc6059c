//! Which interfaces the responder attaches to: by name, by regex, and never
//! (unless named) to virtual links or to those container runtimes and CNI
//! plugins create.

use std::collections::BTreeSet;

use regex::Regex;

use super::LinkInfo;

/// Name prefixes of interfaces that container runtimes and CNI plugins create; answering
/// neighbor requests there would hijack pod traffic. Kinds below catch most of them too;
/// the names also catch those whose kind says nothing (e.g. a physical-looking `tunl0`).
pub const DEFAULT_EXCLUDED_PREFIXES: &[&str] = &[
    "docker",
    "veth",
    "cali",
    "cni",
    "cbr0",
    "flannel",
    "kube-ipvs",
    "kube-bridge",
    "kube-dummy-if",
    "lxc",
    "cilium",
    "vxlan.calico",
    "tunl0",
    "br-int",
    "genev_sys_",
    "antrea-",
    "ovn-k8s-",
    "nodelocaldns",
    "weave",
    "virbr",
];

/// Link kinds (IFLA_INFO_KIND) that are never the node's uplink: bridges, overlays,
/// tunnels, pod and container plumbing, and the children of a parent that is itself
/// attachable. A bond (or team) is attached, its ports are not (they have a master).
pub const DEFAULT_EXCLUDED_KINDS: &[&str] = &[
    "bridge",
    "veth",
    "vxlan",
    "geneve",
    "ipip",
    "gre",
    "gretap",
    "ip6gre",
    "ip6gretap",
    "ip6tnl",
    "sit",
    "wireguard",
    "tun",
    "dummy",
    "macvlan",
    "macvtap",
    "ipvlan",
    "ipvtap",
    "openvswitch",
    "vrf",
    "nlmon",
    "ifb",
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
    /// not matching `exclude`, not of a [`DEFAULT_EXCLUDED_KINDS`] kind and not starting
    /// with a [`DEFAULT_EXCLUDED_PREFIXES`] entry is selected. Regexes are unanchored:
    /// anchor them (`^eth[0-9]+$`) to match whole names.
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
            && !link
                .kind
                .as_deref()
                .is_some_and(|kind| DEFAULT_EXCLUDED_KINDS.contains(&kind))
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

    fn of_kind(name: &str, kind: &str) -> LinkInfo {
        LinkInfo {
            kind: Some(kind.into()),
            ..link(name)
        }
    }

    #[test]
    fn default_filter_accepts_plain_up_interface() {
        assert!(everything().accepts(&link("eth0")));
        assert!(everything().accepts(&of_kind("bond0", "bond")));
        assert!(everything().accepts(&of_kind("team0", "team")));
        assert!(
            everything().accepts(&of_kind("eth0.100", "vlan")),
            "a VLAN sub-interface may be where an operator's VIPs live"
        );
    }

    #[test]
    fn default_filter_rejects_each_excluded_kind_whatever_its_name() {
        for kind in DEFAULT_EXCLUDED_KINDS {
            assert!(
                !everything().accepts(&of_kind("uplink0", kind)),
                "kind {kind} must be excluded"
            );
        }
        let bond_port = LinkInfo {
            master: Some(3),
            ..link("eno1")
        };
        assert!(
            !everything().accepts(&bond_port),
            "bond ports are not attached"
        );
        let named = InterfaceFilter::new(vec!["uplink0".into()], None, None);
        assert!(
            named.accepts(&of_kind("uplink0", "veth")),
            "a named interface is attached whatever its kind"
        );
    }

    #[test]
    fn default_filter_rejects_what_cnis_create_by_name() {
        for name in [
            "vxlan.calico",
            "tunl0",
            "cbr0",
            "cni0",
            "kube-bridge",
            "kube-dummy-if",
            "br-int",
            "genev_sys_6081",
            "antrea-gw0",
            "ovn-k8s-mp0",
            "nodelocaldns",
            "weave",
            "flannel.1",
            "virbr0",
            "docker0",
        ] {
            assert!(
                !everything().accepts(&link(name)),
                "{name} must be excluded"
            );
        }
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
