use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use responder_common::{VipKey, VipStats, VIP_FLAG_YIELDED};
use tokio::time::Instant;

use super::*;
use crate::{
    cluster::{Attached, Families, Ownership, Reach, ServiceRef, View},
    error::VipError,
    fakes::*,
    netif::multicast::{solicited_node_mac, tests::FakeMemberships, Group, Memberships},
    sources::{Source, SourceUpdate},
};

/// The program's attachments, heartbeat and multicast lists, as the core
/// sees them.
#[derive(Default)]
struct FakeAttachments {
    attached: BTreeMap<u32, String>,
    /// Every topology written, in order.
    topologies: Vec<Topology>,
    fail_topology: bool,
    groups: FakeMemberships,
    /// Interface names whose attach fails.
    refuse: Vec<String>,
    beats: usize,
    fail_beat: bool,
}

impl Memberships for FakeAttachments {
    fn join(&mut self, group: Group) -> std::io::Result<()> {
        self.groups.join(group)
    }

    fn leave(&mut self, group: Group) -> std::io::Result<()> {
        self.groups.leave(group)
    }
}

impl Attachments for FakeAttachments {
    fn attach(&mut self, interface: &Interface) -> Result<(), Error> {
        if self.refuse.contains(&interface.name) {
            return Err(Error::UnknownInterface(interface.name.clone()));
        }
        self.attached
            .insert(interface.ifindex, interface.name.clone());
        Ok(())
    }

    fn detach(&mut self, ifindex: u32) -> Option<String> {
        self.attached.remove(&ifindex)
    }

    fn is_attached(&self, ifindex: u32) -> bool {
        self.attached.contains_key(&ifindex)
    }

    fn attached_names(&self) -> Vec<String> {
        self.attached.values().cloned().collect()
    }

    fn set_topology(&mut self, topology: &Topology) -> Result<(), Error> {
        if self.fail_topology {
            return Err(Error::UnknownInterface("map write refused".into()));
        }
        self.topologies.push(topology.clone());
        Ok(())
    }

    fn beat(&mut self) -> Result<(), Error> {
        if self.fail_beat {
            return Err(Error::UnknownInterface("injected heartbeat failure".into()));
        }
        self.beats += 1;
        Ok(())
    }
}

type Core = AgentCore<FakeAttachments, FakeMap, FakeAnnouncer>;

const DEBOUNCE: Duration = Duration::from_secs(1);

/// The links changed to `links`, with no address elsewhere on the node.
fn links(core: &mut Core, links: Vec<Interface>) {
    core.on_links(links, BTreeSet::new(), Instant::now());
}

/// A core attached to eth0 and eth1, as `Agent::start` leaves it.
fn core(names: &[&str]) -> Core {
    let attachments = FakeAttachments {
        attached: [(2, "eth0".to_owned()), (3, "eth1".to_owned())].into(),
        ..Default::default()
    };
    AgentCore::new(
        dataplane(),
        attachments,
        names.iter().map(|n| n.to_string()).collect(),
        DEBOUNCE,
        Metrics::new(),
    )
}

fn update(source: Source, specs: &[&str]) -> SourceUpdate {
    SourceUpdate {
        source,
        vips: set(specs),
    }
}

fn keys(core: &Core) -> Vec<VipKey> {
    core.dataplane.map().entries.keys().copied().collect()
}

fn tick(core: &mut Core, counters: &[(VipKey, VipStats)]) {
    tick_at(core, Instant::now(), counters);
}

fn tick_at(core: &mut Core, now: Instant, counters: &[(VipKey, VipStats)]) {
    core.on_tick(TickInput {
        now,
        ipv6_enabled: |_: &str| true,
        counters,
    });
}

fn ownership(view: View, ips: &[&str]) -> Ownership {
    Ownership {
        vips: ips
            .iter()
            .map(|ip| {
                let service = ServiceRef {
                    namespace: "default".into(),
                    name: "web".into(),
                };
                (ip.parse().expect("ip"), service)
            })
            .collect(),
        interfaces: BTreeMap::new(),
        view,
    }
}

fn fresh(epoch: u64) -> View {
    View::Fresh { epoch }
}

/// Counters with `conflicts` for `key`.
fn conflicts(key: VipKey, conflicts: u64) -> [(VipKey, VipStats); 1] {
    [(
        key,
        VipStats {
            conflicts,
            ..Default::default()
        },
    )]
}

/// A kube-mode core owning 192.0.2.10 on eth0 and eth1 (keys announced
/// cleared).
fn owning_core() -> Core {
    let mut core = core(&[]);
    core.await_cluster();
    core.start(Vec::new()).expect("start");
    core.on_ownership(ownership(fresh(1), &["192.0.2.10"]));
    core.dataplane.announcer_mut().announced.clear();
    core
}

#[test]
fn start_installs_the_initial_sets_and_is_ready_without_a_cluster() {
    let mut core = core(&[]);
    core.start(vec![
        update(Source::CommandLine, &["192.0.2.10@eth0"]),
        update(Source::VipFile, &["192.0.2.11@eth1"]),
    ])
    .expect("start");
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(3, 0, 0, 11)]);
    assert!(core.metrics.is_ready());
    assert_eq!(core.metrics.liveness(), Ok(()));
}

#[test]
fn start_fails_when_a_key_cannot_be_installed() {
    let mut core = core(&[]);
    core.dataplane.map_mut().fail_inserts = true;
    let e = core
        .start(vec![update(Source::CommandLine, &["192.0.2.10@eth0"])])
        .expect_err("no key written");
    assert!(matches!(e, Error::Install { failed: 1 }), "{e}");
}

#[test]
fn links_changing_attach_detach_and_move_the_keys() {
    let mut core = core(&[]);
    let attached = core.attached_interfaces();
    core.start(vec![update(Source::CommandLine, &["192.0.2.10"])])
        .expect("start");
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)]);

    // eth1 went away and eth9 came up.
    links(&mut core, vec![eth0(), interface("eth9", 9, MAC1, &[])]);
    assert_eq!(
        core.attachments().attached,
        BTreeMap::from([(2, "eth0".to_owned()), (9, "eth9".to_owned())])
    );
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(9, 0, 0, 10)]);
    assert_eq!(
        *attached.borrow(),
        Attached {
            names: vec!["eth0".into(), "eth9".into()],
            reach: Reach {
                families: Families::BOTH,
                prefixes: vec!["198.51.100.0/24".parse().expect("prefix")],
                interfaces: Some(vec!["eth0".into(), "eth9".into()]),
            },
            local_addresses: BTreeSet::new(),
        },
        "the Kubernetes source hears about the new set"
    );
}

#[test]
fn an_interface_that_cannot_be_attached_gets_no_vips_and_is_retried() {
    let mut core = core(&[]);
    core.start(vec![update(Source::CommandLine, &["192.0.2.10"])])
        .expect("start");
    core.attachments_mut().refuse.push("eth9".into());
    let wanted = vec![eth0(), eth1(), interface("eth9", 9, MAC1, &[])];
    links(&mut core, wanted.clone());
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)]);
    core.attachments_mut().refuse.clear();
    links(&mut core, wanted);
    assert_eq!(
        keys(&core),
        vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10), v4(9, 0, 0, 10)]
    );
    assert!(core.metrics.liveness().is_ok());
}

#[test]
fn losing_every_interface_advertises_nothing() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    links(&mut core, Vec::new());
    assert!(core.attachments().attached.is_empty());
    assert_eq!(
        core.attached_interfaces().borrow().reach.families,
        Families::default(),
        "nothing to answer on"
    );
    assert!(
        core.metrics.liveness().is_ok(),
        "no interface is no reason to restart"
    );
}

#[test]
fn the_same_source_update_twice_writes_once() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    core.on_source_update(update(Source::Kubernetes, &["192.0.2.10@eth0"]));
    let writes = core.dataplane.map().writes;
    core.on_source_update(update(Source::Kubernetes, &["192.0.2.10@eth0"]));
    assert_eq!(core.dataplane.map().writes, writes);
    core.on_source_update(update(Source::Kubernetes, &[]));
    assert!(keys(&core).is_empty());
}

#[test]
fn a_tick_beats_retries_failed_writes_and_follows_ipv6() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    core.dataplane.map_mut().fail_inserts = true;
    core.on_source_update(update(Source::Kubernetes, &["2001:db8::10@eth0"]));
    assert!(keys(&core).is_empty());

    core.dataplane.map_mut().fail_inserts = false;
    tick(&mut core, &[]);
    assert_eq!(core.attachments().beats, 1);
    assert_eq!(keys(&core).len(), 1, "the failed insert was retried");

    core.on_tick(TickInput {
        now: Instant::now(),
        ipv6_enabled: |_: &str| false,
        counters: &[],
    });
    assert!(keys(&core).is_empty(), "IPv6 switched off on eth0");
    assert!(!core.attached_interfaces().borrow().reach.families.ipv6);
}

#[test]
fn a_failed_heartbeat_leaves_the_health_heartbeat_alone() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    core.attachments_mut().fail_beat = true;
    tick(&mut core, &[]);
    assert_eq!(core.attachments().beats, 0);
}

#[test]
fn conflicts_are_remembered_between_ticks() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    let key = v4(2, 0, 0, 10);
    let conflicts = |n| {
        [(
            key,
            VipStats {
                conflicts: n,
                ..Default::default()
            },
        )]
    };
    tick(&mut core, &conflicts(2));
    assert_eq!(core.last_conflicts, [(key, 2)].into());
    tick(&mut core, &conflicts(5));
    assert_eq!(core.last_conflicts, [(key, 5)].into());
}

#[test]
fn a_vip_file_that_does_not_validate_changes_nothing() {
    let mut core = core(&["eth0", "eth7"]);
    core.start(vec![update(Source::VipFile, &["192.0.2.10@eth0"])])
        .expect("start");
    let path = std::path::Path::new("/etc/vips");
    core.on_vip_file(path, Ok(set(&["198.51.100.1@eth0"])));
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10)], "eth0's own address");
    core.on_vip_file(
        path,
        Err(VipError::ReadFile {
            path: path.into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        }),
    );
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10)], "unreadable file");

    // eth7 is an --interface that is not up: a valid scope that waits.
    core.on_vip_file(path, Ok(set(&["192.0.2.11@eth0", "192.0.2.12@eth7"])));
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 11)]);
    links(
        &mut core,
        vec![eth0(), eth1(), interface("eth7", 7, MAC1, &[])],
    );
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 11), v4(7, 0, 0, 12)]);
}

/// A restarted kube-mode agent: it adopted 192.0.2.10 and .99 on eth0.
fn restarted_core() -> Core {
    let mut core = core(&[]);
    core.dataplane.hold_removals();
    let adopted: BTreeMap<VipKey, _> = [
        (v4(2, 0, 0, 10), value(MAC0)),
        (v4(2, 0, 0, 99), value(MAC0)),
    ]
    .into();
    core.dataplane.map_mut().entries = adopted.clone();
    core.dataplane.adopt(adopted);
    core.await_cluster();
    core.start(Vec::new()).expect("start");
    core
}

#[test]
fn readiness_and_adopted_vips_wait_for_a_complete_view() {
    let mut core = restarted_core();
    assert!(
        !core.metrics.is_ready(),
        "not ready before the source spoke"
    );
    assert!(
        core.dataplane.announcer().announced.is_empty(),
        "adopted Kubernetes VIPs are not announced before the view confirms them"
    );
    core.on_ownership(ownership(View::Starting, &[]));
    assert_eq!(keys(&core).len(), 2, "adopted VIPs held while starting");

    core.on_ownership(ownership(fresh(1), &["192.0.2.10"]));
    assert!(core.metrics.is_ready());
    assert_eq!(
        keys(&core),
        vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)],
        "the adopted VIP nobody wants is gone, the owned one installed everywhere"
    );
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(3, 0, 0, 10), MAC1), (v4(2, 0, 0, 10), MAC0)],
        "the new key, then the adopted one: the view is new after a restart"
    );
}

#[test]
fn a_first_view_owning_nothing_applies_at_once() {
    let mut core = restarted_core();
    core.on_ownership(ownership(fresh(1), &[]));
    assert!(core.metrics.is_ready());
    assert!(
        keys(&core).is_empty(),
        "VIPs that moved away during the restart go now"
    );
}

#[test]
fn a_vip_regained_is_announced_even_though_the_map_still_holds_it() {
    let mut core = owning_core();
    // The view froze (this node's own Lease expired for the others, who
    // moved the VIP); fail-static keeps the key. Then the view recovers.
    core.on_ownership(ownership(View::Frozen { epoch: 1 }, &["192.0.2.10"]));
    assert!(core.dataplane.announcer().announced.is_empty());
    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(2, 0, 0, 10), MAC0), (v4(3, 0, 0, 10), MAC1)],
        "recovery re-announces every owned VIP"
    );

    // Within one view only gains are announced: a VIP that another node took
    // and gave back, whose key this node could not remove, is one.
    core.dataplane.map_mut().fail_removes = true;
    core.on_ownership(ownership(fresh(2), &[]));
    assert_eq!(keys(&core).len(), 2, "the removal failed; the keys stay");
    core.dataplane.map_mut().fail_removes = false;
    core.dataplane.announcer_mut().announced.clear();
    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert_eq!(
        core.dataplane.announcer().announced,
        vec![(v4(2, 0, 0, 10), MAC0), (v4(3, 0, 0, 10), MAC1)]
    );
    core.dataplane.announcer_mut().announced.clear();
    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert!(
        core.dataplane.announcer().announced.is_empty(),
        "nothing gained, nothing announced"
    );
}

#[test]
fn a_conflict_with_a_fresh_view_is_defended_once_per_interval() {
    let mut core = owning_core();
    let key = v4(2, 0, 0, 10);
    let start = Instant::now();
    tick_at(&mut core, start, &conflicts(key, 1));
    assert_eq!(core.dataplane.announcer().defended, vec![key]);
    tick_at(
        &mut core,
        start + Duration::from_secs(5),
        &conflicts(key, 2),
    );
    assert_eq!(
        core.dataplane.announcer().defended,
        vec![key],
        "within 10 s"
    );
    tick_at(&mut core, start + DEFEND_INTERVAL, &conflicts(key, 3));
    assert_eq!(core.dataplane.announcer().defended, vec![key, key]);
    assert_eq!(core.dataplane.map().entries[&key].flags, 0, "not yielded");
}

#[test]
fn a_conflict_with_a_frozen_view_yields_until_the_view_recovers() {
    let mut core = owning_core();
    let key = v4(2, 0, 0, 10);
    core.on_ownership(ownership(View::Frozen { epoch: 1 }, &["192.0.2.10"]));
    tick(&mut core, &conflicts(key, 1));
    assert_eq!(
        core.dataplane.map().entries[&key].flags,
        VIP_FLAG_YIELDED,
        "the data plane stops answering for it"
    );
    assert!(core.dataplane.announcer().defended.is_empty());
    assert_eq!(core.dataplane.yielded_count(), 1);

    core.on_ownership(ownership(fresh(2), &["192.0.2.10"]));
    assert_eq!(core.dataplane.map().entries[&key].flags, 0, "re-asserted");
    assert_eq!(core.dataplane.yielded_count(), 0);
    assert!(core.dataplane.announcer().announced.contains(&(key, MAC0)));
}

#[test]
fn a_vip_the_data_plane_yielded_while_the_agent_was_late_is_taken_back() {
    let mut core = core(&[]);
    core.start(vec![update(Source::CommandLine, &["192.0.2.10@eth0"])])
        .expect("start");
    let key = v4(2, 0, 0, 10);
    core.dataplane.announcer_mut().announced.clear();
    // The program yielded on its own: heartbeat late, another MAC announced.
    core.dataplane
        .map_mut()
        .entries
        .get_mut(&key)
        .expect("installed")
        .flags = VIP_FLAG_YIELDED;
    tick(&mut core, &conflicts(key, 1));
    assert_eq!(core.dataplane.map().entries[&key].flags, 0);
    assert_eq!(core.dataplane.announcer().announced, vec![(key, MAC0)]);
    assert_eq!(core.dataplane.yielded_count(), 0);
}

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
