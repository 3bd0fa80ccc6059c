//! Endpoint conditions, and Local Services following their endpoints.
use super::*;

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
