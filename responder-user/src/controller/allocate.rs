//! The allocation loop of the leading replica: reflectors of Services, Namespaces
//! and IPAddressPools; once all three are listed, the state is rebuilt from the
//! Services' statuses, then every change is reconciled and written.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::metrics::ControllerMetrics;
use super::reconciler::{Action, Notice, Reconciler, REASON_ALLOCATED, REASON_FAILED};
use super::writer::{write_pool_status, write_status};
use super::{ControllerError, ControllerSettings};
use crate::crd::IPAddressPool;
use crate::k8s::ServiceRef;
use crate::k8s::{oldest_first, WatchBackoff};

/// A failed write is tried again after this long (the watch may well bring the
/// reason first, e.g. the Service was deleted).
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Service status writes in flight at once: enough to absorb a burst, few enough
/// not to crowd the API server's other clients.
const WRITES_IN_FLIGHT: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Services,
    Namespaces,
    Pools,
}

enum Change {
    /// One Service was added, changed or deleted.
    Service(ServiceRef),
    /// A list completed: the store holds a new full view.
    Relisted,
    /// Anything else of the source (objects arriving during a list).
    Other,
}

impl Change {
    fn of<K>(event: &watcher::Event<K>, key: impl Fn(&K) -> ServiceRef) -> Self {
        match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                Change::Service(key(object))
            }
            watcher::Event::InitDone => Change::Relisted,
            watcher::Event::Init | watcher::Event::InitApply(_) => Change::Other,
        }
    }
}

type Update = (Source, watcher::Result<Change>);

struct Stores {
    services: Store<Service>,
    namespaces: Store<Namespace>,
    pools: Store<IPAddressPool>,
}

impl Stores {
    fn pools(&self) -> Vec<Arc<IPAddressPool>> {
        self.pools.state()
    }

    fn service(&self, key: &ServiceRef) -> Option<Arc<Service>> {
        self.services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }
}

/// Runs while this replica leads; ends only if a watch stream ends.
pub(crate) async fn allocate(
    client: Client,
    settings: &ControllerSettings,
    metrics: Arc<ControllerMetrics>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Infallible, ControllerError> {
    let (services, services_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let (pools, pools_writer) = reflector::store();
    let pools_api: Api<IPAddressPool> = Api::namespaced(client.clone(), &settings.namespace);
    let sources: Vec<BoxStream<'static, Update>> = vec![
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::new())
        .reflect(services_writer)
        .map(|r| (Source::Services, r.map(|e| Change::of(&e, ServiceRef::of))))
        .boxed(),
        watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::new())
        .reflect(namespaces_writer)
        .map(|r| {
            (
                Source::Namespaces,
                r.map(|e| Change::of(&e, |_| ServiceRef::default())),
            )
        })
        .boxed(),
        watcher(pools_api.clone(), watcher::Config::default())
            .backoff(WatchBackoff::new())
            .reflect(pools_writer)
            .map(|r| {
                (
                    Source::Pools,
                    r.map(|e| Change::of(&e, |_| ServiceRef::default())),
                )
            })
            .boxed(),
    ];
    let mut updates = stream::select_all(sources);
    let mut run = Loop {
        client,
        settings,
        metrics,
        notices,
        pools_api,
        stores: Stores {
            services,
            namespaces,
            pools,
        },
        reconciler: None,
        unsynced: [Source::Services, Source::Namespaces, Source::Pools].into(),
        failing: BTreeSet::new(),
        dirty: BTreeSet::new(),
        full_pass: false,
        pools_changed: false,
        pools_seen: Vec::new(),
        retry: BTreeSet::new(),
        retry_at: None,
    };
    loop {
        tokio::select! {
            update = updates.next() => {
                let update = update.ok_or(ControllerError::WatchEnded)?;
                run.apply(update);
            }
            () = sleep_until(run.retry_at) => {
                run.retry_at = None;
                let retry = std::mem::take(&mut run.retry);
                run.dirty.extend(retry);
            }
        }
        // Coalesce bursts (a relist, many Services at once) into one pass.
        while let Some(Some(update)) = updates.next().now_or_never() {
            run.apply(update);
        }
        run.pass().await;
    }
}

/// Name, age and spec: what of a pool allocation depends on (its status, written
/// by the controller itself, is not).
type PoolFingerprint = (String, Option<Time>, serde_json::Value);

fn pools_fingerprint(pools: &[Arc<IPAddressPool>]) -> Vec<PoolFingerprint> {
    let mut fingerprint: Vec<PoolFingerprint> = pools
        .iter()
        .map(|p| {
            (
                p.name().to_owned(),
                p.metadata.creation_timestamp.clone(),
                p.spec.raw().clone(),
            )
        })
        .collect();
    fingerprint.sort_by(|a, b| a.0.cmp(&b.0));
    fingerprint
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct Loop<'a> {
    client: Client,
    settings: &'a ControllerSettings,
    metrics: Arc<ControllerMetrics>,
    notices: mpsc::UnboundedSender<Notice>,
    pools_api: Api<IPAddressPool>,
    stores: Stores,
    /// `None` until every source is listed once.
    reconciler: Option<Reconciler>,
    unsynced: BTreeSet<Source>,
    failing: BTreeSet<Source>,
    dirty: BTreeSet<ServiceRef>,
    full_pass: bool,
    pools_changed: bool,
    /// What of the pools allocation depends on, as last applied.
    pools_seen: Vec<PoolFingerprint>,
    retry: BTreeSet<ServiceRef>,
    retry_at: Option<Instant>,
}

impl Loop<'_> {
    fn apply(&mut self, (source, result): Update) {
        let change = match result {
            Ok(change) => change,
            Err(error) => {
                if self.failing.insert(source) {
                    let hint = match source {
                        Source::Pools => " (is the IPAddressPool CRD installed? deploy/crds/)",
                        _ => "",
                    };
                    warn!(?source, %error, "watch failed{hint}; allocating from the last known state while it retries");
                } else {
                    debug!(?source, %error, "watch still failing");
                }
                return;
            }
        };
        if self.failing.remove(&source) {
            info!(?source, "watch works again");
        }
        match (source, change) {
            (_, Change::Other) => {}
            (Source::Services, Change::Service(key)) => {
                self.dirty.insert(key);
            }
            (_, Change::Relisted) => {
                if self.unsynced.remove(&source) && self.unsynced.is_empty() {
                    info!("Services, Namespaces and IPAddressPools listed");
                }
                match source {
                    Source::Pools => self.pools_changed = true,
                    _ => self.full_pass = true,
                }
            }
            // Whether the pools really changed (not only their status, which the
            // controller itself writes) is decided in the pass.
            (Source::Pools, Change::Service(_)) => self.pools_changed = true,
            // Namespace labels decide which pools serve a Service.
            (Source::Namespaces, Change::Service(_)) => self.full_pass = true,
        }
    }

    async fn pass(&mut self) {
        if !self.unsynced.is_empty() {
            return;
        }
        let mut actions = Vec::new();
        let reconciler = match &mut self.reconciler {
            Some(reconciler) => {
                if std::mem::take(&mut self.pools_changed) {
                    let pools = self.stores.pools();
                    let fingerprint = pools_fingerprint(&pools);
                    if fingerprint != self.pools_seen {
                        self.pools_seen = fingerprint;
                        actions.extend(reconciler.set_pools(&pools));
                        self.full_pass = true;
                    }
                }
                reconciler
            }
            None => {
                let mut services = self.stores.services.state();
                oldest_first(&mut services);
                let (reconciler, refusals) = Reconciler::rebuild(
                    self.settings.lb_class.clone(),
                    &self.stores.pools(),
                    &services,
                    |ns| self.stores.namespace_labels(ns).unwrap_or_default(),
                );
                actions.extend(refusals);
                self.pools_changed = false;
                self.pools_seen = pools_fingerprint(&self.stores.pools());
                self.full_pass = true;
                self.reconciler.insert(reconciler)
            }
        };
        let keys: BTreeSet<ServiceRef> = if std::mem::take(&mut self.full_pass) {
            self.dirty.clear();
            let mut all: BTreeSet<ServiceRef> = self
                .stores
                .services
                .state()
                .iter()
                .map(|service| ServiceRef::of(service))
                .collect();
            all.extend(reconciler.holders());
            all
        } else {
            std::mem::take(&mut self.dirty)
        };
        // Oldest first: when addresses are short, the older Services get them, the
        // same way on every replica and every restart.
        let mut ordered: Vec<(ServiceRef, Option<Arc<Service>>)> = keys
            .into_iter()
            .map(|key| {
                let service = self.stores.service(&key);
                (key, service)
            })
            .collect();
        ordered.sort_by(|(ka, a), (kb, b)| {
            let created = |s: &Option<Arc<Service>>| {
                s.as_ref()
                    .and_then(|s| s.metadata.creation_timestamp.clone())
            };
            (created(a), ka).cmp(&(created(b), kb))
        });
        for (key, service) in ordered {
            let labels = match &service {
                Some(service) => match self.stores.namespace_labels(&key.namespace) {
                    Some(labels) => labels,
                    // The Namespace exists but our view of it lags: its arrival
                    // brings a full pass, and pools chosen by namespace labels must
                    // not be judged on none.
                    None => {
                        debug!(service = %key, "waiting for the Namespace to be seen");
                        let _ = service;
                        continue;
                    }
                },
                None => BTreeMap::new(),
            };
            actions.extend(reconciler.reconcile(&key, service.as_deref(), &labels));
        }
        actions.extend(reconciler.pool_statuses(&self.stores.pools()));
        self.metrics
            .set_pools(&reconciler.allocator().pool_statuses());
        self.metrics.set_pending(reconciler.pending());
        self.metrics.set_pools_refused(reconciler.refused_pools());
        self.execute(actions).await;
    }

    /// Events go out at once; the writes run concurrently (each Service has at
    /// most one per pass, and every address is decided already, so their order
    /// does not matter), a burst of new Services costing a few round trips
    /// rather than two per Service in a row.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut status_writes = Vec::new();
        let mut pool_writes = Vec::new();
        for action in actions {
            match action {
                Action::Notice(notice) => {
                    match notice.reason {
                        REASON_ALLOCATED => self.metrics.allocated(),
                        REASON_FAILED => self.metrics.allocation_failed(),
                        _ => {}
                    }
                    // The publisher lives as long as the controller.
                    let _ = self.notices.send(notice);
                }
                Action::WriteStatus(write) => status_writes.push(write),
                Action::WritePoolStatus { pool, status } => pool_writes.push((pool, status)),
            }
        }
        let client = &self.client;
        let written: Vec<_> = stream::iter(status_writes)
            .map(|write| async move {
                let result = write_status(client, &write).await;
                (write, result)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        for (write, result) in written {
            match result {
                Ok(versions) => {
                    debug!(service = %write.key, ingress = ?write.ingress, "status written");
                    if let Some(reconciler) = &mut self.reconciler {
                        reconciler.write_done(&write.key, versions);
                    }
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    // Deleted meanwhile; its Delete event releases it.
                    self.forget_write(&write.key);
                }
                Err(error) => {
                    warn!(service = %write.key, %error, "writing the Service status failed; retrying");
                    self.forget_write(&write.key);
                    self.metrics.status_write_failed();
                    self.retry.insert(write.key);
                    self.retry_at.get_or_insert(Instant::now() + RETRY_AFTER);
                }
            }
        }
        for (pool, status) in pool_writes {
            if let Err(error) = write_pool_status(&self.pools_api, &pool, &status).await {
                warn!(%pool, %error, "writing the pool status failed");
                self.metrics.status_write_failed();
                if let Some(reconciler) = &mut self.reconciler {
                    reconciler.pool_write_failed(&pool);
                }
                // The next pass (any change, or the retry) writes it again.
                self.retry_at.get_or_insert(Instant::now() + RETRY_AFTER);
            }
        }
    }

    fn forget_write(&mut self, key: &ServiceRef) {
        if let Some(reconciler) = &mut self.reconciler {
            reconciler.write_failed(key);
        }
    }
}
