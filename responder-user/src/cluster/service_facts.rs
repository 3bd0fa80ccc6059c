//! What the agent keeps of each Service: the few facts ownership, the
//! L2Advertisements and Events read, in a cache of its own.
//!
//! kube's reflector would keep a whole `Service` per object (824 bytes of
//! fixed-size fields before any string, plus a key of four strings): at
//! 10,000 Services that was a quarter of the agent's memory. A `ServiceFacts`
//! is a fifth of that, and the cache is keyed by the same shared
//! [`ServiceRef`] everything else uses.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::runtime::watcher;

use crate::k8s::{ingress_ips, is_load_balancer, is_ours_by, ServiceRef, UnusableIngress};

use crate::crd::ANNOTATION_ALLOCATED_FROM_POOL;

/// One Service as the agent needs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceFacts {
    pub(crate) key: ServiceRef,
    /// For Events about the Service.
    uid: Option<Box<str>>,
    /// `spec.type` is LoadBalancer.
    load_balancer: bool,
    class: Option<Box<str>>,
    local_policy: bool,
    /// For L2Advertisements' `serviceSelectors`.
    labels: BTreeMap<String, String>,
    /// MetalLB's pool annotation (which pool each address came from).
    allocated_from: Option<Box<str>>,
    /// The usable ingress addresses, sorted and deduplicated.
    ips: Box<[IpAddr]>,
    /// Why each other ingress entry is not one.
    skipped: Box<[UnusableIngress]>,
}

impl ServiceFacts {
    pub(crate) fn of(service: &Service) -> Self {
        let metadata = &service.metadata;
        let spec = service.spec.as_ref();
        let (ips, skipped) = ingress_ips(service);
        ServiceFacts {
            key: ServiceRef::of(service),
            uid: metadata.uid.as_deref().map(Box::from),
            load_balancer: is_load_balancer(service),
            class: spec
                .and_then(|s| s.load_balancer_class.as_deref())
                .map(Box::from),
            local_policy: spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local"),
            labels: metadata.labels.clone().unwrap_or_default(),
            allocated_from: metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_ALLOCATED_FROM_POOL))
                .map(|pool| Box::from(pool.as_str())),
            ips: ips.into(),
            skipped: skipped.into(),
        }
    }

    /// A LoadBalancer Service of `lb_class` (see [`is_ours_by`]).
    pub(crate) fn is_ours(&self, lb_class: Option<&str>) -> bool {
        is_ours_by(self.load_balancer, self.class.as_deref(), lb_class)
    }

    /// `externalTrafficPolicy: Local`.
    pub(crate) fn is_local_policy(&self) -> bool {
        self.local_policy
    }

    pub(crate) fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    pub(crate) fn skipped(&self) -> &[UnusableIngress] {
        &self.skipped
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    pub(crate) fn allocated_from(&self) -> Option<&str> {
        self.allocated_from.as_deref()
    }

    /// What an Event regards: the Service by kind, name and uid (without a
    /// resourceVersion, which the agent does not keep; Events do not need
    /// one).
    pub(crate) fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Service".to_owned()),
            namespace: Some(self.key.namespace.to_string()),
            name: Some(self.key.name.to_string()),
            uid: self.uid.as_deref().map(str::to_owned),
            ..ObjectReference::default()
        }
    }
}

/// The Services' facts, written from the Service watch as kube's reflector
/// writes its store (a relist replaces the whole cache when it completes) and
/// read by the assigner.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceCache {
    inner: Arc<RwLock<Cache>>,
}

#[derive(Debug, Default)]
struct Cache {
    current: HashMap<ServiceRef, Arc<ServiceFacts>>,
    /// What a relist under way has delivered so far.
    relisting: Option<HashMap<ServiceRef, Arc<ServiceFacts>>>,
}

impl ServiceCache {
    /// Applies one watch event. The key of a changed or deleted Service is
    /// returned, as the assigner recomputes only those.
    pub(crate) fn apply(&self, event: &watcher::Event<Service>) -> Option<ServiceRef> {
        // A panic elsewhere while holding the lock leaves whole maps behind.
        let mut cache = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(service) => {
                let facts = ServiceFacts::of(service);
                let key = facts.key.clone();
                cache.current.insert(key.clone(), Arc::new(facts));
                Some(key)
            }
            watcher::Event::Delete(service) => {
                let key = ServiceRef::of(service);
                cache.current.remove(&key);
                Some(key)
            }
            watcher::Event::Init => {
                cache.relisting = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(service) => {
                let facts = ServiceFacts::of(service);
                cache
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(facts.key.clone(), Arc::new(facts));
                None
            }
            watcher::Event::InitDone => {
                let listed = cache.relisting.take().unwrap_or_default();
                cache.current = listed;
                cache.current.shrink_to_fit();
                None
            }
        }
    }

    pub(crate) fn get(&self, key: &ServiceRef) -> Option<Arc<ServiceFacts>> {
        let cache = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        cache.current.get(key).cloned()
    }

    /// Every Service's facts.
    pub(crate) fn state(&self) -> Vec<Arc<ServiceFacts>> {
        let cache = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        cache.current.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServicePort;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;
    use crate::cluster::advertising::tests::labels_of as pairs;
    use crate::k8s::fixtures::{lb_service, svc};

    #[test]
    fn a_service_keeps_what_ownership_reads_and_nothing_else() {
        let mut service = lb_service(
            "web",
            Some("class"),
            "Local",
            &[
                (Some("192.0.2.2"), None),
                (Some("192.0.2.1"), None),
                (None, Some("lb.example")),
            ],
        );
        service.metadata.uid = Some("1234".into());
        service.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        service.metadata.annotations = Some(pairs(&[
            ("kubectl.kubernetes.io/last-applied-configuration", "{…}"),
            (ANNOTATION_ALLOCATED_FROM_POOL, "public"),
        ]));
        service.metadata.labels = Some(pairs(&[("app", "web")]));
        service.spec.as_mut().expect("spec").ports = Some(vec![ServicePort {
            port: 80,
            ..Default::default()
        }]);
        let facts = ServiceFacts::of(&service);
        assert_eq!(facts.key, svc("default", "web"));
        assert!(facts.is_ours(Some("class")));
        assert!(!facts.is_ours(None));
        assert!(facts.is_local_policy());
        assert_eq!(
            facts.ips(),
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap()
            ]
        );
        assert_eq!(
            facts.skipped(),
            [UnusableIngress {
                proxied: false,
                detail: r#"ingress hostname "lb.example" has no ip"#.to_owned()
            }]
        );
        assert_eq!(facts.allocated_from(), Some("public"));
        assert_eq!(facts.labels(), &pairs(&[("app", "web")]));
        let regarding = facts.object_ref();
        assert_eq!(regarding.kind.as_deref(), Some("Service"));
        assert_eq!(regarding.api_version.as_deref(), Some("v1"));
        assert_eq!(regarding.uid.as_deref(), Some("1234"));
        assert_eq!(regarding.namespace.as_deref(), Some("default"));
        assert_eq!(regarding.name.as_deref(), Some("web"));
    }

    #[test]
    fn the_cache_follows_changes_and_replaces_itself_when_a_relist_completes() {
        let cache = ServiceCache::default();
        let web = lb_service("web", None, "Cluster", &[(Some("192.0.2.1"), None)]);
        let db = lb_service("db", None, "Cluster", &[(Some("192.0.2.2"), None)]);
        assert_eq!(
            cache.apply(&watcher::Event::Apply(web.clone())),
            Some(svc("default", "web"))
        );
        assert!(cache.get(&svc("default", "web")).is_some());
        // A relist under way changes nothing until it completes: then only
        // what it listed is left.
        assert_eq!(cache.apply(&watcher::Event::Init), None);
        assert_eq!(cache.apply(&watcher::Event::InitApply(db.clone())), None);
        assert!(cache.get(&svc("default", "web")).is_some());
        assert!(cache.get(&svc("default", "db")).is_none());
        cache.apply(&watcher::Event::InitDone);
        assert!(cache.get(&svc("default", "web")).is_none());
        assert_eq!(cache.state().len(), 1);
        assert_eq!(
            cache.apply(&watcher::Event::Delete(db)),
            Some(svc("default", "db"))
        );
        assert!(cache.state().is_empty());
    }
}
