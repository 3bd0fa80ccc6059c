//! The per-VIP counter families, read from the data plane at scrape time.

use std::{
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, MetricType},
};
use responder_common::VipKey;

use crate::{
    interface_names::InterfaceNames,
    k8s::ServiceRef,
    vip::{key_addr, key_vlan},
};

/// The counters of one VIP key at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipCounterSample {
    pub key: VipKey,
    /// The Service the VIP belongs to; None for `--vip` and `--vip-file`.
    pub service: Option<ServiceRef>,
    pub requests: u64,
    pub replies: u64,
    pub conflicts: u64,
    pub stale: u64,
    pub gratuitous_sent: u64,
}

/// Where the per-VIP counters come from (the BPF maps, the announcer and
/// the Kubernetes source); asked once per scrape.
pub trait VipCounterSource: Send + Sync {
    fn vip_counter_samples(&self) -> Vec<VipCounterSample>;

    /// Names for the samples' ifindexes, listed once per scrape that has
    /// samples.
    fn interface_names(&self) -> InterfaceNames {
        InterfaceNames::current()
    }
}

type CounterOf = fn(&VipCounterSample) -> u64;

/// Name (without the `_total` the encoder appends to counters), HELP text
/// and value of each family.
const VIP_COUNTERS: [(&str, &str, CounterOf); 5] = [
    (
        "responder_layer2_requests_received",
        "Valid ARP requests and IPv6 Neighbor Solicitations received for the VIP.",
        |s| s.requests,
    ),
    (
        "responder_layer2_responses_sent",
        "ARP replies and Neighbor Advertisements sent for the VIP by the XDP program.",
        |s| s.replies,
    ),
    (
        "responder_layer2_gratuitous_sent",
        "Gratuitous ARP and unsolicited Neighbor Advertisement packets sent for the VIP.",
        |s| s.gratuitous_sent,
    ),
    (
        "responder_layer2_conflicts",
        "Packets in which another MAC claimed the VIP (gratuitous ARP, ARP reply or NA): split brain.",
        |s| s.conflicts,
    ),
    (
        "responder_layer2_stale",
        "Requests left unanswered because the agent's heartbeat was stale or the VIP was yielded.",
        |s| s.stale,
    ),
];

/// Label order is the field order: `ip`, `interface`, `vlan`, `service`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct VipLabels {
    ip: String,
    interface: String,
    /// Empty when untagged, `100` for one tag, `100.200` for two.
    vlan: String,
    /// `namespace/name`, empty without a Service.
    service: String,
}

/// Registered once; the agent plugs its source in once it has loaded the
/// maps. Until then the families are exposed without series.
#[derive(Clone, Default)]
pub(super) struct VipCollector {
    source: Arc<RwLock<Option<Arc<dyn VipCounterSource>>>>,
}

impl VipCollector {
    pub(super) fn set_source(&self, source: Arc<dyn VipCounterSource>) {
        *self.source.write().unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    fn labelled_samples(&self) -> Vec<(VipLabels, VipCounterSample)> {
        let source = self
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(source) = source else {
            return Vec::new();
        };
        let samples = source.vip_counter_samples();
        if samples.is_empty() {
            return Vec::new();
        }
        let names = source.interface_names();
        let mut labelled: Vec<(VipLabels, VipCounterSample)> = samples
            .into_iter()
            .map(|sample| (labels_of(&sample, &names), sample))
            .collect();
        // Addresses in numeric order, as before, rather than as text.
        labelled.sort_by(|(a, sa), (b, sb)| {
            (key_addr(&sa.key), &a.interface, key_vlan(&sa.key)).cmp(&(
                key_addr(&sb.key),
                &b.interface,
                key_vlan(&sb.key),
            ))
        });
        labelled
    }
}

fn labels_of(sample: &VipCounterSample, names: &InterfaceNames) -> VipLabels {
    let vlan = key_vlan(&sample.key);
    VipLabels {
        ip: key_addr(&sample.key).to_string(),
        interface: names.name_of(sample.key.ifindex).into_owned(),
        vlan: if vlan.is_tagged() {
            vlan.to_string()
        } else {
            String::new()
        },
        service: sample
            .service
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

impl fmt::Debug for VipCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VipCollector").finish_non_exhaustive()
    }
}

impl Collector for VipCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let labelled = self.labelled_samples();
        for (name, help, counter_of) in VIP_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, sample) in &labelled {
                ConstCounter::new(counter_of(sample)).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}
