//! MetalLB's `L2Advertisement`s as ownership applies them: which advertisements
//! cover a Service's address (through the address's pool and the Service's
//! labels), which nodes they let announce it, and on which interfaces. Pure: the
//! assigner builds an [`Advertising`] from its reflectors whenever pools or
//! advertisements change, and every agent decides from the same objects.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::reason::{Problem, Reason};
use super::service_facts::ServiceFacts;
use super::Reach;
use crate::crd::{Advertisement, IPAddressPool, L2Advertisement};
use crate::ipam::{Located, Pool, PoolSet};

type Labels = BTreeMap<String, String>;

/// An object left out of the decision, with why (for one log line and one
/// Event).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BadObject {
    pub(crate) kind: BadKind,
    pub(crate) name: String,
    pub(crate) reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BadKind {
    Pool,
    Advertisement,
}

/// The usable advertisements and the accepted pools.
#[derive(Clone, Debug, Default)]
pub(crate) struct Advertising {
    advertisements: Vec<Advertisement>,
    pools: PoolSet,
    pool_labels: BTreeMap<String, Labels>,
}

impl Advertising {
    /// `None` when no `L2Advertisement` exists at all: the flags alone decide,
    /// as before advertisements were followed. One that exists but does not
    /// read still means "advertisements decide" (it is reported and skipped):
    /// a typo must not turn a restricted setup into announcing everywhere.
    pub(crate) fn build(
        pools: &[Arc<IPAddressPool>],
        advertisements: &[Arc<L2Advertisement>],
    ) -> (Option<Advertising>, Vec<BadObject>) {
        let mut bad = Vec::new();
        if advertisements.is_empty() {
            return (None, bad);
        }
        // Overlaps judged as the controller judges them.
        let (set, refused) = crate::crd::pool_set_of(pools);
        bad.extend(refused.into_iter().map(|(name, reason)| BadObject {
            kind: BadKind::Pool,
            name,
            reason,
        }));
        let mut checked = Vec::new();
        for object in advertisements {
            match Advertisement::from_object(object) {
                Ok(advertisement) => checked.push(advertisement),
                Err(error) => bad.push(BadObject {
                    kind: BadKind::Advertisement,
                    name: object.metadata.name.clone().unwrap_or_default(),
                    reason: error.to_string(),
                }),
            }
        }
        // Order-independent results: every agent lists in its own order.
        checked.sort_by(|a, b| a.name().cmp(b.name()));
        bad.sort();
        let pool_labels = pools
            .iter()
            .map(|pool| {
                (
                    pool.name().to_owned(),
                    pool.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        let advertising = Advertising {
            advertisements: checked,
            pools: set,
            pool_labels,
        };
        (Some(advertising), bad)
    }

    /// The pool `ip` was given from: the one the controller's annotation names
    /// (one name per family, comma-joined) if it holds the address, else any
    /// accepted pool holding it; `None` when no pool does.
    pub(crate) fn pool_of(&self, ip: IpAddr, annotation: Option<&str>) -> Option<&Pool> {
        let named = annotation
            .into_iter()
            .flat_map(|names| names.split(','))
            .filter_map(|name| self.pools.get(name.trim()))
            .find(|pool| pool.entries().iter().any(|e| e.range.contains(ip)));
        named.or(match self.pools.locate(ip) {
            Located::In(pool) | Located::Avoided(pool) | Located::Reserved(pool, _) => Some(pool),
            Located::Outside => None,
        })
    }

    /// The advertisements covering `ip` of `service`: selecting its pool
    /// (an address in no pool only by those selecting every pool) and the
    /// Service by its labels.
    pub(crate) fn covering(&self, service: &ServiceFacts, ip: IpAddr) -> Vec<&Advertisement> {
        let no_labels = Labels::new();
        let service_labels = service.labels();
        let pool = self.pool_of(ip, service.allocated_from());
        self.advertisements
            .iter()
            .filter(|adv| match pool {
                Some(pool) => adv.covers_pool(
                    pool.name(),
                    self.pool_labels.get(pool.name()).unwrap_or(&no_labels),
                ),
                None => adv.covers_every_pool(),
            })
            .filter(|adv| adv.covers_service(service_labels))
            .collect()
    }

    /// Why nothing covers `ip`: it is in no pool, or its pool is covered by
    /// no advertisement selecting this Service.
    pub(crate) fn uncovered(&self, service: &ServiceFacts, ip: IpAddr) -> Problem {
        match self.pool_of(ip, service.allocated_from()) {
            Some(pool) => Problem::new(
                Reason::NotAdvertised,
                Some(ip),
                format!(
                    "ingress ip {ip} (in pool {:?}) is covered by no L2Advertisement selecting \
                     this Service",
                    pool.name()
                ),
            )
            .caused_by(format!("IPAddressPool/{}", pool.name())),
            None => Problem::new(
                Reason::NotInPool,
                Some(ip),
                format!(
                    "ingress ip {ip} is in no IPAddressPool (was its pool deleted?), and no \
                     L2Advertisement covers every pool"
                ),
            ),
        }
    }
}

/// Whether `advertisement` lets a node with `labels` that reaches `reach`
/// announce: its `nodeSelectors` match, and when it names interfaces the
/// node has one of them serving.
pub(crate) fn admits_node(advertisement: &Advertisement, labels: &Labels, reach: &Reach) -> bool {
    advertisement.covers_node(labels)
        && (advertisement.interfaces().is_empty()
            || reach.has_any_interface(advertisement.interfaces()))
}

/// The interfaces a node answers on for an address `covering` advertisements
/// cover: the union of the names of those admitting it; `None` (its default
/// set, as without advertisements) when one of those names none.
pub(crate) fn interfaces_for(
    covering: &[&Advertisement],
    labels: &Labels,
    reach: &Reach,
) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for advertisement in covering {
        if !admits_node(advertisement, labels, reach) {
            continue;
        }
        if advertisement.interfaces().is_empty() {
            return None;
        }
        names.extend(advertisement.interfaces().iter().cloned());
    }
    Some(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::ANNOTATION_ALLOCATED_FROM_POOL;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::ObjectMeta;

    pub(crate) fn pool(name: &str, addresses: &[&str], labels: &[(&str, &str)]) -> IPAddressPool {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels_of(labels)},
            "spec": {"addresses": addresses},
        }))
        .expect("pool")
    }

    pub(crate) fn advertisement(name: &str, spec: serde_json::Value) -> L2Advertisement {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
            .expect("advertisement")
    }

    pub(crate) use crate::k8s::fixtures::labels as labels_of;

    fn service(labels: &[(&str, &str)], pool_annotation: Option<&str>) -> ServiceFacts {
        ServiceFacts::of(&Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                labels: Some(labels_of(labels)),
                annotations: pool_annotation.map(|value| {
                    [(ANNOTATION_ALLOCATED_FROM_POOL.to_owned(), value.to_owned())].into()
                }),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn build(pools: Vec<IPAddressPool>, adverts: Vec<L2Advertisement>) -> Advertising {
        let pools: Vec<_> = pools.into_iter().map(Arc::new).collect();
        let adverts: Vec<_> = adverts.into_iter().map(Arc::new).collect();
        let (advertising, bad) = Advertising::build(&pools, &adverts);
        assert!(bad.is_empty(), "{bad:?}");
        advertising.expect("advertisements exist")
    }

    fn names(advertisements: Vec<&Advertisement>) -> Vec<&str> {
        advertisements.iter().map(|a| a.name()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn no_advertisement_means_the_flags_decide() {
        let pools = [Arc::new(pool("public", &["203.0.113.0/28"], &[]))];
        assert!(Advertising::build(&pools, &[]).0.is_none());
    }

    #[test]
    fn the_annotation_names_the_pool_and_locate_is_the_fallback() {
        let advertising = build(
            vec![
                pool("a", &["203.0.113.0/28"], &[]),
                pool("b", &["198.51.100.0/28"], &[]),
            ],
            vec![advertisement("all", serde_json::json!({}))],
        );
        let in_a = ip("203.0.113.3");
        let pool_name = |annotation| advertising.pool_of(in_a, annotation).map(Pool::name);
        assert_eq!(pool_name(None), Some("a"), "located");
        assert_eq!(
            pool_name(Some("b,a")),
            Some("a"),
            "the named pool holding it"
        );
        assert_eq!(
            pool_name(Some("b")),
            Some("a"),
            "a named pool that does not hold the address is not believed"
        );
        assert_eq!(
            advertising.pool_of(ip("192.0.2.1"), None).map(Pool::name),
            None
        );
    }

    #[test]
    fn coverage_follows_pools_by_name_and_label_and_service_selectors() {
        let advertising = build(
            vec![
                pool(
                    "public",
                    &["203.0.113.0/28", "2001:db8:1::10-2001:db8:1::ff"],
                    &[],
                ),
                pool("internal", &["198.51.100.0/28"], &[("zone", "internal")]),
            ],
            vec![
                advertisement("public", serde_json::json!({"ipAddressPools": ["public"]})),
                advertisement(
                    "internal",
                    serde_json::json!({"ipAddressPoolSelectors": [{"matchLabels": {"zone": "internal"}}]}),
                ),
                advertisement(
                    "db-only",
                    serde_json::json!({"ipAddressPools": ["internal"],
                                       "serviceSelectors": [{"matchLabels": {"tier": "db"}}]}),
                ),
            ],
        );
        let web = service(&[("tier", "web")], None);
        let db = service(&[("tier", "db")], None);
        assert_eq!(
            names(advertising.covering(&web, ip("203.0.113.1"))),
            ["public"]
        );
        assert_eq!(
            names(advertising.covering(&web, ip("2001:db8:1::10"))),
            ["public"]
        );
        assert_eq!(
            names(advertising.covering(&web, ip("198.51.100.1"))),
            ["internal"]
        );
        assert_eq!(
            names(advertising.covering(&db, ip("198.51.100.1"))),
            ["db-only", "internal"]
        );
        assert!(
            advertising.covering(&web, ip("192.0.2.1")).is_empty(),
            "an address in no pool: only advertisements of every pool cover it"
        );
        let uncovered = advertising.uncovered(&web, ip("192.0.2.1"));
        assert_eq!(uncovered.reason(), Some(Reason::NotInPool));
        assert!(
            uncovered.detail.contains("in no IPAddressPool"),
            "{uncovered:?}"
        );
    }

    #[test]
    fn an_advertisement_of_every_pool_covers_addresses_in_no_pool() {
        let advertising = build(
            vec![pool("public", &["203.0.113.0/28"], &[])],
            vec![advertisement(
                "all",
                serde_json::json!({"interfaces": ["eth0"]}),
            )],
        );
        assert_eq!(
            names(advertising.covering(&service(&[], None), ip("192.0.2.1"))),
            ["all"]
        );
    }

    #[test]
    fn bad_advertisements_and_pools_are_reported_and_skipped() {
        let pools = [
            Arc::new(pool("good", &["203.0.113.0/28"], &[])),
            Arc::new(pool("bad", &["not-an-address"], &[])),
        ];
        let adverts = [
            Arc::new(advertisement(
                "good",
                serde_json::json!({"ipAddressPools": ["good"]}),
            )),
            Arc::new(advertisement(
                "bad",
                serde_json::json!({"interfaces": ["eth 0"]}),
            )),
        ];
        let (advertising, bad) = Advertising::build(&pools, &adverts);
        let advertising = advertising.expect("advertisements exist");
        let kinds: Vec<_> = bad.iter().map(|b| (b.kind, b.name.as_str())).collect();
        assert_eq!(
            kinds,
            [(BadKind::Pool, "bad"), (BadKind::Advertisement, "bad")]
        );
        assert_eq!(
            names(advertising.covering(&service(&[], None), ip("203.0.113.1"))),
            ["good"],
            "the others carry on"
        );
    }

    #[test]
    fn nodes_and_interfaces_follow_selectors_and_published_names() {
        let public = Advertisement::from_object(&advertisement(
            "public",
            serde_json::json!({"interfaces": ["eth0"]}),
        ))
        .expect("valid");
        let edge = Advertisement::from_object(&advertisement(
            "edge",
            serde_json::json!({"interfaces": ["eth1"],
                               "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
        ))
        .expect("valid");
        let anywhere = Advertisement::from_object(&advertisement("any", serde_json::json!({})))
            .expect("valid");
        let with = |names: &[&str]| Reach {
            interfaces: Some(names.iter().map(|n| n.to_string()).collect()),
            ..Reach::UNKNOWN
        };
        let plain = labels_of(&[]);
        let edgy = labels_of(&[("edge", "true")]);
        assert!(admits_node(&public, &plain, &with(&["eth0", "eth1"])));
        assert!(!admits_node(&public, &plain, &with(&["eth1"])), "no eth0");
        assert!(
            !admits_node(&edge, &plain, &with(&["eth1"])),
            "not selected"
        );
        assert!(admits_node(&edge, &edgy, &with(&["eth1"])));
        assert_eq!(
            interfaces_for(&[&public, &edge], &edgy, &with(&["eth0", "eth1"])),
            Some(["eth0".to_owned(), "eth1".to_owned()].into()),
            "the union over the advertisements admitting the node"
        );
        assert_eq!(
            interfaces_for(&[&public, &edge], &plain, &with(&["eth0", "eth1"])),
            Some(["eth0".to_owned()].into())
        );
        assert_eq!(
            interfaces_for(&[&public, &anywhere], &plain, &with(&["eth0"])),
            None,
            "an advertisement naming no interface: the default set"
        );
    }
}
