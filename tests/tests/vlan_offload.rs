//! Receive VLAN offload on the node's NIC, end to end: the responder turns
//! tag stripping off where it attaches, so a request "on VLAN 100" reaches
//! XDP tagged and is answered, tagged, only for VIPs scoped to VLAN 100; it
//! never fights an operator who turns it back on, and turns back on exactly
//! what it turned off (at a clean exit, after an adoption, or through
//! `responder cleanup` after a SIGKILL). The NIC is emulated (see
//! `responder_tests::vlan_offload`): veth ignores its own rx-vlan-offload
//! setting, so the client side is made to deliver tags the way a NIC with
//! the node's setting would.

use std::time::Duration;

use responder_tests::{
    lab::{
        pair::{Lab, CLIENT_IF, CLIENT_V4, NODE_IF},
        responder::{responder_bin, PinCleanup},
    },
    netns::{run_ok, wait_for},
    vlan_offload::{
        arping_once, feature_on, is_arp_reply_for, is_na_for, ndisc6_once, set_feature, Captured,
        EmulatedVlanNic, TagCapture, EMULATED_VLAN,
    },
};

const UNTAGGED_ONLY_V4: &str = "198.51.100.10";
const ON_VLAN_V4: &str = "198.51.100.20";
const ON_VLAN_V6: &str = "2001:db8:100::20";
const CTAG_STRIPPING: &str = "rx-vlan-offload";
const STAG_STRIPPING: &str = "rx-vlan-stag-hw-parse";
const REPLY_WAIT: Duration = Duration::from_secs(3);

fn octets4(ip: &str) -> [u8; 4] {
    ip.parse::<std::net::Ipv4Addr>().expect("IPv4").octets()
}

fn octets6(ip: &str) -> [u8; 16] {
    ip.parse::<std::net::Ipv6Addr>().expect("IPv6").octets()
}

fn vip_args(mode: &'static str) -> Vec<String> {
    vec![
        "--interface".into(),
        NODE_IF.into(),
        "--vip".into(),
        format!("{UNTAGGED_ONLY_V4}@{NODE_IF}"),
        "--vip".into(),
        format!("{ON_VLAN_V4}@{NODE_IF}.{EMULATED_VLAN}"),
        "--vip".into(),
        format!("{ON_VLAN_V6}@{NODE_IF}.{EMULATED_VLAN}"),
        "--xdp-mode".into(),
        mode.into(),
    ]
}

/// An ARP reply to the client's own request (not a gratuitous one, which
/// the agent also sends tagged when it announces).
fn answered_arp(lab: &Lab, ip: &str) -> impl Fn(&Captured) -> bool {
    let node_mac = lab.node.mac(NODE_IF);
    let client_mac = lab.client.mac(CLIENT_IF);
    let ip = octets4(ip);
    let client_ip = octets4(CLIENT_V4);
    move |c: &Captured| {
        is_arp_reply_for(c, ip, node_mac)
            && c.payload[18..24] == client_mac
            && c.payload[24..28] == client_ip
    }
}

/// A solicited Neighbor Advertisement (S=1: not an announcement).
fn answered_ns(lab: &Lab, ip: &str) -> impl Fn(&Captured) -> bool {
    let node_mac = lab.node.mac(NODE_IF);
    let target = octets6(ip);
    move |c: &Captured| is_na_for(c, target, node_mac) && c.payload[44] & 0x40 != 0
}

fn vlan_scoping_holds_with_offload(mode: &'static str) {
    let lab = Lab::new(&format!("vo{mode}"));
    let _nic = EmulatedVlanNic::attach(&lab.client, CLIENT_IF);
    assert!(
        feature_on(&lab.node, NODE_IF, CTAG_STRIPPING),
        "veth starts with rx-vlan-offload on, like most NICs"
    );
    let args = vip_args(mode);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut responder = lab.start_responder(&args, 3);
    for feature in [CTAG_STRIPPING, STAG_STRIPPING] {
        assert!(
            !feature_on(&lab.node, NODE_IF, feature),
            "{feature} turned off on attach; log:\n{}",
            responder.log()
        );
    }
    assert!(
        responder.log().contains("turned receive VLAN offload off"),
        "the change is logged:\n{}",
        responder.log()
    );
    EmulatedVlanNic::follow(&lab.node, NODE_IF, &lab.client, CLIENT_IF);
    let capture = TagCapture::open(&lab.client, CLIENT_IF);

    arping_once(&lab.client, CLIENT_IF, ON_VLAN_V4);
    let reply = capture
        .wait_for(REPLY_WAIT, answered_arp(&lab, ON_VLAN_V4))
        .unwrap_or_else(|| {
            panic!(
                "no ARP reply for the VLAN 100 VIP; log:\n{}",
                responder.log()
            )
        });
    assert_eq!(
        reply.vlan,
        Some(EMULATED_VLAN),
        "ARP reply tagged like the request"
    );
    ndisc6_once(&lab.client, CLIENT_IF, ON_VLAN_V6);
    let reply = capture
        .wait_for(REPLY_WAIT, answered_ns(&lab, ON_VLAN_V6))
        .unwrap_or_else(|| panic!("no NA for the VLAN 100 VIP; log:\n{}", responder.log()));
    assert_eq!(
        reply.vlan,
        Some(EMULATED_VLAN),
        "NA tagged like the solicitation"
    );

    arping_once(&lab.client, CLIENT_IF, UNTAGGED_ONLY_V4);
    assert!(
        capture
            .wait_for(REPLY_WAIT, answered_arp(&lab, UNTAGGED_ONLY_V4))
            .is_none(),
        "an untagged-only VIP must not answer a request from VLAN 100"
    );
    assert_eq!(responder.counter(UNTAGGED_ONLY_V4, "requests"), 0);
    assert!(responder.counter(ON_VLAN_V4, "replies") >= 1);

    // An operator turns tag stripping back on: the responder leaves it on,
    // and XDP sees VLAN 100 requests untagged again (the symptom:
    // they count against the untagged-only VIP).
    set_feature(&lab.node, NODE_IF, "rxvlan", true);
    EmulatedVlanNic::follow(&lab.node, NODE_IF, &lab.client, CLIENT_IF);
    arping_once(&lab.client, CLIENT_IF, UNTAGGED_ONLY_V4);
    let seen_untagged = wait_for(REPLY_WAIT, || {
        (responder.counter(UNTAGGED_ONLY_V4, "requests") > 0).then_some(())
    });
    assert!(
        seen_untagged.is_some(),
        "with the offload back on, the emulated NIC strips the tag"
    );
    assert!(feature_on(&lab.node, NODE_IF, CTAG_STRIPPING), "not fought");

    lab.terminate_and_check_teardown(&mut responder);
    assert!(
        feature_on(&lab.node, NODE_IF, CTAG_STRIPPING),
        "the operator's on"
    );
    assert!(
        feature_on(&lab.node, NODE_IF, STAG_STRIPPING),
        "what the responder turned off is back on after a clean exit"
    );
}

#[test]
fn vlan_scoping_holds_with_receive_offload_in_driver_mode() {
    vlan_scoping_holds_with_offload("driver");
}

#[test]
fn vlan_scoping_holds_with_receive_offload_in_skb_mode() {
    vlan_scoping_holds_with_offload("skb");
}

#[test]
fn offloads_turned_off_are_restored_after_kill_adoption_and_cleanup_only() {
    let lab = Lab::new("vorestore");
    // A failure between a kill and the cleanup below must not leave pins.
    let _pins = PinCleanup {
        pin_path: lab.pin_path(),
    };
    // The operator's choice, which no restore may undo.
    set_feature(&lab.node, NODE_IF, STAG_STRIPPING, false);
    let args = ["--interface", NODE_IF, "--vip", UNTAGGED_ONLY_V4];

    let mut first = lab.start_responder(&args, 1);
    assert!(!feature_on(&lab.node, NODE_IF, CTAG_STRIPPING));
    first.kill();
    assert!(
        !feature_on(&lab.node, NODE_IF, CTAG_STRIPPING),
        "a killed agent restores nothing: the program may still need it off"
    );

    // A restarted agent adopts the record with the pins; its clean exit
    // restores what the first one turned off.
    let mut second = lab.start_responder(&args, 1);
    // The pinned VIP map already had its entry: wait for the agent itself.
    let running = wait_for(Duration::from_secs(20), || {
        second.log().contains("responder running").then_some(())
    });
    assert!(running.is_some(), "{}", second.log());
    assert!(second.log().contains("adopting"), "{}", second.log());
    lab.terminate_and_check_teardown(&mut second);
    assert!(feature_on(&lab.node, NODE_IF, CTAG_STRIPPING), "restored");
    assert!(
        !feature_on(&lab.node, NODE_IF, STAG_STRIPPING),
        "off before the responder came, off after"
    );

    // After a SIGKILL, `responder cleanup` (where the agent ran) restores.
    let mut third = lab.start_responder(&args, 1);
    assert!(!feature_on(&lab.node, NODE_IF, CTAG_STRIPPING));
    third.kill();
    run_ok(
        lab.node
            .command(responder_bin().to_str().expect("utf-8 path"))
            .arg("cleanup")
            .arg("--pin-path")
            .arg(lab.pin_path()),
    );
    assert!(
        feature_on(&lab.node, NODE_IF, CTAG_STRIPPING),
        "cleanup restored"
    );
    assert!(
        !feature_on(&lab.node, NODE_IF, STAG_STRIPPING),
        "still the operator's"
    );
    assert!(!lab.pin_path().exists(), "cleanup removed the pins");
}
