//! Membership: each agent keeps one Lease for its node fresh, and judges the other
//! Leases alive by when it last saw them change, never by the timestamps written in
//! them, so clock skew between nodes cannot expire or prolong a member.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Attached, Families};
use crate::metrics::Metrics;

pub(crate) const LEASE_LABEL_KEY: &str = "app.kubernetes.io/component";
pub(crate) const LEASE_LABEL_VALUE: &str = "responder-membership";

/// The IP families the holder can answer for right now (`IPv4`, `IPv6`,
/// comma-separated, Kubernetes' spelling; empty when no interface is
/// attached). A Lease without it is from an agent that predates it: both.
pub(crate) const LEASE_FAMILIES_ANNOTATION: &str = "responder/ip-families";

pub(crate) fn families_annotation(families: Families) -> String {
    let mut names = Vec::new();
    if families.ipv4 {
        names.push("IPv4");
    }
    if families.ipv6 {
        names.push("IPv6");
    }
    names.join(",")
}

fn families_of(lease: &Lease) -> Families {
    let Some(value) = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEASE_FAMILIES_ANNOTATION))
    else {
        return Families::BOTH;
    };
    let listed = |family: &str| value.split(',').any(|name| name.trim() == family);
    Families {
        ipv4: listed("IPv4"),
        ipv6: listed("IPv6"),
    }
}

pub(crate) fn lease_selector() -> String {
    format!("{LEASE_LABEL_KEY}={LEASE_LABEL_VALUE}")
}

/// `responder-<node>`. Node names may be 253 characters, as long as any
/// object name, so a long one is cut and suffixed with a hash of the whole
/// name to keep Lease names valid and distinct.
pub(crate) fn lease_name(node: &str) -> String {
    const PREFIX: &str = "responder-";
    const MAX_NAME: usize = 253;
    if PREFIX.len() + node.len() <= MAX_NAME {
        return format!("{PREFIX}{node}");
    }
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let suffix = format!("-{hash:016x}");
    // Node names are DNS subdomains (ASCII), so byte slicing is safe; a cut
    // name must still end alphanumeric.
    let kept = node[..MAX_NAME - PREFIX.len() - suffix.len()].trim_end_matches(['-', '.']);
    format!("{PREFIX}{kept}{suffix}")
}

#[derive(Debug)]
struct Observation {
    holder: String,
    renew_time: Option<MicroTime>,
    observed_at: Instant,
    families: Families,
}

/// Lease expiry as seen from this agent, in the style of client-go leader election.
#[derive(Debug)]
pub(crate) struct LeaseTracker {
    lease_duration: Duration,
    leases: HashMap<String, Observation>,
}

impl LeaseTracker {
    pub(super) fn new(lease_duration: Duration) -> Self {
        LeaseTracker {
            lease_duration,
            leases: HashMap::new(),
        }
    }

    /// Restarts the expiry clock of a Lease only when its holder or renewTime
    /// changed, so re-deliveries (relists, unrelated metadata edits) do not keep a
    /// dead member alive.
    pub(super) fn observe(&mut self, lease: &Lease, now: Instant) {
        let Some(name) = lease.metadata.name.clone() else {
            return;
        };
        let spec = lease.spec.as_ref();
        let holder = spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        let renew_time = spec.and_then(|s| s.renew_time.clone());
        let families = families_of(lease);
        match self.leases.get_mut(&name) {
            Some(seen) if seen.holder == holder && seen.renew_time == renew_time => {
                seen.families = families;
            }
            Some(seen) => {
                seen.holder = holder;
                seen.renew_time = renew_time;
                seen.observed_at = now;
                seen.families = families;
            }
            None => {
                self.leases.insert(
                    name,
                    Observation {
                        holder,
                        renew_time,
                        observed_at: now,
                        families,
                    },
                );
            }
        }
    }

    pub(super) fn forget(&mut self, name: &str) {
        self.leases.remove(name);
    }

    /// After a relist: Leases deleted while we were not watching are gone.
    pub(super) fn retain(&mut self, names: &HashSet<String>) {
        self.leases.retain(|name, _| names.contains(name));
    }

    /// Time spent without a working view must not count against anyone: every
    /// member gets a full lease duration to show a renewal again.
    pub(super) fn restart_clocks(&mut self, now: Instant) {
        for seen in self.leases.values_mut() {
            seen.observed_at = now;
        }
    }

    fn expiry(&self, seen: &Observation) -> Instant {
        seen.observed_at + self.lease_duration
    }

    /// Holders of Leases renewed within the lease duration, with the IP
    /// families each can answer for.
    pub(super) fn live(&self, now: Instant) -> BTreeMap<String, Families> {
        self.leases
            .values()
            .filter(|seen| !seen.holder.is_empty() && now < self.expiry(seen))
            .map(|seen| (seen.holder.clone(), seen.families))
            .collect()
    }

    /// When the next currently live Lease expires, so membership changes without
    /// waiting for an unrelated event.
    pub(super) fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.leases
            .values()
            .map(|seen| self.expiry(seen))
            .filter(|&at| at > now)
            .min()
    }

    pub(super) fn last_change(&self, name: &str) -> Option<Instant> {
        self.leases.get(name).map(|seen| seen.observed_at)
    }
}

/// Creates the node's Lease if needed and renews it every `renew_interval` with
/// one merge patch, backing off (up to the lease duration) while renewals fail.
/// Each renewal also carries the IP families `attached` can answer for now.
pub(crate) async fn hold_lease(
    api: Api<Lease>,
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
    loop {
        let started = Instant::now();
        let families = attached.borrow().families();
        if advertised != Some(families) {
            info!(lease = %name, families = %families_annotation(families), "advertising the IP families this node answers for");
            advertised = Some(families);
        }
        let renewed = renew(&api, &name, &node, families, lease_duration).await;
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

async fn renew(
    api: &Api<Lease>,
    name: &str,
    node: &str,
    families: Families,
    lease_duration: Duration,
) -> Result<(), kube::Error> {
    let families = families_annotation(families);
    let now = MicroTime(Timestamp::now());
    let duration_seconds = i32::try_from(lease_duration.as_secs_f64().ceil() as u64)
        .unwrap_or(i32::MAX)
        .max(1);
    let patch = serde_json::json!({
        "metadata": {
            "labels": { LEASE_LABEL_KEY: LEASE_LABEL_VALUE },
            "annotations": { LEASE_FAMILIES_ANNOTATION: families },
        },
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
                    annotations: Some([(LEASE_FAMILIES_ANNOTATION.to_owned(), families)].into()),
                    ..Default::default()
                },
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;

    pub(crate) fn lease(node: &str, renewed_at_second: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(node)),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.into()),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(renewed_at_second).expect("timestamp"),
                )),
                ..Default::default()
            }),
        }
    }

    fn members(names: &[&str]) -> BTreeMap<String, Families> {
        names
            .iter()
            .map(|n| (n.to_string(), Families::BOTH))
            .collect()
    }

    fn annotated(mut lease: Lease, families: &str) -> Lease {
        lease.metadata.annotations =
            Some([(LEASE_FAMILIES_ANNOTATION.to_owned(), families.to_owned())].into());
        lease
    }

    #[test]
    fn lease_names_stay_valid_for_the_longest_node_names() {
        assert_eq!(lease_name("node-a"), "responder-node-a");
        let longest_plain = "n".repeat(243);
        assert_eq!(lease_name(&longest_plain).len(), 253);
        // Cut right after the dash: the dash must not be kept.
        let long_a = format!("{}-{}", "n".repeat(225), "a".repeat(27));
        let long_b = format!("{}-{}", "n".repeat(225), "b".repeat(27));
        let (a, b) = (lease_name(&long_a), lease_name(&long_b));
        assert!(a.len() <= 253 && b.len() <= 253, "{a} {b}");
        assert_ne!(a, b, "cut names must stay distinct");
        assert!(!a.contains("--"), "{a}");
        assert_eq!(lease_name(&long_a), a, "stable");
    }

    #[test]
    fn families_come_from_the_annotation_and_its_absence_means_both() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        tracker.observe(&lease("old", 1), now);
        tracker.observe(&annotated(lease("v4", 1), "IPv4"), now);
        tracker.observe(&annotated(lease("dual", 1), "IPv4, IPv6"), now);
        tracker.observe(&annotated(lease("idle", 1), ""), now);
        let none = Families {
            ipv4: false,
            ipv6: false,
        };
        let v4_only = Families {
            ipv4: true,
            ipv6: false,
        };
        let expected: BTreeMap<String, Families> = [
            ("dual".to_owned(), Families::BOTH),
            ("idle".to_owned(), none),
            ("old".to_owned(), Families::BOTH),
            ("v4".to_owned(), v4_only),
        ]
        .into();
        assert_eq!(tracker.live(now), expected);

        // A change of families alone is taken at once, without restarting
        // the expiry clock (it is not a renewal).
        let later = now + Duration::from_millis(600);
        tracker.observe(&annotated(lease("v4", 1), "IPv4,IPv6"), later);
        assert_eq!(tracker.live(later)["v4"], Families::BOTH);
        assert_eq!(tracker.last_change(&lease_name("v4")), Some(now));
    }

    #[test]
    fn the_annotation_spells_families_as_kubernetes_does() {
        assert_eq!(families_annotation(Families::BOTH), "IPv4,IPv6");
        let v4_only = Families {
            ipv4: true,
            ipv6: false,
        };
        assert_eq!(families_annotation(v4_only), "IPv4");
        let attached = |names: &[&str], ipv6| Attached {
            names: names.iter().map(|n| n.to_string()).collect(),
            ipv6,
        };
        assert_eq!(attached(&["eth0"], false).families(), v4_only);
        assert_eq!(attached(&["eth0"], true).families(), Families::BOTH);
        assert_eq!(families_annotation(attached(&[], false).families()), "");
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn expiry_follows_local_observation_not_written_timestamps() {
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        // renewTime far in the past: a skewed clock must not make it look expired.
        tracker.observe(&lease("a", 1_000), start);
        tracker.observe(&lease("b", 4_000_000_000), start);
        assert_eq!(tracker.live(start), members(&["a", "b"]));
        assert_eq!(tracker.next_expiry(start), Some(start + SECOND));

        let later = start + Duration::from_millis(600);
        tracker.observe(&lease("a", 1_001), later);
        // b re-delivered unchanged: its clock keeps running.
        tracker.observe(&lease("b", 4_000_000_000), later);
        let after_b_expired = start + Duration::from_millis(1_100);
        assert_eq!(tracker.live(after_b_expired), members(&["a"]));
        assert_eq!(tracker.next_expiry(after_b_expired), Some(later + SECOND));
        assert_eq!(tracker.live(later + SECOND), members(&[]));
        assert_eq!(tracker.next_expiry(later + SECOND), None);
    }

    #[test]
    fn restarting_clocks_forgives_an_outage() {
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        tracker.observe(&lease("a", 1), start);
        let after_outage = start + Duration::from_secs(30);
        assert!(tracker.live(after_outage).is_empty());
        tracker.restart_clocks(after_outage);
        assert_eq!(tracker.live(after_outage), members(&["a"]));
        assert_eq!(tracker.last_change(&lease_name("a")), Some(after_outage));
    }

    #[test]
    fn forgetting_and_relisting_drop_members() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        for node in ["a", "b", "c"] {
            tracker.observe(&lease(node, 1), now);
        }
        tracker.forget(&lease_name("a"));
        tracker.retain(&[lease_name("b")].into());
        assert_eq!(tracker.live(now), members(&["b"]));
    }

    #[test]
    fn holderless_leases_are_not_members() {
        let now = Instant::now();
        let mut tracker = LeaseTracker::new(SECOND);
        let mut released = lease("a", 1);
        released.spec.as_mut().expect("spec").holder_identity = None;
        tracker.observe(&released, now);
        assert!(tracker.live(now).is_empty());
    }
}
