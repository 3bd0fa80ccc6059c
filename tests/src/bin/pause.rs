//! The pod sandbox's process for the real-node tests (the kubelet's "pause"
//! image): holds the pod's namespaces, reaps orphans when the pod shares its
//! PID namespace, and exits on SIGINT or SIGTERM. Kubernetes' own pause is C
//! from a registry image; this one is packed offline by `cargo xtask image
//! --binary`, like the product's image.
use nix::sys::{
    signal::{SigSet, Signal},
    wait::{waitpid, WaitPidFlag},
};

fn main() {
    if std::process::id() != 1 {
        eprintln!("pause: warning: not PID 1");
    }
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        signals.add(signal);
    }
    // Blocked so they queue for sigwait instead of killing or being lost.
    signals.thread_block().expect("block signals");
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if status == nix::sys::wait::WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            Ok(signal) => {
                eprintln!("pause: {signal}, exiting");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("pause: sigwait: {e}");
                std::process::exit(1);
            }
        }
    }
}
