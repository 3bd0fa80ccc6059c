//! The load generator of the capacity measurements: one frame injected
//! over and over with BPF_PROG_TEST_RUN in live-frame mode, the kernel
//! facility xdp-tools' `xdp-trafficgen` is built on. A program that writes
//! the frame and returns XDP_TX makes the kernel send it out of the client
//! interface through the driver's `ndo_xdp_xmit`, as a page-pool frame with
//! XDP headroom: no socket, no skb, and on veth no copy before the node's
//! XDP program sees it. When the node cannot keep up, veth drops the excess at
//! its receive ring, which is what saturation looks like on a real NIC.
use std::{
    thread,
    time::{Duration, Instant},
};

use super::{
    threads::{pin_current_thread, thread_runtime},
    tiny_xdp::TinyXdp,
};
use crate::{netns::NetNs, testrun::test_run_live};

/// Frames per BPF_PROG_TEST_RUN call: the syscall is noise next to them,
/// and the deadline is still met within a few milliseconds.
const FRAMES_PER_CALL: u32 = 1 << 15;
/// Frames run through the program and flushed to the driver together, as
/// a NAPI poll does (the kernel's default and `xdp-trafficgen`'s).
const BATCH: u32 = 64;

/// What the generator did in one run.
#[derive(Clone, Copy, Debug)]
pub struct Injection {
    /// Frames handed to the driver, whether the peer's ring took them or not.
    pub frames: u64,
    pub elapsed: Duration,
    /// On-CPU time of the generating thread.
    pub cpu: Duration,
}

/// Injects `frame` on `ifname` in `ns` from a thread pinned to `cpu`
/// until `duration` has passed.
pub fn inject(ns: &NetNs, ifname: &str, frame: &[u8], cpu: usize, duration: Duration) -> Injection {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                pin_current_thread(cpu);
                let program = TinyXdp::replay(frame).expect("load the generator's program");
                ns.enter(|| {
                    let ifindex =
                        nix::net::if_::if_nametoindex(ifname).expect("generator interface");
                    let cpu_before = thread_runtime();
                    let start = Instant::now();
                    let mut frames = 0u64;
                    while start.elapsed() < duration {
                        test_run_live(program.fd(), frame, ifindex, FRAMES_PER_CALL, BATCH)
                            .unwrap_or_else(|e| panic!("live-frame injection: {e}"));
                        frames += u64::from(FRAMES_PER_CALL);
                    }
                    Injection {
                        frames,
                        elapsed: start.elapsed(),
                        cpu: thread_runtime() - cpu_before,
                    }
                })
            })
            .join()
            .expect("generator thread")
    })
}
