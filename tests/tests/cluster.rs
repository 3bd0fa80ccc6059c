//! A simulated cluster on one machine (a real kube-apiserver, three nodes whose
//! `responder run --kube` agents share one L2 segment with a client): a
//! Service's VIPs are answered by exactly one node, move when that node dies
//! or is excluded or loses IPv6, are withdrawn when the Service stops being
//! ours, and different Services spread over the nodes.
use std::collections::BTreeSet;

use responder_tests::{
    lab::cluster::{Cluster, WAIT},
    lab::one_cluster_at_a_time,
    netns::wait_for,
};

const WEB_V4: &str = "198.51.100.10";
const WEB_V6: &str = "2001:db8:100::10";

fn only(mac: &str) -> BTreeSet<String> {
    BTreeSet::from([mac.to_owned()])
}

/// Both wire protocols are answered from `mac` and from no other node.
fn assert_answered_only_by(cluster: &Cluster, node: &str) {
    let mac = cluster.agent(node).mac();
    let arp = cluster.arp_answerers(WEB_V4, 3);
    assert_eq!(
        arp,
        only(mac),
        "ARP for {WEB_V4} must be answered by {node} ({mac}) alone"
    );
    let nd = cluster.nd_answerers(WEB_V6);
    assert_eq!(
        nd,
        only(mac),
        "NDP for {WEB_V6} must be answered by {node} ({mac}) alone"
    );
}

fn assert_unanswered(cluster: &Cluster, addresses: &[&str]) {
    for address in addresses {
        let answerers = if address.contains(':') {
            cluster.nd_answerers(address)
        } else {
            cluster.arp_answerers(address, 2)
        };
        assert!(
            answerers.is_empty(),
            "withdrawn {address} still answered by {answerers:?}"
        );
    }
}

#[test]
fn one_node_answers_and_a_dead_nodes_addresses_move() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start("fail");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold both addresses of web");
    assert_answered_only_by(&cluster, owner);

    let owner_mac = cluster.agent(owner).mac().to_owned();
    for vip in [WEB_V4, WEB_V6] {
        let learned = wait_for(WAIT, || {
            cluster.client_resolve(vip);
            cluster
                .client_neighbor(vip)
                .filter(|lladdr| *lladdr == owner_mac)
        });
        assert!(
            learned.is_some(),
            "client never resolved {vip} to {owner} ({owner_mac}): {:?}",
            cluster.client_neighbor(vip)
        );
    }

    cluster.fail_node(owner);
    let successor = cluster.new_owner(
        &[WEB_V4, WEB_V6],
        owner,
        "a surviving node to take web over",
    );
    let successor_mac = cluster.agent(successor).mac().to_owned();
    for vip in [WEB_V4, WEB_V6] {
        // The client sends nothing here: only the successor's gratuitous burst can move the entry.
        let moved = wait_for(WAIT, || {
            cluster
                .client_neighbor(vip)
                .filter(|lladdr| *lladdr == successor_mac)
        });
        assert!(
            moved.is_some(),
            "the client's entry for {vip} never moved from {owner} to {successor} ({successor_mac}): {:?}",
            cluster.client_neighbor(vip)
        );
    }
    assert_answered_only_by(&cluster, successor);
}

#[test]
fn excluding_the_node_moves_and_leaving_our_hands_withdraws() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("chg");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let first = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold both addresses of web");

    cluster.exclude_node(first);
    let second = cluster.new_owner(&[WEB_V4, WEB_V6], first, "web to leave the excluded node");
    assert_answered_only_by(&cluster, second);

    // Kubernetes 1.20 prunes spec.loadBalancerClass, so "another class" is
    // exercised through the type: a ClusterIP Service is not ours either.
    cluster.make_cluster_ip("web");
    cluster.nobody_holds(
        &[WEB_V4, WEB_V6],
        "web to be withdrawn once it is no LoadBalancer",
    );
    assert_unanswered(&cluster, &[WEB_V4, WEB_V6]);

    let api = "198.51.100.11";
    cluster.create_lb_service("api", &[api]);
    let owner = cluster.sole_owner(&[api], "one node to hold api");
    assert_ne!(owner, first, "api went to the excluded node");
    assert_eq!(
        cluster.arp_answerers(api, 2),
        only(cluster.agent(owner).mac()),
        "api answered by other than {owner}"
    );
    cluster.delete_service("api");
    cluster.nobody_holds(&[api], "api to be withdrawn after deletion");
    assert_unanswered(&cluster, &[api]);
}

/// A node whose interface loses IPv6 advertises that in its Lease, and the
/// dual-stack Service it held moves whole to a node that can answer NDP; with
/// IPv6 back, rendezvous hands it back.
#[test]
fn a_node_without_ipv6_hands_dual_stack_services_on() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("fam");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let first = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold both addresses of web");

    cluster.set_ipv6(first, false);
    let second = cluster.new_owner(
        &[WEB_V4, WEB_V6],
        first,
        "web to leave the node without IPv6",
    );
    assert_answered_only_by(&cluster, second);
    let advertised = wait_for(WAIT, || {
        cluster
            .agent(first)
            .log()
            .lines()
            .find(|l| {
                l.contains("advertising the IP families")
                    && l.split_whitespace().any(|word| word == "families=IPv4")
            })
            .map(str::to_owned)
    });
    assert!(
        advertised.is_some(),
        "{first} never logged that it advertises IPv4 only"
    );

    cluster.set_ipv6(first, true);
    let back = cluster.sole_owner(&[WEB_V4, WEB_V6], "web to settle once IPv6 is back");
    assert_eq!(back, first, "rendezvous must hand web back to {first}");
    assert_answered_only_by(&cluster, first);
}

#[test]
fn services_spread_over_nodes() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("spread");
    let services = [
        ("alpha", "198.51.100.11"),
        ("bravo", "198.51.100.12"),
        ("charlie", "198.51.100.13"),
        ("delta", "198.51.100.14"),
    ];
    for (name, vip) in services {
        cluster.create_lb_service(name, &[vip]);
    }
    let mut owners = BTreeSet::new();
    for (name, vip) in services {
        let owner = cluster.sole_owner(&[vip], &format!("one node to hold {name}"));
        let mac = cluster.agent(owner).mac();
        assert_eq!(
            cluster.arp_answerers(vip, 1),
            only(mac),
            "{name} ({vip}) must be answered by {owner} ({mac}) alone"
        );
        owners.insert(owner);
    }
    assert!(
        owners.len() > 1,
        "{} Services all landed on {owners:?}",
        services.len()
    );
}
