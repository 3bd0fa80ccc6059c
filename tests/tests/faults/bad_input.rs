//! Bad input: Service status the agent cannot use, VIP files, pin paths,
//! SIGHUP, an IP family the interface lacks.
use super::*;

/// Services whose status the agent cannot use are named in a warning, and
/// do not keep a good Service from being answered.
#[test]
fn unusable_service_status_is_named_and_skipped() {
    const GOOD: &str = "198.51.100.30";
    const NOT_UNICAST: &str = "224.0.0.5";
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("bad");
    cluster.create_lb_service("bad-ip", &[]);
    // The API server validates ingress ips itself (so the agent's own parse
    // error is unreachable through it); an IP that is no unicast VIP passes.
    let rejected = cluster.try_set_ingress_entries("bad-ip", json!([{ "ip": "not-an-ip" }]));
    eprintln!("the API server's verdict on ingress ip \"not-an-ip\": {rejected:?}");
    assert!(
        rejected.is_err(),
        "the API server accepted ingress ip \"not-an-ip\""
    );
    cluster.set_ingress("bad-ip", &[NOT_UNICAST]);
    cluster.create_lb_service("hostname-only", &[]);
    cluster
        .try_set_ingress_entries("hostname-only", json!([{ "hostname": "lb.example.com" }]))
        .expect("hostname-only ingress accepted");
    cluster.create_lb_service("good", &[GOOD]);

    let owner = cluster.sole_owner(&[GOOD], "one node to hold good");
    assert_eq!(
        cluster.arp_answerers(GOOD, 2),
        BTreeSet::from([cluster.agent(owner).mac().to_owned()]),
        "good must be answered by {owner} alone"
    );
    let warnings = wait_for(WAIT, || {
        let logs: Vec<String> = cluster.agents.iter().map(|a| a.log()).collect();
        let bad_ip = logs.iter().find_map(|log| {
            log_line(
                log,
                &["WARN", "default/bad-ip", "ignoring load-balancer IP"],
            )
        })?;
        let hostname = logs
            .iter()
            .find_map(|log| log_line(log, &["WARN", "default/hostname-only", "has no ip"]))?;
        Some((bad_ip, hostname))
    });
    let (bad_ip, hostname) = warnings.unwrap_or_else(|| {
        panic!("no warning naming bad-ip and hostname-only in the agents' logs")
    });
    eprintln!("warnings:\n{bad_ip}\n{hostname}");
    assert!(
        cluster.holders(NOT_UNICAST).is_empty(),
        "{NOT_UNICAST} installed as a VIP"
    );
}

/// `responder run` that must refuse to start: its exit code and stderr.
fn run_refused(lab: &Lab, args: &[&str], pin_path: &Path) -> (i32, String) {
    let out = lab
        .node
        .command("timeout")
        .arg("20")
        .arg(responder_bin())
        .args([
            "run",
            "--interface",
            NODE_IF,
            "--metrics-addr",
            "off",
            "--health-addr",
            "off",
            "--pin-path",
        ])
        .arg(pin_path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run responder");
    let code = out.status.code().expect("exit code");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    assert_ne!(code, 124, "responder kept running with {args:?}:\n{text}");
    (code, text)
}

#[test]
fn unreadable_vip_file_and_non_bpffs_pin_path_refuse_to_start() {
    let lab = Lab::new("badin");
    let _pins = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let missing = std::env::temp_dir().join(format!("faults-missing-{}.vips", std::process::id()));
    let directory =
        TempPath(std::env::temp_dir().join(format!("faults-dir-{}", std::process::id())));
    std::fs::create_dir_all(&directory.0).expect("create a directory");
    let directory = &directory.0;
    let missing_text = format!("cannot read VIP file {}", missing.display());
    let directory_text = format!("cannot read VIP file {}", directory.display());
    let cases = [
        (
            "a missing --vip-file",
            vec!["--vip-file", missing.to_str().expect("utf-8")],
            lab.pin_path(),
            missing_text.as_str(),
        ),
        (
            "a directory as --vip-file",
            vec!["--vip-file", directory.to_str().expect("utf-8")],
            lab.pin_path(),
            directory_text.as_str(),
        ),
        (
            "a pin path off bpffs",
            vec!["--vip", "198.51.100.10"],
            directory.clone(),
            "is not on a BPF filesystem",
        ),
    ];
    for (what, args, pin_path, expected) in cases {
        let (code, output) = run_refused(&lab, &args, &pin_path);
        eprintln!("{what}: exit {code}: {}", output.trim());
        assert_ne!(code, 0, "{what} must fail the start:\n{output}");
        assert!(
            output.contains(expected),
            "the error for {what} must say {expected:?}:\n{output}"
        );
    }
}

#[test]
fn sighup_with_an_unreadable_vip_file_keeps_serving() {
    const VIP: &str = "198.51.100.10";
    let lab = Lab::new("hupbad");
    let _pins = PinCleanup {
        pin_path: lab.pin_path(),
    };
    let file =
        TempPath(std::env::temp_dir().join(format!("faults-hup-{}.vips", std::process::id())));
    let file = &file.0;
    std::fs::write(file, format!("{VIP}\n")).expect("write vip file");
    let mut responder = lab.start_responder(
        &[
            "--interface",
            NODE_IF,
            "--vip-file",
            file.to_str().expect("utf-8"),
        ],
        1,
    );
    let (answered, out) = arping(&lab, VIP, 2);
    assert!(answered, "{VIP} not answered before the reload: {out}");

    // Root reads through `chmod 000`; a directory in the file's place cannot be read.
    std::fs::remove_file(file).expect("remove vip file");
    std::fs::create_dir(file).expect("directory in its place");
    responder.child().signal(nix::sys::signal::Signal::SIGHUP);
    let refused = wait_for(Duration::from_secs(10), || {
        log_line(&responder.log(), &["SIGHUP", "keeping the current VIPs"])
    });
    let line = refused.unwrap_or_else(|| panic!("no reload error logged:\n{}", responder.log()));
    eprintln!("reload error: {line}");
    assert_eq!(responder.vips().len(), 1, "the VIP must stay installed");
    let (answered, out) = arping(&lab, VIP, 2);
    assert!(
        answered,
        "{VIP} not answered after the failed reload: {out}"
    );
}

/// IPv6 disabled on the interface: the IPv6 VIP is not answered there (the
/// node would drop what it draws), a warning says why, the IPv4 VIP is served
/// meanwhile, and enabling IPv6 brings the IPv6 VIP in without a restart.
#[test]
fn ipv6_vip_waits_while_the_interface_has_ipv6_disabled() {
    let lab = Lab::new("nov6");
    let set_disable_ipv6 = |value: u8| {
        let out = lab
            .node
            .command("sysctl")
            .args([
                "-qw",
                &format!("net.ipv6.conf.{NODE_IF}.disable_ipv6={value}"),
            ])
            .output()
            .expect("run sysctl");
        assert!(out.status.success(), "sysctl disable_ipv6={value}: {out:?}");
    };
    set_disable_ipv6(1);
    let responder = lab.start_responder(&lab_vip_args("driver", &[]), 1);
    let installed: Vec<String> = responder
        .vips()
        .iter()
        .map(|v| v["ip"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(installed, vec![VIP_V4.to_owned()], "only the IPv4 VIP fits");
    let warning = log_line(
        &responder.log(),
        &["WARN", VIP_V6, "IPv6 is disabled there"],
    )
    .unwrap_or_else(|| panic!("no warning naming {VIP_V6}; log:\n{}", responder.log()));
    eprintln!("warning: {warning}");
    let (ok, out) = arping(&lab, VIP_V4, 2);
    assert!(ok, "the IPv4 VIP must be served meanwhile:\n{out}");
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(
        !ok,
        "{VIP_V6} answered on an interface without IPv6:\n{out}"
    );

    set_disable_ipv6(0);
    let both = wait_for(Duration::from_secs(10), || {
        (responder.vips().len() == 2).then_some(())
    });
    assert!(
        both.is_some(),
        "{VIP_V6} not installed after IPv6 was enabled; log:\n{}",
        responder.log()
    );
    let (ok, out) = ndisc6(&lab, VIP_V6);
    assert!(ok, "{VIP_V6} not answered once IPv6 is enabled:\n{out}");
}
