//! Carrier, the node's addresses, solicited-node groups and the NIC topology.

use super::*;

#[test]
fn carrier_loss_stops_serving_after_the_debounce_and_its_return_announces_again() {
    let mut core = core(&[]);
    core.start(vec![update(Source::CommandLine, &["192.0.2.10@eth1"])])
        .expect("start");
    let start = Instant::now();
    let serving = |core: &Core| core.attached_interfaces().borrow().reach.families;
    let mut eth1_down = eth1();
    eth1_down.carrier = false;
    core.on_links(vec![eth0(), eth1_down.clone()], BTreeSet::new(), start);
    assert_eq!(
        keys(&core),
        vec![v4(3, 0, 0, 10)],
        "still attached and installed"
    );
    tick_at(&mut core, start + DEBOUNCE / 2, &[]);
    assert_eq!(serving(&core), Families::BOTH, "within the debounce");

    // eth0 loses carrier too, for longer than the debounce: nothing serves.
    let mut eth0_down = eth0();
    eth0_down.carrier = false;
    core.on_links(vec![eth0_down, eth1_down], BTreeSet::new(), start);
    tick_at(&mut core, start + DEBOUNCE, &[]);
    assert_eq!(serving(&core), Families::default());

    core.dataplane.announcer_mut().announced.clear();
    core.on_links(vec![eth0(), eth1()], BTreeSet::new(), start + DEBOUNCE * 2);
    assert_eq!(serving(&core), Families::BOTH);
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(3, 0, 0, 10), MAC1)],
        "the VIP on the interface whose carrier came back is announced again"
    );
}

#[test]
fn the_nodes_own_addresses_reach_the_kubernetes_source() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    let addresses: BTreeSet<std::net::IpAddr> = [
        "198.51.100.1".parse().expect("ip"),
        "10.0.0.1".parse().expect("ip"),
    ]
    .into();
    core.on_links(vec![eth0(), eth1()], addresses.clone(), Instant::now());
    assert_eq!(
        core.attached_interfaces().borrow().local_addresses,
        addresses
    );
}

#[test]
fn ipv6_vips_join_their_solicited_node_group_wherever_they_are_installed() {
    let mut core = core(&[]);
    core.start(vec![update(
        Source::CommandLine,
        &["2001:db8:1::10", "2001:db8:2::10@eth0", "192.0.2.10"],
    )])
    .expect("start");
    let group = |ifindex, ip: &str| (ifindex, solicited_node_mac(ip.parse().expect("ip")));
    assert_eq!(
        core.attachments().groups.joined,
        BTreeSet::from([group(2, "2001:db8:1::10"), group(3, "2001:db8:1::10")]),
        "2001:db8:1::10 and 2001:db8:2::10 share their low 24 bits on eth0"
    );
    core.on_source_update(update(Source::CommandLine, &["2001:db8:2::10@eth0"]));
    assert_eq!(
        core.attachments().groups.joined,
        BTreeSet::from([group(2, "2001:db8:2::10")]),
        "the shared group stays for the VIP still on eth0"
    );
    core.clear();
    assert!(core.attachments().groups.joined.is_empty());
}

#[test]
fn the_node_topology_is_written_when_it_changes_and_retried_after_a_failure() {
    let mut core = core(&["eth0"]);
    let first = Topology {
        own_macs: [[2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]].into(),
        bond_members: BTreeMap::new(),
    };
    core.on_topology(&first);
    core.on_topology(&first);
    assert_eq!(
        core.attachments().topologies,
        vec![first.clone()],
        "written once"
    );

    // eth1 becomes a member of bond0 (ifindex 9): a new topology.
    let bonded = Topology {
        own_macs: first.own_macs.clone(),
        bond_members: [(3, 9)].into(),
    };
    core.attachments_mut().fail_topology = true;
    core.on_topology(&bonded);
    assert_eq!(core.attachments().topologies.len(), 1, "the write failed");
    core.attachments_mut().fail_topology = false;
    core.on_topology(&bonded);
    assert_eq!(
        core.attachments().topologies.last(),
        Some(&bonded),
        "the same topology is retried after a failure"
    );
}
