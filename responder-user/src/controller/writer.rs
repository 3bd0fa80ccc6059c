//! Applying the reconciler's writes to the API server.

use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use k8s_openapi::api::core::v1::Service;

use super::reconciler::StatusWrite;
use crate::crd::{IPAddressPool, IPAddressPoolStatus, ANNOTATION_ALLOCATED_FROM_POOL};

/// The annotation first, then the status: an agent that sees the addresses also
/// sees which pool (and so which L2Advertisements) they belong to. Returns the
/// versions of the Service the patches made, in order.
pub(crate) async fn write_status(
    client: &Client,
    write: &StatusWrite,
) -> Result<Vec<String>, kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), &write.key.namespace);
    let params = PatchParams::default();
    let mut versions = Vec::new();
    if !write.annotation_current {
        let patch = json!({ "metadata": { "annotations": { ANNOTATION_ALLOCATED_FROM_POOL: write.pools } } });
        let patched = api
            .patch(&write.key.name, &params, &Patch::Merge(&patch))
            .await?;
        versions.extend(patched.metadata.resource_version);
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
    let patched = api
        .patch_status(&write.key.name, &params, &Patch::Merge(&patch))
        .await?;
    versions.extend(patched.metadata.resource_version);
    Ok(versions)
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
