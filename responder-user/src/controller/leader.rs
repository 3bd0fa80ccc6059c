//! Leader election on one `coordination.k8s.io/v1` Lease: one replica allocates,
//! the others stand by and take over when its Lease stops being renewed.
//!
//! Every write is a compare-and-swap on the Lease's `resourceVersion`, so two
//! candidates can never both win. A standby judges the leader's Lease expired when
//! it has not *seen* it change for the Lease's duration, by its own monotonic clock
//! (immune to clock skew, as client-go does); the leader gives up as soon as it has
//! failed to renew for `lease_duration - renew_interval`, which is before any standby
//! can judge the Lease expired.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::metrics::ControllerMetrics;

/// Not `responder-…`: the agents' membership Leases are `responder-<node>` in the
/// same namespace, and a node may well be called `controller`.
pub const LEADER_LEASE_NAME: &str = "responder.controller";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionSettings {
    /// This replica's name in the Lease (`holderIdentity`).
    pub identity: String,
    /// How long a standby waits, after it last saw the Lease change, before taking
    /// it over: the failover time.
    pub lease_duration: Duration,
    /// How often the leader renews and a standby looks.
    pub renew_interval: Duration,
}

impl ElectionSettings {
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(4);
    pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(1);

    /// The leader stops allocating after failing to renew this long.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_interval)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.renew_interval.is_zero() || self.renew_interval * 2 > self.lease_duration {
            return Err(format!(
                "the renew interval ({:?}) must be non-zero and at most half the lease duration ({:?})",
                self.renew_interval, self.lease_duration
            ));
        }
        if self.identity.is_empty() {
            return Err("the election identity must not be empty".into());
        }
        Ok(())
    }
}

/// What a candidate makes of the Lease it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nobody holds it, or its holder stopped renewing it: take it.
    Free,
    /// Held by this identity (a restart within the lease): take it back at once.
    Ours,
    /// Another replica renews it; free at this time if it stops.
    HeldUntil(Instant),
}

/// Judges another holder's Lease by when this replica last saw it change.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    last: Option<(Option<String>, Instant)>,
}

impl Observer {
    pub(crate) fn judge(
        &mut self,
        lease: &Lease,
        identity: &str,
        default_duration: Duration,
        now: Instant,
    ) -> Verdict {
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.unwrap_or_default();
        if holder.is_empty() {
            return Verdict::Free;
        }
        if holder == identity {
            return Verdict::Ours;
        }
        let version = lease.metadata.resource_version.clone();
        let seen_at = match &self.last {
            Some((last_version, at)) if *last_version == version => *at,
            _ => {
                self.last = Some((version, now));
                now
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(default_duration, Duration::from_secs);
        let until = seen_at + duration;
        if now >= until {
            Verdict::Free
        } else {
            Verdict::HeldUntil(until)
        }
    }
}

/// The Lease as this replica writes it to take or renew it.
fn claimed(mut lease: Lease, settings: &ElectionSettings, acquire: bool) -> Lease {
    let now = MicroTime(Timestamp::now());
    let mut spec = lease.spec.take().unwrap_or_default();
    if acquire {
        if spec.holder_identity.as_deref() != Some(&settings.identity) {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.acquire_time = Some(now.clone());
    }
    spec.holder_identity = Some(settings.identity.clone());
    spec.lease_duration_seconds = Some(seconds(settings.lease_duration));
    spec.renew_time = Some(now);
    lease.spec = Some(spec);
    lease
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs_f64().ceil() as u64)
        .unwrap_or(i32::MAX)
        .max(1)
}

/// The leader Lease held by this replica.
pub(crate) struct Leadership {
    lease: Lease,
}

pub(crate) struct Election {
    api: Api<Lease>,
    settings: ElectionSettings,
    metrics: Arc<ControllerMetrics>,
}

impl Election {
    pub(crate) fn new(
        api: Api<Lease>,
        settings: ElectionSettings,
        metrics: Arc<ControllerMetrics>,
    ) -> Self {
        Election {
            api,
            settings,
            metrics,
        }
    }

    /// Returns once this replica holds the Lease.
    pub(crate) async fn acquire(&self) -> Leadership {
        let mut observer = Observer::default();
        let mut standing_by_for = None;
        let mut failing = false;
        loop {
            self.metrics.tick();
            let attempt = self.try_acquire(&mut observer).await;
            self.metrics.set_ready();
            match attempt {
                Ok(Ok(lease)) => {
                    info!(lease = LEADER_LEASE_NAME, identity = %self.settings.identity, "leading: this replica allocates addresses");
                    return Leadership { lease };
                }
                Ok(Err(holder)) => {
                    failing = false;
                    if standing_by_for.as_ref() != Some(&holder) {
                        info!(leader = %holder, "standing by: another replica leads");
                        standing_by_for = Some(holder);
                    }
                }
                Err(error) => {
                    if !failing {
                        warn!(%error, "reading the leader Lease failed; retrying");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(self.settings.renew_interval).await;
        }
    }

    /// `Ok(Ok(lease))`: taken; `Ok(Err(holder))`: someone else holds it.
    async fn try_acquire(
        &self,
        observer: &mut Observer,
    ) -> Result<Result<Lease, String>, kube::Error> {
        let Some(lease) = self.api.get_opt(LEADER_LEASE_NAME).await? else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(LEADER_LEASE_NAME.to_owned()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let mut fresh = claimed(fresh, &self.settings, true);
            // Creating is not a transition.
            if let Some(spec) = fresh.spec.as_mut() {
                spec.lease_transitions = Some(0);
            }
            return match self.api.create(&PostParams::default(), &fresh).await {
                Ok(lease) => Ok(Ok(lease)),
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    Ok(Err("a replica that created the Lease first".into()))
                }
                Err(error) => Err(error),
            };
        };
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        match observer.judge(
            &lease,
            &self.settings.identity,
            self.settings.lease_duration,
            Instant::now(),
        ) {
            Verdict::HeldUntil(_) => Ok(Err(holder)),
            Verdict::Free | Verdict::Ours => {
                if !holder.is_empty() && holder != self.settings.identity {
                    info!(previous = %holder, "the leader Lease expired; taking it over");
                }
                let name = LEADER_LEASE_NAME;
                match self
                    .api
                    .replace(
                        name,
                        &PostParams::default(),
                        &claimed(lease, &self.settings, true),
                    )
                    .await
                {
                    Ok(lease) => Ok(Ok(lease)),
                    Err(kube::Error::Api(status)) if status.is_conflict() => {
                        Ok(Err("a replica that took the Lease first".into()))
                    }
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// Renews the Lease until leadership is lost (another replica holds it, or
    /// renewals failed for the renew deadline), then returns.
    pub(crate) async fn hold(&self, leadership: &mut Leadership) {
        let mut last_renewed = Instant::now();
        let mut failing = false;
        loop {
            tokio::time::sleep(self.settings.renew_interval).await;
            self.metrics.tick();
            let renewal = claimed(leadership.lease.clone(), &self.settings, false);
            match self
                .api
                .replace(LEADER_LEASE_NAME, &PostParams::default(), &renewal)
                .await
            {
                Ok(lease) => {
                    if failing {
                        info!("leader Lease renewals succeed again");
                    }
                    failing = false;
                    leadership.lease = lease;
                    last_renewed = Instant::now();
                    continue;
                }
                Err(kube::Error::Api(status)) if status.is_conflict() || status.is_not_found() => {
                    // Someone wrote it: still ours only if the holder is us.
                    match self.api.get_opt(LEADER_LEASE_NAME).await {
                        Ok(Some(lease))
                            if lease
                                .spec
                                .as_ref()
                                .and_then(|s| s.holder_identity.as_deref())
                                == Some(&self.settings.identity) =>
                        {
                            leadership.lease = lease;
                            continue;
                        }
                        Ok(other) => {
                            let holder = other
                                .and_then(|l| l.spec)
                                .and_then(|s| s.holder_identity)
                                .unwrap_or_default();
                            warn!(%holder, "another replica holds the leader Lease now; stopping");
                            return;
                        }
                        Err(error) => {
                            self.renewal_failed(&error, &mut failing);
                        }
                    }
                }
                Err(error) => self.renewal_failed(&error, &mut failing),
            }
            if last_renewed.elapsed() >= self.settings.renew_deadline() {
                warn!(
                    deadline = ?self.settings.renew_deadline(),
                    "could not renew the leader Lease in time; stopping before a standby takes over"
                );
                return;
            }
        }
    }

    fn renewal_failed(&self, error: &kube::Error, failing: &mut bool) {
        self.metrics.lease_renewal_failed();
        if *failing {
            debug!(%error, "leader Lease renewal failed again");
        } else {
            warn!(%error, "leader Lease renewal failed; retrying");
        }
        *failing = true;
    }

    /// Hands the Lease over at once (on shutdown): a standby takes it at its next
    /// look instead of waiting for it to expire.
    pub(crate) async fn release(&self, leadership: Leadership) {
        let mut lease = leadership.lease;
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(LEADER_LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released the leader Lease"),
            Err(error) => warn!(%error, "could not release the leader Lease; it expires instead"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, version: &str, seconds: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(LEADER_LEASE_NAME.into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                lease_duration_seconds: seconds,
                ..Default::default()
            }),
        }
    }

    const DEFAULT: Duration = Duration::from_secs(4);

    #[test]
    fn a_lease_expires_after_its_duration_without_a_change_seen() {
        let start = Instant::now();
        let mut observer = Observer::default();
        let at = |s: u64| start + Duration::from_secs(s);
        let held = lease(Some("other"), "1", Some(4));
        assert_eq!(
            observer.judge(&held, "me", DEFAULT, at(0)),
            Verdict::HeldUntil(at(4))
        );
        assert_eq!(
            observer.judge(&held, "me", DEFAULT, at(3)),
            Verdict::HeldUntil(at(4))
        );
        // Renewed (a new version) at 3: held for 4 more seconds from then.
        let renewed = lease(Some("other"), "2", Some(4));
        assert_eq!(
            observer.judge(&renewed, "me", DEFAULT, at(3)),
            Verdict::HeldUntil(at(7))
        );
        assert_eq!(
            observer.judge(&renewed, "me", DEFAULT, at(6)),
            Verdict::HeldUntil(at(7))
        );
        assert_eq!(
            observer.judge(&renewed, "me", DEFAULT, at(7)),
            Verdict::Free
        );
    }

    #[test]
    fn a_fresh_observer_waits_a_full_duration_whatever_the_timestamps_say() {
        let start = Instant::now();
        let mut observer = Observer::default();
        // The renewTime written in the Lease is not read at all: a standby that
        // just started gives the holder a full duration.
        let held = lease(Some("other"), "9", None);
        assert_eq!(
            observer.judge(&held, "me", DEFAULT, start),
            Verdict::HeldUntil(start + DEFAULT)
        );
    }

    #[test]
    fn released_and_own_leases_are_taken_at_once() {
        let now = Instant::now();
        let mut observer = Observer::default();
        assert_eq!(
            observer.judge(&lease(None, "1", Some(1)), "me", DEFAULT, now),
            Verdict::Free
        );
        assert_eq!(
            observer.judge(&lease(Some(""), "1", Some(1)), "me", DEFAULT, now),
            Verdict::Free
        );
        assert_eq!(
            observer.judge(&lease(Some("me"), "1", Some(4)), "me", DEFAULT, now),
            Verdict::Ours
        );
    }

    #[test]
    fn claiming_counts_transitions_and_renewing_does_not() {
        let settings = ElectionSettings {
            identity: "me".into(),
            lease_duration: DEFAULT,
            renew_interval: Duration::from_secs(1),
        };
        let mut taken = lease(Some("other"), "1", Some(4));
        taken.spec.as_mut().unwrap().lease_transitions = Some(2);
        let taken = claimed(taken, &settings, true);
        let spec = taken.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
        assert_eq!(
            taken.metadata.resource_version.as_deref(),
            Some("1"),
            "a compare-and-swap"
        );
        let renewed = claimed(taken.clone(), &settings, false);
        assert_eq!(renewed.spec.unwrap().lease_transitions, Some(3));
    }

    #[test]
    fn settings_keep_the_deadline_inside_the_lease() {
        let mut settings = ElectionSettings {
            identity: "me".into(),
            lease_duration: DEFAULT,
            renew_interval: Duration::from_secs(1),
        };
        assert_eq!(settings.check(), Ok(()));
        assert_eq!(settings.renew_deadline(), Duration::from_secs(3));
        settings.renew_interval = Duration::from_secs(3);
        assert!(settings.check().is_err());
    }
}
