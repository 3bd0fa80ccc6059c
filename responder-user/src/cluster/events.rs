//! Kubernetes Events on a Service when this node starts or stops announcing it, or
//! refuses one of its addresses.
//! Publishing happens off the ownership loop so a slow or failing API server never
//! delays withdrawing or taking over a VIP.
//!
//! The writes are paced ([`PACING`]): a handful of changes (a failover) gets an
//! Event on each Service at once, while a burst (the first sync of a node owning
//! thousands of Services) gets Events on its first few Services and one summary
//! per reason on this node's Node object, so a sync of any size costs the API
//! server a bounded number of writes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::Client;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::reason::{Problem, Reason};
use super::service_facts::ServiceFacts;
use super::status::Claim;
use crate::event_record::{record, Foldable, Paced, Pacer, Pacing, Summary};
use crate::k8s::ServiceRef;
use crate::metrics::Metrics;

const REPORTER: &str = "responder";

/// The agent's Event budget.
///
/// - `burst` 20: a failover hands each surviving node its share of the failed
///   node's Services (rendezvous hashing spreads them), about S/N² with S
///   Services on N announcing nodes: 10 at 1,000 Services on 10 nodes. Twenty
///   at once, thirty within the second, keep an Event on every moved Service
///   there (client-go's own Event spam filter allows a burst of 25 per
///   object); a bigger share is summarized like a sync.
/// - `per_second` 10: sustained, a fifth of the kubelet's default Event rate
///   (`eventRecordQPS` 50), which runs on the same nodes: an agent must cost
///   the API server less than the kubelet next to it.
/// - `max_wait` 1 s: an Event is worth writing on its own while it is current;
///   one that would wait longer is counted in its reason's summary instead.
///
/// So a burst costs at most 20 + 10 × 1 = 30 Events one by one, all within
/// its first second, plus one summary per reason (seven reasons): at most 37
/// writes, whether it is 40 Services or 100,000. A sustained flood costs at
/// most 10 writes a second.
pub(crate) const PACING: Pacing = Pacing {
    burst: 20,
    per_second: 10.0,
    max_wait: Duration::from_secs(1),
};

pub(crate) const REASON_STARTED: &str = "AnnouncingStarted";
pub(crate) const REASON_STOPPED: &str = "AnnouncingStopped";
pub(crate) const REASON_REFUSED: &str = "AddressRefused";
pub(crate) const REASON_UNADVERTISED: &str = "NotAdvertised";
pub(crate) const REASON_NOT_ANNOUNCED: &str = "NotAnnounced";
pub(crate) const REASON_INVALID: &str = "InvalidConfiguration";
pub(crate) const REASON_CONFLICT: &str = "AddressConflict";

/// The reason of the Event an agent records on a Service for an address
/// left unannounced, if any: the Service-level reasons are not an agent's
/// to tell (another class is not ours; a missing address is the
/// controller's Events), a conflict is told where it is seen.
pub(crate) fn event_reason_of(reason: Reason) -> Option<&'static str> {
    match reason {
        Reason::OtherClass | Reason::NoAddress | Reason::Yielded => None,
        Reason::UnusableEntry
        | Reason::ProxyMode
        | Reason::NodeAddress
        | Reason::ReservedAnycast => Some(REASON_REFUSED),
        Reason::NotInPool | Reason::NotAdvertised => Some(REASON_UNADVERTISED),
        Reason::NoNodeSelected
        | Reason::InterfaceMissing
        | Reason::NoLocalEndpoint
        | Reason::NoEligibleNode
        | Reason::NoServingInterface => Some(REASON_NOT_ANNOUNCED),
    }
}

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
    /// An ingress entry no node answers for, with why.
    NotAnswered {
        service: Arc<ServiceFacts>,
        /// Its Event reason ([`event_reason_of`]).
        event_reason: &'static str,
        problem: Box<Problem>,
    },
    /// Another MAC claims a VIP of the Service this node answers for
    /// ([`conflict_note`]).
    Conflict {
        service: Arc<ServiceFacts>,
        note: String,
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

impl OwnershipEvent {
    fn reason(&self) -> &'static str {
        match self {
            OwnershipEvent::Started { .. } => REASON_STARTED,
            OwnershipEvent::Stopped { .. } => REASON_STOPPED,
            OwnershipEvent::NotAnswered { event_reason, .. } => event_reason,
            OwnershipEvent::Conflict { .. } => REASON_CONFLICT,
            OwnershipEvent::Invalid { .. } => REASON_INVALID,
        }
    }
}

impl Foldable for OwnershipEvent {
    fn kind(&self) -> &'static str {
        self.reason()
    }

    fn subject(&self) -> String {
        match self {
            OwnershipEvent::Started { service, .. }
            | OwnershipEvent::Stopped { service, .. }
            | OwnershipEvent::NotAnswered { service, .. }
            | OwnershipEvent::Conflict { service, .. } => service.key.to_string(),
            OwnershipEvent::Invalid { regarding, .. } => format!(
                "{} {}",
                regarding.kind.as_deref().unwrap_or_default(),
                regarding.name.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// Where Events are recorded: the API server, or a fake in tests.
pub(crate) trait EventSink {
    async fn record(
        &mut self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error>;
}

struct ApiServer {
    client: Client,
    reporter: Reporter,
}

impl EventSink for ApiServer {
    async fn record(
        &mut self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        record(&self.client, &self.reporter, event, regarding).await
    }
}

/// Records the Events of `announcements`, paced by [`PACING`], until the
/// senders are gone and the last one is written. Events go to the Service's
/// namespace (the API rejects Events whose namespace differs from the
/// namespaced object they regard); summaries, on this node's Node, to
/// `default`.
pub(crate) async fn publish_events(
    client: Client,
    node: String,
    attached: watch::Receiver<super::Attached>,
    announcements: mpsc::UnboundedReceiver<OwnershipEvent>,
    metrics: Arc<Metrics>,
) {
    let sink = ApiServer {
        client,
        reporter: Reporter {
            controller: REPORTER.to_owned(),
            instance: Some(node.clone()),
        },
    };
    publish_paced(sink, &node, attached, announcements, &metrics, PACING).await;
}

async fn publish_paced(
    mut sink: impl EventSink,
    node: &str,
    attached: watch::Receiver<super::Attached>,
    mut announcements: mpsc::UnboundedReceiver<OwnershipEvent>,
    metrics: &Metrics,
    pacing: Pacing,
) {
    let mut pacer = Pacer::new(pacing, Instant::now());
    let mut open = true;
    let push = |pacer: &mut Pacer<OwnershipEvent>, announcement| {
        if pacer.push(announcement, Instant::now()) {
            metrics.event_aggregated();
        }
    };
    loop {
        // Everything queued is judged together: a burst is summarized, not
        // written one by one until it runs out of budget.
        while open {
            match announcements.try_recv() {
                Ok(announcement) => push(&mut pacer, announcement),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if let Some(next) = pacer.pop(Instant::now()) {
            let interfaces = attached.borrow().names.join(", ");
            let (regarding, event) = match &next {
                Paced::One(announcement) => event_of(announcement, node, &interfaces),
                Paced::Summary(summary) => {
                    info!(
                        reason = summary.kind,
                        count = summary.count,
                        "more Events at once than the Event rate allows: one summary on Node {node} instead"
                    );
                    summary_event(summary, node, &interfaces)
                }
            };
            match sink.record(&event, &regarding).await {
                Ok(()) => metrics.event_written(),
                Err(error) => {
                    let name = regarding.name.as_deref().unwrap_or_default();
                    warn!(object = name, reason = event.reason, %error, "could not record Event");
                }
            }
            continue;
        }
        if !open && pacer.is_empty() {
            return;
        }
        let wake = pacer.next_at(Instant::now());
        tokio::select! {
            received = announcements.recv(), if open => match received {
                Some(announcement) => push(&mut pacer, announcement),
                None => open = false,
            },
            () = sleep_until_some(wake) => {}
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn event(type_: EventType, reason: &str, action: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    }
}

/// The type and action of Events of `reason`.
fn kind_of(reason: &str) -> (EventType, &'static str) {
    match reason {
        REASON_STARTED => (EventType::Normal, "Announce"),
        REASON_STOPPED => (EventType::Normal, "Withdraw"),
        REASON_REFUSED => (EventType::Warning, "Refuse"),
        REASON_CONFLICT => (EventType::Warning, "Defend"),
        _ => (EventType::Warning, "Skip"),
    }
}

/// The Event on the object an announcement regards.
fn event_of(
    announcement: &OwnershipEvent,
    node: &str,
    interfaces: &str,
) -> (ObjectReference, Event) {
    let reason = announcement.reason();
    let (type_, action) = kind_of(reason);
    let (regarding, note) = match announcement {
        OwnershipEvent::Started { service, ips } => (
            service.object_ref(),
            format!(
                "node {node} answers ARP/NDP for {} on [{interfaces}]",
                join(ips)
            ),
        ),
        OwnershipEvent::Stopped { service, ips } => (
            service.object_ref(),
            format!(
                "node {node} stopped answering ARP/NDP for {} on [{interfaces}]",
                join(ips)
            ),
        ),
        OwnershipEvent::NotAnswered {
            service, problem, ..
        } => (
            service.object_ref(),
            format!("{problem}; no node answers ARP/NDP for it"),
        ),
        OwnershipEvent::Conflict { service, note } => (service.object_ref(), note.clone()),
        OwnershipEvent::Invalid { regarding, reason } => (
            ObjectReference::clone(regarding),
            format!("{reason}; left out, the others carry on"),
        ),
    };
    (regarding, event(type_, reason, action, note))
}

/// The Event on this node's Node object for Events of one reason that were
/// not written one by one. Its uid is the node's name, as the kubelet's own
/// Events have it, so `kubectl describe node` lists it.
fn summary_event(summary: &Summary, node: &str, interfaces: &str) -> (ObjectReference, Event) {
    let (type_, action) = kind_of(summary.kind);
    let count = grouped(summary.count);
    let what = match summary.kind {
        REASON_STARTED => {
            format!("node {node} answers ARP/NDP for {count} more Services on [{interfaces}]")
        }
        REASON_STOPPED => format!(
            "node {node} stopped answering ARP/NDP for {count} more Services on [{interfaces}]"
        ),
        REASON_REFUSED => format!(
            "{count} more Services have an ingress address no node answers ARP/NDP for (refused)"
        ),
        REASON_UNADVERTISED => format!(
            "{count} more Services have an ingress address no L2Advertisement covers, which no \
             node answers ARP/NDP for"
        ),
        REASON_CONFLICT => {
            format!("other MACs claim addresses of {count} more Services this node answers for")
        }
        REASON_NOT_ANNOUNCED => format!(
            "{count} more Services have an ingress address no node can announce (see \
             `responder status`)"
        ),
        _ => format!("{count} more IPAddressPools or L2Advertisements left out"),
    };
    let more = if summary.count > summary.sample.len() {
        ", …"
    } else {
        ""
    };
    let note = format!(
        "{what} ({}{more}): too many at once for an Event on each; the agent's log names every one",
        summary.sample.join(", ")
    );
    let regarding = ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Node".to_owned()),
        name: Some(node.to_owned()),
        uid: Some(node.to_owned()),
        ..ObjectReference::default()
    };
    (regarding, event(type_, summary.kind, action, note))
}

/// 9970 as 9,970.
fn grouped(count: usize) -> String {
    let digits = count.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The note of an [`REASON_CONFLICT`] Event: `<mac> claims <ip> on
/// <interface>, which node <node> answers for; it <action>`. Read back by
/// [`claim_of`], so `responder status` can name the MAC.
pub(crate) fn conflict_note(
    mac: &str,
    ip: IpAddr,
    interface: &str,
    node: &str,
    action: &str,
) -> String {
    format!("{mac} claims {ip} on {interface}, which node {node} answers for; it {action}")
}

/// What an agent's AddressConflict Event says: on which Service, the
/// address, the MAC, and whether the owner yielded it.
pub fn claim_of(event: &k8s_openapi::api::core::v1::Event) -> Option<Claim> {
    if event.reason.as_deref() != Some(REASON_CONFLICT) {
        return None;
    }
    let object = &event.involved_object;
    if object.kind.as_deref() != Some("Service") {
        return None;
    }
    let note = event.message.as_deref()?;
    let mut words = note.split_whitespace();
    let mac = words.next()?.to_owned();
    let address = match (words.next(), words.next()) {
        (Some("claims"), Some(ip)) => ip.parse().ok()?,
        _ => return None,
    };
    let at = [
        event.event_time.as_ref().map(|t| t.0),
        event.last_timestamp.as_ref().map(|t| t.0),
        event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()?;
    Some(Claim {
        service: ServiceRef::new(
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
        ),
        address,
        mac,
        yielded: note.ends_with("; it yielded"),
        at,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::Attached;
    use super::*;
    use crate::k8s::fixtures::lb_service;

    fn facts(service: k8s_openapi::api::core::v1::Service) -> Arc<ServiceFacts> {
        Arc::new(ServiceFacts::of(&service))
    }

    /// An Event as written, and when.
    struct Written {
        at: Instant,
        reason: String,
        type_: EventType,
        note: Option<String>,
        regarding: ObjectReference,
    }

    /// Records what would be written; each write takes 5 ms.
    #[derive(Clone, Default)]
    struct FakeApiServer {
        written: Arc<Mutex<Vec<Written>>>,
    }

    impl EventSink for FakeApiServer {
        async fn record(
            &mut self,
            event: &Event,
            regarding: &ObjectReference,
        ) -> Result<(), kube::Error> {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.written.lock().expect("not poisoned").push(Written {
                at: Instant::now(),
                reason: event.reason.clone(),
                type_: event.type_,
                note: event.note.clone(),
                regarding: regarding.clone(),
            });
            Ok(())
        }
    }

    impl FakeApiServer {
        fn taken(&self) -> Vec<Written> {
            std::mem::take(&mut *self.written.lock().expect("not poisoned"))
        }
    }

    fn attached() -> watch::Receiver<Attached> {
        watch::channel(Attached {
            names: vec!["eth0".to_owned()],
            ..Attached::default()
        })
        .1
    }

    fn started(i: usize) -> OwnershipEvent {
        OwnershipEvent::Started {
            service: facts(lb_service(
                &format!("svc-{i}"),
                None,
                "Cluster",
                &[(Some("192.0.2.1"), None)],
            )),
            ips: vec!["192.0.2.1".parse().expect("ip")],
        }
    }

    fn stopped(i: usize) -> OwnershipEvent {
        match started(i) {
            OwnershipEvent::Started { service, ips } => OwnershipEvent::Stopped { service, ips },
            _ => unreachable!(),
        }
    }

    fn metric(metrics: &Metrics, name: &str) -> String {
        metrics
            .encode()
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {name}"))
    }

    fn kind(regarding: &ObjectReference) -> &str {
        regarding.kind.as_deref().unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_sync_of_10_000_services_costs_a_bounded_number_of_writes() {
        let api = FakeApiServer::default();
        let metrics = Metrics::new();
        let (sender, queue) = channel();
        // The assigner's first sync: one Event per owned Service, all at once.
        for i in 0..10_000 {
            sender.send(started(i)).expect("queue open");
        }
        drop(sender);
        let start = Instant::now();
        publish_paced(api.clone(), "node-a", attached(), queue, &metrics, PACING).await;
        let written = api.taken();

        let first_second = written
            .iter()
            .filter(|w| w.at - start <= Duration::from_secs(1))
            .count();
        assert!(
            first_second <= 30,
            "{first_second} writes in the first second"
        );
        assert_eq!(written.len(), 31, "30 on Services, one summary");
        assert!(written[..30]
            .iter()
            .all(|w| kind(&w.regarding) == "Service" && w.reason == REASON_STARTED));
        let summary = &written[30];
        let node = &summary.regarding;
        assert_eq!(
            (
                kind(node),
                node.name.as_deref(),
                node.uid.as_deref(),
                node.namespace.as_deref()
            ),
            ("Node", Some("node-a"), Some("node-a"), None)
        );
        assert_eq!(summary.reason, REASON_STARTED);
        assert_eq!(summary.type_, EventType::Normal);
        assert_eq!(
            summary.note.as_deref(),
            Some(
                "node node-a answers ARP/NDP for 9,970 more Services on [eth0] (default/svc-30, \
                 default/svc-31, default/svc-32, default/svc-33, default/svc-34, …): too many \
                 at once for an Event on each; the agent's log names every one"
            )
        );
        assert_eq!(metric(&metrics, "responder_events_written_total"), "31");
        assert_eq!(
            metric(&metrics, "responder_events_aggregated_total"),
            "9970"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failover_in_steady_state_gets_an_event_on_each_service() {
        let api = FakeApiServer::default();
        let metrics = Metrics::new();
        let (sender, queue) = channel();
        let publishing = publish_paced(api.clone(), "node-a", attached(), queue, &metrics, PACING);
        let changes = async {
            for i in 0..10_000 {
                sender.send(started(i)).expect("queue open");
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(api.taken().len(), 31, "the sync");
            // A failover moves three Services away from this node.
            let at = Instant::now();
            for i in 0..3 {
                sender.send(stopped(i)).expect("queue open");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let written = api.taken();
            assert_eq!(written.len(), 3);
            for (i, w) in written.iter().enumerate() {
                assert_eq!(w.reason, REASON_STOPPED);
                assert_eq!(kind(&w.regarding), "Service");
                assert_eq!(
                    w.regarding.name.as_deref(),
                    Some(format!("svc-{i}").as_str())
                );
                assert!(
                    w.at - at <= Duration::from_millis(20),
                    "at once: {:?}",
                    w.at - at
                );
            }
            drop(sender);
        };
        tokio::join!(publishing, changes);
        assert_eq!(metric(&metrics, "responder_events_written_total"), "34");
        assert_eq!(
            metric(&metrics, "responder_events_aggregated_total"),
            "9970"
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (9_970, "9,970"),
            (1_234_567, "1,234,567"),
        ];
        for (count, text) in cases {
            assert_eq!(grouped(count), text);
        }
    }

    #[test]
    fn a_queued_event_stays_small() {
        // After a sync the queue holds one Event per Service, each slot the
        // size of the largest variant: an unboxed ObjectReference made that
        // 200 bytes, 2 MB at 10,000 Services.
        assert!(std::mem::size_of::<OwnershipEvent>() <= 48);
    }
}
