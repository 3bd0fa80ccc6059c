//! Rendezvous hashing: a fixed weight, whatever the candidates' order, an
//! even spread, and only a leaving or joining node's Services move.
use super::*;

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
