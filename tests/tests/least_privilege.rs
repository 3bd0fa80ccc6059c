//! Least privilege, proven: `responder run` as an unprivileged user with
//! exactly the DaemonSet's capabilities (BPF, NET_ADMIN, NET_RAW, PERFMON;
//! no new privileges), with only its own pin directory of bpffs mounted
//! (the DaemonSet mounts the host's /sys/fs/bpf/responder, not all of
//! /sys/fs/bpf), answers ARP and NDP; and with any one of the four dropped
//! it refuses to start, naming the missing capability, and leaves nothing
//! attached or pinned.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use responder_tests::{
    lab::{
        pair::{arping, lab_vip_args, ndisc6, Lab, NODE_IF, VIP_V4, VIP_V6},
        responder::{pin_path_of, responder_bin, Responder},
    },
    netns::{run_ok, ChildGuard, TempPath},
};

/// The DaemonSet's capabilities, as setpriv names them.
const DAEMONSET_CAPABILITIES: [&str; 4] = ["bpf", "net_admin", "net_raw", "perfmon"];
/// `nobody`: no capabilities but the ones handed over.
const UNPRIVILEGED_ID: &str = "65534";

/// `setpriv` switching to the unprivileged user with exactly `capabilities`
/// effective (ambient, so they survive the exec), none to gain later.
fn setpriv(capabilities: &[&str]) -> Vec<String> {
    let set: String = std::iter::once("-all".to_owned())
        .chain(capabilities.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    [
        "setpriv",
        "--reuid",
        UNPRIVILEGED_ID,
        "--regid",
        UNPRIVILEGED_ID,
        "--clear-groups",
        "--no-new-privs",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("--inh-caps={set}"),
        format!("--ambient-caps={set}"),
        format!("--bounding-set={set}"),
        "--".to_owned(),
    ])
    .collect()
}

/// A pin directory on the host's bpffs the unprivileged user may write, as
/// the kubelet's hostPath gives the DaemonSet's root user.
fn unprivileged_pin_dir(lab: &Lab) -> (PathBuf, TempPath) {
    let dir = pin_path_of(&lab.node);
    std::fs::create_dir(&dir).expect("create the pin directory on bpffs");
    let guard = TempPath(dir.clone());
    run_ok(
        Command::new("chown")
            .args([&format!("{UNPRIVILEGED_ID}:{UNPRIVILEGED_ID}")])
            .arg(&dir),
    );
    (dir, guard)
}

fn responder_args(pin_path: &Path) -> Vec<String> {
    let mut args = vec![
        responder_bin().to_string_lossy().into_owned(),
        "run".into(),
        "--pin-path".into(),
        pin_path.to_string_lossy().into_owned(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--health-addr".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(lab_vip_args("driver", &[]).into_iter().map(str::to_owned));
    args
}

#[test]
fn the_daemonsets_capabilities_and_its_own_pin_directory_suffice() {
    let lab = Lab::new("lpok");
    let (pins_on_bpffs, _pins) = unprivileged_pin_dir(&lab);
    // Where the container sees it: a bpffs directory mounted on its own,
    // under a parent that is not bpffs.
    let mount_point = std::env::temp_dir().join(format!("{}-pins", lab.node.name()));
    std::fs::create_dir(&mount_point).expect("create the mount point");
    let _mount_point = TempPath(mount_point.clone());

    // A private mount namespace holds the bind mount; it goes with the
    // responder.
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(&pins_on_bpffs)
        .arg(&mount_point)
        .arg("nsenter")
        .arg(format!("--net={}", lab.node.path()))
        .arg("--")
        .args(setpriv(&DAEMONSET_CAPABILITIES))
        .args(responder_args(&mount_point));
    let mut responder = Responder::start_command(&lab.node, cmd, pins_on_bpffs.clone(), 2);

    let (answered, output) = arping(&lab, VIP_V4, 2);
    assert!(
        answered,
        "arping got no reply:\n{output}\nlog:\n{}",
        responder.log()
    );
    let (answered, output) = ndisc6(&lab, VIP_V6);
    assert!(
        answered,
        "ndisc6 got no reply:\n{output}\nlog:\n{}",
        responder.log()
    );

    responder.child().signal(nix::sys::signal::Signal::SIGTERM);
    let code = responder.child().wait_exit(Duration::from_secs(10));
    let log = responder.log();
    assert_eq!(code, Some(0), "clean exit; log:\n{log}");
    let left: Vec<_> = std::fs::read_dir(&pins_on_bpffs)
        .expect("the mounted directory itself stays")
        .collect();
    assert!(left.is_empty(), "pins left behind: {left:?}");
    assert!(
        !log.contains("WARN"),
        "a clean run warns about nothing:\n{log}"
    );
    let link = lab.node.ip(&["link", "show", "dev", NODE_IF]);
    assert!(!link.contains("xdp"), "XDP still attached:\n{link}");
}

#[test]
fn each_capability_dropped_fails_the_start_naming_it() {
    let lab = Lab::new("lpdrop");
    let (pins_on_bpffs, _pins) = unprivileged_pin_dir(&lab);
    for dropped in DAEMONSET_CAPABILITIES {
        let remaining: Vec<&str> = DAEMONSET_CAPABILITIES
            .into_iter()
            .filter(|cap| *cap != dropped)
            .collect();
        let log_path = std::env::temp_dir().join(format!("{}-{dropped}.log", lab.node.name()));
        let _log = TempPath(log_path.clone());
        let log = File::create(&log_path).expect("create the log");
        let mut cmd = lab.node.command(&setpriv(&remaining)[0]);
        cmd.args(&setpriv(&remaining)[1..])
            .args(responder_args(&pins_on_bpffs))
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let mut child = ChildGuard::spawn(cmd, "responder run without a capability");
        let code = child.wait_exit(Duration::from_secs(20));
        let output = std::fs::read_to_string(&log_path).expect("read the log");
        assert_ne!(code, Some(0), "started without {dropped}:\n{output}");
        let missing = format!("lacks CAP_{}", dropped.to_uppercase());
        assert!(
            output.contains("permission denied") && output.contains(&missing),
            "without {dropped} the error must say so ({missing}):\n{output}"
        );
        let link = lab.node.ip(&["link", "show", "dev", NODE_IF]);
        assert!(
            !link.contains("xdp"),
            "XDP left attached without {dropped}:\n{link}"
        );
        let left: Vec<_> = std::fs::read_dir(&pins_on_bpffs)
            .expect("pin directory")
            .collect();
        assert!(left.is_empty(), "pins left without {dropped}: {left:?}");
    }
}
