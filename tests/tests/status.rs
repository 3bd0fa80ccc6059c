//! `responder status` and the agents' bookkeeping of MetalLB's objects
//! against a real API server and real agents (three nodes on one segment):
//! the status command names why each address is or is not announced, as
//! the agents act on it; MetalLB's CRDs installed after the agents started
//! are followed without a restart; a crashed owner's ServiceL2Status goes to
//! the node that takes its Service over; and a pool deleted while in use
//! moves its addresses, or gives them up (see docs/metallb.md).
//!
//! The agents run with the lab's admin kubeconfig, so the ClusterRole of
//! deploy/rbac.yaml (the L2Advertisement CRD watch allowed by name) is not
//! exercised here; tests/tests/deploy/ checks those rules.
use std::{
    collections::BTreeSet,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use responder::crd::ServiceL2Status;
use responder_tests::{
    lab::cluster::{Cluster, ClusterOptions, EXCLUDE_LB_LABEL, NAMESPACE, NODES, WAIT},
    netns::wait_for,
};
use serde_json::{json, Value};

/// Each cluster is an API server, etcd and three agents renewing 1 s Leases;
/// clusters side by side on a small CI machine would starve renewals (see
/// tests/cluster.rs).
fn one_cluster_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn with_crds() -> ClusterOptions {
    ClusterOptions {
        crds: true,
        ..ClusterOptions::default()
    }
}

/// The rows of `responder status --json` for Service `name`.
fn rows<'a>(status: &'a Value, name: &str) -> Vec<&'a Value> {
    let key = format!("{NAMESPACE}/{name}");
    status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["service"] == key.as_str())
        .collect()
}

/// What one Service's single row must say: not announced, with `reason`
/// (and the address and causing object when given).
struct Unannounced {
    service: &'static str,
    address: Option<&'static str>,
    reason: &'static str,
    object: Option<&'static str>,
}

/// How `status` differs from `wants`, one line per difference.
fn mismatches(status: &Value, wants: &[Unannounced]) -> Vec<String> {
    let mut wrong = Vec::new();
    for want in wants {
        let found = rows(status, want.service);
        let [row] = found.as_slice() else {
            wrong.push(format!("{}: {} rows, not one", want.service, found.len()));
            continue;
        };
        let checks = [
            ("announced", row["announced"] == false),
            ("reason", row["reason"] == want.reason),
            ("address", want.address.is_none_or(|a| row["address"] == a)),
            ("object", want.object.is_none_or(|o| row["object"] == o)),
            ("node", row["node"].is_null()),
        ];
        for (field, ok) in checks {
            if !ok {
                wrong.push(format!("{}: {field} wrong in {row}", want.service));
            }
        }
    }
    wrong
}

/// `responder status --json` once `ready` holds for its output, or its last
/// output after `WAIT`: the caller asserts on it, so a timeout names what
/// was seen. The command judges from the objects alone; Leases and
/// ServiceL2Status objects take the agents a moment.
fn status_until(cluster: &Cluster, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = cluster.status_json();
        if ready(&status) || Instant::now() >= deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The one row of Service `name`, announced by `node` on its interface and
/// reported in `node`'s ServiceL2Status alone.
fn announced_by(status: &Value, name: &str, node: &str, interface: &str) -> bool {
    let found = rows(status, name);
    let [row] = found.as_slice() else {
        return false;
    };
    row["announced"] == true
        && row["node"] == node
        && row["reason"].is_null()
        && row["interfaces"] == json!([interface])
        && row["reported_by"] == json!([node])
}

/// The nodes named by the ServiceL2Status objects of Service `name`, one
/// entry per object (the `metallb.io/node` label and `status.node` must
/// agree).
fn l2_status_nodes(cluster: &Cluster, name: &str) -> Vec<String> {
    let statuses: Api<ServiceL2Status> = Api::namespaced(cluster.client(), NAMESPACE);
    let list = cluster
        .block(
            statuses
                .list(&ListParams::default().labels(&format!("metallb.io/service-name={name}"))),
        )
        .expect("list ServiceL2Statuses");
    list.items
        .iter()
        .map(|object| {
            let object = serde_json::to_value(object).expect("ServiceL2Status as JSON");
            let label = &object["metadata"]["labels"]["metallb.io/node"];
            let node = &object["status"]["node"];
            assert_eq!(label, node, "label and status disagree: {object}");
            node.as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn wait_l2_status_nodes(cluster: &Cluster, name: &str, expected: &[&str]) -> Duration {
    let start = Instant::now();
    let mut seen = Vec::new();
    let found = wait_for(WAIT, || {
        seen = l2_status_nodes(cluster, name);
        (seen == expected).then_some(())
    });
    assert!(
        found.is_some(),
        "ServiceL2Status of {name} naming exactly {expected:?} within {WAIT:?}; seen {seen:?}"
    );
    start.elapsed()
}

/// Waits until the client's ARP requests for `address` are answered by
/// `node`'s MAC alone (an empty set for none); returns how long it took.
fn wait_arp(cluster: &Cluster, address: &str, node: Option<&str>) -> Duration {
    let start = Instant::now();
    let want: BTreeSet<String> = node
        .map(|n| cluster.agent(n).mac().to_owned())
        .into_iter()
        .collect();
    let mut seen = BTreeSet::new();
    let found = wait_for(WAIT, || {
        seen = cluster.arp_answerers(address, 2);
        (seen == want).then_some(())
    });
    assert!(
        found.is_some(),
        "ARP for {address} answered by {want:?} ({node:?}) within {WAIT:?}; seen {seen:?}"
    );
    start.elapsed()
}

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

/// Waits for an Event with `reason` on a Service of the namespace whose
/// note holds `text`; returns the note.
fn wait_event(cluster: &Cluster, reason: &str, text: &str) -> String {
    wait_for(WAIT, || {
        cluster
            .events(&[reason])
            .into_iter()
            .find(|(_, note, _)| note.contains(text))
            .map(|(_, note, _)| note)
    })
    .unwrap_or_else(|| {
        panic!(
            "no {reason} Event holding {text:?} within {WAIT:?}; Events: {:?}",
            cluster.events(&[reason])
        )
    })
}

fn create_service(cluster: &Cluster, manifest: Value) -> Service {
    let service: Service = serde_json::from_value(manifest).expect("service manifest");
    let services: Api<Service> = Api::namespaced(cluster.client(), NAMESPACE);
    cluster
        .block(services.create(&PostParams::default(), &service))
        .expect("create Service")
}

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

#[test]
fn metallb_crds_installed_after_the_agents_started_are_followed() {
    let _serial = one_cluster_at_a_time();
    // No CRDs: the agents start in flags-only mode.
    let cluster = Cluster::start("late");
    cluster.create_lb_service("late", &["198.51.100.30"]);
    cluster.create_lb_service("kept", &["203.0.113.5"]);
    let late_owner = cluster.sole_owner(&["198.51.100.30"], "flags-only: late announced");
    let kept_owner = cluster.sole_owner(&["203.0.113.5"], "flags-only: kept announced");
    wait_arp(&cluster, "198.51.100.30", Some(late_owner));
    let status = cluster.status_json();
    for (name, owner) in [("late", late_owner), ("kept", kept_owner)] {
        let found = rows(&status, name);
        assert!(
            matches!(found.as_slice(), [row] if row["announced"] == true
                && row["node"] == owner && row["reported_by"] == json!([])),
            "{name} announced by {owner}, no ServiceL2Status without the CRDs: {status:#}"
        );
    }

    cluster.install_crds();
    let installed = Instant::now();
    // The pool of late's address is advertised by nothing.
    let applying = Instant::now();
    cluster.apply(&format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: svc, namespace: {NAMESPACE}}}
spec: {{addresses: ["198.51.100.16/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: adv, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.0/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: adv, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [adv]}}
"#
    ));
    cluster.nobody_holds(&["198.51.100.30"], "late's pool advertised by nothing");
    let withdrawn = applying.elapsed();
    let since_crds = installed.elapsed();
    wait_arp(&cluster, "198.51.100.30", None);
    let kept_status = wait_l2_status_nodes(&cluster, "kept", &[kept_owner]);
    assert_eq!(
        l2_status_nodes(&cluster, "late"),
        Vec::<String>::new(),
        "no ServiceL2Status for a Service nobody announces"
    );
    let kept_interface = cluster.agent(kept_owner).interface().to_owned();
    let unannounced = [Unannounced {
        service: "late",
        address: Some("198.51.100.30"),
        reason: "NotAdvertised",
        object: Some("IPAddressPool/svc"),
    }];
    let status = status_until(&cluster, |s| {
        mismatches(s, &unannounced).is_empty()
            && announced_by(s, "kept", kept_owner, &kept_interface)
    });
    let wrong = mismatches(&status, &unannounced);
    assert!(wrong.is_empty(), "{wrong:#?}\nin {status:#}");
    assert!(
        announced_by(&status, "kept", kept_owner, &kept_interface),
        "kept still announced by {kept_owner}, now with its ServiceL2Status: {status:#}"
    );
    wait_event(
        &cluster,
        "NotAdvertised",
        "NotAdvertised: ingress ip 198.51.100.30",
    );
    assert_eq!(
        cluster.holders("203.0.113.5"),
        vec![kept_owner],
        "the advertised address stays where it was"
    );
    eprintln!(
        "CRDs installed late: late withdrawn {:.2} s after `kubectl apply` of the pools began \
         ({:.2} s after the CRDs were served), kept's ServiceL2Status {:.2} s later",
        withdrawn.as_secs_f64(),
        since_crds.as_secs_f64(),
        kept_status.as_secs_f64()
    );
}

#[test]
fn a_crashed_owners_servicel2status_goes_to_the_node_taking_over() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start_with("sl2s", &[], &with_crds(), |_| ()).0;
    cluster.create_lb_service("web", &["198.51.100.10"]);
    let owner = cluster.sole_owner(&["198.51.100.10"], "one node to hold web's address");
    wait_l2_status_nodes(&cluster, "web", &[owner]);

    // SIGKILL: the owner's pinned program is left answering. On a real node
    // it yields to the successor's gratuitous ARP; here every agent runs in
    // the root namespace, so each one's OWN_MACS holds every node's MACs, the
    // successor's announcements look like the node's own, and the orphan
    // answers until its stale gate (--stale-after, 15 s) closes. WAIT (30 s)
    // covers that.
    cluster.kill_agent(owner);
    let killed = Instant::now();
    let successor = cluster.new_owner(&["198.51.100.10"], owner, "another node to take web over");
    let took_over = killed.elapsed();
    wait_arp(&cluster, "198.51.100.10", Some(successor));
    let answered = killed.elapsed();
    wait_l2_status_nodes(&cluster, "web", &[successor]);
    let reported = killed.elapsed();
    let interface = cluster.agent(successor).interface().to_owned();
    let status = status_until(&cluster, |s| announced_by(s, "web", successor, &interface));
    assert!(
        announced_by(&status, "web", successor, &interface),
        "web announced by {successor} and reported by it alone: {status:#}"
    );
    let dead = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == owner))
        .cloned()
        .unwrap_or_default();
    assert!(
        dead["excluded"].is_string(),
        "the crashed {owner} does not announce: {dead}"
    );
    eprintln!(
        "SIGKILL of {owner}'s agent: {successor} held the VIP after {:.2} s, alone answered ARP \
         after {:.2} s, alone in ServiceL2Status after {:.2} s",
        took_over.as_secs_f64(),
        answered.as_secs_f64(),
        reported.as_secs_f64()
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
    let failed = cluster.events(&["AllocationFailed"]);
    assert!(
        !failed.is_empty(),
        "an AllocationFailed Event on web once no pool has room"
    );
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
