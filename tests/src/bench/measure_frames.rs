//! Section 1: what one frame costs the program under BPF_PROG_TEST_RUN,
//! next to the empty program from the same object, with 10 and 100,000 VIPs.
use std::{os::fd::RawFd, time::Instant};

use responder_common::PROGRAM_NAME;
use responder_model::frames::{
    ipv4_l4_packet, ipv6_l4_packet, link_addr_option, nonce_option, solicited_node_group, tcp_syn,
    Arp, Ethernet, Nd, Vlan, BROADCAST_MAC, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP,
    ND_OPT_SOURCE_LL_ADDR, OTHER4, OUR_MAC, PEER4, PEER6, PEER_MAC, UNSPECIFIED6, VIP4, VIP6,
};

use super::{
    loaded_object::{
        load_with_vips, program_fd, vip_keys, BASELINE_PROGRAM, FEW_VIPS, MANY_VIPS, VLAN_ID,
    },
    schema::{Action, FrameCost, PerFrame, Spread},
    Settings,
};
use crate::testrun::{test_run_fd, LOOPBACK_IFINDEX, XDP_PASS, XDP_TX};

/// A frame and what the responder must do with it.
struct FrameCase {
    name: &'static str,
    frame: Vec<u8>,
    action: Action,
    /// Ordinary traffic (goal: within 3 ns of the empty program) rather than a request answered.
    ordinary: bool,
}

fn frame_cases() -> Vec<FrameCase> {
    let to_us = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let broadcast = Ethernet {
        dst: BROADCAST_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    let (group, group_mac) = solicited_node_group(VIP6);
    let sllao = link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC);
    let case = |name, frame, action, ordinary| FrameCase {
        name,
        frame,
        action,
        ordinary,
    };
    vec![
        case(
            "IPv4 TCP",
            to_us.frame(
                ETH_P_IP,
                &ipv4_l4_packet(PEER4, VIP4, IPPROTO_TCP, tcp_syn(40000, 80)),
            ),
            Action::Pass,
            true,
        ),
        case(
            "IPv6 TCP",
            to_us.frame(
                ETH_P_IPV6,
                &ipv6_l4_packet(PEER6, VIP6, IPPROTO_TCP, tcp_syn(40000, 80)),
            ),
            Action::Pass,
            true,
        ),
        case(
            "ARP miss",
            Arp::request(PEER_MAC, PEER4, OTHER4).frame(&broadcast),
            Action::Pass,
            false,
        ),
        case(
            "ARP hit",
            Arp::request(PEER_MAC, PEER4, VIP4).frame(&broadcast),
            Action::Tx,
            false,
        ),
        case(
            "ARP hit, VLAN",
            Arp::request(PEER_MAC, PEER4, VIP4).frame(&Ethernet {
                vlan: Vlan::Dot1Q(VLAN_ID),
                ..broadcast
            }),
            Action::Tx,
            false,
        ),
        case(
            "NS multicast hit",
            Nd::solicitation(PEER6, group, VIP6, vec![sllao.clone()]).frame(&Ethernet {
                dst: group_mac,
                ..to_us
            }),
            Action::Tx,
            false,
        ),
        case(
            "NS unicast hit",
            Nd::solicitation(PEER6, VIP6, VIP6, vec![sllao]).frame(&to_us),
            Action::Tx,
            false,
        ),
        // With the nonce option Linux puts in its DAD probes.
        case(
            "DAD NS",
            Nd::solicitation(
                UNSPECIFIED6,
                group,
                VIP6,
                vec![nonce_option([1, 2, 3, 4, 5, 6])],
            )
            .frame(&Ethernet {
                dst: group_mac,
                ..to_us
            }),
            Action::Tx,
            false,
        ),
    ]
}

/// One BPF_PROG_TEST_RUN of `frame`: (action, kernel-measured mean ns per run).
/// Both programs go through this same function, so whatever it adds is added
/// to both. No output buffer: copying the frame back is not what we measure.
fn test_run(fd: RawFd, frame: &[u8], repeat: u32) -> (u32, u32) {
    let outcome =
        test_run_fd(fd, frame, LOOPBACK_IFINDEX, repeat, None).unwrap_or_else(|e| panic!("{e}"));
    (outcome.action, outcome.duration_ns)
}

/// Mean of the samples below the 99th percentile: interrupts and
/// preemption land in the top percent and say nothing about the program.
fn trimmed_mean(samples: &mut [u32]) -> f64 {
    samples.sort_unstable();
    let kept = &samples[..(samples.len() * 99 / 100).max(1)];
    kept.iter().map(|&s| s as f64).sum::<f64>() / kept.len() as f64
}

struct Subject {
    fd: RawFd,
    frame: Vec<u8>,
    /// Trimmed mean ns per round, repeat=1.
    per_round: Vec<f64>,
    /// Wall-clock ns per syscall per round, repeat=1.
    wall: Vec<f64>,
    /// Kernel-loop ns per round (repeat = many), only for frames left unchanged.
    kernel_loop: Vec<f64>,
}

pub(super) fn per_frame_costs(settings: &Settings) -> PerFrame {
    let cases = frame_cases();
    let keys = vip_keys(MANY_VIPS);
    let few = load_with_vips(FEW_VIPS, &keys, OUR_MAC);
    let many = load_with_vips(MANY_VIPS, &keys, OUR_MAC);
    for case in &cases {
        for ebpf in [&few, &many] {
            let (action, _) = test_run(program_fd(ebpf, PROGRAM_NAME), &case.frame, 1);
            let wanted = xdp_code(case.action);
            assert_eq!(
                action, wanted,
                "{}: the responder returned {action}, expected {wanted}",
                case.name
            );
        }
    }
    let subject = |fd, frame: &[u8]| Subject {
        fd,
        frame: frame.to_vec(),
        per_round: vec![],
        wall: vec![],
        kernel_loop: vec![],
    };
    let mut subjects = vec![subject(program_fd(&few, BASELINE_PROGRAM), &cases[0].frame)];
    for case in &cases {
        subjects.push(subject(program_fd(&few, PROGRAM_NAME), &case.frame));
        subjects.push(subject(program_fd(&many, PROGRAM_NAME), &case.frame));
    }
    let unchanged: Vec<bool> = std::iter::once(true)
        .chain(cases.iter().flat_map(|c| [c.action == Action::Pass; 2]))
        .collect();
    let mut samples = vec![0u32; settings.calls];
    for round in 0..settings.frame_rounds {
        // Rotating the order spreads slow phases of the machine over all subjects.
        let n = subjects.len();
        for i in 0..n {
            let at = (i + round) % n;
            let subject = &mut subjects[at];
            let start = Instant::now();
            for sample in samples.iter_mut() {
                *sample = test_run(subject.fd, &subject.frame, 1).1;
            }
            subject
                .wall
                .push(start.elapsed().as_nanos() as f64 / settings.calls as f64);
            subject.per_round.push(trimmed_mean(&mut samples));
            if unchanged[at] {
                let mut loops: Vec<u32> = (0..5)
                    .map(|_| test_run(subject.fd, &subject.frame, settings.kernel_repeat).1)
                    .collect();
                loops.sort_unstable();
                subject.kernel_loop.push(loops[2] as f64);
            }
        }
    }
    let empty = &subjects[0];
    let mut rows = vec![];
    for (c, case) in cases.iter().enumerate() {
        let few = &subjects[1 + 2 * c];
        let many = &subjects[2 + 2 * c];
        let ratio =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
        let delta =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x - y).collect() };
        rows.push(FrameCost {
            case: case.name.to_owned(),
            action: case.action,
            ordinary: case.ordinary,
            frame_bytes: case.frame.len(),
            ns_10: Spread::of(&few.per_round),
            ns_100k: Spread::of(&many.per_round),
            minus_empty_ns_10: Spread::of(&delta(&few.per_round, &empty.per_round)),
            minus_empty_ns_100k: Spread::of(&delta(&many.per_round, &empty.per_round)),
            ratio_to_empty_10: Spread::of(&ratio(&few.per_round, &empty.per_round)),
            ratio_to_empty_100k: Spread::of(&ratio(&many.per_round, &empty.per_round)),
            ratio_100k_to_10: Spread::of(&ratio(&many.per_round, &few.per_round)),
            kernel_loop_ns_10: (!few.kernel_loop.is_empty()).then(|| Spread::of(&few.kernel_loop)),
            kernel_loop_ns_100k: (!many.kernel_loop.is_empty())
                .then(|| Spread::of(&many.kernel_loop)),
            kernel_loop_minus_empty_ns_10: (!few.kernel_loop.is_empty())
                .then(|| Spread::of(&delta(&few.kernel_loop, &empty.kernel_loop))),
        });
    }
    PerFrame {
        method: "repeat=1 per BPF_PROG_TEST_RUN, kernel-reported duration, 99th-percentile-trimmed mean per round".to_owned(),
        rounds: settings.frame_rounds,
        calls_per_round: settings.calls,
        kernel_repeat: settings.kernel_repeat,
        empty_ns: Spread::of(&empty.per_round),
        empty_kernel_loop_ns: Spread::of(&empty.kernel_loop),
        empty_syscall_wall_ns: Spread::of(&empty.wall),
        cases: rows,
    }
}

fn xdp_code(action: Action) -> u32 {
    match action {
        Action::Pass => XDP_PASS,
        Action::Tx => XDP_TX,
    }
}
