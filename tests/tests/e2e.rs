//! End to end: `responder run` on a veth in one namespace, real clients (the
//! kernel's neighbor stack, arping, ndisc6) in another.
use std::time::Duration;

use responder_tests::{
    lab::pair::{
        arping, kernel_resolve, lab_vip_args, ndisc6, Lab, CLIENT_IF, NODE_IF, NODE_V4, OTHER_V4,
        OTHER_V6, VIP_V4, VIP_V6,
    },
    netns::{wait_for, TempPath},
};

const WAIT: Duration = Duration::from_secs(10);

fn vip_args() -> Vec<&'static str> {
    lab_vip_args("driver", &[])
}

#[test]
fn kernel_neighbor_resolution_learns_our_mac() {
    let lab = Lab::new("kres");
    let responder = lab.start_responder(&vip_args(), 2);
    let mac = lab.node_mac();
    for vip in [VIP_V4, VIP_V6] {
        let learned = wait_for(WAIT, || {
            kernel_resolve(&lab, vip);
            lab.client_neighbor(vip)
                .filter(|(lladdr, _)| *lladdr == mac)
        });
        assert!(
            learned.is_some(),
            "client never learned {vip} -> {mac}: {:?}",
            lab.client_neighbor(vip)
        );
        assert!(
            responder.counter(vip, "replies") >= 1,
            "no reply counted for {vip}"
        );
    }
}

#[test]
fn stale_ipv6_neighbor_unicast_reprobe_is_answered() {
    let lab = Lab::new("nud");
    let responder = lab.start_responder(&vip_args(), 2);
    let mac = lab.node_mac();
    // Probe quickly instead of after the default 5 s delay.
    lab.client
        .command("sysctl")
        .args([
            "-qw",
            &format!("net.ipv6.neigh.{CLIENT_IF}.delay_first_probe_time=1"),
        ])
        .status()
        .expect("sysctl");
    lab.client.ip(&[
        "-6", "neigh", "replace", VIP_V6, "lladdr", &mac, "nud", "stale", "dev", CLIENT_IF,
    ]);
    let before = responder.counter(VIP_V6, "requests");
    let reachable = wait_for(WAIT, || {
        kernel_resolve(&lab, VIP_V6);
        lab.client_neighbor(VIP_V6)
            .filter(|(lladdr, state)| *lladdr == mac && state == "REACHABLE")
    });
    assert!(
        reachable.is_some(),
        "STALE entry never confirmed: {:?}",
        lab.client_neighbor(VIP_V6)
    );
    assert!(
        responder.counter(VIP_V6, "requests") > before,
        "the unicast NUD probe never reached the responder"
    );
}

#[test]
fn arping_and_ndisc6_get_replies_from_our_mac() {
    let lab = Lab::new("tools");
    let responder = lab.start_responder(&vip_args(), 2);
    let mac = lab.node_mac();

    let (ok, out) = arping(&lab, VIP_V4, 3);
    assert!(ok, "arping {VIP_V4} failed:\n{out}");
    assert!(
        out.to_lowercase().contains(&mac),
        "arping reply not from {mac}:\n{out}"
    );
    assert!(
        responder.counter(VIP_V4, "replies") >= 3,
        "fewer than 3 ARP replies counted"
    );

    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(ok, "ndisc6 {VIP_V6} failed:\n{out}");
    assert!(
        out.to_lowercase().contains(&mac),
        "ndisc6 answer not from {mac}:\n{out}"
    );
}

#[test]
fn addresses_not_configured_get_no_reply() {
    let lab = Lab::new("miss");
    let _responder = lab.start_responder(&vip_args(), 2);
    let (ok, out) = arping(&lab, OTHER_V4, 2);
    assert!(!ok, "arping {OTHER_V4} got a reply:\n{out}");
    let (ok, out) = ndisc6(&lab, OTHER_V6);
    assert!(!ok, "ndisc6 {OTHER_V6} got a reply:\n{out}");
    // The node's own address is the kernel's to answer, not ours.
    let (ok, out) = arping(&lab, NODE_V4, 1);
    assert!(
        ok,
        "the node kernel stopped answering for its own address:\n{out}"
    );
}

#[test]
fn skb_mode_answers_too() {
    let lab = Lab::new("skb");
    let args = lab_vip_args("skb", &[]);
    let _responder = lab.start_responder(&args, 2);
    let (ok, out) = arping(&lab, VIP_V4, 2);
    assert!(ok, "arping in skb mode failed:\n{out}");
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(ok, "ndisc6 in skb mode failed:\n{out}");
}

#[test]
fn gratuitous_burst_moves_a_clients_neighbor_entry() {
    let lab = Lab::new("garp");
    // The client believes the VIPs live at some other (old owner's) MAC.
    let old = "02:00:5e:00:53:99";
    for vip in [VIP_V4, VIP_V6] {
        lab.client.ip(&[
            "neigh", "replace", vip, "lladdr", old, "nud", "stale", "dev", CLIENT_IF,
        ]);
    }
    let args = lab_vip_args(
        "driver",
        &["--announce-count", "3", "--announce-interval", "1100ms"],
    );
    let _responder = lab.start_responder(&args, 2);
    let mac = lab.node_mac();
    for vip in [VIP_V4, VIP_V6] {
        // Nothing on the client side sends traffic: only the announcement can move the entry.
        let moved = wait_for(WAIT, || {
            lab.client_neighbor(vip)
                .filter(|(lladdr, _)| *lladdr == mac)
        });
        assert!(
            moved.is_some(),
            "announcement did not move {vip}: {:?}",
            lab.client_neighbor(vip)
        );
    }
}

#[test]
fn sigterm_detaches_and_unpins() {
    let lab = Lab::new("term");
    let mut responder = lab.start_responder(&vip_args(), 2);
    lab.terminate_and_check_teardown(&mut responder);
}

#[test]
fn vip_file_reloads_on_sighup_without_detaching() {
    let lab = Lab::new("hup");
    let file = TempPath(std::env::temp_dir().join(format!("{}.vips", lab.node.name())));
    let file = &file.0;
    std::fs::write(file, format!("# initial set\n{VIP_V4}\n")).expect("write vip file");
    let file_arg = file.to_str().expect("utf-8 path").to_owned();
    let mut responder = lab.start_responder(&["--interface", NODE_IF, "--vip-file", &file_arg], 1);
    let prog_before = lab.xdp_prog_id();

    std::fs::write(file, format!("{VIP_V6}\n\n# v4 withdrawn\n")).expect("rewrite vip file");
    responder.child().signal(nix::sys::signal::Signal::SIGHUP);
    let swapped = wait_for(WAIT, || {
        let vips = responder.vips();
        (vips.len() == 1 && vips[0]["ip"] == VIP_V6).then_some(())
    });
    assert!(
        swapped.is_some(),
        "SIGHUP did not swap the VIP set: {:?}",
        responder.vips()
    );
    let (ok, out) = arping(&lab, VIP_V4, 2);
    assert!(!ok, "withdrawn {VIP_V4} still answered:\n{out}");
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(ok, "added {VIP_V6} not answered:\n{out}");

    // A broken file on reload keeps the current set instead of emptying it.
    std::fs::write(file, "not-an-ip\n").expect("break vip file");
    responder.child().signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        responder.vips().len(),
        1,
        "a bad reload changed the VIP set"
    );
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(ok, "a bad reload stopped answering:\n{out}");
    assert_eq!(
        lab.xdp_prog_id(),
        prog_before,
        "the program was re-attached during reloads"
    );
}

#[test]
fn interface_down_up_and_recreate_reattaches() {
    let mut lab = Lab::new("flap");
    let args = [
        "--interface",
        NODE_IF,
        "--vip",
        VIP_V4,
        "--xdp-mode",
        "driver",
    ];
    let responder = lab.start_responder(&args, 1);
    let (ok, out) = arping(&lab, VIP_V4, 1);
    assert!(ok, "arping {VIP_V4} failed before any change:\n{out}");
    let log_count = |line: &str| responder.log().matches(line).count();
    let answered = |lab: &Lab| wait_for(WAIT, || arping(lab, VIP_V4, 1).0.then_some(())).is_some();

    lab.node.ip(&["link", "set", NODE_IF, "down"]);
    let detached = wait_for(WAIT, || {
        (log_count("interface gone; detached") == 1 && responder.vips().is_empty()).then_some(())
    });
    assert!(
        detached.is_some(),
        "down interface not detached: {:?}\n{}",
        responder.vips(),
        responder.log()
    );
    let link = lab.node.ip(&["link", "show", "dev", NODE_IF]);
    assert!(
        !link.contains("xdp"),
        "XDP still attached to the down interface:\n{link}"
    );

    lab.node.ip(&["link", "set", NODE_IF, "up"]);
    let reattached = wait_for(WAIT, || {
        (log_count("attached XDP program") == 2 && responder.vips().len() == 1).then_some(())
    });
    assert!(
        reattached.is_some(),
        "interface not re-attached after up: {:?}\n{}",
        responder.vips(),
        responder.log()
    );
    assert!(
        answered(&lab),
        "no answer after the interface came back up:\n{}",
        responder.log()
    );

    lab.recreate_link();
    let ifindex = lab.node.ifindex(NODE_IF);
    let mac = lab.node_mac();
    let moved = wait_for(WAIT, || {
        let vips = responder.vips();
        (vips.len() == 1 && vips[0]["ifindex"] == ifindex && vips[0]["mac"] == mac.as_str())
            .then_some(())
    });
    assert!(
        moved.is_some(),
        "VIP not moved to the recreated interface #{ifindex} ({mac}): {:?}\n{}",
        responder.vips(),
        responder.log()
    );
    assert_eq!(
        log_count("interface gone; detached"),
        2,
        "deletion not logged:\n{}",
        responder.log()
    );
    assert_eq!(
        log_count("attached XDP program"),
        3,
        "re-attach not logged:\n{}",
        responder.log()
    );
    assert!(
        answered(&lab),
        "no answer on the recreated interface:\n{}",
        responder.log()
    );
}

/// Some drivers reset the link when XDP is attached, so carrier loss must not
/// detach (attach → reset → no carrier → detach → reset … would loop): the
/// program stays, and when carrier returns the VIPs are announced again, as
/// switches and neighbours may have forgotten the node meanwhile.
#[test]
fn carrier_loss_keeps_the_program_attached_and_its_return_reannounces() {
    let lab = Lab::new("carrier");
    let args = [
        "--interface",
        NODE_IF,
        "--vip",
        VIP_V4,
        "--xdp-mode",
        "driver",
        "--announce-count",
        "1",
        // The node's own namespace: a fixed port cannot collide.
        "--metrics-addr",
        "127.0.0.1:9850",
    ];
    let responder = lab.start_responder(&args, 1);
    let prog = lab.xdp_prog_id();
    let sent = || {
        responder
            .metric(9850, "responder_layer2_gratuitous_sent_total")
            .unwrap_or(0.0)
    };
    let before =
        wait_for(WAIT, || Some(sent()).filter(|n| *n > 0.0)).expect("initial announcement");

    // The peer going down takes the node's carrier away.
    lab.client.ip(&["link", "set", CLIENT_IF, "down"]);
    let no_carrier = wait_for(WAIT, || {
        lab.node
            .ip(&["link", "show", "dev", NODE_IF])
            .contains("NO-CARRIER")
            .then_some(())
    });
    assert!(no_carrier.is_some(), "the node kept its carrier");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.xdp_prog_id(), prog, "the program stays attached");
    assert_eq!(responder.vips().len(), 1, "the VIP stays installed");

    lab.client.ip(&["link", "set", CLIENT_IF, "up"]);
    let reannounced = wait_for(WAIT, || Some(sent()).filter(|n| *n > before));
    assert!(
        reannounced.is_some(),
        "no announcement when carrier came back:\n{}",
        responder.log()
    );
    assert_eq!(lab.xdp_prog_id(), prog, "never re-attached");
    let (ok, out) = arping(&lab, VIP_V4, 1);
    assert!(ok, "no answer once carrier is back:\n{out}");
}
