//! Start, links, source updates, ticks and the VIP file.

use super::*;

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
