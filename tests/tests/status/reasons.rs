//! `responder status` names why each address is or is not announced, as the
//! agents act on it.
use super::*;

#[test]
fn status_names_why_each_address_is_or_is_not_announced() {
    let _serial = one_cluster_at_a_time();
    let started = Instant::now();
    let cluster = Cluster::start_with("stat", &[], &with_crds(), |_| ()).0;
    cluster.apply(&format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: main, namespace: {NAMESPACE}}}
spec: {{addresses: ["198.51.100.16/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: main, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [main]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: quiet, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.0/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: picky, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.16/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: picky, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [picky]
  nodeSelectors: [{{matchLabels: {{example.com/role: nowhere}}}}]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: nic, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.32/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: nic, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [nic], interfaces: [nothere0]}}
"#
    ));
    // A node's own address (k3s' ServiceLB writes them): refused.
    cluster.set_node_addresses("node-b", &["198.51.100.21"]);
    cluster.create_lb_service("web", &["198.51.100.20"]);
    cluster.create_lb_service("nodeip", &["198.51.100.21"]);
    cluster.create_lb_service("quiet", &["203.0.113.5"]);
    cluster.create_lb_service("picky", &["203.0.113.20"]);
    cluster.create_lb_service("nic", &["203.0.113.40"]);
    cluster.create_lb_service("stray", &["192.0.2.50"]);
    cluster.create_lb_service("named", &[]);
    cluster
        .try_set_ingress_entries("named", json!([{ "hostname": "lb.example.com" }]))
        .expect("a hostname-only ingress entry");
    // Another class: v1.20 has no spec.loadBalancerClass and prunes it, so
    // OtherClass cannot be shown against this server; the Service is then an
    // ordinary one of ours, still waiting for an address (NoAddress).
    let classy = create_service(
        &cluster,
        json!({
            "metadata": { "name": "classy" },
            "spec": { "type": "LoadBalancer", "loadBalancerClass": "example.com/other",
                      "ports": [{ "port": 80, "protocol": "TCP" }] },
        }),
    );
    let class = classy.spec.and_then(|s| s.load_balancer_class);
    assert_eq!(
        class, None,
        "kube-apiserver v1.20 prunes spec.loadBalancerClass; a newer server keeps it, \
         and this Service's reason becomes OtherClass"
    );

    let owner = cluster.sole_owner(&["198.51.100.20"], "one node to hold web's address");
    let interface = cluster.agent(owner).interface().to_owned();
    let unannounced = [
        Unannounced {
            service: "nodeip",
            address: Some("198.51.100.21"),
            reason: "NodeAddress",
            object: Some("Node/node-b"),
        },
        Unannounced {
            service: "quiet",
            address: Some("203.0.113.5"),
            reason: "NotAdvertised",
            object: Some("IPAddressPool/quiet"),
        },
        Unannounced {
            service: "picky",
            address: Some("203.0.113.20"),
            reason: "NoNodeSelected",
            object: Some("L2Advertisement/picky"),
        },
        // MetalLB's scenario: an advertisement naming an interface that
        // exists nowhere.
        Unannounced {
            service: "nic",
            address: Some("203.0.113.40"),
            reason: "InterfaceMissing",
            object: Some("L2Advertisement/nic"),
        },
        Unannounced {
            service: "stray",
            address: Some("192.0.2.50"),
            reason: "NotInPool",
            object: None,
        },
        Unannounced {
            service: "named",
            address: None,
            reason: "UnusableEntry",
            object: None,
        },
        Unannounced {
            service: "classy",
            address: Some(""),
            reason: "NoAddress",
            object: None,
        },
    ];
    let status = status_until(&cluster, |s| {
        announced_by(s, "web", owner, &interface) && mismatches(s, &unannounced).is_empty()
    });
    assert!(
        announced_by(&status, "web", owner, &interface),
        "web announced by {owner} on {interface}, in its ServiceL2Status: {:#}",
        json!(rows(&status, "web"))
    );
    let wrong = mismatches(&status, &unannounced);
    assert!(wrong.is_empty(), "{wrong:#?}\nin {status:#}");
    assert_eq!(
        cluster.arp_answerers("198.51.100.20", 3),
        BTreeSet::from([cluster.agent(owner).mac().to_owned()]),
        "the node status names is the one whose MAC answers ARP"
    );
    for address in [
        "198.51.100.21",
        "203.0.113.5",
        "203.0.113.20",
        "203.0.113.40",
    ] {
        assert!(
            cluster.holders(address).is_empty(),
            "{address} is held by {:?} though status says nobody announces it",
            cluster.holders(address)
        );
    }
    assert!(
        status["nodes"].as_array().is_some_and(
            |nodes| nodes.len() == NODES.len() && nodes.iter().all(|n| n["excluded"].is_null())
        ),
        "every node announces: {:#}",
        status["nodes"]
    );

    // What the agents told on the Services (one agent each).
    wait_event(
        &cluster,
        "NotAdvertised",
        "NotAdvertised: ingress ip 203.0.113.5",
    );
    wait_event(
        &cluster,
        "NotAdvertised",
        "NotInPool: ingress ip 192.0.2.50",
    );
    wait_event(
        &cluster,
        "NotAnnounced",
        "NoNodeSelected: ingress ip 203.0.113.20",
    );
    wait_event(
        &cluster,
        "NotAnnounced",
        "InterfaceMissing: ingress ip 203.0.113.40",
    );
    wait_event(&cluster, "AddressRefused", "198.51.100.21");

    // No node may announce: every address says so, and each node why.
    for node in NODES {
        cluster.exclude_node(node);
    }
    let excluded = format!("labelled {EXCLUDE_LB_LABEL}");
    let no_node = |s: &Value| {
        rows(s, "web")
            .first()
            .is_some_and(|row| row["reason"] == "NoEligibleNode" && row["announced"] == false)
            && s["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().all(|n| n["excluded"] == excluded.as_str()))
    };
    let status = status_until(&cluster, no_node);
    assert!(
        no_node(&status),
        "web NoEligibleNode, every node {excluded:?}: {status:#}"
    );
    cluster.nobody_holds(&["198.51.100.20"], "every node excluded");
    assert!(
        cluster.arp_answerers("198.51.100.20", 2).is_empty(),
        "198.51.100.20 still answered with every node excluded"
    );
    eprintln!("status reasons: {:.1} s", started.elapsed().as_secs_f64());
}
