//! Which addresses are answered, and by whom: a shared address by one node,
//! a Service's addresses of both families, never a node's own address, a
//! proxied entry or a reserved anycast address.
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use kube::api::ObjectMeta;

use super::*;
use crate::cluster::nodes::node_addresses;

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
