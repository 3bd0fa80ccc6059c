//! Naming the other MAC (issue #22), on single frames with BPF_PROG_TEST_RUN:
//! a claim on one of our VIPs from another MAC puts exactly one record with
//! the claimant's MAC and the VIP's key into the `CLAIMS` ring buffer and
//! remembers it in `CLAIMANTS`; a second claim within the per-VIP interval
//! puts none, each CPU reports at most its budget per second, and answered
//! requests and our own announcements never touch either map.
//! Needs root (CAP_BPF + CAP_NET_ADMIN), as CI has.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    maps::{HashMap, MapData, RingBuf},
    programs::Xdp,
    Ebpf,
};
use responder_common::{
    claims::{
        Claim, Claimant, CLAIMANTS_MAP, CLAIMS_MAP, CLAIM_REPORTS_PER_CPU_SECOND,
        CLAIM_REPORT_INTERVAL_NS,
    },
    VipKey, VipValue, NO_COUNTER_SLOT, PROGRAM_NAME, VIPS_MAP,
};
use responder_model::frames::*;
use responder_tests::testrun::{monotonic_now_ns, test_run_fd, LOOPBACK_IFINDEX, XDP_PASS, XDP_TX};

/// The program with fresh maps, and the three this test reads and writes.
struct Program {
    ebpf: Ebpf,
    vips: HashMap<MapData, VipKey, VipValue>,
    claimants: HashMap<MapData, VipKey, Claimant>,
    ring: RingBuf<MapData>,
}

impl Program {
    fn load() -> Self {
        let mut ebpf = responder::bpf::object_loader()
            .load(responder::EBPF_OBJECT)
            .expect("load the object");
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .expect("program")
            .try_into()
            .expect("an XDP program");
        responder::bpf::load_retrying(|| program.load()).expect("verifier accepts the program");
        let mut take = |name| ebpf.take_map(name).expect(name);
        let vips = HashMap::try_from(take(VIPS_MAP)).expect("VIPS");
        let claimants = HashMap::try_from(take(CLAIMANTS_MAP)).expect("CLAIMANTS");
        let ring = RingBuf::try_from(take(CLAIMS_MAP)).expect("CLAIMS");
        Program {
            ebpf,
            vips,
            claimants,
            ring,
        }
    }

    /// A VIP of ours on loopback (where test runs arrive), without counters.
    fn own(&mut self, key: VipKey) {
        let value = VipValue {
            mac: OUR_MAC,
            counter_slot: NO_COUNTER_SLOT,
            ..VipValue::default()
        };
        self.vips.insert(key, value, 0).expect("insert VIP");
    }

    fn run(&self, frame: &[u8]) -> u32 {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .expect("program")
            .try_into()
            .expect("an XDP program");
        let fd = program.fd().expect("program fd").as_fd().as_raw_fd();
        let mut output = vec![0u8; 4096];
        test_run_fd(fd, frame, LOOPBACK_IFINDEX, 1, Some(&mut output))
            .expect("BPF_PROG_TEST_RUN")
            .action
    }

    /// Everything in the ring now (bounded: the ring holds fewer).
    fn claims(&mut self) -> Vec<Claim> {
        responder::bpf::drain_claims(&mut self.ring, 10_000)
    }

    fn claimant(&self, key: &VipKey) -> Option<Claimant> {
        self.claimants.get(key, 0).ok()
    }
}

fn key4(addr: [u8; 4]) -> VipKey {
    VipKey::v4(LOOPBACK_IFINDEX, 0, 0, addr)
}

fn key6(addr: [u8; 16]) -> VipKey {
    VipKey::v6(LOOPBACK_IFINDEX, 0, 0, addr)
}

fn from(src: [u8; 6], dst: [u8; 6]) -> Ethernet {
    Ethernet {
        dst,
        src,
        vlan: Vlan::Untagged,
    }
}

/// Another host's ARP reply saying it has `vip`.
fn arp_claim(mac: [u8; 6], vip: [u8; 4]) -> Vec<u8> {
    Arp::reply(mac, vip, BROADCAST_MAC, vip).frame(&from(mac, BROADCAST_MAC))
}

/// Another host's unsolicited NA with override for `vip`, its MAC in the
/// Target Link-Layer Address option.
fn na_claim(mac: [u8; 6], vip: [u8; 16]) -> Vec<u8> {
    Nd::advertisement(
        OTHER6,
        ALL_NODES6,
        vip,
        NA_FLAG_OVERRIDE,
        vec![link_addr_option(ND_OPT_TARGET_LL_ADDR, mac)],
    )
    .frame(&from(mac, ALL_NODES_MAC))
}

#[test]
fn a_conflicting_arp_reply_is_reported_once_with_its_mac_and_vip() {
    let mut program = Program::load();
    let key = key4(VIP4);
    program.own(key);
    let before = monotonic_now_ns();
    assert_eq!(program.run(&arp_claim(OTHER_MAC, VIP4)), XDP_PASS);
    let after = monotonic_now_ns();
    let claims = program.claims();
    assert_eq!(claims.len(), 1, "exactly one record: {claims:?}");
    let claim = claims[0];
    assert_eq!(claim.mac, OTHER_MAC);
    assert_eq!(claim.key, key, "the VIP, its interface and family");
    assert_eq!(claim.key.family, responder_common::FAMILY_IPV4);
    assert_eq!(claim.key.ifindex, LOOPBACK_IFINDEX);
    assert!(
        (before..=after).contains(&claim.at_ns),
        "{before} <= {} <= {after}",
        claim.at_ns
    );
    let remembered = program.claimant(&key).expect("CLAIMANTS entry");
    assert_eq!((remembered.mac, remembered.at_ns), (OTHER_MAC, claim.at_ns));

    // Within the interval: passed and counted as before, but not reported,
    // whoever claims.
    for mac in [OTHER_MAC, PEER_MAC] {
        assert_eq!(program.run(&arp_claim(mac, VIP4)), XDP_PASS);
    }
    let gratuitous = Arp::gratuitous(OTHER_MAC, VIP4).frame(&from(OTHER_MAC, BROADCAST_MAC));
    assert_eq!(program.run(&gratuitous), XDP_PASS);
    assert_eq!(program.claims(), [], "a second claim within the window");
    assert_eq!(program.claimant(&key).map(|c| c.mac), Some(OTHER_MAC));

    // Once the interval has passed (aged here rather than waited for), the
    // next claim is reported again, with its own MAC.
    let aged = Claimant {
        at_ns: monotonic_now_ns() - CLAIM_REPORT_INTERVAL_NS - 1,
        ..remembered
    };
    program
        .claimants
        .insert(key, aged, 0)
        .expect("age the entry");
    assert_eq!(program.run(&gratuitous), XDP_PASS);
    let claims = program.claims();
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!((claims[0].key, claims[0].mac), (key, OTHER_MAC));
}

#[test]
fn an_unsolicited_na_with_override_is_reported_for_ipv6() {
    let mut program = Program::load();
    let key = key6(VIP6);
    program.own(key);
    assert_eq!(program.run(&na_claim(OTHER_MAC, VIP6)), XDP_PASS);
    let claims = program.claims();
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0].mac, OTHER_MAC);
    assert_eq!(claims[0].key, key);
    assert_eq!(claims[0].key.family, responder_common::FAMILY_IPV6);
    assert_eq!(program.run(&na_claim(OTHER_MAC, VIP6)), XDP_PASS);
    assert_eq!(program.claims(), []);
    assert_eq!(program.claimant(&key).map(|c| c.mac), Some(OTHER_MAC));
}

#[test]
fn requests_answered_and_our_own_announcements_report_nothing() {
    let mut program = Program::load();
    program.own(key4(VIP4));
    program.own(key6(VIP6));
    let request = Arp::request(PEER_MAC, PEER4, VIP4).frame(&from(PEER_MAC, BROADCAST_MAC));
    let (group, group_mac) = solicited_node_group(VIP6);
    let solicitation = Nd::solicitation(
        PEER6,
        group,
        VIP6,
        vec![link_addr_option(ND_OPT_SOURCE_LL_ADDR, PEER_MAC)],
    )
    .frame(&from(PEER_MAC, group_mac));
    for _ in 0..10 {
        assert_eq!(program.run(&request), XDP_TX);
        assert_eq!(program.run(&solicitation), XDP_TX);
    }
    // Not ours, and our own announcements.
    assert_eq!(
        program.run(&Arp::request(PEER_MAC, PEER4, OTHER4).frame(&from(PEER_MAC, BROADCAST_MAC))),
        XDP_PASS
    );
    assert_eq!(program.run(&arp_claim(OUR_MAC, VIP4)), XDP_PASS);
    assert_eq!(program.run(&na_claim(OUR_MAC, VIP6)), XDP_PASS);
    assert_eq!(program.claims(), []);
    assert!(program.claimant(&key4(VIP4)).is_none());
    assert!(program.claimant(&key6(VIP6)).is_none());
}

#[test]
fn a_flood_over_many_vips_reaches_the_ring_at_most_at_the_cpu_budget() {
    // Every run on one CPU, whose budget is then the bound.
    let mut cpus = nix::sched::CpuSet::new();
    let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .ok()
        .and_then(|set| (0..nix::sched::CpuSet::count()).find(|c| set.is_set(*c).unwrap_or(false)))
        .unwrap_or(0);
    cpus.set(cpu).expect("CPU index");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).expect("pin the thread");

    let mut program = Program::load();
    let vips: Vec<[u8; 4]> = (1..=200).map(|last| [192, 0, 2, last]).collect();
    for vip in &vips {
        program.own(key4(*vip));
    }
    let started = monotonic_now_ns();
    for vip in &vips {
        assert_eq!(program.run(&arp_claim(OTHER_MAC, *vip)), XDP_PASS);
    }
    let elapsed = monotonic_now_ns() - started;
    let claims = program.claims();
    // Within one second (or the next window opened on the way).
    let bound = CLAIM_REPORTS_PER_CPU_SECOND as usize * (1 + (elapsed / 1_000_000_000) as usize);
    assert!(
        claims.len() >= CLAIM_REPORTS_PER_CPU_SECOND as usize && claims.len() <= bound,
        "{} reports for 200 VIPs claimed in {elapsed} ns (budget {CLAIM_REPORTS_PER_CPU_SECOND}/s)",
        claims.len()
    );
    // Every claimant is remembered all the same, for `responder vips`.
    for vip in &vips {
        assert_eq!(
            program.claimant(&key4(*vip)).map(|c| c.mac),
            Some(OTHER_MAC),
            "{vip:?}"
        );
    }
}
