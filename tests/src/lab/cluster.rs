//! The simulated cluster most tests use: one L2 segment with its client on
//! the bridge, three nodes with an agent each, a real kube-apiserver, no
//! controller (tests write the Services' addresses themselves).
use std::{collections::BTreeSet, process::Command, time::Duration};

use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub use super::kube::{EXCLUDE_LB_LABEL, SETTLED};
use super::{
    kube::{kube_lab_setting, KubeLab, SegmentSpec},
    link::sysctl,
    segment::Segment,
};
use crate::netns::run_ok;
pub use crate::prober::{ArpProber, Tally};

pub const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
pub const BRIDGE: &str = super::segment::BRIDGE;
pub const CLIENT_V4: &str = "198.51.100.2";
pub const CLIENT_V6: &str = "2001:db8:100::2";
pub const NAMESPACE: &str = "default";

/// Long enough for a Lease to expire (1 s by default) and a new owner to act.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a benchmark may change about the cluster; the tests use the default.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Environment of `apiserver.sh start` (e.g. a bigger cluster IP range).
    pub server_env: Vec<(&'static str, &'static str)>,
    /// Labels of every agent's Node.
    pub node_labels: serde_json::Value,
    /// Appended to every agent's `responder run` command line.
    pub agent_args: Vec<String>,
    /// The agents' RUST_LOG.
    pub rust_log: String,
    /// The CRDs of `deploy/crds/` served before the agents start (without
    /// them the agents start in flags-only mode).
    pub crds: bool,
    /// A `responder controller` (identity `ctl`) assigning addresses from the
    /// pools in [`NAMESPACE`].
    pub controller: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            server_env: Vec::new(),
            node_labels: json!({}),
            agent_args: Vec::new(),
            rust_log: "info".to_owned(),
            crds: false,
            controller: false,
        }
    }
}

pub struct Cluster(KubeLab);

kube_lab_setting!(Cluster);

impl Cluster {
    /// `name` (a few letters) says which test owns the cluster.
    pub fn start(name: &str) -> Self {
        Self::start_excluding(name, &[])
    }

    /// Like `start`, with the Nodes in `excluded` labelled excluded from
    /// load balancers before their agents start: those agents run, but take
    /// no part (no Lease).
    pub fn start_excluding(name: &str, excluded: &[&str]) -> Self {
        Self::start_with(name, excluded, &ClusterOptions::default(), |_| ()).0
    }

    /// Like `start_excluding`, with `options`, and `before_agents` run once
    /// the API server, the segment and the Nodes exist but no agent has
    /// started (to load the API server first); returns what it returned.
    pub fn start_with<T>(
        name: &str,
        excluded: &[&str],
        options: &ClusterOptions,
        before_agents: impl FnOnce(&KubeLab) -> T,
    ) -> (Self, T) {
        let mut builder = KubeLab::builder(name)
            .server_env(&options.server_env)
            .namespace(NAMESPACE)
            .segment(SegmentSpec {
                prefix: "rk",
                // Fixed so it does not follow the lowest port MAC as ports come and go.
                bridge_mac: Some("02:00:5e:00:53:02"),
                client_v4: CLIENT_V4,
                client_v6: CLIENT_V6,
            })
            .agent_args(&options.agent_args)
            .rust_log(&options.rust_log)
            .wait(WAIT);
        if options.crds {
            builder = builder.crds();
        }
        if options.controller {
            builder = builder.controller("ctl");
        }
        for node in NODES {
            let mut labels = options.node_labels.clone();
            if excluded.contains(&node) {
                labels[EXCLUDE_LB_LABEL] = json!("");
            }
            builder = builder.node(node, labels);
        }
        let (lab, before) = builder.start_with(before_agents);
        (Cluster(lab), before)
    }

    /// The segment all nodes and the client are on.
    pub fn segment(&self) -> &Segment {
        &self.segments[0]
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client(), NAMESPACE)
    }

    pub fn create_lb_service(&self, name: &str, addresses: &[&str]) {
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] },
        }))
        .expect("service manifest");
        self.block(self.services().create(&PostParams::default(), &service))
            .expect("create Service");
        self.set_ingress(name, addresses);
    }

    /// Replaces the Service's status.loadBalancer.ingress with `addresses`.
    pub fn set_ingress(&self, name: &str, addresses: &[&str]) {
        let ingress: Vec<_> = addresses.iter().map(|a| json!({ "ip": a })).collect();
        self.try_set_ingress_entries(name, json!(ingress))
            .expect("patch Service status");
    }

    /// Takes a Service out of our hands. Kubernetes 1.20 prunes
    /// spec.loadBalancerClass, so a class change cannot be expressed; turning
    /// it into a ClusterIP Service takes the same "not ours any more" path.
    pub fn make_cluster_ip(&self, name: &str) {
        let patch = json!({
            "spec": { "type": "ClusterIP", "externalTrafficPolicy": null, "ports": [{ "port": 80, "protocol": "TCP" }] },
        });
        self.block(
            self.services()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .expect("make the Service a ClusterIP Service");
    }

    /// Replaces status.loadBalancer.ingress with arbitrary entries (hostnames,
    /// malformed ips); the API server's verdict is returned, not asserted.
    pub fn try_set_ingress_entries(
        &self,
        name: &str,
        entries: serde_json::Value,
    ) -> Result<(), kube::Error> {
        let status = json!({ "status": { "loadBalancer": { "ingress": entries } } });
        self.block(self.services().patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        ))
        .map(drop)
    }

    /// Where the API server keeps Service `name` in etcd.
    pub fn service_etcd_key(name: &str) -> String {
        format!("/registry/services/specs/{NAMESPACE}/{name}")
    }

    pub fn delete_service(&self, name: &str) {
        self.block(self.services().delete(name, &DeleteParams::default()))
            .expect("delete Service");
    }

    /// Events recorded on Services in the test namespace with one of
    /// `reasons`, as (reason, note, count).
    pub fn events(&self, reasons: &[&str]) -> Vec<(String, String, i32)> {
        let events = Api::<Event>::namespaced(self.client(), NAMESPACE);
        let list = self
            .block(events.list(&Default::default()))
            .expect("list Events");
        list.items
            .into_iter()
            .filter_map(|event| {
                let reason = event.reason?;
                reasons.contains(&reason.as_str()).then(|| {
                    (
                        reason,
                        event.message.unwrap_or_default(),
                        event.count.unwrap_or(1),
                    )
                })
            })
            .collect()
    }

    /// Turns IPv6 off or on for `node`'s interface (`disable_ipv6`), as an
    /// operator or a host profile would.
    pub fn set_ipv6(&self, node: &str, enabled: bool) {
        let interface = self.agent(node).interface();
        sysctl(
            &format!("net.ipv6.conf.{interface}.disable_ipv6"),
            if enabled { "0" } else { "1" },
        );
    }

    /// Adds `cidr` to the node's interface (the root-namespace veth), as its
    /// subnet on the segment.
    pub fn add_interface_address(&self, node: &str, cidr: &str) {
        let interface = self.agent(node).interface();
        run_ok(Command::new("ip").args(["addr", "add", cidr, "dev", interface, "nodad"]));
    }

    /// MACs answering `arping` for an IPv4 address from the client.
    pub fn arp_answerers(&self, address: &str, count: u32) -> BTreeSet<String> {
        self.segment().arp_answerers(address, count)
    }

    /// MACs answering `ndisc6` for an IPv6 address from the client.
    pub fn nd_answerers(&self, address: &str) -> BTreeSet<String> {
        self.segment().nd_answerers(address)
    }

    /// Makes the client's kernel resolve `address`.
    pub fn client_resolve(&self, address: &str) {
        self.segment().client_resolve(address)
    }

    /// The client's neighbor entry for `address`: its lladdr, if it has one.
    pub fn client_neighbor(&self, address: &str) -> Option<String> {
        self.segment().client_neighbor(address)
    }

    /// An ARP prober on the client's bridge, for the failover measurement.
    pub fn arp_prober(&self) -> ArpProber {
        self.segment().arp_prober()
    }
}
