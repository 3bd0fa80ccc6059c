//! Applying the reconciler's writes to the API server.

use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use k8s_openapi::api::core::v1::Service;

use super::reconciler::StatusWrite;
use crate::crd::{IPAddressPool, IPAddressPoolStatus, ANNOTATION_ALLOCATED_FROM_POOL};

/// The annotation first, then the status: an agent that sees the addresses also
/// sees which pool (and so which L2Advertisements) they belong to.
pub(crate) async fn write_status(client: &Client, write: &StatusWrite) -> Result<(), kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), &write.key.namespace);
    let params = PatchParams::default();
    if !write.annotation_current {
        let patch = json!({ "metadata": { "annotations": { ANNOTATION_ALLOCATED_FROM_POOL: write.pools } } });
        api.patch(&write.key.name, &params, &Patch::Merge(&patch))
            .await?;
    }
    let ingress: Value = if write.ingress.is_empty() {
        Value::Null
    } else {
        write
            .ingress
            .iter()
            .map(|ip| json!({ "ip": ip.to_string() }))
            .collect()
    };
    let patch = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
    api.patch_status(&write.key.name, &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}

pub(crate) async fn write_pool_status(
    pools: &Api<IPAddressPool>,
    pool: &str,
    status: &IPAddressPoolStatus,
) -> Result<(), kube::Error> {
    let patch = json!({ "status": status });
    pools
        .patch_status(pool, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
