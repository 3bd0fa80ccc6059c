//! Recording the controller's Events, off the allocation loop: a slow or failing
//! API server never delays an allocation.

use kube::runtime::events::{Event, Reporter};
use kube::Client;
use tokio::sync::mpsc;
use tracing::warn;

use super::reconciler::Notice;
use crate::event_record::record;

pub(crate) const REPORTER: &str = "responder-controller";

pub(crate) fn channel() -> (
    mpsc::UnboundedSender<Notice>,
    mpsc::UnboundedReceiver<Notice>,
) {
    mpsc::unbounded_channel()
}

/// Records every notice until the senders are gone. Events go to the namespace of
/// the object they regard (the API refuses others).
///
/// Each notice is a new Event (see [`record`]): the reconciler already tells each
/// thing once.
pub(crate) async fn publish(
    client: Client,
    identity: String,
    mut notices: mpsc::UnboundedReceiver<Notice>,
) {
    let reporter = Reporter {
        controller: REPORTER.to_owned(),
        instance: Some(identity),
    };
    while let Some(notice) = notices.recv().await {
        let event = Event {
            type_: notice.type_,
            reason: notice.reason.to_owned(),
            note: Some(notice.note),
            action: "Allocate".to_owned(),
            secondary: None,
        };
        if let Err(error) = record(&client, &reporter, &event, &notice.regarding).await {
            warn!(
                object = notice.regarding.name.as_deref().unwrap_or_default(),
                reason = notice.reason,
                %error,
                "could not record Event"
            );
        }
    }
}
