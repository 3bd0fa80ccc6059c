//! Recording Kubernetes Events, shared by the agent and the controller.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::Client;

/// Records `event` about `regarding` as an Event of its own.
///
/// A fresh `Recorder` each time, on purpose: a long-lived one folds a later
/// Event of the same reason into the first one (keeping the first note, where
/// the later one says why an address moved), and keeps every Event it
/// published for minutes in a cache it scans on every publish. An agent
/// announcing ten thousand Services at start held ~35 MB in that cache and
/// spent quadratic time scanning it (measured with heaptrack).
pub(crate) async fn record(
    client: &Client,
    reporter: &Reporter,
    event: &Event,
    regarding: &ObjectReference,
) -> Result<(), kube::Error> {
    Recorder::new(client.clone(), reporter.clone())
        .publish(event, regarding)
        .await
}
