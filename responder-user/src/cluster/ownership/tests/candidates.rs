//! Which members are candidates: nodes that can answer for all of a
//! Service's families, nodes on a VIP's subnet, and a member held down after
//! rejoining.
use super::*;

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
