//! Kubernetes Events on a Service when this node starts or stops announcing it, or
//! refuses one of its addresses.
//! Publishing happens off the ownership loop so a slow or failing API server never
//! delays withdrawing or taking over a VIP.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::ownership::service_ref;
use crate::event_record::record;

const REPORTER: &str = "responder";

#[derive(Debug)]
pub(crate) enum OwnershipEvent {
    Started {
        service: Arc<Service>,
        ips: Vec<IpAddr>,
    },
    Stopped {
        service: Arc<Service>,
        ips: Vec<IpAddr>,
    },
    /// An ingress address that is never answered for (a node's own address).
    Refused {
        service: Arc<Service>,
        reason: String,
    },
}

pub(crate) fn channel() -> (
    mpsc::UnboundedSender<OwnershipEvent>,
    mpsc::UnboundedReceiver<OwnershipEvent>,
) {
    mpsc::unbounded_channel()
}

/// Events go to the Service's namespace: the API rejects Events whose namespace
/// differs from the namespaced object they regard.
pub(crate) async fn publish_events(
    client: Client,
    node: String,
    attached: watch::Receiver<super::Attached>,
    mut announcements: mpsc::UnboundedReceiver<OwnershipEvent>,
) {
    let reporter = Reporter {
        controller: REPORTER.to_owned(),
        instance: Some(node.clone()),
    };
    while let Some(announcement) = announcements.recv().await {
        let interfaces = attached.borrow().names.join(", ");
        let (service, type_, reason, action, note) = match &announcement {
            OwnershipEvent::Started { service, ips } => (
                service,
                EventType::Normal,
                "AnnouncingStarted",
                "Announce",
                format!(
                    "node {node} answers ARP/NDP for {} on [{interfaces}]",
                    join(ips)
                ),
            ),
            OwnershipEvent::Stopped { service, ips } => (
                service,
                EventType::Normal,
                "AnnouncingStopped",
                "Withdraw",
                format!(
                    "node {node} stopped answering ARP/NDP for {} on [{interfaces}]",
                    join(ips)
                ),
            ),
            OwnershipEvent::Refused { service, reason } => (
                service,
                EventType::Warning,
                "AddressRefused",
                "Refuse",
                format!("{reason}; no node answers ARP/NDP for it"),
            ),
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = record(&client, &reporter, &event, &service.object_ref(&())).await {
            warn!(service = %service_ref(service), reason, %error, "could not record Event");
        }
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
