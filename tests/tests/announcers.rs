//! The bounded announcer set on a real API server with real agents: with
//! `--announcers 1` three nodes keep two announcers (every domain keeps two)
//! and one standby, which renews slowly and answers nothing; when an
//! announcer dies the other takes its addresses and the standby promotes
//! itself; while a Lease without a role (an agent from before roles) is
//! live, every node announces, and once it is gone the set shrinks back.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use responder::cluster::{first_lease, lease_name, Reach, Role};
use responder_tests::{
    lab::cluster::{Cluster, ClusterOptions, NAMESPACE, NODES, WAIT},
    lab::one_cluster_at_a_time,
    netns::wait_for,
};

const ROLE: &str = "responder/role";
const DURATION: &str = "responder/lease-duration-ms";

fn addresses() -> Vec<String> {
    (10..22).map(|i| format!("198.51.100.{i}")).collect()
}

/// Each real node's declared role and Lease duration (ms).
fn roles(cluster: &Cluster) -> BTreeMap<String, (String, u64)> {
    let leases: Api<Lease> = Api::namespaced(cluster.client(), NAMESPACE);
    let list = cluster
        .block(leases.list(&ListParams::default()))
        .expect("list Leases");
    list.items
        .into_iter()
        .filter_map(|lease| {
            let holder = lease.spec.as_ref()?.holder_identity.clone()?;
            if !NODES.contains(&holder.as_str()) {
                return None;
            }
            let annotations = lease.metadata.annotations.unwrap_or_default();
            let role = annotations.get(ROLE).cloned().unwrap_or_default();
            let ms = annotations
                .get(DURATION)
                .and_then(|ms| ms.parse().ok())
                .unwrap_or_default();
            Some((holder, (role, ms)))
        })
        .collect()
}

fn with_role<'a>(roles: &'a BTreeMap<String, (String, u64)>, role: &str) -> Vec<&'a str> {
    roles
        .iter()
        .filter(|(_, (r, _))| r == role)
        .map(|(node, _)| node.as_str())
        .collect()
}

/// Every address held by exactly one running agent, none by `never`.
fn all_held_once(cluster: &Cluster, never: Option<&str>) -> bool {
    addresses().iter().all(|address| {
        let holders = cluster.holders(address);
        holders.len() == 1 && never.is_none_or(|node| !holders.contains(&node))
    })
}

/// One announcer slot (the domain of three nodes still keeps two) and a
/// short hold-down, so demotions come within the test's waits.
fn one_slot() -> ClusterOptions {
    ClusterOptions {
        agent_args: ["--announcers", "1", "--hold-down", "2s"]
            .map(str::to_owned)
            .to_vec(),
        ..ClusterOptions::default()
    }
}

#[test]
fn two_announce_one_stands_by_and_promotes_when_an_announcer_dies() {
    let _serial = one_cluster_at_a_time();
    let options = one_slot();
    let (mut cluster, ()) = Cluster::start_with("annc", &[], &options, |_| ());
    for (i, address) in addresses().iter().enumerate() {
        cluster.create_lb_service(&format!("web-{i}"), &[address]);
    }
    let settled = wait_for(WAIT, || {
        let roles = roles(&cluster);
        let standby = with_role(&roles, "standby");
        (with_role(&roles, "announcer").len() == 2 && standby.len() == 1)
            .then(|| standby[0].to_owned())
    });
    let standby = settled
        .unwrap_or_else(|| panic!("never two announcers and a standby: {:?}", roles(&cluster)));
    let standby: &'static str = NODES.iter().find(|n| **n == standby).expect("a node");
    let held = wait_for(WAIT, || {
        all_held_once(&cluster, Some(standby)).then_some(())
    });
    assert!(
        held.is_some(),
        "the announcers hold every address, the standby none"
    );
    let (_, standby_ms) = roles(&cluster)[standby].clone();
    assert!(
        standby_ms >= 40_000,
        "a standby's Lease is long: {standby_ms} ms"
    );
    for (node, (role, ms)) in roles(&cluster) {
        if role == "announcer" {
            assert_eq!(
                ms, 800,
                "{node}: an announcer renews at the fastest cadence"
            );
        }
    }
    let answerers = cluster.arp_answerers(&addresses()[0], 3);
    assert_eq!(answerers.len(), 1, "one MAC answers: {answerers:?}");

    // An announcer dies: the other takes its addresses, the standby promotes.
    let victim = NODES
        .iter()
        .copied()
        .find(|n| *n != standby)
        .expect("an announcer");
    let killed = Instant::now();
    cluster.fail_node(victim);
    let promoted = wait_for(WAIT, || {
        (roles(&cluster).get(standby).map(|(role, _)| role.as_str()) == Some("announcer"))
            .then(|| killed.elapsed())
    });
    let promoted =
        promoted.unwrap_or_else(|| panic!("{standby} never promoted: {:?}", roles(&cluster)));
    let taken = wait_for(WAIT, || {
        (all_held_once(&cluster, Some(victim))
            && addresses().iter().any(|a| cluster.holders(a) == [standby]))
        .then(|| killed.elapsed())
    });
    assert!(
        taken.is_some(),
        "the promoted standby took its share and every address is held"
    );
    eprintln!("{standby} promoted {promoted:?} after {victim} died");
    let answerers = cluster.arp_answerers(&addresses()[0], 3);
    assert_eq!(answerers.len(), 1, "one MAC answers: {answerers:?}");
    cluster.restore_node(victim);
}

#[test]
fn an_agent_before_roles_makes_everyone_announce_until_it_is_gone() {
    let _serial = one_cluster_at_a_time();
    let options = one_slot();
    let (cluster, ()) = Cluster::start_with("anmx", &[], &options, |_| ());
    cluster.create_lb_service("web-0", &[&addresses()[0]]);
    let two = wait_for(WAIT, || {
        (with_role(&roles(&cluster), "announcer").len() == 2).then_some(())
    });
    assert!(two.is_some(), "two announcers first: {:?}", roles(&cluster));

    // An old agent's Lease: no role annotation, renewed as it would be.
    let leases: Api<Lease> = Api::namespaced(cluster.client(), NAMESPACE);
    let old = "node-old";
    let mut lease = first_lease(
        old,
        &Reach::UNKNOWN,
        None,
        Duration::from_secs(1),
        Role::Announcer,
    );
    lease.metadata.annotations = None;
    cluster
        .block(leases.create(&PostParams::default(), &lease))
        .expect("create the old agent's Lease");
    let renew = |cluster: &Cluster| {
        let patch = serde_json::json!({ "spec": {
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now()),
        }});
        cluster
            .block(leases.patch(
                &lease_name(old),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .expect("renew the old agent's Lease");
    };
    let everyone = wait_for(WAIT, || {
        renew(&cluster);
        std::thread::sleep(Duration::from_millis(200));
        (with_role(&roles(&cluster), "announcer").len() == NODES.len()).then_some(())
    });
    assert!(
        everyone.is_some(),
        "every node announces beside an old agent: {:?}",
        roles(&cluster)
    );
    // The old agent goes (its Lease expires): after the demotion delay (the
    // hold-down), the set shrinks back to two.
    let back = wait_for(WAIT, || {
        let roles = roles(&cluster);
        (with_role(&roles, "announcer").len() == 2 && with_role(&roles, "standby").len() == 1)
            .then_some(())
    });
    assert!(
        back.is_some(),
        "back to two announcers: {:?}",
        roles(&cluster)
    );
    let held = wait_for(WAIT, || {
        let standby = with_role(&roles(&cluster), "standby")[0].to_owned();
        let standby: &str = &standby;
        let holders = cluster.holders(&addresses()[0]);
        (holders.len() == 1 && holders[0] != standby).then_some(())
    });
    assert!(held.is_some(), "an announcer holds the address");
}
