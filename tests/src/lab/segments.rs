//! Two L2 segments, "public" and "internal", and three nodes with a NIC on
//! each: a dual-stack kube-apiserver with the CRDs of `deploy/crds/`, a
//! `responder controller`, and an agent per node on both NICs, each segment
//! with a client of its own. For L2Advertisements that tie pools to
//! interfaces and nodes.
use std::{collections::BTreeSet, time::Duration};

use super::kube::{kube_lab_setting, KubeLab, SegmentSpec};

pub const NAMESPACE: &str = "responder-system";
pub const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
pub const BRIDGE: &str = super::segment::BRIDGE;
/// The clients, one per segment (separate namespaces: the same subnet on
/// both is fine and keeps ARP from either simple).
pub const CLIENT_V4: &str = "192.0.2.2";
pub const CLIENT_V6: &str = "2001:db8:2::2";
/// Generous for a 2-core machine running other tests: no assertion is timed.
pub const WAIT: Duration = Duration::from_secs(60);

/// A segment, in the order the lab builds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Public = 0,
    Internal = 1,
}

pub struct Segments(KubeLab);

kube_lab_setting!(Segments);

impl Segments {
    /// `labels` per node (same order as [`NODES`]) go on the Node objects.
    pub fn start(name: &str, labels: [serde_json::Value; 3]) -> Self {
        let segment = |prefix| SegmentSpec {
            prefix,
            bridge_mac: None,
            client_v4: CLIENT_V4,
            client_v6: CLIENT_V6,
        };
        let mut builder = KubeLab::builder(name)
            .dual_stack()
            .crds()
            .namespace(NAMESPACE)
            .segment(segment("rsp"))
            .segment(segment("rsi"))
            .controller("ctl")
            .wait(WAIT);
        for (node, labels) in NODES.into_iter().zip(labels) {
            builder = builder.node(node, labels);
        }
        Segments(builder.start())
    }

    /// The one node holding every one of `addresses`, each only on that
    /// node's interface of `side`; `None` while there is no such node.
    pub fn holder_on(&self, addresses: &[String], side: Side) -> Option<&'static str> {
        let mut owner = None;
        for address in addresses {
            let holders = self.holders_on(address);
            let [(node, interfaces)] = holders.as_slice() else {
                return None;
            };
            let expected = BTreeSet::from([self.interface(node, side).to_owned()]);
            if *interfaces != expected || owner.is_some_and(|o| o != *node) {
                return None;
            }
            owner = Some(*node);
        }
        owner
    }

    /// `node`'s interface on `side`.
    pub fn interface(&self, node: &str, side: Side) -> &str {
        &self.agent(node).nics[side as usize].name
    }

    /// `node`'s MAC on `side`.
    pub fn mac(&self, node: &str, side: Side) -> &str {
        &self.agent(node).nics[side as usize].mac
    }

    /// Every interface name of `side`, for an advertisement.
    pub fn interfaces(&self, side: Side) -> Vec<String> {
        self.agents
            .iter()
            .map(|a| a.nics[side as usize].name.clone())
            .collect()
    }

    /// MACs answering `arping` for `address` from `side`'s client.
    pub fn arp_answerers(&self, side: Side, address: &str) -> BTreeSet<String> {
        self.segments[side as usize].arp_answerers(address, 3)
    }

    /// MACs answering `ndisc6` for `address` from `side`'s client.
    pub fn nd_answerers(&self, side: Side, address: &str) -> BTreeSet<String> {
        self.segments[side as usize].nd_answerers(address)
    }
}
