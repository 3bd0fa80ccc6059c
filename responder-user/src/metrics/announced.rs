//! `responder_announced`: the set of VIPs this node announces, replaced as a
//! whole on every reconcile.

use std::{
    collections::BTreeMap,
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use crate::k8s::ServiceRef;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder},
    metrics::{MetricType, TypedMetric},
};

#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct AnnouncedLabels {
    ip: String,
    /// `namespace/name`, empty for VIPs without a Service.
    service: String,
}

/// A clone shares the set, so the registry's copy sees every replacement.
///
/// Not a `Family` of gauges: replacing a family's members is a clear and
/// re-inserts, which a scrape in between would see half done, and an empty
/// family loses its HELP and TYPE lines.
#[derive(Clone, Debug, Default)]
pub(super) struct Announced(Arc<Mutex<BTreeMap<IpAddr, Option<ServiceRef>>>>);

impl Announced {
    /// Services are kept as shared references and spelt out only when
    /// scraped: the set is replaced on every reconcile, and with 10,000 VIPs
    /// a string per Service each time would be megabytes.
    pub(super) fn replace(&self, vips: BTreeMap<IpAddr, Option<ServiceRef>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = vips;
    }
}

impl TypedMetric for Announced {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for Announced {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let vips = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (ip, service) in vips.iter() {
            let labels = AnnouncedLabels {
                ip: ip.to_string(),
                service: service
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            };
            encoder.encode_family(&labels)?.encode_gauge(&1_i64)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
