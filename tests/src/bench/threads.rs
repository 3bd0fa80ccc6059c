//! Where the benchmark's threads run and how much CPU they use: pinning
//! (the generator on one CPU, the node's receive path on the other),
//! finding the kernel thread that runs an interface's threaded NAPI, and
//! on-CPU time from the scheduler's own accounting
//! (`/proc/<pid>/task/<tid>/schedstat`, nanoseconds, not tick samples).
use std::{collections::BTreeSet, fs, time::Duration};

use nix::{
    sched::{sched_setaffinity, CpuSet},
    unistd::Pid,
};

use crate::netns::{run_ok, NetNs};

fn cpu_set(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu).expect("CPU number in range");
    set
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) {
    sched_setaffinity(Pid::from_raw(0), &cpu_set(cpu)).expect("pin the calling thread");
}

/// Pins every thread of process `pid` (a kernel thread is one) to `cpu`.
pub fn pin_process(pid: i32, cpu: usize) {
    for tid in tasks(pid) {
        sched_setaffinity(Pid::from_raw(tid), &cpu_set(cpu))
            .unwrap_or_else(|e| panic!("pin thread {tid} of {pid} to CPU {cpu}: {e}"));
    }
}

fn tasks(pid: i32) -> Vec<i32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The first field of a schedstat file: time spent on a CPU, in ns.
fn schedstat_ns(path: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// On-CPU time of every thread of process `pid` (0 once it has exited).
pub fn process_runtime(pid: i32) -> Duration {
    Duration::from_nanos(
        tasks(pid)
            .iter()
            .map(|tid| schedstat_ns(&format!("/proc/{pid}/task/{tid}/schedstat")))
            .sum(),
    )
}

/// On-CPU time of the calling thread.
pub fn thread_runtime() -> Duration {
    Duration::from_nanos(schedstat_ns("/proc/thread-self/schedstat"))
}

/// On-CPU time of thread `tid` of this process (0 once it has exited).
pub fn own_thread_runtime(tid: i32) -> Duration {
    Duration::from_nanos(schedstat_ns(&format!("/proc/self/task/{tid}/schedstat")))
}

/// The kernel's id of the calling thread.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Kernel threads whose name says they poll `ifname`'s NAPI.
fn napi_threads(ifname: &str) -> BTreeSet<i32> {
    let prefix = format!("napi/{ifname}-");
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end().starts_with(&prefix))
        })
        .collect()
}

/// Turns on GRO (which gives a veth its NAPI even without an XDP program)
/// and threaded NAPI on `ifname` in `ns`, and returns the kernel thread
/// that now runs its receive path. Names can repeat across namespaces, so
/// the thread is the one that appeared, not one that matches.
pub fn threaded_napi(ns: &NetNs, ifname: &str) -> i32 {
    run_ok(ns.command("ethtool").args(["-K", ifname, "gro", "on"]));
    let before = napi_threads(ifname);
    // sysfs shows the namespace it was mounted in: `ip netns exec` mounts
    // the namespace's own.
    run_ok(
        std::process::Command::new("ip")
            .args(["netns", "exec", ns.name(), "sh", "-c"])
            .arg(format!("echo 1 > /sys/class/net/{ifname}/threaded")),
    );
    let new: Vec<i32> = napi_threads(ifname).difference(&before).copied().collect();
    assert_eq!(
        new.len(),
        1,
        "expected one new NAPI thread for {ifname} (a veth has one receive queue): {new:?}"
    );
    new[0]
}

/// Busy and total jiffies of one CPU, from its line in /proc/stat.
pub fn cpu_jiffies(cpu: usize) -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let label = format!("cpu{cpu} ");
    let fields: Vec<u64> = stat
        .lines()
        .find(|line| line.starts_with(&label))
        .unwrap_or_else(|| panic!("no {label}line in /proc/stat"))
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("jiffies"))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
    (busy, busy + fields[3] + fields[4])
}
