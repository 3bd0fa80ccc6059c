//! The watches the assigner works from: the Service cache (`service_facts`),
//! reflectors of Nodes and EndpointSlices (keeping projections, see
//! `projections`) and the membership Leases, as one stream of updates that
//! say which object changed, so that a change recomputes only what it can
//! affect.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tracing::{info, warn};

use super::indexes::slice_nodes;
use super::indexes::{node_facts, slice_key, NodeFacts};
use super::membership::lease_selector;
use super::projections;
use super::service_facts::ServiceCache;
use crate::crd::{self, IPAddressPool, L2Advertisement};
use crate::k8s::ServiceRef;
use crate::k8s::WatchBackoff;

const ENDPOINT_SLICE_GROUP_VERSION: &str = "discovery.k8s.io/v1";
const ADVERTISEMENT_CRD: &str = "l2advertisements.metallb.io";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    Services,
    Nodes,
    EndpointSlices,
    Leases,
    Pools,
    Advertisements,
}

/// What happened to a reflected kind.
#[derive(Debug)]
pub(super) enum Change<T> {
    /// One object changed or went; its store already holds the change.
    One(T),
    /// A (re)list completed: the store was replaced with every object.
    Listed,
    /// A relist is under way (the store changes when it completes).
    Relisting,
}

impl<T> Change<T> {
    fn of<K>(event: watcher::Event<K>, one: impl FnOnce(K, bool) -> T) -> Self {
        match event {
            watcher::Event::Apply(object) => Change::One(one(object, true)),
            watcher::Event::Delete(object) => Change::One(one(object, false)),
            watcher::Event::Init | watcher::Event::InitApply(_) => Change::Relisting,
            watcher::Event::InitDone => Change::Listed,
        }
    }
}

/// A slice's key, and its Service with the nodes hosting its endpoints
/// (`None` once deleted, or for a slice of no Service).
pub(super) type SliceChange = (String, Option<(ServiceRef, BTreeSet<String>)>);

pub(super) enum Update {
    Services(watcher::Result<Change<ServiceRef>>),
    /// A Node's name, and what ownership reads of it (`None` once deleted).
    Nodes(watcher::Result<Change<(String, Option<NodeFacts>)>>),
    Slices(watcher::Result<Change<SliceChange>>),
    Leases(watcher::Result<Box<watcher::Event<Lease>>>),
    /// Pools and advertisements are few and read as a whole: any change
    /// rebuilds what they say.
    Pools(watcher::Result<Change<()>>),
    Advertisements(watcher::Result<Change<()>>),
    /// MetalLB's kinds, not served when the agent started, are now: their
    /// watches start.
    MetallbServed,
}

impl Update {
    pub(super) fn source(&self) -> Source {
        match self {
            Update::Services(_) => Source::Services,
            Update::Nodes(_) => Source::Nodes,
            Update::Slices(_) => Source::EndpointSlices,
            Update::Leases(_) => Source::Leases,
            Update::Pools(_) => Source::Pools,
            Update::Advertisements(_) | Update::MetallbServed => Source::Advertisements,
        }
    }

    pub(super) fn error(&self) -> Option<&watcher::Error> {
        match self {
            Update::Services(Err(e))
            | Update::Nodes(Err(e))
            | Update::Slices(Err(e))
            | Update::Leases(Err(e))
            | Update::Pools(Err(e))
            | Update::Advertisements(Err(e)) => Some(e),
            _ => None,
        }
    }

    pub(super) fn is_listed(&self) -> bool {
        match self {
            Update::Services(Ok(change)) => matches!(change, Change::Listed),
            Update::Nodes(Ok(change)) => matches!(change, Change::Listed),
            Update::Slices(Ok(change)) => matches!(change, Change::Listed),
            Update::Leases(Ok(event)) => matches!(**event, watcher::Event::InitDone),
            Update::Pools(Ok(change)) => matches!(change, Change::Listed),
            Update::Advertisements(Ok(change)) => matches!(change, Change::Listed),
            _ => false,
        }
    }
}

/// The caches the assigner computes ownership from.
pub(super) struct Stores {
    pub(super) services: ServiceCache,
    pub(super) nodes: Store<Node>,
    /// `None` when EndpointSlices v1 are not served.
    pub(super) slices: Option<Store<EndpointSlice>>,
    /// The pools and advertisements, whether or not `metallb.io/v1beta1` is
    /// served yet.
    pub(super) metallb: MetallbStores,
    /// Served when the agent started: until it is (flags only), the stores
    /// stay empty and [`Update::MetallbServed`] says when they begin to fill.
    pub(super) metallb_served: bool,
}

/// The pools and advertisements in the agent's namespace.
#[derive(Clone)]
pub(super) struct MetallbStores {
    pub(super) pools: Store<IPAddressPool>,
    pub(super) advertisements: Store<L2Advertisement>,
}

/// Starts every watch; the caches fill as the stream is polled.
pub(super) async fn start(
    client: Client,
    lease_namespace: &str,
) -> (Stores, BoxStream<'static, Update>) {
    let served = served_group_versions(&client).await;
    let slices_served = served.contains(ENDPOINT_SLICE_GROUP_VERSION);
    let metallb_served = served.contains(crd::API_VERSION);
    if !metallb_served {
        info!(
            "{} is not served: no L2Advertisements to follow; every eligible node may announce on its interfaces until MetalLB's CRDs are installed",
            crd::API_VERSION
        );
    }
    let crd_client = client.clone();
    if !slices_served {
        // Without EndpointSlices (Kubernetes < 1.21) we cannot see where endpoints
        // run, so externalTrafficPolicy: Local Services are assigned like Cluster
        // ones: every eligible live node counts as having endpoints.
        warn!("{ENDPOINT_SLICE_GROUP_VERSION} is not served; Local Services are assigned as if every node had endpoints");
    }
    let services = ServiceCache::default();
    let services_writer = services.clone();
    let (nodes, nodes_writer) = reflector::store();
    let (slices, slices_writer) = reflector::store();
    let mut sources: Vec<BoxStream<'static, Update>> = vec![
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::new())
        .map(move |result| {
            Update::Services(result.map(|event| {
                let changed = services_writer.apply(&event);
                match (event, changed) {
                    (watcher::Event::InitDone, _) => Change::Listed,
                    (_, Some(service)) => Change::One(service),
                    (_, None) => Change::Relisting,
                }
            }))
        })
        .boxed(),
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .backoff(WatchBackoff::new())
            .modify(projections::strip_node)
            .reflect(nodes_writer)
            .map(|result| {
                Update::Nodes(result.map(|event| {
                    Change::of(event, |node, present| {
                        let name = node.metadata.name.clone().unwrap_or_default();
                        (name, present.then(|| node_facts(&node)))
                    })
                }))
            })
            .boxed(),
        // The LeaseTracker is the cache of Leases: it needs each change as it
        // arrives to timestamp it, which a store would not give.
        watcher(
            Api::<Lease>::namespaced(client.clone(), lease_namespace),
            watcher::Config::default().labels(&lease_selector()),
        )
        .backoff(WatchBackoff::new())
        .map(|result| Update::Leases(result.map(Box::new)))
        .boxed(),
    ];
    if slices_served {
        sources.push(
            watcher(
                Api::<EndpointSlice>::all(client.clone()),
                watcher::Config::default(),
            )
            .backoff(WatchBackoff::new())
            .modify(projections::strip_slice)
            .reflect(slices_writer)
            .map(|result| {
                Update::Slices(result.map(|event| {
                    Change::of(event, |slice, present| {
                        let nodes = present.then(|| slice_nodes(&slice)).flatten();
                        (slice_key(&slice), nodes)
                    })
                }))
            })
            .boxed(),
        );
    }
    let (pools, pools_writer) = reflector::store();
    let (advertisements, advertisements_writer) = reflector::store();
    let namespace = lease_namespace.to_owned();
    let metallb_watches = move || {
        tokio::spawn(crate::crd::tell_ignored(client.clone(), namespace.clone()));
        let pools = watcher(
            Api::<IPAddressPool>::namespaced(client.clone(), &namespace),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::new())
        .reflect(pools_writer)
        .map(|result| Update::Pools(result.map(|event| Change::of(event, |_, _| ()))));
        let advertisements = watcher(
            Api::<L2Advertisement>::namespaced(client.clone(), &namespace),
            watcher::Config::default(),
        )
        .backoff(WatchBackoff::new())
        .reflect(advertisements_writer)
        .map(|result| Update::Advertisements(result.map(|event| Change::of(event, |_, _| ()))));
        stream::select(pools, advertisements)
    };
    match metallb_served {
        true => sources.push(metallb_watches().boxed()),
        false => {
            let later = crd_client.clone();
            sources.push(
                stream::once(async move {
                    until_metallb_served(&later).await;
                    info!(
                        "{} is served now: following IPAddressPools and L2Advertisements",
                        crd::API_VERSION
                    );
                    stream::iter([Update::MetallbServed]).chain(metallb_watches())
                })
                .flatten()
                .boxed(),
            );
        }
    }
    let stores = Stores {
        services,
        nodes,
        slices: slices_served.then_some(slices),
        metallb: MetallbStores {
            pools,
            advertisements,
        },
        metallb_served,
    };
    (stores, stream::select_all(sources).boxed())
}

/// Returns once `metallb.io/v1beta1` is served: at once when it is, else
/// when a watch of its L2Advertisement CRD sees a change after which
/// discovery lists it. An agent not allowed to watch CRDs (RBAC of an older
/// release) asks discovery every minute instead.
pub(super) async fn until_metallb_served(client: &Client) {
    const POLL: Duration = Duration::from_secs(60);
    if served_group_versions(client)
        .await
        .contains(crd::API_VERSION)
    {
        return;
    }
    let crds = watcher(
        Api::<CustomResourceDefinition>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={ADVERTISEMENT_CRD}")),
    );
    let mut crds = std::pin::pin!(crds);
    let mut watching = true;
    loop {
        match watching {
            true => match crds.next().await {
                Some(Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_))) => {}
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    info!(%error, "cannot watch CustomResourceDefinitions: asking API discovery for {} every minute instead", crd::API_VERSION);
                    watching = false;
                    continue;
                }
                None => watching = false,
            },
            false => tokio::time::sleep(POLL).await,
        }
        if served_group_versions(client)
            .await
            .contains(crd::API_VERSION)
        {
            return;
        }
    }
}

/// Asks API discovery once which group versions are served (EndpointSlices
/// v1, MetalLB's kinds), retrying (with backoff) until the API server answers
/// at all.
pub(super) async fn served_group_versions(client: &Client) -> BTreeSet<String> {
    let mut delay = Duration::from_millis(250);
    let mut warned = false;
    loop {
        match client.list_api_groups().await {
            Ok(groups) => {
                return groups
                    .groups
                    .iter()
                    .flat_map(|group| &group.versions)
                    .map(|version| version.group_version.clone())
                    .collect()
            }
            Err(error) => {
                if !warned {
                    warn!(%error, "API discovery failed; retrying");
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
