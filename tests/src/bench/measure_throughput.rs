//! Section 2: replies per second over veth between two namespaces, for the
//! responder in driver and skb mode, the Linux kernel, a MetalLB-style
//! userspace responder and nothing answering, with the CPU time each costs.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use aya::programs::{Xdp, XdpMode};
use responder_common::{VipKey, PROGRAM_NAME};
use responder_model::frames::{
    link_addr_option, solicited_node_group, Arp, Ethernet, Nd, Vlan, BROADCAST_MAC,
    ND_OPT_SOURCE_LL_ADDR,
};

use super::{
    loaded_object::{load_with_vips, vip_keys, FEW_VIPS},
    schema::{Responder, ResponderLoad, Spread, Throughput},
    Settings,
};
use crate::{
    lab::{Lab, CLIENT_IF, CLIENT_V4, CLIENT_V6, NODE_IF, VIP_V4, VIP_V6},
    loadgen::{self, ExpectedReplies, LoadResult},
    userspace_responder::UserspaceResponder,
};

/// Busy and softirq jiffies of all CPUs, from the first line of /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("jiffies"))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
    (busy, fields[6])
}

fn jiffies_ns(jiffies: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    jiffies as f64 * 1e9 / hz
}

fn parse4(ip: &str) -> [u8; 4] {
    ip.parse::<Ipv4Addr>().expect("IPv4").octets()
}

fn parse6(ip: &str) -> [u8; 16] {
    ip.parse::<Ipv6Addr>().expect("IPv6").octets()
}

/// One responder's run in one round of the end-to-end measurement.
struct LoadRun {
    mode: Responder,
    result: LoadResult,
    /// The userspace responder's (replies, CPU time), from its own threads.
    userspace: Option<(u64, Duration)>,
    busy_ns: f64,
    softirq_ns: f64,
}

pub(super) fn throughput(settings: &Settings) -> Throughput {
    let lab = Lab::new("bench");
    let node_mac = lab.node.mac(NODE_IF);
    let client_mac = lab.client.mac(CLIENT_IF);
    let node_ifindex = lab.node.ifindex(NODE_IF);
    let (vip4, vip6) = (parse4(VIP_V4), parse6(VIP_V6));
    let (group, group_mac) = solicited_node_group(vip6);
    let requests = vec![
        Arp::request(client_mac, parse4(CLIENT_V4), vip4).frame(&Ethernet {
            dst: BROADCAST_MAC,
            src: client_mac,
            vlan: Vlan::Untagged,
        }),
        Nd::solicitation(
            parse6(CLIENT_V6),
            group,
            vip6,
            vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, client_mac)],
        )
        .frame(&Ethernet {
            dst: group_mac,
            src: client_mac,
            vlan: Vlan::Untagged,
        }),
    ];
    let expected = ExpectedReplies {
        generator_mac: client_mac,
        vip4,
        vip6,
    };
    let mut keys = vec![
        VipKey::v4(node_ifindex, 0, 0, vip4),
        VipKey::v6(node_ifindex, 0, 0, vip6),
    ];
    keys.extend(vip_keys(FEW_VIPS).into_iter().skip(3).take(FEW_VIPS - 2));
    let mut driver = load_with_vips(FEW_VIPS, &keys, node_mac);
    let mut skb = load_with_vips(FEW_VIPS, &keys, node_mac);

    let mut runs: Vec<LoadRun> = vec![];
    for round in 0..settings.load_rounds {
        for offset in 0..Responder::ALL.len() {
            let mode = Responder::ALL[(offset + round) % Responder::ALL.len()];
            eprintln!(
                "bench:   round {}/{} {}",
                round + 1,
                settings.load_rounds,
                mode.name()
            );
            let before = cpu_jiffies();
            let (result, responder) = match mode {
                Responder::Driver | Responder::Skb => {
                    let (ebpf, xdp_mode) = if mode == Responder::Driver {
                        (&mut driver, XdpMode::Driver)
                    } else {
                        (&mut skb, XdpMode::Skb)
                    };
                    let program: &mut Xdp = ebpf
                        .program_mut(PROGRAM_NAME)
                        .expect("program")
                        .try_into()
                        .expect("XDP");
                    let link = lab
                        .node
                        .enter(|| program.attach(NODE_IF, xdp_mode))
                        .expect("attach the responder");
                    let result = loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    );
                    program.detach(link).expect("detach the responder");
                    (result, None)
                }
                Responder::Kernel => {
                    lab.node
                        .ip(&["addr", "add", &format!("{VIP_V4}/32"), "dev", NODE_IF]);
                    lab.node.ip(&[
                        "addr",
                        "add",
                        &format!("{VIP_V6}/128"),
                        "dev",
                        NODE_IF,
                        "nodad",
                    ]);
                    let result = loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    );
                    lab.node
                        .ip(&["addr", "del", &format!("{VIP_V4}/32"), "dev", NODE_IF]);
                    lab.node
                        .ip(&["addr", "del", &format!("{VIP_V6}/128"), "dev", NODE_IF]);
                    (result, None)
                }
                Responder::Userspace => {
                    let responder =
                        UserspaceResponder::start(&lab.node, NODE_IF, node_mac, &[vip4], &[vip6])
                            .expect("start the userspace responder");
                    let result = loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    );
                    let stats = responder.stop().expect("userspace responder");
                    (result, Some((stats.replies, stats.cpu)))
                }
                Responder::Nothing => (
                    loadgen::run(
                        &lab.client,
                        CLIENT_IF,
                        &requests,
                        expected,
                        settings.load_time,
                    ),
                    None,
                ),
            };
            let after = cpu_jiffies();
            let result = result.expect("load generator");
            let busy = jiffies_ns(after.0 - before.0);
            let softirq = jiffies_ns(after.1 - before.1);
            if mode != Responder::Nothing {
                assert!(
                    result.arp_replies > 0 && result.na_replies > 0,
                    "{}: no ARP or no NA replies: {result:?}",
                    mode.name()
                );
            }
            runs.push(LoadRun {
                mode,
                result,
                userspace: responder,
                busy_ns: busy,
                softirq_ns: softirq,
            });
        }
    }

    let driver_rates: Vec<f64> = runs
        .iter()
        .filter(|r| r.mode == Responder::Driver)
        .map(|r| rate(r.result.replies(), &r.result))
        .collect();
    let modes: Vec<ResponderLoad> = Responder::ALL
        .iter()
        .map(|&mode| {
            let mine: Vec<_> = runs.iter().filter(|r| r.mode == mode).collect();
            let per = |f: &dyn Fn(&LoadRun) -> f64| -> Spread {
                Spread::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let replies_per_reply = |ns: f64, r: &LoadResult| {
                if r.replies() == 0 {
                    f64::NAN
                } else {
                    ns / r.replies() as f64
                }
            };
            let send_share =
                |cpu: Duration, r: &LoadResult| cpu.as_secs_f64() / r.send_time.as_secs_f64();
            let rates: Vec<f64> = mine
                .iter()
                .map(|r| rate(r.result.replies(), &r.result))
                .collect();
            let userspace = mode == Responder::Userspace;
            ResponderLoad {
                mode,
                replies_per_s: Spread::of(&rates),
                sent_per_s: per(&|r| rate(r.result.sent, &r.result)),
                answered_fraction: per(&|r| {
                    if r.result.sent == 0 {
                        0.0
                    } else {
                        r.result.replies() as f64 / r.result.sent as f64
                    }
                }),
                relative_to_driver: Spread::of(
                    &rates
                        .iter()
                        .zip(&driver_rates)
                        .map(|(a, b)| a / b)
                        .collect::<Vec<_>>(),
                ),
                arp_replies: per(&|r| r.result.arp_replies as f64),
                na_replies: per(&|r| r.result.na_replies as f64),
                other_frames: per(&|r| r.result.other_frames as f64),
                receiver_drops: per(&|r| r.result.receiver_drops as f64),
                generator_sender_cpu_share: per(&|r| send_share(r.result.sender_cpu, &r.result)),
                generator_receiver_cpu_share: per(&|r| {
                    send_share(r.result.receiver_cpu, &r.result)
                }),
                softirq_ns_per_reply: per(&|r| replies_per_reply(r.softirq_ns, &r.result)),
                softirq_ns_per_sent: per(&|r| r.softirq_ns / r.result.sent.max(1) as f64),
                busy_ns_per_reply: per(&|r| replies_per_reply(r.busy_ns, &r.result)),
                userspace_responder_ns_per_reply: userspace.then(|| {
                    per(&|r| {
                        let (replies, cpu) = r.userspace.expect("userspace stats");
                        cpu.as_nanos() as f64 / replies.max(1) as f64
                    })
                }),
                userspace_responder_cpu_share: userspace.then(|| {
                    per(&|r| send_share(r.userspace.expect("userspace stats").1, &r.result))
                }),
            }
        })
        .collect();
    Throughput {
        rounds: settings.load_rounds,
        seconds_per_run: settings.load_time.as_secs_f64(),
        vips_in_map: FEW_VIPS,
        frames: "alternating broadcast ARP request and multicast NS (with SLLAO) for one IPv4 and one IPv6 VIP".to_owned(),
        modes,
    }
}

fn rate(count: u64, result: &LoadResult) -> f64 {
    count as f64 / result.send_time.as_secs_f64()
}
