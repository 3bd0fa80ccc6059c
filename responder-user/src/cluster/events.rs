//! Kubernetes Events on a Service when this node starts or stops announcing it, or
//! refuses one of its addresses.
//! Publishing happens off the ownership loop so a slow or failing API server never
//! delays withdrawing or taking over a VIP.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::Client;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::service_facts::ServiceFacts;
use crate::event_record::record;

const REPORTER: &str = "responder";

#[derive(Debug)]
pub(crate) enum OwnershipEvent {
    Started {
        service: Arc<ServiceFacts>,
        ips: Vec<IpAddr>,
    },
    Stopped {
        service: Arc<ServiceFacts>,
        ips: Vec<IpAddr>,
    },
    /// An ingress address that is never answered for (a node's own address).
    Refused {
        service: Arc<ServiceFacts>,
        reason: String,
    },
    /// An ingress address no L2Advertisement covers.
    Unadvertised {
        service: Arc<ServiceFacts>,
        reason: String,
    },
    /// An `IPAddressPool` or `L2Advertisement` left out. Boxed: the queue
    /// holds one Event per Service after a sync (10,000 of them at 10,000
    /// Services), each slot as big as the largest variant.
    Invalid {
        regarding: Box<ObjectReference>,
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
        let (regarding, type_, reason, action, note) = match &announcement {
            OwnershipEvent::Started { service, ips } => (
                service.object_ref(),
                EventType::Normal,
                "AnnouncingStarted",
                "Announce",
                format!(
                    "node {node} answers ARP/NDP for {} on [{interfaces}]",
                    join(ips)
                ),
            ),
            OwnershipEvent::Stopped { service, ips } => (
                service.object_ref(),
                EventType::Normal,
                "AnnouncingStopped",
                "Withdraw",
                format!(
                    "node {node} stopped answering ARP/NDP for {} on [{interfaces}]",
                    join(ips)
                ),
            ),
            OwnershipEvent::Refused { service, reason } => (
                service.object_ref(),
                EventType::Warning,
                "AddressRefused",
                "Refuse",
                format!("{reason}; no node answers ARP/NDP for it"),
            ),
            OwnershipEvent::Unadvertised { service, reason } => (
                service.object_ref(),
                EventType::Warning,
                "NotAdvertised",
                "Skip",
                format!("{reason}; no node answers ARP/NDP for it"),
            ),
            OwnershipEvent::Invalid { regarding, reason } => (
                ObjectReference::clone(regarding),
                EventType::Warning,
                "InvalidConfiguration",
                "Skip",
                format!("{reason}; left out, the others carry on"),
            ),
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = record(&client, &reporter, &event, &regarding).await {
            let name = regarding.name.as_deref().unwrap_or_default();
            warn!(object = name, reason, %error, "could not record Event");
        }
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::OwnershipEvent;

    #[test]
    fn a_queued_event_stays_small() {
        // After a sync the queue holds one Event per Service, each slot the
        // size of the largest variant: an unboxed ObjectReference made that
        // 200 bytes, 2 MB at 10,000 Services.
        assert!(std::mem::size_of::<OwnershipEvent>() <= 48);
    }
}
