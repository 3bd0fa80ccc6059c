//! MetalLB's own layer-2 end-to-end scenarios (its `e2etest/l2tests`) and
//! PureLB's failover stress, on the simulated clusters: a node whose
//! NetworkUnavailable condition is set, or that is labelled excluded from
//! load balancers, hands its Services on and takes them back once cleared;
//! the out-of-service taint moves a frozen node's Services at once, well
//! before its Lease would; Services sharing one address (allow-shared-ip)
//! are answered from one node, through a failover too; an L2Advertisement's
//! interfaces changed at run time move the answers to the new segment; and
//! repeated SIGKILLs of owners under Service churn never leave two MACs
//! answering one address, nor an address stranded.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use responder::crd::ServiceL2Status;
use responder_tests::{
    lab::one_cluster_at_a_time,
    lab::{
        cluster::{Cluster, ClusterOptions, NAMESPACE, NODES, SETTLED, WAIT},
        kube::OUT_OF_SERVICE_TAINT,
        segments::{self, Segments, Side},
    },
    netns::wait_for,
    prober::ArpProber,
};
use serde_json::json;

mod advertisement_interfaces;
mod failover_stress;
mod node_conditions;
mod shared_address;

const WEB_V4: &str = "198.51.100.10";
const WEB_V6: &str = "2001:db8:100::10";

fn v4(address: &str) -> Ipv4Addr {
    address.parse().expect("test IPv4 address")
}

fn only(mac: &str) -> BTreeSet<String> {
    BTreeSet::from([mac.to_owned()])
}

/// The agents' rendezvous weight of (node, namespace/name), written out
/// again from its definition (FNV-1a 64 finished with splitmix64, see
/// `cluster/ownership.rs`) so the tests predict owners independently.
fn rendezvous_weight(node: &str, namespace: &str, name: &str) -> u64 {
    let fnv = [
        node.as_bytes(),
        &[0],
        namespace.as_bytes(),
        b"/",
        name.as_bytes(),
    ]
    .into_iter()
    .flatten()
    .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut z = fnv.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owner rendezvous gives Service `name` of the test namespace among
/// `candidates`.
fn computed_owner<'a>(candidates: &[&'a str], name: &str) -> &'a str {
    candidates
        .iter()
        .copied()
        .max_by_key(|node| (rendezvous_weight(node, NAMESPACE, name), *node))
        .expect("a candidate")
}

/// Both wire protocols are answered for web from `node`'s MAC alone.
fn assert_web_answered_only_by(cluster: &Cluster, node: &str) {
    let mac = cluster.agent(node).mac();
    assert_eq!(
        cluster.arp_answerers(WEB_V4, 2),
        only(mac),
        "ARP for {WEB_V4} must be answered by {node} ({mac}) alone"
    );
    assert_eq!(
        cluster.nd_answerers(WEB_V6),
        only(mac),
        "NDP for {WEB_V6} must be answered by {node} ({mac}) alone"
    );
}
