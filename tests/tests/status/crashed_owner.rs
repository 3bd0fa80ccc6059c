//! A crashed owner's ServiceL2Status goes to the node that takes its Service
//! over.
use super::*;

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
