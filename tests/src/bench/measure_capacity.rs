//! Section 2: where each responder saturates and what one frame costs the
//! node that answers.
//!
//! Two namespaces joined by veth. Both ends have GRO on, which gives a veth
//! a NAPI instance of its own, and threaded NAPI, so each end's receive
//! path runs in a kernel thread that can be pinned and whose CPU time the
//! scheduler accounts exactly: the node's on the node CPU, next to the
//! daemon under test; the client's on the generator's CPU, at real-time
//! priority, so it always takes the replies off the ring before the
//! generator gets the CPU back. The generator (`generator.rs`) injects more
//! requests than any responder answers; the node's receive ring drops the
//! rest, as a NIC's does. The client counts replies with an XDP_DROP
//! program in the veth driver's statistics, so its own stack never sees
//! them.
use std::{collections::BTreeMap, os::fd::OwnedFd, thread, time::Duration};

use aya::{
    programs::{xdp::XdpLinkId, Xdp, XdpMode},
    Ebpf,
};
use responder_common::{VipKey, PROGRAM_NAME};
use responder_model::frames::{
    link_addr_option, solicited_node_group, Arp, Ethernet, Nd, Vlan, BROADCAST_MAC,
    ND_OPT_SOURCE_LL_ADDR,
};

use super::{
    first_reply::{wait_for_answer, Answer},
    generator::{inject, Injection},
    loaded_object::{load_with_vips, vip_keys, FEW_VIPS},
    peers::Daemon,
    schema::{Capacity, CapacityRun, Request, Responder, Spread},
    threads::{cpu_jiffies, pin_current_thread, pin_process, process_runtime, threaded_napi},
    tiny_xdp::{TinyXdp, XDP_DROP, XDP_PASS},
    Settings,
};
use crate::{
    lab::{
        link::format_mac,
        pair::{Lab, CLIENT_IF, CLIENT_V4, CLIENT_V6, NODE_IF, OTHER_V4, VIP_V4, VIP_V6},
    },
    netns::{run_ok, NetNs},
    userspace_responder::UserspaceResponder,
};

/// The generator and the client's receive thread run here.
mod counters;

use counters::{delta, driver_stats, stack_tx, summarize, Sample};

const GENERATOR_CPU: usize = 0;
/// The node's receive thread and the daemon under test run here.
const NODE_CPU: usize = 1;
/// farpd asks the segment about an address for about a second before it
/// answers for it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Every responder, in the order of the report's rows.
const RESPONDERS: [Responder; 7] = [
    Responder::Driver,
    Responder::Skb,
    Responder::Kernel,
    Responder::Farpd,
    Responder::Ndppd,
    Responder::Userspace,
    Responder::Floor,
];

/// What each responder is measured with: farpd only does ARP, ndppd only
/// NDP, and the floor needs one kind of frame.
fn requests_for(responder: Responder) -> &'static [Request] {
    match responder {
        Responder::Driver | Responder::Skb | Responder::Kernel | Responder::Userspace => {
            &[Request::Arp, Request::Ns, Request::ArpMiss]
        }
        Responder::Farpd => &[Request::Arp, Request::ArpMiss],
        Responder::Ndppd => &[Request::Ns],
        Responder::Floor => &[Request::Arp],
    }
}

fn parse4(ip: &str) -> [u8; 4] {
    ip.parse::<std::net::Ipv4Addr>().expect("IPv4").octets()
}

fn parse6(ip: &str) -> [u8; 16] {
    ip.parse::<std::net::Ipv6Addr>().expect("IPv6").octets()
}

/// The lab and everything that stays in place across runs.
struct Setup {
    lab: Lab,
    node_thread: i32,
    client_thread: i32,
    node_mac: [u8; 6],
    arp: Vec<u8>,
    ns: Vec<u8>,
    miss: Vec<u8>,
    /// On the client while checking a responder answers: XDP_TX frames of
    /// a driver-mode responder reach a veth peer only if it runs an XDP
    /// program, and the check reads replies from the client's stack.
    pass: TinyXdp,
    /// On the client while measuring (it counts and drops the replies), and
    /// on the node as the receive floor.
    drop: TinyXdp,
}

/// The responder's object, loaded with its VIPs, once per attach mode.
struct Programs {
    driver: Ebpf,
    skb: Ebpf,
}

/// A responder answering on the node.
enum Running<'a> {
    Xdp(&'a mut Xdp, XdpLinkId),
    Kernel,
    Daemon(Daemon),
    Userspace(UserspaceResponder),
    Floor(OwnedFd),
}

impl Running<'_> {
    /// On-CPU time of the answering process, for daemons.
    fn daemon_runtime(&self) -> Option<Duration> {
        match self {
            Running::Daemon(daemon) => Some(daemon.runtime()),
            Running::Userspace(responder) => Some(responder.runtime()),
            _ => None,
        }
    }
}

/// Counters read before and after a run.
struct Snapshot {
    client: BTreeMap<String, u64>,
    node_tx: u64,
    receive_thread: Duration,
    client_thread: Duration,
    daemon: Option<Duration>,
    node_cpu: (u64, u64),
}

impl Setup {
    fn new() -> (Setup, Programs) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(
            cpus > NODE_CPU,
            "the capacity measurement pins the generator and the node to CPUs {GENERATOR_CPU} and {NODE_CPU}: {cpus} CPU(s) here"
        );
        let lab = Lab::without_client_xdp("bench");
        let node_thread = threaded_napi(&lab.node, NODE_IF);
        let client_thread = threaded_napi(&lab.client, CLIENT_IF);
        pin_process(node_thread, NODE_CPU);
        pin_process(client_thread, GENERATOR_CPU);
        realtime(client_thread);
        let node_mac = lab.node.mac(NODE_IF);
        let client_mac = lab.client.mac(CLIENT_IF);
        // Replies of the kernel and the daemons need no neighbor resolution,
        // which the client (dropping everything) would never answer.
        for ip in [CLIENT_V4, CLIENT_V6] {
            lab.node.ip(&[
                "neigh",
                "replace",
                ip,
                "lladdr",
                &format_mac(&client_mac),
                "dev",
                NODE_IF,
                "nud",
                "permanent",
            ]);
        }
        let broadcast = Ethernet {
            dst: BROADCAST_MAC,
            src: client_mac,
            vlan: Vlan::Untagged,
        };
        let (vip4, vip6) = (parse4(VIP_V4), parse6(VIP_V6));
        let (group, group_mac) = solicited_node_group(vip6);
        let arp = Arp::request(client_mac, parse4(CLIENT_V4), vip4).frame(&broadcast);
        let ns = Nd::solicitation(
            parse6(CLIENT_V6),
            group,
            vip6,
            vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, client_mac)],
        )
        .frame(&Ethernet {
            dst: group_mac,
            ..broadcast
        });
        let miss = Arp::request(client_mac, parse4(CLIENT_V4), parse4(OTHER_V4)).frame(&broadcast);
        let node_ifindex = lab.node.ifindex(NODE_IF);
        let mut keys = vec![
            VipKey::v4(node_ifindex, 0, 0, vip4),
            VipKey::v6(node_ifindex, 0, 0, vip6),
        ];
        keys.extend(vip_keys(FEW_VIPS).into_iter().skip(3).take(FEW_VIPS - 2));
        let programs = Programs {
            driver: load_with_vips(FEW_VIPS, &keys, node_mac),
            skb: load_with_vips(FEW_VIPS, &keys, node_mac),
        };
        let setup = Setup {
            node_thread,
            client_thread,
            node_mac,
            arp,
            ns,
            miss,
            pass: TinyXdp::constant(XDP_PASS).expect("load the XDP_PASS program"),
            drop: TinyXdp::constant(XDP_DROP).expect("load the XDP_DROP program"),
            lab,
        };
        (setup, programs)
    }

    fn frame(&self, request: Request) -> &[u8] {
        match request {
            Request::Arp => &self.arp,
            Request::Ns => &self.ns,
            Request::ArpMiss => &self.miss,
        }
    }

    fn start<'a>(&self, programs: &'a mut Programs, responder: Responder) -> Running<'a> {
        let node = &self.lab.node;
        match responder {
            Responder::Driver | Responder::Skb => {
                let (ebpf, mode) = match responder {
                    Responder::Driver => (&mut programs.driver, XdpMode::Driver),
                    _ => (&mut programs.skb, XdpMode::Skb),
                };
                let program: &mut Xdp = ebpf
                    .program_mut(PROGRAM_NAME)
                    .expect("program")
                    .try_into()
                    .expect("XDP");
                let link = node
                    .enter(|| program.attach(NODE_IF, mode))
                    .expect("attach the responder");
                Running::Xdp(program, link)
            }
            Responder::Kernel => {
                node.ip(&["addr", "add", &format!("{VIP_V4}/32"), "dev", NODE_IF]);
                node.ip(&[
                    "addr",
                    "add",
                    &format!("{VIP_V6}/128"),
                    "dev",
                    NODE_IF,
                    "nodad",
                ]);
                Running::Kernel
            }
            Responder::Farpd => Running::Daemon(Daemon::farpd(node, NODE_IF, VIP_V4, NODE_CPU)),
            Responder::Ndppd => Running::Daemon(Daemon::ndppd(node, NODE_IF, VIP_V6, NODE_CPU)),
            Responder::Userspace => {
                let mac = self.node_mac;
                // Threads inherit the CPU affinity of the thread that spawns them.
                let responder = thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            pin_current_thread(NODE_CPU);
                            UserspaceResponder::start(
                                node,
                                NODE_IF,
                                mac,
                                &[parse4(VIP_V4)],
                                &[parse6(VIP_V6)],
                            )
                        })
                        .join()
                        .expect("start thread")
                })
                .expect("start the userspace responder");
                Running::Userspace(responder)
            }
            Responder::Floor => {
                let ifindex = node.ifindex(NODE_IF);
                let link = node
                    .enter(|| self.drop.attach_driver(ifindex))
                    .expect("attach XDP_DROP to the node");
                Running::Floor(link)
            }
        }
    }

    fn snapshot(&self, running: &Running) -> Snapshot {
        Snapshot {
            client: driver_stats(&self.lab.client, CLIENT_IF),
            node_tx: stack_tx(&self.lab.node, NODE_IF),
            receive_thread: process_runtime(self.node_thread),
            client_thread: process_runtime(self.client_thread),
            daemon: running.daemon_runtime(),
            node_cpu: cpu_jiffies(NODE_CPU),
        }
    }

    /// One run: the responder started, checked to answer, saturated with
    /// `request` for `duration`, stopped.
    fn run(
        &self,
        programs: &mut Programs,
        responder: Responder,
        request: Request,
        round: usize,
        duration: Duration,
    ) -> Sample {
        let answer = match request {
            Request::Arp => Some(Answer::Arp {
                node_mac: self.node_mac,
                vip: parse4(VIP_V4),
            }),
            Request::Ns => Some(Answer::Na {
                node_mac: self.node_mac,
                vip: parse6(VIP_V6),
            }),
            Request::ArpMiss => None,
        };
        let frame = self.frame(request);
        let client_ifindex = self.lab.client.ifindex(CLIENT_IF);
        let on_client = |program: &TinyXdp| {
            self.lab
                .client
                .enter(|| program.attach_driver(client_ifindex))
                .expect("attach an XDP program to the client")
        };
        let running = self.start(programs, responder);
        if responder != Responder::Floor {
            let _pass = on_client(&self.pass);
            // A miss run checks the same responder answers a hit: a miss
            // that is merely never answered proves nothing.
            let (probe, answer) = match answer {
                Some(answer) => (frame, answer),
                None => (
                    self.arp.as_slice(),
                    Answer::Arp {
                        node_mac: self.node_mac,
                        vip: parse4(VIP_V4),
                    },
                ),
            };
            let waited =
                wait_for_answer(&self.lab.client, CLIENT_IF, probe, answer, ANSWER_TIMEOUT);
            assert!(
                waited.is_some(),
                "{} did not answer a {} within {ANSWER_TIMEOUT:?}",
                responder.name(),
                request.name()
            );
        }
        let client_counter = on_client(&self.drop);
        let before = self.snapshot(&running);
        let injection = inject(&self.lab.client, CLIENT_IF, frame, GENERATOR_CPU, duration);
        let after = self.snapshot(&running);
        drop(client_counter);
        self.stop(running);
        let (busy, total) = (
            after.node_cpu.0 - before.node_cpu.0,
            after.node_cpu.1 - before.node_cpu.1,
        );
        Sample {
            responder,
            request,
            round,
            injection,
            node_received: delta(&before.client, &after.client, "tx_queue_0_xdp_xmit"),
            replies: delta(&before.client, &after.client, "rx_queue_0_xdp_packets"),
            node_sent: after.node_tx - before.node_tx,
            receive_thread: after.receive_thread - before.receive_thread,
            client_thread: after.client_thread - before.client_thread,
            daemon: after
                .daemon
                .zip(before.daemon)
                .map(|(after, before)| after.saturating_sub(before)),
            node_cpu_busy: busy as f64 / total.max(1) as f64,
        }
    }

    fn stop(&self, running: Running) {
        match running {
            Running::Xdp(program, link) => program.detach(link).expect("detach the responder"),
            Running::Kernel => {
                let node = &self.lab.node;
                node.ip(&["addr", "del", &format!("{VIP_V4}/32"), "dev", NODE_IF]);
                node.ip(&["addr", "del", &format!("{VIP_V6}/128"), "dev", NODE_IF]);
            }
            Running::Daemon(daemon) => drop(daemon),
            Running::Userspace(responder) => {
                responder.stop().expect("userspace responder");
            }
            Running::Floor(link) => drop(link),
        }
    }
}

/// SCHED_FIFO for `pid`: the client's receive thread then always runs
/// before the generator, so the client never loses a reply to it.
fn realtime(pid: i32) {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid sched_param.
    let ret = unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) };
    assert_eq!(
        ret,
        0,
        "SCHED_FIFO for thread {pid}: {}",
        std::io::Error::last_os_error()
    );
}

pub(super) fn capacity(settings: &Settings) -> Capacity {
    let (setup, mut programs) = Setup::new();
    let mut samples = vec![];
    for round in 0..settings.load_rounds {
        for offset in 0..RESPONDERS.len() {
            // Rotating the order spreads slow phases of the machine over all.
            let responder = RESPONDERS[(offset + round) % RESPONDERS.len()];
            for &request in requests_for(responder) {
                eprintln!(
                    "bench:   round {}/{} {}, {}",
                    round + 1,
                    settings.load_rounds,
                    responder.name(),
                    request.name()
                );
                samples.push(setup.run(
                    &mut programs,
                    responder,
                    request,
                    round,
                    settings.load_time,
                ));
            }
        }
    }
    Capacity {
        rounds: settings.load_rounds,
        seconds_per_run: settings.load_time.as_secs_f64(),
        vips_in_map: FEW_VIPS,
        generator_cpu: GENERATOR_CPU,
        node_cpu: NODE_CPU,
        runs: summarize(&samples),
    }
}
