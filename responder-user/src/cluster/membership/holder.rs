//! Holding this node's Lease: renewing it, and leaving it when the agent stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::Resource;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::advert::{families_annotation, renewal_annotations, restart_grace_annotation};
use super::{lease_name, LEASE_LABEL_KEY, LEASE_LABEL_VALUE};
use crate::cluster::{Attached, Reach};
use crate::metrics::Metrics;

/// Creates the node's Lease if needed and renews it every `renew_interval` with
/// one merge patch, backing off (up to the lease duration) while renewals fail.
/// Each renewal also carries what `attached` can answer for now, and an owner
/// reference to the Node once its uid is known, so the Lease of a deleted Node
/// is garbage-collected.
pub(crate) async fn hold_lease(
    api: Api<Lease>,
    nodes: Api<Node>,
    node: String,
    attached: watch::Receiver<Attached>,
    renew_interval: Duration,
    lease_duration: Duration,
    metrics: Arc<Metrics>,
) -> Infallible {
    let name = lease_name(&node);
    let mut delay = renew_interval;
    let mut failing = false;
    let mut advertised = None;
    let mut owner = None;
    loop {
        let started = Instant::now();
        if owner.is_none() {
            owner = node_owner_reference(&nodes, &node).await;
        }
        let reach = attached.borrow().reach.clone();
        if advertised.as_ref() != Some(&reach) {
            info!(
                lease = %name,
                families = %families_annotation(reach.families),
                prefixes = ?reach.prefixes,
                "advertising the IP families and subnets this node answers for"
            );
            advertised = Some(reach.clone());
        }
        let renewed = renew(&api, &name, &node, &reach, owner.as_ref(), lease_duration).await;
        metrics.lease_renewal(renewed.is_ok());
        match renewed {
            Ok(()) => {
                if failing {
                    info!(lease = %name, "lease renewals succeed again");
                }
                failing = false;
                delay = renew_interval;
            }
            Err(error) => {
                if failing {
                    debug!(lease = %name, %error, "lease renewal failed again");
                } else {
                    warn!(lease = %name, %error, "lease renewal failed; retrying with backoff");
                }
                failing = true;
                delay = (delay * 2).min(lease_duration.max(renew_interval));
            }
        }
        tokio::time::sleep_until(started + delay).await;
    }
}

/// The Node's owner reference; `None` (retried at the next renewal) while
/// the Node cannot be read.
async fn node_owner_reference(nodes: &Api<Node>, node: &str) -> Option<OwnerReference> {
    match nodes.get_opt(node).await {
        Ok(Some(object)) => object.controller_owner_ref(&()).map(|mut owner| {
            // Deleting the Lease must not wait for, or block, the Node.
            owner.controller = None;
            owner.block_owner_deletion = None;
            owner
        }),
        Ok(None) => None,
        Err(error) => {
            debug!(%node, %error, "reading the Node for the Lease's owner reference");
            None
        }
    }
}

fn duration_seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs_f64().ceil() as u64)
        .unwrap_or(i32::MAX)
        .max(1)
}

async fn renew(
    api: &Api<Lease>,
    name: &str,
    node: &str,
    reach: &Reach,
    owner: Option<&OwnerReference>,
    lease_duration: Duration,
) -> Result<(), kube::Error> {
    let annotations = renewal_annotations(reach);
    let now = MicroTime(Timestamp::now());
    let duration_seconds = duration_seconds(lease_duration);
    let mut metadata = json!({
        "labels": { LEASE_LABEL_KEY: LEASE_LABEL_VALUE },
        "annotations": annotations,
    });
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    let patch = json!({
        "metadata": metadata,
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now,
        },
    });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(
                        [(LEASE_LABEL_KEY.to_owned(), LEASE_LABEL_VALUE.to_owned())].into(),
                    ),
                    annotations: Some(
                        annotations
                            .into_iter()
                            .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                            .collect(),
                    ),
                    owner_references: owner.map(|owner| vec![owner.clone()]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_owned()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                // Lost a race with our own previous attempt; the next tick patches it.
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// How an agent leaves the cluster when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// It comes back soon (a DaemonSet rolling update): the Lease asks the
    /// others to keep this node a member for `grace`, so nothing moves.
    Restart { grace: Duration },
    /// It does not come back (the node is drained, or the agent uninstalled):
    /// the Lease is released, so its Services move at once.
    Leave,
}

/// Writes `departure` into this node's Lease; a failure is logged, since the
/// Lease then simply expires.
pub(crate) async fn depart(api: &Api<Lease>, node: &str, departure: Departure) {
    let name = lease_name(node);
    let patch = match departure {
        Departure::Restart { grace } => {
            let (key, value) = restart_grace_annotation(grace);
            json!({
                "metadata": { "annotations": { key: value } },
                "spec": {
                    "leaseDurationSeconds": duration_seconds(grace),
                    "renewTime": MicroTime(Timestamp::now()),
                },
            })
        }
        Departure::Leave => json!({ "spec": { "holderIdentity": null } }),
    };
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => info!(lease = %name, ?departure, "left the membership"),
        Err(error) => {
            warn!(lease = %name, %error, ?departure, "could not write the departure into the Lease; it expires instead")
        }
    }
}
