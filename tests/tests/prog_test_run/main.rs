//! The XDP program run on single frames with BPF_PROG_TEST_RUN: every reply
//! is compared byte for byte with one built independently in `frames`.
//! Needs root (CAP_BPF + CAP_NET_ADMIN), as CI has.

use responder_common::{
    AgentState, VipKey, VipStats, VipValue, COUNTER_SLOTS, NO_COUNTER_SLOT, VIP_FLAG_YIELDED,
};
use responder_model::frames::*;
use responder_tests::testrun::{
    monotonic_now_ns, LoadedResponder, LOOPBACK_IFINDEX, XDP_PASS, XDP_TX,
};
mod arp;
mod counter_slots;
mod nd_validation;
mod ndp;
mod other_frames;
mod stale_gate;

/// Another interface. BPF_PROG_TEST_RUN needs the ingress interface to
/// exist, so frames always arrive on loopback and VIPs are scoped here.
const OTHER_IFINDEX: u32 = 4242;
/// An address that is a VIP only on OTHER_IFINDEX.
const ELSEWHERE4: [u8; 4] = [192, 0, 2, 20];
const ELSEWHERE6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];

const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

const DOT1Q: Vlan = Vlan::Dot1Q(100);
const QINQ: Vlan = Vlan::QinQ {
    outer: 200,
    inner: 300,
};

fn key4(vlan: Vlan, addr: [u8; 4]) -> VipKey {
    let (outer, inner) = vlan.key_ids();
    VipKey::v4(LOOPBACK_IFINDEX, outer, inner, addr)
}

fn key6(vlan: Vlan, addr: [u8; 16]) -> VipKey {
    let (outer, inner) = vlan.key_ids();
    VipKey::v6(LOOPBACK_IFINDEX, outer, inner, addr)
}

fn ours() -> VipValue {
    VipValue {
        mac: OUR_MAC,
        ..VipValue::default()
    }
}

/// The program with VIP4 and VIP6 on loopback, untagged and on the DOT1Q and
/// QINQ stacks, and ELSEWHERE4/6 on OTHER_IFINDEX.
fn responder() -> LoadedResponder {
    let mut responder = LoadedResponder::load().expect("load the XDP program");
    insert_owned_vips(&mut responder);
    responder
}

/// The VIPs every case starts from: ours on the test interface in every
/// VLAN arrangement, and one of each family on another interface.
fn insert_owned_vips(responder: &mut LoadedResponder) {
    let elsewhere4 = VipKey::v4(OTHER_IFINDEX, 0, 0, ELSEWHERE4);
    let elsewhere6 = VipKey::v6(OTHER_IFINDEX, 0, 0, ELSEWHERE6);
    responder
        .insert_vip(elsewhere4, ours())
        .expect("insert IPv4 VIP elsewhere");
    responder
        .insert_vip(elsewhere6, ours())
        .expect("insert IPv6 VIP elsewhere");
    for vlan in [Vlan::Untagged, DOT1Q, QINQ] {
        responder
            .insert_vip(key4(vlan, VIP4), ours())
            .expect("insert IPv4 VIP");
        responder
            .insert_vip(key6(vlan, VIP6), ours())
            .expect("insert IPv6 VIP");
    }
}

fn stats(responder: &LoadedResponder, key: VipKey) -> VipStats {
    responder.stats(&key).expect("read VIP counters")
}

fn counted(requests: u64, replies: u64, conflicts: u64) -> VipStats {
    VipStats {
        requests,
        replies,
        conflicts,
        stale: 0,
    }
}

fn assert_answers(responder: &LoadedResponder, request: &[u8], expected: &[u8]) {
    let (action, output) = responder.run(request, LOOPBACK_IFINDEX);
    assert_eq!(action, XDP_TX, "request should be answered with XDP_TX");
    assert_eq!(output, expected, "reply bytes differ");
}

fn assert_passes(responder: &LoadedResponder, frame: &[u8], ifindex: u32) {
    let (action, output) = responder.run(frame, ifindex);
    assert_eq!(action, XDP_PASS, "frame should be passed");
    assert_eq!(output, frame, "passed frame must be untouched");
}

fn broadcast(vlan: Vlan) -> Ethernet {
    Ethernet {
        dst: BROADCAST_MAC,
        src: PEER_MAC,
        vlan,
    }
}

fn arp_request_and_reply(vlan: Vlan) -> (Vec<u8>, Vec<u8>) {
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&broadcast(vlan));
    let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4)
        .frame(&broadcast(vlan).with_addrs(PEER_MAC, OUR_MAC));
    (request, reply)
}

fn multicast_ns(vlan: Vlan) -> (Ethernet, Nd) {
    let (group, group_mac) = solicited_node_group(VIP6);
    // The SLLAO deliberately differs from the Ethernet source: the NA must
    // go to the SLLAO.
    let sllao = link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC);
    let eth = Ethernet {
        dst: group_mac,
        src: OTHER_MAC,
        vlan,
    };
    (eth, Nd::solicitation(PEER6, group, VIP6, vec![sllao]))
}

fn unicast_ns() -> (Ethernet, Nd) {
    let eth = Ethernet {
        dst: OUR_MAC,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    (eth, Nd::solicitation(LINK_LOCAL6, VIP6, VIP6, vec![]))
}

fn dad_ns(options: Vec<Vec<u8>>) -> (Ethernet, Nd) {
    let (group, group_mac) = solicited_node_group(VIP6);
    let eth = Ethernet {
        dst: group_mac,
        src: PEER_MAC,
        vlan: Vlan::Untagged,
    };
    (eth, Nd::solicitation(UNSPECIFIED6, group, VIP6, options))
}

/// A solicitation for VIP6 on `vlan` and the advertisement answering it.
fn ns_and_na(vlan: Vlan) -> (Vec<u8>, Vec<u8>) {
    let (eth, ns) = multicast_ns(vlan);
    let reply = expected_na(&eth, PEER_MAC, OUR_MAC, VIP6, PEER6, true);
    (ns.frame(&eth), reply)
}
