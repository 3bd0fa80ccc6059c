//! Naming the other MAC (issue #22), end to end: the client claims the
//! node's VIPs (a gratuitous ARP, an unsolicited NA with override, sent as
//! raw frames), and the running agent logs the claimant's MAC with the VIP,
//! the interface and what it did, `responder vips` shows it, a restarted
//! agent still shows it, and `responder cleanup` removes the new pin.
//! Needs root; documentation addresses only.

use std::{
    os::fd::{AsRawFd as _, OwnedFd},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use responder_model::frames::{
    link_addr_option, Arp, Ethernet, Nd, Vlan, ALL_NODES6, ALL_NODES_MAC, BROADCAST_MAC,
    NA_FLAG_OVERRIDE, ND_OPT_TARGET_LL_ADDR,
};
use responder_tests::{
    lab::{
        link::format_mac,
        pair::{Lab, CLIENT_IF, NODE_IF},
        responder::{responder_bin, PinCleanup, Responder},
    },
    netns::wait_for,
    packet_socket::packet_socket,
};

const VIP4: &str = "192.0.2.10";
const VIP4_BYTES: [u8; 4] = [192, 0, 2, 10];
const VIP6: &str = "2001:db8::10";
const VIP6_BYTES: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const WAIT: Duration = Duration::from_secs(15);

fn args() -> Vec<&'static str> {
    vec![
        "--interface",
        NODE_IF,
        "--vip",
        VIP4,
        "--vip",
        VIP6,
        "--xdp-mode",
        "driver",
    ]
}

/// Sends `frame` out of the client's interface through `socket`.
fn send(socket: &OwnedFd, frame: &[u8]) {
    // SAFETY: `frame` is valid for its length; the socket is bound.
    let sent = unsafe { libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert_eq!(
        sent,
        frame.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// Sends `frame` from the client once a second until `seen` says the node
/// noticed (the data plane reports a VIP at most once a second), for at
/// most [`WAIT`].
fn claim_until<T>(lab: &Lab, frame: &[u8], mut seen: impl FnMut() -> Option<T>) -> Option<T> {
    let ifindex = lab.client.ifindex(CLIENT_IF);
    let socket = lab
        .client
        .enter(|| packet_socket(0, ifindex))
        .expect("packet socket on the client");
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        send(&socket, frame);
        if let Some(found) = wait_for(Duration::from_secs(1), &mut seen) {
            return Some(found);
        }
    }
    None
}

/// The log line naming `claimant` for `ip`, if there is one yet.
fn claim_line(responder: &Responder, ip: &str, claimant: &str) -> Option<String> {
    responder
        .log()
        .lines()
        .find(|line| {
            line.contains("another MAC claims a VIP")
                && line.contains(&format!("ip={ip} "))
                && line.contains(&format!("claimant={claimant}"))
        })
        .map(str::to_owned)
}

/// The claimant `responder vips --json` shows for `ip`.
fn vips_claimant(responder: &Responder, ip: &str) -> Option<String> {
    responder
        .vips()
        .iter()
        .find(|row| row["ip"] == ip)
        .and_then(|row| row["claimant"]["mac"].as_str().map(str::to_owned))
}

fn gratuitous_arp(mac: [u8; 6]) -> Vec<u8> {
    Arp::gratuitous(mac, VIP4_BYTES).frame(&Ethernet {
        dst: BROADCAST_MAC,
        src: mac,
        vlan: Vlan::Untagged,
    })
}

fn unsolicited_na(mac: [u8; 6]) -> Vec<u8> {
    Nd::advertisement(
        VIP6_BYTES,
        ALL_NODES6,
        VIP6_BYTES,
        NA_FLAG_OVERRIDE,
        vec![link_addr_option(ND_OPT_TARGET_LL_ADDR, mac)],
    )
    .frame(&Ethernet {
        dst: ALL_NODES_MAC,
        src: mac,
        vlan: Vlan::Untagged,
    })
}

fn cleanup(pin_path: &Path) -> String {
    let out = Command::new(responder_bin())
        .args(["cleanup", "--pin-path"])
        .arg(pin_path)
        .output()
        .expect("run responder cleanup");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_agent_names_the_mac_claiming_its_vips_and_vips_shows_it() {
    let lab = Lab::new("claim");
    let _cleanup = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let mut responder = lab.start_responder(&args(), 2);
    let client_mac = lab.client.mac(CLIENT_IF);
    let claimant = format_mac(&client_mac);

    // IPv4: a gratuitous ARP from the client for the node's VIP.
    let line = claim_until(&lab, &gratuitous_arp(client_mac), || {
        claim_line(&responder, VIP4, &claimant)
    })
    .unwrap_or_else(|| panic!("no claim logged for {VIP4}:\n{}", responder.log()));
    eprintln!("{line}");
    for field in [&format!("interface={NODE_IF}"), "action=defended", "WARN"] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert_eq!(vips_claimant(&responder, VIP4), Some(claimant.clone()));
    let row = responder
        .vips()
        .into_iter()
        .find(|row| row["ip"] == VIP4)
        .expect("VIP row");
    assert!(row["claimant"]["age_seconds"].as_u64().is_some(), "{row}");
    assert!(row["conflicts"].as_u64() >= Some(1), "{row}");

    // IPv6: an unsolicited NA with override.
    let line = claim_until(&lab, &unsolicited_na(client_mac), || {
        claim_line(&responder, VIP6, &claimant)
    })
    .unwrap_or_else(|| panic!("no claim logged for {VIP6}:\n{}", responder.log()));
    assert!(line.contains(&format!("interface={NODE_IF}")), "{line}");
    assert_eq!(vips_claimant(&responder, VIP6), Some(claimant.clone()));

    // A restarted agent adopts the pins, the last claimants with them.
    responder.kill();
    let mut restarted = lab.start_responder(&args(), 2);
    assert_eq!(
        vips_claimant(&restarted, VIP4),
        Some(claimant.clone()),
        "{:?}",
        restarted.vips()
    );
    assert_eq!(vips_claimant(&restarted, VIP6), Some(claimant));
    restarted.kill();

    // `responder cleanup` removes every pin, the claimants with them.
    let removed = cleanup(&lab.pin_path());
    assert!(removed.contains("claimants"), "{removed}");
    assert!(!lab.pin_path().exists(), "{removed}");
}
