use std::{collections::BTreeMap, time::Duration};

use responder_common::{VipKey, VipStats};
use tokio::time::Instant;

use super::*;
use crate::{
    cluster::Attached,
    error::VipError,
    fakes::*,
    sources::{Source, SourceUpdate},
};

/// The program's attachments and heartbeat, as the core sees them.
#[derive(Default)]
struct FakeAttachments {
    attached: BTreeMap<u32, String>,
    /// Interface names whose attach fails.
    refuse: Vec<String>,
    beats: usize,
    fail_beat: bool,
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

    fn beat(&mut self) -> Result<(), Error> {
        if self.fail_beat {
            return Err(Error::UnknownInterface("injected heartbeat failure".into()));
        }
        self.beats += 1;
        Ok(())
    }
}

type Core = AgentCore<FakeAttachments, FakeMap, FakeAnnouncer>;

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
        ServiceIndex::empty(),
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
    core.on_tick(TickInput {
        ipv6_enabled: |_: &str| true,
        counters,
    });
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
fn readiness_waits_for_the_cluster_source_and_adopted_vips_are_held_until_then() {
    let mut core = core(&[]);
    core.dataplane.hold_removals();
    core.dataplane
        .adopt([(v4(2, 0, 0, 99), value(MAC0))].into());
    core.dataplane.map_mut().entries = core.dataplane.installed().clone();
    core.await_cluster_sync(Instant::now() + Duration::from_secs(10));
    core.start(Vec::new()).expect("start");
    assert!(
        !core.metrics.is_ready(),
        "not ready before the source spoke"
    );
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 99)], "adopted VIP held");

    core.on_source_update(update(Source::Kubernetes, &["192.0.2.10"]));
    core.on_cluster_synced();
    assert!(core.metrics.is_ready());
    assert_eq!(core.sync_deadline(), None);
    assert_eq!(
        keys(&core),
        vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)],
        "the adopted VIP nobody wants is gone, the owned one installed"
    );
}

#[test]
fn links_changing_attach_detach_and_move_the_keys() {
    let mut core = core(&[]);
    let attached = core.attached_interfaces();
    core.start(vec![update(Source::CommandLine, &["192.0.2.10"])])
        .expect("start");
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)]);

    // eth1 went away and eth9 came up.
    core.on_links(vec![eth0(), interface("eth9", 9, MAC1, &[])]);
    assert_eq!(
        core.attachments().attached,
        BTreeMap::from([(2, "eth0".to_owned()), (9, "eth9".to_owned())])
    );
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(9, 0, 0, 10)]);
    assert_eq!(
        *attached.borrow(),
        Attached {
            names: vec!["eth0".into(), "eth9".into()],
            ipv6: true,
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
    let links = vec![eth0(), eth1(), interface("eth9", 9, MAC1, &[])];
    core.on_links(links.clone());
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10)]);
    core.attachments_mut().refuse.clear();
    core.on_links(links);
    assert_eq!(
        keys(&core),
        vec![v4(2, 0, 0, 10), v4(3, 0, 0, 10), v4(9, 0, 0, 10)]
    );
    assert!(core.metrics.liveness().is_ok());
}

#[test]
fn losing_every_interface_reports_not_attached() {
    let mut core = core(&[]);
    core.start(Vec::new()).expect("start");
    core.on_links(Vec::new());
    assert!(core.attachments().attached.is_empty());
    assert!(core.metrics.liveness().is_err());
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
        ipv6_enabled: |_: &str| false,
        counters: &[],
    });
    assert!(keys(&core).is_empty(), "IPv6 switched off on eth0");
    assert!(!core.attached_interfaces().borrow().ipv6);
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
    core.on_links(vec![eth0(), eth1(), interface("eth7", 7, MAC1, &[])]);
    assert_eq!(keys(&core), vec![v4(2, 0, 0, 11), v4(7, 0, 0, 12)]);
}
