//! A pool deleted while in use moves its addresses, or gives them up.
use super::*;

fn service_ingress(cluster: &Cluster, name: &str) -> Vec<String> {
    let services: Api<Service> = Api::namespaced(cluster.client(), NAMESPACE);
    cluster
        .block(services.get(name))
        .expect("get Service")
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect()
}

fn wait_ingress(cluster: &Cluster, name: &str, expected: &[&str]) {
    let found = wait_for(WAIT, || {
        (service_ingress(cluster, name) == expected).then_some(())
    });
    assert!(
        found.is_some(),
        "{name}: ingress {:?}, expected {expected:?} within {WAIT:?}",
        service_ingress(cluster, name)
    );
}

#[test]
fn a_pool_deleted_while_in_use_moves_its_addresses_or_gives_them_up() {
    let _serial = one_cluster_at_a_time();
    let options = ClusterOptions {
        crds: true,
        controller: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start_with("pool", &[], &options, |_| ()).0;
    cluster.apply(&format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: alpha, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.10-203.0.113.11"]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: beta, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.20-203.0.113.21"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: both, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [alpha, beta]}}
"#
    ));
    create_service(
        &cluster,
        json!({
            "metadata": { "name": "web" },
            "spec": { "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] },
        }),
    );
    // Pools without priority are tried by name: alpha first.
    wait_ingress(&cluster, "web", &["203.0.113.10"]);
    let owner = cluster.sole_owner(&["203.0.113.10"], "one node to hold web's address");
    wait_arp(&cluster, "203.0.113.10", Some(owner));

    // The pool deleted with the controller running: the address moves to a
    // pool that has room, and the agents follow.
    let deleted = Instant::now();
    cluster.kubectl_ok(&["delete", "ipaddresspool", "-n", NAMESPACE, "alpha"]);
    wait_ingress(&cluster, "web", &["203.0.113.20"]);
    let moved = deleted.elapsed();
    let note = wait_event(&cluster, "IPAllocated", "203.0.113.10 moved");
    assert!(
        note.contains("assigned 203.0.113.20 from pool beta")
            && note.contains("it is not in any address pool"),
        "the IPAllocated Event says where from and why: {note:?}"
    );
    let owner = cluster.sole_owner(&["203.0.113.20"], "web's new address held by one node");
    wait_arp(&cluster, "203.0.113.20", Some(owner));
    cluster.nobody_holds(&["203.0.113.10"], "the deleted pool's address withdrawn");
    wait_arp(&cluster, "203.0.113.10", None);

    // With no controller to take it back (or one that refuses the change,
    // as MetalLB's before v0.14), the address stays in the Service's status,
    // and the agents stop answering it at once: it is in no pool, and the
    // advertisement names its pools.
    assert_eq!(
        cluster.stop_controller(0),
        Some(0),
        "controller exits cleanly"
    );
    let deleted = Instant::now();
    cluster.kubectl_ok(&["delete", "ipaddresspool", "-n", NAMESPACE, "beta"]);
    cluster.nobody_holds(&["203.0.113.20"], "an address in no pool withdrawn");
    let withdrawn = deleted.elapsed();
    wait_arp(&cluster, "203.0.113.20", None);
    assert_eq!(
        service_ingress(&cluster, "web"),
        ["203.0.113.20"],
        "without a controller nobody rewrites the status"
    );
    let unannounced = [Unannounced {
        service: "web",
        address: Some("203.0.113.20"),
        reason: "NotInPool",
        object: None,
    }];
    let status = status_until(&cluster, |s| mismatches(s, &unannounced).is_empty());
    let wrong = mismatches(&status, &unannounced);
    assert!(wrong.is_empty(), "{wrong:#?}\nin {status:#}");
    wait_event(
        &cluster,
        "NotAdvertised",
        "NotInPool: ingress ip 203.0.113.20",
    );

    // A controller again, with no pool left: the address is given up and
    // the Service waits for one, with an Event saying why.
    cluster.spawn_controller("ctl2");
    let restarted = Instant::now();
    wait_ingress(&cluster, "web", &[]);
    let given_up = restarted.elapsed();
    // The controller publishes Events beside its status writes, not before
    // them, so the Event may land after the status is seen.
    let failed = wait_event(&cluster, "AllocationFailed", "pool has a free address for");
    let pending = [Unannounced {
        service: "web",
        address: Some(""),
        reason: "NoAddress",
        object: None,
    }];
    let status = status_until(&cluster, |s| mismatches(s, &pending).is_empty());
    let wrong = mismatches(&status, &pending);
    assert!(wrong.is_empty(), "{wrong:#?}\nin {status:#}");
    eprintln!(
        "pool deleted in use (from `kubectl delete`): moved to beta after {:.2} s; beta deleted \
         without a controller: withdrawn after {:.2} s; a new controller gave it up after \
         {:.2} s ({failed:?})",
        moved.as_secs_f64(),
        withdrawn.as_secs_f64(),
        given_up.as_secs_f64()
    );
}
