//! A node that may not announce hands its Services on: a NetworkUnavailable
//! condition or the exclusion label (and it takes them back once cleared),
//! and the out-of-service taint on a frozen node (at once, well before its
//! Lease would).
use super::*;

/// MetalLB's "should not be announced from a node with a NetworkUnavailable
/// condition" and "It should be work when adding NodeExcludeBalancers label
/// to a node": each moves the owner's Service away at run time, and clearing
/// it brings the Service back to the same node (rendezvous: it wins again,
/// once it has been back for the hold-down).
#[test]
fn network_unavailable_and_the_exclusion_label_move_services_away_and_back() {
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("netun");
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold web");
    assert_eq!(
        owner,
        computed_owner(&NODES, "web"),
        "rendezvous over all three nodes"
    );
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = computed_owner(&others, "web");

    type Change = (&'static str, fn(&Cluster, &str), fn(&Cluster, &str));
    let changes: [Change; 2] = [
        (
            "NetworkUnavailable=True",
            |c, n| c.set_node_condition(n, "NetworkUnavailable", "True"),
            |c, n| c.set_node_condition(n, "NetworkUnavailable", "False"),
        ),
        (
            "the exclude-from-external-load-balancers label",
            |c, n| c.exclude_node(n),
            |c, n| c.include_node(n),
        ),
    ];
    for (what, set, clear) in changes {
        let started = Instant::now();
        set(&cluster, owner);
        let moved_after = wait_for(WAIT, || {
            cluster
                .holders(WEB_V4)
                .contains(&successor)
                .then(|| started.elapsed())
        })
        .unwrap_or_else(|| panic!("{successor} never took web with {what} on {owner}"));
        let moved = cluster.new_owner(
            &[WEB_V4, WEB_V6],
            owner,
            &format!("web to leave {owner} with {what}"),
        );
        assert_eq!(moved, successor, "web goes to the next node by rendezvous");
        assert_web_answered_only_by(&cluster, moved);
        let left = wait_for(WAIT, || (!cluster.holds_lease(owner)).then_some(()));
        assert!(left.is_some(), "{owner} kept holding its Lease with {what}");

        let started = Instant::now();
        clear(&cluster, owner);
        let back = wait_for(WAIT, || {
            [WEB_V4, WEB_V6]
                .iter()
                .all(|vip| cluster.holders(vip) == [owner])
                .then_some(())
        });
        assert!(
            back.is_some(),
            "web never came back to {owner} once {what} was cleared: {:?}",
            cluster.holders(WEB_V4)
        );
        let back_after = started.elapsed();
        assert_eq!(
            cluster.sole_owner(&[WEB_V4, WEB_V6], "web to settle back"),
            owner
        );
        assert_web_answered_only_by(&cluster, owner);
        eprintln!(
            "{what}: web moved {owner} -> {moved} {moved_after:?} after the change, \
             came back {back_after:?} after it was cleared (the hold-down included)"
        );
    }
}

/// MetalLB #3116: the out-of-service taint of a non-graceful node shutdown
/// releases the node's Services at once. The owner's agent is frozen
/// (SIGSTOP) with 10 s Leases, so its Lease keeps it a member for up to 10 s:
/// without the taint nothing moves; with it the next node answers within a
/// bound far below that, and the frozen agent, once it runs again, withdraws
/// and leaves the membership.
#[test]
fn the_out_of_service_taint_releases_a_frozen_nodes_services_at_once() {
    const LEASE: Duration = Duration::from_secs(10);
    /// Well below the Lease: a watch event and an assignment, on a busy machine.
    const BOUND: Duration = Duration::from_secs(3);
    let _serial = one_cluster_at_a_time();
    let options = ClusterOptions {
        agent_args: vec!["--lease-duration".into(), format!("{}s", LEASE.as_secs())],
        ..ClusterOptions::default()
    };
    let (cluster, ()) = Cluster::start_with("oos", &[], &options, |_| ());
    cluster.create_lb_service("web", &[WEB_V4, WEB_V6]);
    let owner = cluster.sole_owner(&[WEB_V4, WEB_V6], "one node to hold web");
    let owner_mac = cluster.agent(owner).mac().to_owned();
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = computed_owner(&others, "web");
    let successor_mac = cluster.agent(successor).mac().to_owned();
    let prober = cluster.arp_prober();

    cluster.freeze_agent(owner);
    let frozen_at = Instant::now();
    // The control: the frozen owner's Lease keeps it the owner for now.
    thread::sleep(Duration::from_secs(2));
    for other in &others {
        assert!(
            !cluster.holders(WEB_V4).contains(other),
            "{other} took web before the taint, {:?} after freezing {owner}: \
             the Lease ({LEASE:?}) should have kept {owner}",
            frozen_at.elapsed()
        );
    }
    assert_eq!(
        prober.answers(v4(WEB_V4), Duration::from_millis(200)),
        vec![owner_mac.clone()],
        "the frozen owner's program still answers"
    );

    let tainted_at = Instant::now();
    cluster.taint_out_of_service(owner);
    let first =
        prober.first_reply_not_from(v4(WEB_V4), &owner_mac, Duration::from_millis(20), LEASE);
    let (answered_at, mac) = first.unwrap_or_else(|| {
        panic!("nobody but the frozen {owner} answered web within {LEASE:?} of the taint")
    });
    let takeover = answered_at - tainted_at;
    eprintln!(
        "out-of-service taint on frozen {owner}: {successor} answered after {takeover:?} \
         ({:?} after the freeze; Lease {LEASE:?})",
        answered_at - frozen_at
    );
    assert_eq!(
        mac, successor_mac,
        "web goes to the next node by rendezvous"
    );
    assert!(
        takeover < BOUND,
        "takeover took {takeover:?} after the taint: not at once (bound {BOUND:?}, Lease {LEASE:?})"
    );
    assert!(
        frozen_at.elapsed() < LEASE,
        "the frozen Lease may have expired meanwhile ({:?}): the test proves nothing",
        frozen_at.elapsed()
    );

    // Running again, the tainted node's agent sees it may not announce:
    // it withdraws and leaves the membership.
    cluster.thaw_agent(owner);
    let withdrawn = wait_for(WAIT, || {
        ([WEB_V4, WEB_V6]
            .iter()
            .all(|vip| cluster.holders(vip) == [successor])
            && !cluster.holds_lease(owner))
        .then_some(())
    });
    assert!(
        withdrawn.is_some(),
        "{owner} did not withdraw once thawed: holders {:?}, holds its Lease: {}",
        cluster.holders(WEB_V4),
        cluster.holds_lease(owner)
    );
    assert!(
        cluster.agent(owner).log().contains(OUT_OF_SERVICE_TAINT),
        "{owner} did not say it is tainted"
    );
    assert_web_answered_only_by(&cluster, successor);
}
