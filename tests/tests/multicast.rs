//! IPv6 VIPs behind a NIC's multicast filter: the agent adds each IPv6 VIP's
//! solicited-node group to the device's address list (what `ip maddr add`
//! does), keeps it across a restart, and removes it when the VIP goes, when
//! the agent detaches, and on `responder cleanup`. veth has no multicast
//! filter, so what is checked is the device's list, as `ip maddr` shows it.
use std::{collections::BTreeSet, time::Duration};

use responder_tests::{
    lab::{
        pair::{Lab, NODE_IF, VIP_V6},
        responder::{responder_bin, PinCleanup},
    },
    netns::{wait_for, TempPath},
};

const WAIT: Duration = Duration::from_secs(20);
/// Shares its low 24 bits with VIP_V6 (…::10): the same group.
const SAME_GROUP_V6: &str = "2001:db8:200::10";
const OTHER_V6: &str = "2001:db8:100::20";

/// The groups added to the node's interface "statically" (by `ip maddr add`
/// or the agent), not those the kernel joined for its own addresses.
fn static_groups(lab: &Lab) -> BTreeSet<String> {
    let out = lab.node.ip(&["maddr", "show", "dev", NODE_IF]);
    out.lines()
        .filter(|line| line.contains("static"))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "link")?;
            words.get(at + 1).map(|mac| mac.to_string())
        })
        .collect()
}

fn groups(macs: &[&str]) -> BTreeSet<String> {
    macs.iter().map(|m| m.to_string()).collect()
}

fn wait_for_groups(lab: &Lab, expected: &BTreeSet<String>, what: &str) {
    let reached = wait_for(WAIT, || (static_groups(lab) == *expected).then_some(()));
    assert!(
        reached.is_some(),
        "{what}: static groups {:?}, expected {expected:?}",
        static_groups(lab)
    );
}

#[test]
fn ipv6_vips_keep_their_solicited_node_groups_exactly_while_they_are_installed() {
    let lab = Lab::new("mcast");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let file = TempPath(std::env::temp_dir().join(format!("{}.vips", lab.node.name())));
    let file = &file.0;
    let write = |vips: &[&str]| std::fs::write(file, vips.join("\n")).expect("write vip file");
    write(&[VIP_V6, SAME_GROUP_V6, OTHER_V6]);
    let file_arg = file.to_str().expect("utf-8 path").to_owned();
    let args = ["--interface", NODE_IF, "--vip-file", &file_arg];
    let both = groups(&["33:33:ff:00:00:10", "33:33:ff:00:00:20"]);

    let mut responder = lab.start_responder(&args, 3);
    wait_for_groups(&lab, &both, "after start");

    // A killed agent leaves them; its successor adopts them as they are.
    responder.kill();
    assert_eq!(static_groups(&lab), both, "the groups outlive the agent");
    let mut responder = lab.start_responder(&args, 3);
    wait_for_groups(&lab, &both, "after a restart");

    // Two VIPs share a group: it stays until the second one goes.
    write(&[SAME_GROUP_V6, OTHER_V6]);
    responder.child().signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        static_groups(&lab),
        both,
        "{SAME_GROUP_V6} still needs …:10"
    );
    write(&[OTHER_V6]);
    responder.child().signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_groups(
        &lab,
        &groups(&["33:33:ff:00:00:20"]),
        "after the last VIP of …:10 went",
    );

    // Detaching (static mode's SIGTERM) leaves them all.
    lab.terminate_and_check_teardown(&mut responder);
    wait_for_groups(&lab, &BTreeSet::new(), "after detaching");

    // And `responder cleanup` removes what a killed agent left.
    write(&[VIP_V6]);
    let mut responder = lab.start_responder(&args, 1);
    wait_for_groups(&lab, &groups(&["33:33:ff:00:00:10"]), "after a new start");
    responder.kill();
    let out = lab
        .node
        .command(responder_bin().to_str().expect("utf-8 path"))
        .arg("cleanup")
        .arg("--pin-path")
        .arg(lab.pin_path())
        .output()
        .expect("run responder cleanup");
    assert!(
        out.status.success(),
        "cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(static_groups(&lab), BTreeSet::new(), "after cleanup");
}
