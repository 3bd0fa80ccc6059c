//! The decision under L2Advertisements: two segments, "public" on
//! eth0 and "internal" on eth1, three nodes.
use super::*;
use crate::cluster::advertising::tests::{advertisement, labels_of, pool};
use crate::cluster::advertising::Advertising;
use crate::crd::ANNOTATION_ALLOCATED_FROM_POOL;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn with_interfaces(names: &[&str]) -> Member {
    settled(Reach {
        interfaces: Some(names.iter().map(|n| n.to_string()).collect()),
        ..Reach::UNKNOWN
    })
}

/// a and b have both NICs, c only the internal one; only b is
/// labelled `edge`.
fn members() -> BTreeMap<String, Member> {
    [
        ("a".to_owned(), with_interfaces(&["eth0", "eth1"])),
        ("b".to_owned(), with_interfaces(&["eth0", "eth1"])),
        ("c".to_owned(), with_interfaces(&["eth1"])),
    ]
    .into()
}

fn node_labels() -> BTreeMap<String, BTreeMap<String, String>> {
    const HOST: &str = "kubernetes.io/hostname";
    [
        ("a".to_owned(), labels_of(&[(HOST, "a")])),
        ("b".to_owned(), labels_of(&[(HOST, "b"), ("edge", "true")])),
        ("c".to_owned(), labels_of(&[(HOST, "c")])),
    ]
    .into()
}

fn advertising(adverts: Vec<serde_json::Value>) -> Advertising {
    let pools = [
        Arc::new(pool(
            "public",
            &["203.0.113.0/28", "2001:db8:1::10-2001:db8:1::ff"],
            &[],
        )),
        Arc::new(pool("internal", &["198.51.100.0/28"], &[])),
        // A second pool under the internal advertisement.
        Arc::new(pool("internal-extra", &["198.51.100.16/28"], &[])),
    ];
    let adverts: Vec<_> = adverts
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Arc::new(advertisement(&format!("adv-{i}"), spec)))
        .collect();
    let (advertising, bad) = Advertising::build(&pools, &adverts);
    assert!(bad.is_empty(), "{bad:?}");
    advertising.expect("advertisements exist")
}

fn two_segments() -> Advertising {
    advertising(vec![
        serde_json::json!({"ipAddressPools": ["public"], "interfaces": ["eth0"]}),
        serde_json::json!({"ipAddressPools": ["internal", "internal-extra"], "interfaces": ["eth1"]}),
    ])
}

fn service(name: &str, ips: &[&str]) -> Arc<ServiceFacts> {
    let ingress: Vec<(Option<&str>, Option<&str>)> =
        ips.iter().map(|ip| (Some(*ip), None)).collect();
    facts(lb_service(name, None, "Cluster", &ingress))
}

fn decide(
    advertising: Option<&Advertising>,
    services: &[Arc<ServiceFacts>],
) -> (Assignments, Vec<(ServiceRef, Problem)>) {
    let members = members();
    let labels = node_labels();
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising,
        node_labels: &labels,
    };
    let mut problems = Vec::new();
    let assignments = assign(services, &inputs, |service, problem| {
        problems.push((service.clone(), problem))
    });
    (assignments, problems)
}

/// The first `prefix-N` whose rendezvous winner among `all` is
/// `wanted`.
fn name_won_by(prefix: &str, all: &[&str], wanted: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|name| pick_owner(all.iter().copied(), &svc("default", name)) == Some(wanted))
        .expect("some name hashes to the wanted node")
}

#[test]
fn without_advertisements_nothing_changes() {
    let name = name_won_by("web", &["a", "b", "c"], "c");
    let services = [service(&name, &["203.0.113.1"])];
    let (assignments, problems) = decide(None, &services);
    let web = &assignments[&svc("default", &name)];
    assert_eq!(web.owner.as_deref(), Some("c"), "every member, c included");
    assert!(web.interfaces.is_empty(), "default interfaces");
    assert!(problems.is_empty());
}

#[test]
fn a_pool_named_on_interfaces_goes_to_nodes_that_have_them_and_only_there() {
    // c would win the hash but has no eth0.
    let name = name_won_by("public", &["a", "b", "c"], "c");
    let internal = name_won_by("internal", &["a", "b", "c"], "c");
    let services = [
        service(&name, &["203.0.113.1"]),
        service(&internal, &["198.51.100.1"]),
    ];
    let advertising = two_segments();
    let (assignments, problems) = decide(Some(&advertising), &services);
    let public = &assignments[&svc("default", &name)];
    let owner = public.owner.clone().expect("an owner");
    assert_ne!(owner, "c", "c has no public NIC");
    assert_eq!(
        public.interfaces,
        BTreeMap::from([(ip("203.0.113.1"), BTreeSet::from(["eth0".to_owned()]))])
    );
    assert_eq!(
        interfaces_owned_by(&assignments, &owner)[&ip("203.0.113.1")],
        BTreeSet::from(["eth0".to_owned()])
    );
    let internal = &assignments[&svc("default", &internal)];
    assert_eq!(internal.owner.as_deref(), Some("c"), "c has eth1");
    assert_eq!(
        internal.interfaces[&ip("198.51.100.1")],
        BTreeSet::from(["eth1".to_owned()])
    );
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn node_selectors_restrict_the_candidates_for_their_pools_only() {
    let advertising = advertising(vec![
        serde_json::json!({"ipAddressPools": ["public"],
                           "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
        serde_json::json!({"ipAddressPools": ["internal"]}),
    ]);
    let public = name_won_by("public", &["a", "b", "c"], "a");
    let internal = name_won_by("internal", &["a", "b", "c"], "a");
    let services = [
        service(&public, &["203.0.113.1"]),
        service(&internal, &["198.51.100.1"]),
    ];
    let (assignments, _) = decide(Some(&advertising), &services);
    assert_eq!(
        assignments[&svc("default", &public)].owner.as_deref(),
        Some("b"),
        "only b is an edge node"
    );
    assert_eq!(
        assignments[&svc("default", &internal)].owner.as_deref(),
        Some("a"),
        "a is no edge node, yet a candidate for the internal pool"
    );
    assert!(
        assignments[&svc("default", &internal)]
            .interfaces
            .is_empty(),
        "no interface named: the default set"
    );
}

#[test]
fn the_annotation_decides_the_pool() {
    // The address lies in "public"; the annotation says "internal",
    // which does not hold it, so "public" (located) counts.
    let name = name_won_by("annotated", &["a", "b", "c"], "c");
    let mut object = lb_service(&name, None, "Cluster", &[(Some("203.0.113.2"), None)]);
    object.metadata.annotations = Some(
        [(
            ANNOTATION_ALLOCATED_FROM_POOL.to_owned(),
            "internal,public".to_owned(),
        )]
        .into(),
    );
    let advertising = two_segments();
    let (assignments, _) = decide(Some(&advertising), &[facts(object)]);
    let assignment = &assignments[&svc("default", &name)];
    assert_ne!(assignment.owner.as_deref(), Some("c"));
    assert_eq!(
        assignment.interfaces[&ip("203.0.113.2")],
        BTreeSet::from(["eth0".to_owned()])
    );
}

#[test]
fn a_dual_stack_service_prefers_nodes_covered_for_both_and_keeps_one_owner() {
    // v6 of the public pool advertised only from edge nodes (b),
    // v4 everywhere: b is covered for both.
    let advertising = advertising(vec![
        serde_json::json!({"ipAddressPools": ["public"], "interfaces": ["eth0"],
                           "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
        serde_json::json!({"ipAddressPools": ["internal"], "interfaces": ["eth1"]}),
    ]);
    let name = name_won_by("dual", &["a", "b", "c"], "c");
    let services = [service(&name, &["198.51.100.3", "2001:db8:1::10"])];
    let (assignments, problems) = decide(Some(&advertising), &services);
    let dual = &assignments[&svc("default", &name)];
    assert_eq!(
        dual.owner.as_deref(),
        Some("b"),
        "the only node covered for both"
    );
    assert_eq!(dual.ips.len(), 2);
    assert_eq!(
        dual.interfaces,
        BTreeMap::from([
            (ip("198.51.100.3"), BTreeSet::from(["eth1".to_owned()])),
            (ip("2001:db8:1::10"), BTreeSet::from(["eth0".to_owned()])),
        ])
    );
    assert!(problems.is_empty(), "{problems:?}");

    // No node covered for both: one owner, for what it is covered for.
    let split = advertising_split();
    let (assignments, problems) = decide(Some(&split), &services);
    let dual = &assignments[&svc("default", &name)];
    let owner = dual.owner.clone().expect("one owner");
    assert_eq!(dual.ips.len(), 1, "{dual:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .1
            .to_string()
            .contains(&format!("owner {owner}")),
        "{problems:?}"
    );
}

/// internal only on c, public only on b.
fn advertising_split() -> Advertising {
    advertising(vec![
        serde_json::json!({"ipAddressPools": ["public"],
                           "nodeSelectors": [{"matchLabels": {"edge": "true"}}]}),
        serde_json::json!({"ipAddressPools": ["internal"],
                           "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "c"}}]}),
    ])
}

#[test]
fn an_address_no_advertisement_covers_is_skipped_with_a_problem() {
    let advertising = advertising(vec![serde_json::json!({"ipAddressPools": ["public"]})]);
    let services = [
        service("mixed", &["203.0.113.5", "198.51.100.5"]),
        service("outside", &["192.0.2.9"]),
    ];
    let (assignments, problems) = decide(Some(&advertising), &services);
    assert_eq!(
        assignments[&svc("default", "mixed")].ips,
        vec![ip("203.0.113.5")],
        "the internal address is covered by nothing"
    );
    assert!(!assignments.contains_key(&svc("default", "outside")));
    let unadvertised: Vec<&ServiceRef> = problems
        .iter()
        .filter(|(_, p)| matches!(p.reason(), Some(Reason::NotAdvertised | Reason::NotInPool)))
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        unadvertised,
        [&svc("default", "mixed"), &svc("default", "outside")]
    );
}

#[test]
fn an_agent_that_publishes_no_interfaces_is_taken_to_have_them() {
    let mut members = members();
    members.insert("c".into(), settled(Reach::UNKNOWN));
    let name = name_won_by("public", &["a", "b", "c"], "c");
    let advertising = two_segments();
    let labels = node_labels();
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising: Some(&advertising),
        node_labels: &labels,
    };
    let assignments = assign(&[service(&name, &["203.0.113.1"])], &inputs, |_, _| {});
    assert_eq!(
        assignments[&svc("default", &name)].owner.as_deref(),
        Some("c")
    );
}
