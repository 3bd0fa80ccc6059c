use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ObjectMeta;

use super::*;
use crate::cluster::indexes::slice_nodes;
use crate::cluster::nodes::{node_addresses, OwnAddress};
use crate::cluster::reason::{Problem, Reason};
use crate::cluster::service_facts::ServiceFacts;
use crate::cluster::Families;
use crate::k8s::fixtures::{lb_service, slice, svc};

fn facts(service: Service) -> Arc<ServiceFacts> {
    Arc::new(ServiceFacts::of(&service))
}

/// The nodes with endpoints of each Service, over `slices` (the assigner
/// keeps this up to date slice by slice, see `indexes`).
fn endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> HashMap<ServiceRef, BTreeSet<String>> {
    let mut index: HashMap<ServiceRef, BTreeSet<String>> = HashMap::new();
    for (service, nodes) in slices.into_iter().filter_map(slice_nodes) {
        index.entry(service).or_default().extend(nodes);
    }
    index
}

/// Owner of every Service of ours that has at least one usable ingress IP,
/// as the assigner decides it Service by Service for the Services a change
/// affects. `on_problem` hears about ingress entries left out.
fn assign<'s>(
    services: impl IntoIterator<Item = &'s Arc<ServiceFacts>>,
    inputs: &Inputs<'_>,
    mut on_problem: impl FnMut(&ServiceRef, Problem),
) -> Assignments {
    let raw: Assignments = services
        .into_iter()
        .filter_map(|service| {
            let assignment = assign_one(service, inputs, |p| on_problem(&service.key, p))?;
            Some((service.key.clone(), Arc::new(assignment)))
        })
        .collect();
    settle_shared(&raw, on_problem)
}

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn owner_of(service: &ServiceRef, members: &BTreeSet<String>) -> String {
    pick_owner(members.iter().map(String::as_str), service)
        .expect("non-empty members have an owner")
        .to_owned()
}

#[test]
fn weight_is_a_fixed_function() {
    // Pinned so a change to the hash, which would silently split-brain a
    // rolling upgrade, fails here instead.
    assert_eq!(
        rendezvous_weight("node-a", &svc("default", "web")),
        0x2464_718b_9ae3_950c
    );
}

#[test]
fn owner_does_not_depend_on_candidate_order() {
    let service = svc("default", "web");
    let forward = ["n1", "n2", "n3", "n4", "n5"];
    let mut backward = forward;
    backward.reverse();
    assert_eq!(
        pick_owner(forward, &service),
        pick_owner(backward, &service)
    );
    assert_eq!(pick_owner(Vec::<&str>::new(), &service), None);
}

#[test]
fn services_spread_evenly() {
    let members = nodes(&["n1", "n2", "n3", "n4", "n5"]);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..10_000 {
        *counts
            .entry(owner_of(&svc("ns", &format!("svc-{i}")), &members))
            .or_default() += 1;
    }
    for (node, count) in &counts {
        assert!(
            (1700..=2300).contains(count),
            "{node} owns {count} of 10000 services: {counts:?}"
        );
    }
    assert_eq!(counts.len(), 5, "every node owns something: {counts:?}");
}

#[test]
fn leaving_node_moves_only_its_services() {
    let before = nodes(&["n1", "n2", "n3", "n4", "n5"]);
    let after = nodes(&["n1", "n2", "n4", "n5"]);
    for i in 0..2_000 {
        let service = svc("ns", &format!("svc-{i}"));
        let (old, new) = (owner_of(&service, &before), owner_of(&service, &after));
        if old != "n3" {
            assert_eq!(old, new, "{service:?} moved although its owner stayed");
        }
    }
}

#[test]
fn joining_node_takes_services_only_for_itself() {
    let before = nodes(&["n1", "n2", "n3"]);
    let after = nodes(&["n1", "n2", "n3", "n4"]);
    let mut taken = 0;
    for i in 0..2_000 {
        let service = svc("ns", &format!("svc-{i}"));
        let (old, new) = (owner_of(&service, &before), owner_of(&service, &after));
        if old != new {
            assert_eq!(new, "n4", "{service:?} moved between existing nodes");
            taken += 1;
        }
    }
    assert!(
        (300..=700).contains(&taken),
        "the new node took {taken} of 2000, expected about 500"
    );
}

#[test]
fn endpoint_conditions() {
    let slices = [
        slice(
            "web",
            &[
                ("a", Some(true), None),
                ("b", Some(false), Some(true)),
                ("c", Some(false), Some(false)),
            ],
        ),
        slice("web", &[("d", None, None), ("e", Some(false), None)]),
    ];
    let index = endpoint_nodes(&slices);
    assert_eq!(index[&svc("default", "web")], nodes(&["a", "b", "d"]));
}

fn dual_stack(names: &[&str]) -> BTreeMap<String, Member> {
    names
        .iter()
        .map(|n| (n.to_string(), settled(Reach::UNKNOWN)))
        .collect()
}

fn settled(reach: Reach) -> Member {
    Member {
        reach,
        settled: true,
    }
}

fn reach(ipv4: bool, ipv6: bool, prefixes: &[&str]) -> Reach {
    Reach {
        families: Families { ipv4, ipv6 },
        prefixes: prefixes
            .iter()
            .map(|p| p.parse().expect("prefix"))
            .collect(),
        interfaces: None,
    }
}

const NO_FORBIDDEN: &BTreeMap<IpAddr, OwnAddress> = &BTreeMap::new();
const NO_LABELS: &BTreeMap<String, BTreeMap<String, String>> = &BTreeMap::new();

#[test]
fn services_go_to_nodes_that_can_answer_for_all_their_families() {
    // Service names whose rendezvous winner among a, b, c is `a`, the
    // node that lacks IPv6, so the family rule is what moves them.
    let all = nodes(&["a", "b", "c"]);
    let won_by_a = |prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|name| owner_of(&svc("default", name), &all) == "a")
            .expect("some name is won by a")
    };
    let (v4, dual, v6) = (won_by_a("v4"), won_by_a("dual"), won_by_a("v6"));
    let services = [
        facts(lb_service(
            &v4,
            None,
            "Cluster",
            &[(Some("192.0.2.1"), None)],
        )),
        facts(lb_service(
            &dual,
            None,
            "Cluster",
            &[(Some("192.0.2.2"), None), (Some("2001:db8::2"), None)],
        )),
        facts(lb_service(
            &v6,
            None,
            "Cluster",
            &[(Some("2001:db8::3"), None)],
        )),
    ];
    let owner = |members: &BTreeMap<String, Member>, name: &str| {
        let inputs = Inputs {
            lb_class: None,
            members,
            endpoints: None,
            forbidden: NO_FORBIDDEN,
            advertising: None,
            node_labels: NO_LABELS,
        };
        assign(&services, &inputs, |_, _| {})[&svc("default", name)]
            .owner
            .clone()
    };

    let mut members = dual_stack(&["a", "b", "c"]);
    members.insert("a".into(), settled(reach(true, false, &[])));
    let without_a = nodes(&["b", "c"]);
    assert_eq!(owner(&members, &v4).as_deref(), Some("a"));
    for name in [&dual, &v6] {
        assert_eq!(
            owner(&members, name),
            Some(owner_of(&svc("default", name), &without_a)),
            "{name} must skip the node without IPv6"
        );
    }

    // Nobody has IPv6: the IPv4 half of a dual-stack Service is still
    // served, an IPv6-only Service cannot be.
    let members: BTreeMap<String, Member> = [
        ("a".into(), settled(reach(true, false, &[]))),
        ("b".into(), settled(reach(false, false, &[]))),
    ]
    .into();
    assert_eq!(owner(&members, &dual).as_deref(), Some("a"));
    assert_eq!(owner(&members, &v6), None);
    assert_eq!(
        owner(&members, &v4).as_deref(),
        Some("a"),
        "b has no interface"
    );
}

#[test]
fn a_shared_address_is_answered_by_one_node_only() {
    let members = nodes(&["a", "b", "c"]);
    // Two Services whose rendezvous owners differ, so sharing would split.
    let (first, second) = (0..)
        .map(|i| (format!("shared-{i}-x"), format!("shared-{i}-y")))
        .find(|(x, y)| {
            owner_of(&svc("default", x), &members) != owner_of(&svc("default", y), &members)
        })
        .expect("some pair of names has different owners");
    let services = [
        facts(lb_service(
            &first,
            None,
            "Cluster",
            &[(Some("192.0.2.1"), None)],
        )),
        facts(lb_service(
            &second,
            None,
            "Cluster",
            &[(Some("192.0.2.1"), None), (Some("192.0.2.2"), None)],
        )),
    ];
    let families = dual_stack(&["a", "b", "c"]);
    let inputs = Inputs {
        lb_class: None,
        members: &families,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let mut problems = Vec::new();
    let assignments = assign(&services, &inputs, |service, problem| {
        problems.push((service.clone(), problem.to_string()))
    });
    let shared: IpAddr = "192.0.2.1".parse().expect("ip");
    let holders: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .filter(|node| owned_by(&assignments, node).contains_key(&shared))
        .collect();
    assert_eq!(
        holders,
        vec![owner_of(&svc("default", &first), &members).as_str()],
        "the first Service's owner alone answers for the shared address"
    );
    assert_eq!(
        assignments[&svc("default", &second)].ips,
        vec!["192.0.2.2".parse::<IpAddr>().expect("ip")]
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, svc("default", &second));
    assert!(
        problems[0].1.contains("shared with default/"),
        "{problems:?}"
    );
}

#[test]
fn local_services_follow_endpoints() {
    let members = nodes(&["a", "b", "c"]);
    let services = [
        facts(lb_service(
            "local",
            None,
            "Local",
            &[(Some("192.0.2.1"), None)],
        )),
        facts(lb_service(
            "nowhere",
            None,
            "Local",
            &[(Some("192.0.2.2"), None)],
        )),
        facts(lb_service(
            "cluster",
            None,
            "Cluster",
            &[(Some("192.0.2.3"), None)],
        )),
    ];
    let index = endpoint_nodes(&[
        slice("local", &[("b", Some(true), None), ("z", Some(true), None)]),
        slice("nowhere", &[("a", Some(false), Some(false))]),
    ]);
    let with_families = dual_stack(&["a", "b", "c"]);
    let with_slices = Inputs {
        lb_class: None,
        members: &with_families,
        endpoints: Some(&index),
        forbidden: NO_FORBIDDEN,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let assignments = assign(&services, &with_slices, |_, _| {});
    assert_eq!(
        assignments[&svc("default", "local")].owner.as_deref(),
        Some("b")
    );
    assert_eq!(assignments[&svc("default", "nowhere")].owner, None);
    assert!(assignments[&svc("default", "cluster")].owner.is_some());

    let without_slices = Inputs {
        endpoints: None,
        ..with_slices
    };
    let assignments = assign(&services, &without_slices, |_, _| {});
    assert_eq!(
        assignments[&svc("default", "nowhere")].owner,
        Some(owner_of(&svc("default", "nowhere"), &members)),
        "without EndpointSlices every member counts as having endpoints"
    );
}

#[test]
fn owned_by_collects_dual_stack_addresses() {
    let members = dual_stack(&["a"]);
    let services = [facts(lb_service(
        "web",
        None,
        "Cluster",
        &[
            (Some("192.0.2.1"), None),
            (Some("2001:db8::1"), None),
            (None, Some("x.example")),
        ],
    ))];
    let mut problems = Vec::new();
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let assignments = assign(&services, &inputs, |service, problem| {
        problems.push((service.clone(), problem.to_string()))
    });
    let owned = owned_by(&assignments, "a");
    assert_eq!(owned.len(), 2, "{owned:?}");
    assert!(owned.values().all(|s| *s == svc("default", "web")));
    assert!(owned_by(&assignments, "b").is_empty());
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn a_vip_goes_to_a_node_on_its_subnet_when_one_is_live() {
    let services = [
        facts(lb_service(
            "public",
            None,
            "Cluster",
            &[(Some("203.0.113.10"), None)],
        )),
        facts(lb_service(
            "anywhere",
            None,
            "Cluster",
            &[(Some("192.0.2.10"), None)],
        )),
    ];
    let members: BTreeMap<String, Member> = [
        ("a".into(), settled(reach(true, true, &["198.51.100.0/24"]))),
        ("b".into(), settled(reach(true, true, &["198.51.100.0/24"]))),
        ("c".into(), settled(reach(true, true, &["203.0.113.0/24"]))),
    ]
    .into();
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let assignments = assign(&services, &inputs, |_, _| {});
    assert_eq!(
        assignments[&svc("default", "public")].owner.as_deref(),
        Some("c"),
        "only c has 203.0.113.0/24"
    );
    assert_eq!(
        assignments[&svc("default", "anywhere")].owner,
        Some(owner_of(
            &svc("default", "anywhere"),
            &nodes(&["a", "b", "c"])
        )),
        "no node has 192.0.2.0/24: every node is a candidate"
    );
    // c is gone: the VIP still gets an owner, off its subnet.
    let without_c: BTreeMap<String, Member> = members
        .iter()
        .filter(|(node, _)| *node != "c")
        .map(|(node, member)| (node.clone(), member.clone()))
        .collect();
    let inputs = Inputs {
        members: &without_c,
        ..inputs
    };
    assert!(
        assign(&services, &inputs, |_, _| {})[&svc("default", "public")]
            .owner
            .is_some()
    );
}

#[test]
fn node_addresses_and_proxied_entries_are_never_answered_for() {
    let mut service = lb_service(
        "web",
        None,
        "Cluster",
        &[
            (Some("198.51.100.3"), None),
            (Some("192.0.2.10"), None),
            (Some("192.0.2.11"), None),
        ],
    );
    service
        .status
        .as_mut()
        .and_then(|status| status.load_balancer.as_mut())
        .and_then(|lb| lb.ingress.as_mut())
        .expect("ingress")[2]
        .ip_mode = Some("Proxy".into());
    let services = [facts(service)];
    let forbidden = node_addresses(&[Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..Default::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "198.51.100.3".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let members = dual_stack(&["a"]);
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: &forbidden,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let mut problems = Vec::new();
    let assignments = assign(&services, &inputs, |_, problem| problems.push(problem));
    assert_eq!(
        assignments[&svc("default", "web")].ips,
        vec!["192.0.2.10".parse::<IpAddr>().expect("ip")]
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems[0].reason(),
        Some(Reason::ProxyMode),
        "{problems:?}"
    );
    assert!(problems[0].detail.contains("ipMode Proxy"), "{problems:?}");
    assert_eq!(
        problems[1].reason(),
        Some(Reason::NodeAddress),
        "{problems:?}"
    );
    assert!(
        problems[1].detail.contains("InternalIP of Node node-a"),
        "{problems:?}"
    );
    assert_eq!(problems[1].object.as_deref(), Some("Node/node-a"));
}

#[test]
fn reserved_anycast_addresses_are_refused_whoever_wrote_them() {
    // Another controller (or an older version of ours) wrote the
    // Subnet-Router anycast address and an RFC 2526 one.
    let services = [facts(lb_service(
        "web",
        None,
        "Cluster",
        &[
            (Some("2001:db8:e100::"), None),
            (Some("2001:db8:e100::fdff:ffff:ffff:fffe"), None),
            (Some("2001:db8:e100::1"), None),
            (Some("192.0.2.0"), None),
        ],
    ))];
    let members = dual_stack(&["a"]);
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let mut problems = Vec::new();
    let assignments = assign(&services, &inputs, |_, problem| problems.push(problem));
    let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
    assert_eq!(
        assignments[&svc("default", "web")].ips,
        [ip("192.0.2.0"), ip("2001:db8:e100::1")],
        "IPv4 has no such addresses; an IPv6 neighbour of one is fine"
    );
    let texts: Vec<String> = problems
        .iter()
        .map(|problem| {
            assert_eq!(
                problem.reason(),
                Some(Reason::ReservedAnycast),
                "{problem:?}"
            );
            problem.detail.clone()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "ingress ip 2001:db8:e100:: is not answered for: it is the Subnet-Router \
             anycast address of 2001:db8:e100::/64 (RFC 4291 §2.6.1), which every router \
             on that link answers for",
            "ingress ip 2001:db8:e100:0:fdff:ffff:ffff:fffe is not answered for: it is \
             reserved subnet anycast address 126 of 2001:db8:e100::/64 (RFC 2526: the \
             highest 128 interface identifiers of a subnet are anycast addresses; 126 is \
             the Mobile IPv6 Home-Agents anycast address)",
        ]
    );
}

#[test]
fn a_member_held_down_after_rejoining_owns_only_what_nobody_settled_can() {
    let all = nodes(&["a", "b", "c"]);
    let won_by_a = (0..)
        .map(|i| format!("svc-{i}"))
        .find(|name| owner_of(&svc("default", name), &all) == "a")
        .expect("some name is won by a");
    let services = [
        facts(lb_service(
            &won_by_a,
            None,
            "Cluster",
            &[(Some("192.0.2.1"), None)],
        )),
        facts(lb_service(
            "v6-only",
            None,
            "Cluster",
            &[(Some("2001:db8::1"), None)],
        )),
    ];
    let mut members = dual_stack(&["a", "b", "c"]);
    members.get_mut("a").expect("a").settled = false;
    for node in ["b", "c"] {
        members.get_mut(node).expect(node).reach = reach(true, false, &[]);
    }
    let inputs = Inputs {
        lb_class: None,
        members: &members,
        endpoints: None,
        forbidden: NO_FORBIDDEN,
        advertising: None,
        node_labels: NO_LABELS,
    };
    let assignments = assign(&services, &inputs, |_, _| {});
    assert_eq!(
        assignments[&svc("default", &won_by_a)].owner,
        Some(owner_of(&svc("default", &won_by_a), &nodes(&["b", "c"]))),
        "a wins the hash but is held down"
    );
    assert_eq!(
        assignments[&svc("default", "v6-only")].owner.as_deref(),
        Some("a"),
        "only a has IPv6: held down beats nobody"
    );
}

mod advertised {
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
}
