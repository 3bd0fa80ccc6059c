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

use super::advert::{self, families_annotation, renewal_annotations, restart_grace_annotation};
use super::budget::{Cadence, Plan, Role, Roster};
use super::{lease_name, LEASE_LABEL_KEY, LEASE_LABEL_VALUE};
use crate::cluster::{Attached, Reach};
use crate::metrics::Metrics;

/// What holding the Lease needs beyond the API handles.
pub(crate) struct Holding {
    pub(crate) node: String,
    pub(crate) attached: watch::Receiver<Attached>,
    /// The fastest cadence and the cluster's write budget.
    pub(crate) plan: Plan,
    /// The membership's counts and this node's role, as the assigner sees them.
    pub(crate) roster: watch::Receiver<Roster>,
    /// Told when this node begins a new session (see the tracker).
    pub(crate) own_session: watch::Sender<Option<Instant>>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Creates the node's Lease if needed and renews it with one merge patch at
/// the cadence the write budget allows its role, backing off (up to the
/// lease duration) while renewals fail. A change of role is written at once.
/// Each renewal also carries the role, what `attached`
/// can answer for now and how long it lasts, and an owner reference to the
/// Node once its uid is known, so the Lease of a deleted Node is
/// garbage-collected. The first renewal starts a new session (`acquireTime`)
/// unless the Lease is still this node's and live, as after a restart within
/// its grace.
pub(crate) async fn hold_lease(api: Api<Lease>, nodes: Api<Node>, holding: Holding) -> Infallible {
    let Holding {
        node,
        attached,
        plan,
        mut roster,
        own_session,
        metrics,
    } = holding;
    let name = lease_name(&node);
    let mut delay = plan.fastest.renew;
    let mut failing = false;
    let mut advertised = None;
    let mut owner = None;
    let mut session = None;
    let mut cadence = plan.fastest;
    // Until the assigner decides, the role the Lease had if this agent
    // carries its session on (a restart moves nothing), else standby: a
    // joining node takes no announcer's place before it is settled.
    let mut role = None;
    loop {
        let started = Instant::now();
        if owner.is_none() {
            owner = node_owner_reference(&nodes, &node).await;
        }
        if session.is_none() {
            let (found, previous_role) = current_session(&api, &name, &node).await;
            session = Some(found);
            role = role.or(previous_role);
        }
        let current = *roster.borrow_and_update();
        let declared = current.role.or(role).unwrap_or(Role::Standby);
        if role != Some(declared) {
            info!(lease = %name, role = ?declared, announcers = current.announcers, standbys = current.standbys, "membership role");
            role = Some(declared);
        }
        let next = plan.cadence(declared, &current);
        if next != cadence {
            info!(
                lease = %name,
                role = ?declared,
                renew = ?next.renew,
                lease_duration = ?next.lease,
                announcers = current.announcers,
                standbys = current.standbys,
                "membership cadence follows the write budget"
            );
            cadence = next;
        }
        metrics.set_membership_cadence(
            current.announcers + current.standbys,
            cadence.renew,
            cadence.lease,
        );
        metrics.set_membership_role(declared == Role::Announcer);
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
        let new_session = matches!(session, Some(Session::New | Session::First));
        let rejoin = session == Some(Session::New);
        let renewal = Renewal {
            reach: &reach,
            owner: owner.as_ref(),
            lease_duration: cadence.lease,
            role: declared,
            new_session,
        };
        let renewed = renew(&api, &name, &node, renewal).await;
        metrics.lease_renewal(renewed.is_ok());
        match renewed {
            Ok(()) => {
                if failing {
                    info!(lease = %name, "lease renewals succeed again");
                }
                if rejoin {
                    info!(lease = %name, "rejoined the membership in a new session");
                    own_session.send_replace(Some(started));
                }
                if session != Some(Session::Continued) {
                    session = Some(Session::Continued);
                }
                failing = false;
                delay = cadence.renew;
            }
            Err(error) => {
                if failing {
                    debug!(lease = %name, %error, "lease renewal failed again");
                } else {
                    warn!(lease = %name, %error, "lease renewal failed; retrying with backoff");
                }
                failing = true;
                delay = (delay * 2).min(cadence.lease.max(cadence.renew));
            }
        }
        // A new role is written at once: an announcer must be seen renewing
        // fast before it owns anything, and a standby's Services move as soon
        // as it says so.
        let deadline = started + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                changed = roster.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    if roster.borrow().role.is_some_and(|next| Some(next) != role) {
                        break;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    /// The Lease is this node's and still live (a restart within its grace):
    /// the membership goes on.
    Continued,
    /// There is no Lease yet: this node joins for the first time.
    First,
    /// Released, another holder's, or expired: this node rejoins, and the
    /// others hold it down for a while.
    New,
}

/// Whether this node's Lease still carries a live session of its own, by
/// its own clock (the holder wrote renewTime), and then the role it
/// declared; unknown counts as new.
async fn current_session(api: &Api<Lease>, name: &str, node: &str) -> (Session, Option<Role>) {
    let lease = match api.get_opt(name).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return (Session::First, None),
        Err(_) => return (Session::New, None),
    };
    match session_continues(&lease, node, Timestamp::now()) {
        true => (Session::Continued, advert::role_of(&lease)),
        false => (Session::New, None),
    }
}

/// Whether `node`'s agent may carry on the session of its own Lease at
/// `now` (the Lease still held by it and renewed within its duration or
/// restart grace), or must start a new one: a rejoin the others hold down.
/// Its renewTime was written with this machine's clock, so judging it by
/// that clock involves no skew.
pub(crate) fn session_continues(lease: &Lease, node: &str, now: Timestamp) -> bool {
    let Some(spec) = lease.spec.as_ref() else {
        return false;
    };
    let lasts = advert::declared_duration_of(lease)
        .unwrap_or(Duration::from_secs(
            spec.lease_duration_seconds.unwrap_or(0).max(0) as u64,
        ))
        .max(advert::restart_grace_of(lease).unwrap_or_default());
    let live = spec.renew_time.as_ref().is_some_and(|renewed| {
        let age = now.duration_since(renewed.0);
        Duration::try_from(age).is_ok_and(|age| age < lasts)
    });
    spec.holder_identity.as_deref() == Some(node) && live
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

/// What one renewal writes.
struct Renewal<'a> {
    reach: &'a Reach,
    owner: Option<&'a OwnerReference>,
    lease_duration: Duration,
    role: Role,
    /// Stamp `acquireTime`: the node (re)joins.
    new_session: bool,
}

async fn renew(
    api: &Api<Lease>,
    name: &str,
    node: &str,
    renewal: Renewal<'_>,
) -> Result<(), kube::Error> {
    let Renewal {
        reach,
        owner,
        lease_duration,
        role,
        new_session,
    } = renewal;
    let patch = renewal_patch(node, reach, owner, lease_duration, role, new_session);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            let lease = first_lease(node, reach, owner, lease_duration, role);
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

/// The cadence of a member with `role` when `announcers` and `standbys`
/// are live, with the cluster's write `budget` and the fastest cadence
/// (`--renew-interval`, `--lease-duration`), and how many announcers the
/// budget affords `members` (see [`Plan`]). Public for the membership load
/// generator of the benchmark, which must renew as the agents do.
pub fn membership_cadence(
    role: Role,
    (announcers, standbys): (usize, usize),
    budget: f64,
    (fastest_renew, fastest_lease): (Duration, Duration),
) -> (Duration, Duration) {
    let plan = Plan {
        budget,
        fastest: Cadence {
            renew: fastest_renew,
            lease: fastest_lease,
        },
    };
    let roster = Roster {
        announcers,
        standbys,
        role: Some(role),
    };
    let cadence = plan.cadence(role, &roster);
    (cadence.renew, cadence.lease)
}

/// How many of `members` announce at the fastest cadence within `budget`
/// (see [`Plan::slots`]). Public for the membership load generator.
pub fn announcer_slots(members: usize, budget: f64, fastest: (Duration, Duration)) -> usize {
    let plan = Plan {
        budget,
        fastest: Cadence {
            renew: fastest.0,
            lease: fastest.1,
        },
    };
    plan.slots(members)
}

/// The merge patch one renewal of `node`'s Lease (named by
/// [`lease_name`](super::lease_name)) sends, stamped now. Public for the
/// membership load generator of the benchmark.
pub fn renewal_patch(
    node: &str,
    reach: &Reach,
    owner: Option<&OwnerReference>,
    lease_duration: Duration,
    role: Role,
    new_session: bool,
) -> serde_json::Value {
    let annotations = renewal_annotations(reach, lease_duration, role);
    let now = MicroTime(Timestamp::now());
    let mut metadata = json!({
        "labels": { LEASE_LABEL_KEY: LEASE_LABEL_VALUE },
        "annotations": annotations,
    });
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    let mut spec = json!({
        "holderIdentity": node,
        "leaseDurationSeconds": duration_seconds(lease_duration),
        "renewTime": now,
    });
    if new_session {
        spec["acquireTime"] = json!(now);
    }
    json!({ "metadata": metadata, "spec": spec })
}

/// The Lease an agent creates when its renewal finds none, stamped now.
/// Public for the membership load generator of the benchmark.
pub fn first_lease(
    node: &str,
    reach: &Reach,
    owner: Option<&OwnerReference>,
    lease_duration: Duration,
    role: Role,
) -> Lease {
    let now = MicroTime(Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(node)),
            labels: Some([(LEASE_LABEL_KEY.to_owned(), LEASE_LABEL_VALUE.to_owned())].into()),
            annotations: Some(
                renewal_annotations(reach, lease_duration, role)
                    .into_iter()
                    .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                    .collect(),
            ),
            owner_references: owner.map(|owner| vec![owner.clone()]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_owned()),
            lease_duration_seconds: Some(duration_seconds(lease_duration)),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

/// How an agent leaves the cluster when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// It comes back soon (a DaemonSet rolling update): the Lease asks the
    /// others to keep this node a member for `grace`, so nothing moves.
    Restart { grace: Duration },
    /// It does not come back (the node is drained): the Lease is released,
    /// so its Services move at once.
    Leave,
    /// Its DaemonSet is being removed: the Lease is released as for
    /// [`Departure::Leave`], and the agent detaches and unpins everything.
    Uninstall,
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
        Departure::Leave | Departure::Uninstall => json!({ "spec": { "holderIdentity": null } }),
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
