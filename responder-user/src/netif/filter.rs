//! Which interfaces the responder attaches to: by name, by regex, and never
//! (unless named) to virtual links or to those container runtimes and CNI
//! plugins create, with one exception: a veth that carries the network
//! namespace's default route is the node's uplink (a kind or k3d node, a
//! containerlab node, a node that is a network namespace) and is attached.

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

/// Link kinds (IFLA_INFO_KIND) that are not the node's uplink: bridges, overlays,
/// tunnels, pod and container plumbing, and the children of a parent that is itself
/// attachable. A bond (or team) is attached, its ports are not (they have a master).
/// A veth that carries the default route is the exception ([`UPLINK_KIND`]).
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

/// The one excluded kind that is attached anyway when the link carries the network
/// namespace's default route ([`LinkInfo::carries_default_route`]): when the node is
/// itself a container or a network namespace (kind, k3d, containerlab), its uplink
/// `eth0` is a veth. Pods' veths never carry the host's default route (that lives in
/// the pod's own namespace), so no pod plumbing becomes attachable through this.
pub const UPLINK_KIND: &str = "veth";

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
    /// not matching `exclude`, not of a [`DEFAULT_EXCLUDED_KINDS`] kind (except a veth
    /// carrying the default route, see [`UPLINK_KIND`]) and not starting with a
    /// [`DEFAULT_EXCLUDED_PREFIXES`] entry is selected. Regexes are unanchored: anchor
    /// them (`^eth[0-9]+$`) to match whole names.
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
            && !link.kind.as_deref().is_some_and(|kind| {
                // Only the veth exclusion is lifted for the uplink. Anything else carrying
                // the default route (a bridge over the NIC, a VXLAN, a WireGuard tunnel, a
                // macvlan, …) stays excluded unless named with `--interface`; the name
                // prefixes and `--exclude-interface-regex` above apply to the uplink too.
                DEFAULT_EXCLUDED_KINDS.contains(&kind)
                    && !(kind == UPLINK_KIND && link.carries_default_route)
            })
    }

    /// `link` is accepted only because it carries the default route: a veth that would be
    /// excluded by its kind otherwise.
    pub fn accepts_only_as_uplink(&self, link: &LinkInfo) -> bool {
        link.carries_default_route
            && self.accepts(link)
            && !self.accepts(&LinkInfo {
                carries_default_route: false,
                ..link.clone()
            })
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
            carries_default_route: false,
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

    fn uplink(name: &str, kind: Option<&str>) -> LinkInfo {
        LinkInfo {
            kind: kind.map(str::to_owned),
            carries_default_route: true,
            ..link(name)
        }
    }

    #[test]
    fn veth_carrying_the_default_route_is_the_uplink() {
        let filter = everything();
        assert!(
            filter.accepts(&uplink("eth0", Some("veth"))),
            "a kind node's eth0 is a veth with the default route"
        );
        assert!(filter.accepts_only_as_uplink(&uplink("eth0", Some("veth"))));
        assert!(
            !filter.accepts(&of_kind("eth0", "veth")),
            "a veth without the default route stays excluded"
        );
        assert!(!filter.accepts_only_as_uplink(&of_kind("eth0", "veth")));
        assert!(
            filter.accepts(&uplink("eth0", None)),
            "a physical NIC with the default route is accepted as before"
        );
        assert!(
            !filter.accepts_only_as_uplink(&uplink("eth0", None)),
            "accepted anyway, not because of the route"
        );
    }

    #[test]
    fn the_default_route_lifts_only_the_veth_kind_exclusion() {
        for kind in DEFAULT_EXCLUDED_KINDS
            .iter()
            .filter(|kind| **kind != UPLINK_KIND)
        {
            assert!(
                !everything().accepts(&uplink("uplink0", Some(kind))),
                "kind {kind} stays excluded with the default route"
            );
        }
        assert!(
            !everything().accepts(&uplink("br0", Some("bridge"))),
            "a bridge carrying the default route is not attached unless named"
        );
        assert!(InterfaceFilter::new(vec!["br0".into()], None, None)
            .accepts(&uplink("br0", Some("bridge"))));
    }

    #[test]
    fn uplink_veth_named_like_pod_plumbing_stays_excluded() {
        for name in ["veth0", "cali1234", "lxc5678", "cni0"] {
            assert!(
                !everything().accepts(&uplink(name, Some("veth"))),
                "{name} is excluded by its name whatever the routes"
            );
        }
    }

    #[test]
    fn uplink_still_needs_to_be_up_arp_capable_and_no_port() {
        let filter = everything();
        assert!(!filter.accepts(&LinkInfo {
            admin_up: false,
            ..uplink("eth0", Some("veth"))
        }));
        assert!(!filter.accepts(&LinkInfo {
            noarp: true,
            ..uplink("eth0", Some("veth"))
        }));
        assert!(!filter.accepts(&LinkInfo {
            master: Some(9),
            ..uplink("eth0", Some("veth"))
        }));
    }

    #[test]
    fn regexes_apply_to_the_uplink() {
        let excluded = InterfaceFilter::new(Vec::new(), None, regex("^eth0$"));
        assert!(
            !excluded.accepts(&uplink("eth0", Some("veth"))),
            "the exclude regex wins over the default route"
        );
        let included = InterfaceFilter::new(Vec::new(), regex("^ens"), None);
        assert!(
            !included.accepts(&uplink("eth0", Some("veth"))),
            "the include regex still limits the selection"
        );
        let matching = InterfaceFilter::new(Vec::new(), regex("^eth"), None);
        assert!(matching.accepts(&uplink("eth0", Some("veth"))));
    }

    #[test]
    fn explicit_names_are_unchanged_by_the_default_route() {
        let filter = InterfaceFilter::new(vec!["eth1".into()], None, None);
        assert!(
            !filter.accepts(&uplink("eth0", Some("veth"))),
            "with names, only those: the uplink is not added"
        );
        assert!(!filter.accepts_only_as_uplink(&uplink("eth0", Some("veth"))));
        assert!(filter.accepts(&of_kind("eth1", "veth")));
        assert!(filter.accepts(&uplink("eth1", Some("veth"))));
        assert!(
            !filter.accepts_only_as_uplink(&uplink("eth1", Some("veth"))),
            "named, not accepted because of the route"
        );
    }
}
