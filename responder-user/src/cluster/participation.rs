//! Taking part in the cluster: while this node may announce, hold its Lease,
//! watch the others' and assign Services; while it may not, do neither and own
//! nothing. And leaving, when the agent stops.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use tokio::sync::watch;
use tracing::info;

use super::eligibility::{self, Eligibility};
use super::membership::{self, Departure, Holding, Roster};
use super::uninstall::{self, Removal};
use super::{assigner, events, l2status, Attached, ClusterError, ClusterSettings, Ownership, View};
use crate::conflicts::Claimants;
use crate::k8s::LabelSelector;
use crate::metrics::Metrics;

/// Runs until cancelled (drop the future or abort its task), publishing into
/// `owned` the VIPs this node must answer for now. `attached` follows the
/// attached interfaces: named in Events, what they reach advertised in the
/// Lease. `announced_before` are the addresses the data plane answered for
/// when the agent started (a restart keeps owning them without an Event).
///
/// While the API server is unreachable the last published set stays in place.
pub async fn run(
    client: Client,
    settings: ClusterSettings,
    attached: watch::Receiver<Attached>,
    announced_before: BTreeSet<IpAddr>,
    claimants: Claimants,
    owned: watch::Sender<Ownership>,
    metrics: Arc<Metrics>,
) -> Result<(), ClusterError> {
    let selector: LabelSelector = settings
        .node_selector
        .as_deref()
        .unwrap_or_default()
        .parse()?;
    if settings.renew_interval.is_zero() || settings.renew_interval >= settings.lease_duration {
        return Err(ClusterError::LeaseTiming {
            renew: settings.renew_interval,
            lease: settings.lease_duration,
        });
    }
    if settings.node_name.is_empty() {
        return Err(ClusterError::EmptyNodeName);
    }
    let (verdict_tx, mut verdict) = watch::channel(None);
    let following = eligibility::follow(
        client.clone(),
        settings.node_name.clone(),
        selector.clone(),
        attached.clone(),
        verdict_tx,
    );
    let part = Participant {
        client,
        settings,
        selector,
        attached,
        owned,
        claimants,
        epochs: Arc::default(),
        metrics,
    };
    let deciding = async {
        let mut announced_before = Some(announced_before);
        loop {
            let current = match verdict.wait_for(Option::is_some).await {
                Ok(current) => current.clone(),
                Err(_) => return Err(ClusterError::WatchEnded("this Node")),
            };
            match current {
                Some(Eligibility::Ineligible(reason)) => {
                    info!(%reason, "this node may not announce: it holds no Lease and watches none");
                    part.own_nothing();
                    let eligible = verdict
                        .wait_for(|v| *v == Some(Eligibility::Eligible))
                        .await
                        .is_ok();
                    if !eligible {
                        return Err(ClusterError::WatchEnded("this Node"));
                    }
                }
                _ => {
                    info!("this node may announce: joining the membership");
                    let stopped = async {
                        let ineligible = verdict
                            .wait_for(|v| matches!(v, Some(Eligibility::Ineligible(_))))
                            .await;
                        ineligible.is_ok()
                    };
                    tokio::select! {
                        result = part.participate(announced_before.take().unwrap_or_default()) => return result,
                        followed = stopped => {
                            if !followed {
                                return Err(ClusterError::WatchEnded("this Node"));
                            }
                            info!("this node may no longer announce: leaving the membership");
                            part.leave().await;
                        }
                    }
                }
            }
        }
    };
    // Beside participation rather than in it: a node that may no longer
    // announce owns nothing, and its ServiceL2Status objects must go too.
    let writing = async {
        // From when MetalLB's kinds are served, which may be after the start.
        super::watches::until_metallb_served(&part.client).await;
        {
            l2status::write_statuses(
                kube::Api::namespaced(part.client.clone(), &part.settings.namespace),
                part.settings.node_name.clone(),
                part.settings.namespace.clone(),
                part.owned.subscribe(),
                part.attached.clone(),
            )
            .await;
        }
        std::future::pending::<std::convert::Infallible>().await
    };
    tokio::select! {
        () = following => Err(ClusterError::WatchEnded("this Node")),
        never = writing => match never {},
        result = deciding => result,
    }
}

/// What taking part needs.
struct Participant {
    client: Client,
    settings: ClusterSettings,
    selector: LabelSelector,
    attached: watch::Receiver<Attached>,
    owned: watch::Sender<Ownership>,
    claimants: Claimants,
    epochs: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl Participant {
    /// A node that may not announce owns nothing, and knows it: a complete
    /// view.
    fn own_nothing(&self) {
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        self.owned.send_replace(Ownership {
            vips: BTreeMap::new(),
            interfaces: BTreeMap::new(),
            view: View::Fresh { epoch },
        });
    }

    async fn leave(&self) {
        let leases = kube::Api::namespaced(self.client.clone(), &self.settings.namespace);
        membership::depart(&leases, &self.settings.node_name, Departure::Leave).await;
    }

    /// Holds this node's Lease and assigns Services until the assigner fails
    /// (a bug or bad settings).
    async fn participate(&self, announced_before: BTreeSet<IpAddr>) -> Result<(), ClusterError> {
        let client = &self.client;
        let settings = &self.settings;
        let (event_sender, event_queue) = events::channel();
        let (roster_tx, roster) = watch::channel(Roster::EMPTY);
        let (own_session_tx, own_session) = watch::channel(None);
        let outputs = assigner::Outputs {
            announced_before,
            events: event_sender,
            owned: self.owned.clone(),
            roster: roster_tx,
            epochs: Arc::clone(&self.epochs),
            metrics: Arc::clone(&self.metrics),
        };
        // Event publishing ends once the assigner drops its sender, after the last Events.
        let assigner_and_events = async {
            let (result, ()) = tokio::join!(
                assigner::assign_forever(
                    client.clone(),
                    settings.clone(),
                    self.selector.clone(),
                    self.attached.clone(),
                    own_session,
                    outputs,
                    self.claimants.subscribe(),
                ),
                events::publish_events(
                    client.clone(),
                    settings.node_name.clone(),
                    self.attached.clone(),
                    event_queue,
                    Arc::clone(&self.metrics),
                ),
            );
            result
        };
        let holding = membership::hold_lease(
            kube::Api::namespaced(client.clone(), &settings.namespace),
            kube::Api::<Node>::all(client.clone()),
            Holding {
                node: settings.node_name.clone(),
                attached: self.attached.clone(),
                plan: settings.plan(),
                roster,
                own_session: own_session_tx,
                metrics: Arc::clone(&self.metrics),
            },
        );
        tokio::select! {
            never = holding => match never {},
            result = assigner_and_events => result,
        }
    }
}

/// A stopping agent restarts unless its DaemonSet is going away.
async fn restart_or_uninstall(
    client: &Client,
    settings: &ClusterSettings,
    grace: Duration,
) -> Departure {
    let Some(pod_name) = settings.pod_name.as_deref() else {
        return Departure::Restart { grace };
    };
    match uninstall::daemonset_removal(client.clone(), &settings.namespace, pod_name).await {
        Removal::Staying => Departure::Restart { grace },
        Removal::Uninstalled(reason) => {
            info!(%reason, "the agent is being uninstalled: releasing the Lease, detaching and unpinning");
            Departure::Uninstall
        }
        Removal::Unknown(reason) => {
            tracing::warn!(%reason, "cannot tell a restart from an uninstall; leaving the program for a successor (`responder cleanup` removes it if none comes)");
            Departure::Restart { grace }
        }
    }
}

/// Writes into this node's Lease how its agent leaves (see [`Departure`]):
/// for a restart, `grace` long, unless the Node is cordoned (drained before
/// maintenance), in which case the Lease is released so its Services move at
/// once. Bounded in time: a stopping agent must not hang on the API server.
pub async fn depart(
    client: Client,
    settings: &ClusterSettings,
    grace: Option<Duration>,
) -> Departure {
    const BOUND: Duration = Duration::from_secs(3);
    let leaving = async {
        let nodes: kube::Api<Node> = kube::Api::all(client.clone());
        let cordoned = match nodes.get_opt(&settings.node_name).await {
            Ok(node) => node
                .and_then(|node| node.spec)
                .and_then(|spec| spec.unschedulable)
                .unwrap_or(false),
            Err(error) => {
                tracing::debug!(%error, "reading this Node before leaving");
                false
            }
        };
        let departure = match grace {
            Some(grace) if !cordoned => restart_or_uninstall(&client, settings, grace).await,
            _ => Departure::Leave,
        };
        let leases = kube::Api::namespaced(client, &settings.namespace);
        membership::depart(&leases, &settings.node_name, departure).await;
        departure
    };
    match tokio::time::timeout(BOUND, leaving).await {
        Ok(departure) => departure,
        Err(_) => {
            tracing::warn!("leaving the cluster membership took longer than {BOUND:?}; the Lease expires instead");
            match grace {
                Some(grace) => Departure::Restart { grace },
                None => Departure::Leave,
            }
        }
    }
}
