//! Failover as production clusters walk it, on the simulated three-node
//! cluster (real API server, three agents on one bridge, a client): a rolling
//! update moves nothing, a returning owner takes its neighbours back, a frozen
//! view yields to another MAC, and addresses and Leases that must not count
//! do not.
use std::{
    net::Ipv4Addr,
    thread,
    time::{Duration, Instant},
};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use responder_tests::{
    lab::cluster::{Cluster, NAMESPACE, WAIT},
    lab::link::format_mac,
    lab::one_cluster_at_a_time,
    netns::wait_for,
};
use serde_json::json;

const WEB_V4: &str = "198.51.100.10";
const WEB_V6: &str = "2001:db8:100::10";
/// The MAC of a host that does not exist, claiming VIPs it does not own.
const FOREIGN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x99];
const OWNERSHIP_EVENTS: [&str; 2] = ["AnnouncingStarted", "AnnouncingStopped"];

/// When an agent's log last says its VIP map changed by one of `counts`
/// (`added`, `updated`, `removed`).
fn last_reconcile(log: &str, counts: &[&str]) -> Option<k8s_openapi::jiff::Timestamp> {
    log.lines()
        .filter(|line| line.contains("VIPs reconciled"))
        .filter(|line| {
            counts.iter().any(|count| {
                line.split_whitespace()
                    .filter_map(|field| field.strip_prefix(count)?.strip_prefix('='))
                    .any(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
            })
        })
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .next_back()
}

fn ipv4(address: &str) -> Ipv4Addr {
    address.parse().expect("IPv4 address")
}

/// Whether `node`'s pinned map shows `address` as yielded.
fn yielded(cluster: &Cluster, node: &str, address: &str) -> Option<bool> {
    cluster
        .agent(node)
        .vips_json()
        .iter()
        .find(|row| row["ip"] == address)
        .and_then(|row| row["yielded"].as_bool())
}

#[test]
fn a_rolling_update_of_the_owner_moves_nothing_and_loses_no_reply() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start("roll");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold web");
    let owner_mac = cluster.agent(owner).mac().to_owned();
    let events_before = cluster.events(&OWNERSHIP_EVENTS);

    // A client asks every 20 ms throughout the restart.
    let prober = cluster.arp_prober();
    let probing = thread::spawn(move || {
        prober.tally(
            ipv4(WEB_V4),
            Duration::from_millis(20),
            Duration::from_secs(10),
        )
    });
    thread::sleep(Duration::from_secs(1));
    // What a DaemonSet rolling update does: SIGTERM, the pod is replaced.
    cluster.terminate_agent(owner);
    let lease = cluster
        .block(
            Api::<Lease>::namespaced(cluster.client(), NAMESPACE)
                .get(&format!("responder-{owner}")),
        )
        .expect("the owner's Lease");
    let grace = lease
        .metadata
        .annotations
        .and_then(|a| a.get("responder/restart-grace-seconds").cloned());
    assert_eq!(
        grace.as_deref(),
        Some("10"),
        "the stopping agent asks for its grace"
    );
    thread::sleep(Duration::from_secs(3));
    cluster.start_agent(owner);
    let tally = probing.join().expect("prober thread");

    assert_eq!(
        tally.replies.keys().collect::<Vec<_>>(),
        vec![&owner_mac],
        "only {owner} ({owner_mac}) answers during its agent's restart: {tally:?}"
    );
    assert_eq!(
        tally.replies[&owner_mac], tally.sent,
        "every request is answered: {tally:?}"
    );
    assert_eq!(
        cluster.sole_owner(&[WEB_V4, WEB_V6], "web to stay where it was"),
        owner
    );
    assert_eq!(
        cluster.events(&OWNERSHIP_EVENTS),
        events_before,
        "a restart is no ownership change"
    );
}

#[test]
fn a_returning_owner_takes_its_neighbours_back() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start("back");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold web");
    let owner_mac = cluster.agent(owner).mac().to_owned();
    let neighbour_is = |cluster: &Cluster, vip: &str, mac: &str| {
        cluster
            .client_neighbor(vip)
            .is_some_and(|lladdr| lladdr.eq_ignore_ascii_case(mac))
    };
    for vip in [WEB_V4, WEB_V6] {
        let learned = wait_for(WAIT, || {
            cluster.client_resolve(vip);
            neighbour_is(&cluster, vip, &owner_mac).then_some(())
        });
        assert!(learned.is_some(), "client never resolved {vip} to {owner}");
    }

    // The owner's agent dies without a word (its pinned program is left
    // answering until the successor's announcements make it yield).
    cluster.kill_agent(owner);
    let successor = cluster.new_owner(&[WEB_V4, WEB_V6], owner, "web to fail over");
    let successor_mac = cluster.agent(successor).mac().to_owned();
    for vip in [WEB_V4, WEB_V6] {
        let moved = wait_for(WAIT, || {
            neighbour_is(&cluster, vip, &successor_mac).then_some(())
        });
        assert!(
            moved.is_some(),
            "the client's {vip} never moved to {successor}"
        );
    }

    // It comes back with the VIPs still in its pinned map, and wins them back
    // once it has been live for the hold-down.
    cluster.start_agent(owner);
    let back = wait_for(WAIT, || {
        [WEB_V4, WEB_V6]
            .iter()
            .all(|vip| cluster.holders(vip) == [owner])
            .then_some(())
    });
    assert!(
        back.is_some(),
        "rendezvous never gave web back to {owner}: {:?}",
        cluster.holders(WEB_V4)
    );
    // Break before make: the successor, still live, withdrew before the
    // owner began to answer (the owner waits --handover-pause, 100 ms). Both
    // logs are stamped by this machine's one clock.
    let withdrawn = last_reconcile(&cluster.agent(successor).log(), &["removed"])
        .unwrap_or_else(|| panic!("{successor} never withdrew web"));
    let answering = last_reconcile(&cluster.agent(owner).log(), &["added", "updated"])
        .unwrap_or_else(|| panic!("{owner} never installed web"));
    let gap_ms = answering.duration_since(withdrawn).as_secs_f64() * 1e3;
    eprintln!("{owner} answered for web {gap_ms:.3} ms after {successor} withdrew it");
    assert!(
        withdrawn < answering,
        "{owner} answered for web {:.3} ms before {successor} withdrew",
        -gap_ms
    );
    // No client traffic from here on: only the owner's announcements can
    // move the entries, and the first of them goes out as it takes web back.
    let announced_at = Instant::now();
    for vip in [WEB_V4, WEB_V6] {
        let returned = wait_for(Duration::from_secs(5), || {
            neighbour_is(&cluster, vip, &owner_mac).then_some(())
        });
        assert!(
            returned.is_some(),
            "the client's {vip} still points at {successor} ({:?}) {:?} after {owner} took it back",
            cluster.client_neighbor(vip),
            announced_at.elapsed()
        );
    }
}

#[test]
fn a_frozen_view_yields_to_another_mac_until_it_recovers() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("frozen");
    cluster.create_lb_service("web", &[WEB_V4]);
    let owner = cluster.sole_owner(&[WEB_V4], "one node to hold web");
    let owner_mac = cluster.agent(owner).mac().to_owned();
    let prober = cluster.arp_prober();

    cluster.server.kill_api_server();
    let frozen = wait_for(WAIT, || {
        cluster
            .agent(owner)
            .log()
            .contains("Kubernetes view broken")
            .then_some(())
    });
    assert!(frozen.is_some(), "{owner}'s view never froze");
    // Fail-static: the owner still answers...
    assert_eq!(
        prober.answers(ipv4(WEB_V4), Duration::from_millis(500)),
        vec![owner_mac.clone()]
    );
    // ...until another MAC claims the VIP: that host more likely has a
    // working view than this node.
    prober.announce_foreign(ipv4(WEB_V4), FOREIGN_MAC);
    let yielded_now = wait_for(WAIT, || yielded(&cluster, owner, WEB_V4).filter(|y| *y));
    assert!(
        yielded_now.is_some(),
        "{owner} did not yield web: {:?}",
        cluster.agent(owner).vips_json()
    );
    assert!(
        prober
            .answers(ipv4(WEB_V4), Duration::from_millis(500))
            .is_empty(),
        "a yielded VIP is not answered"
    );

    cluster.server.restart_api_server();
    let reasserted = wait_for(WAIT, || {
        (yielded(&cluster, owner, WEB_V4) == Some(false)
            && prober.answers(ipv4(WEB_V4), Duration::from_millis(300)) == [owner_mac.clone()])
        .then_some(())
    });
    assert!(
        reasserted.is_some(),
        "{owner} did not take web back once its view recovered: {:?}",
        cluster.agent(owner).vips_json()
    );

    // The claim is on the Service as an AddressConflict Event naming the
    // other MAC (the yield itself fell in the outage, when no Event could
    // be written; the take-back is the last word), and `responder status`
    // shows web answered by its owner again, not Yielded.
    let claimant = format_mac(&FOREIGN_MAC);
    let took_back = wait_for(WAIT, || {
        cluster
            .events(&["AddressConflict"])
            .into_iter()
            .map(|(_, note, _)| note)
            .find(|note| note.starts_with(&claimant) && note.ends_with("it took back"))
    });
    assert!(
        took_back.is_some(),
        "no AddressConflict Event naming {claimant}: {:?}",
        cluster.events(&["AddressConflict"])
    );
    let status = cluster.status_json();
    let web = status["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .find(|row| row["address"] == WEB_V4)
        .cloned()
        .expect("web in status");
    assert_eq!(web["announced"], true, "{web}");
    assert_eq!(web["node"], owner, "{web}");
}

#[test]
fn node_addresses_are_never_answered_for_and_a_forged_lease_keeps_no_node_alive() {
    let _serial = one_cluster_at_a_time();
    let mut cluster = Cluster::start("safe");
    let node_ip = "198.51.100.50";
    let vip = "198.51.100.51";
    cluster.set_node_addresses("node-a", &[node_ip]);
    cluster.create_lb_service("hijack", &[node_ip, vip]);
    let owner = cluster.sole_owner(&[vip], "one node to hold the genuine VIP");
    assert!(
        cluster.holders(node_ip).is_empty(),
        "node-a's own address was installed as a VIP"
    );
    let refused = wait_for(WAIT, || {
        cluster
            .events(&["AddressRefused"])
            .into_iter()
            .find(|(_, message, _)| message.contains("InternalIP of Node node-a"))
    });
    assert!(
        refused.is_some(),
        "no AddressRefused Event: {:?}",
        cluster.events(&["AddressRefused"])
    );

    // Someone keeps a Lease named for another node renewed with the owner as
    // holder: it must not keep the owner a member once its agent is dead.
    let client = cluster.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forging = {
        let stop = std::sync::Arc::clone(&stop);
        let holder = owner.to_owned();
        thread::spawn(move || forge_lease(client, &holder, &stop))
    };
    cluster.fail_node(owner);
    let successor = cluster.new_owner(&[vip], owner, "the VIP to leave the dead node");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    forging.join().expect("forging thread");
    assert_ne!(successor, owner);
    assert!(
        cluster
            .agent(successor)
            .log()
            .contains("ignoring a membership Lease held by a node other than"),
        "the forged Lease was not noticed"
    );
}

/// Renews `responder-forged` with `holder` every 200 ms until `stop`.
fn forge_lease(client: kube::Client, holder: &str, stop: &std::sync::atomic::AtomicBool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {
                "name": "responder-forged",
                "labels": { "app.kubernetes.io/component": "responder-membership" },
            },
            "spec": { "holderIdentity": holder },
        }))
        .expect("lease manifest");
        leases
            .create(&PostParams::default(), &lease)
            .await
            .expect("create the forged Lease");
        let deadline = Instant::now() + WAIT;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            let now = k8s_openapi::jiff::Timestamp::now();
            let patch = json!({ "spec": { "renewTime": now } });
            let _ = leases
                .patch(
                    "responder-forged",
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn vips_go_to_the_node_on_their_subnet() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("subnet");
    // Only node-c has an address on 203.0.113.0/24; the others are on none.
    cluster.add_interface_address("node-c", "203.0.113.3/24");
    let services = [
        ("edge-1", "203.0.113.11"),
        ("edge-2", "203.0.113.12"),
        ("edge-3", "203.0.113.13"),
    ];
    for (name, vip) in services {
        cluster.create_lb_service(name, &[vip]);
    }
    for (name, vip) in services {
        assert_eq!(
            cluster.sole_owner(&[vip], &format!("{name} on its subnet")),
            "node-c",
            "{vip} must go to the node on 203.0.113.0/24"
        );
    }
    let lease = cluster
        .block(Api::<Lease>::namespaced(cluster.client(), NAMESPACE).get("responder-node-c"))
        .expect("node-c's Lease");
    let prefixes = lease
        .metadata
        .annotations
        .and_then(|a| a.get("responder/prefixes").cloned());
    assert_eq!(prefixes.as_deref(), Some("203.0.113.0/24"));
}

/// A node that may not announce takes no part in the membership (no Lease, so
/// the API load follows the announcing nodes), and joins once it may.
#[test]
fn an_ineligible_node_holds_no_lease_and_joins_when_it_becomes_eligible() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start_excluding("elig", &["node-c"]);
    let services: Vec<(String, String)> = (1..=8)
        .map(|i| (format!("spread-{i}"), format!("198.51.100.{}", 20 + i)))
        .collect();
    for (name, vip) in &services {
        cluster.create_lb_service(name, &[vip]);
    }
    for (name, vip) in &services {
        let owner = cluster.sole_owner(&[vip], &format!("one node to hold {name}"));
        assert_ne!(owner, "node-c", "the excluded node owns {name}");
    }
    assert!(
        !cluster.has_lease("node-c"),
        "the excluded node holds a Lease"
    );
    assert!(
        cluster
            .agent("node-c")
            .log()
            .contains("this node may not announce"),
        "{}",
        cluster.agent("node-c").log()
    );

    cluster.include_node("node-c");
    let joined = wait_for(WAIT, || cluster.has_lease("node-c").then_some(()));
    assert!(joined.is_some(), "node-c never joined");
    let took_some = wait_for(WAIT, || {
        services
            .iter()
            .any(|(_, vip)| cluster.holders(vip) == ["node-c"])
            .then_some(())
    });
    assert!(
        took_some.is_some(),
        "node-c took none of 8 Services after joining"
    );
}
