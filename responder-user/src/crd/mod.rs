//! MetalLB's configuration kinds (`metallb.io/v1beta1`) that a layer-2 user has:
//! `IPAddressPool`, `L2Advertisement` and `ServiceL2Status`, so their YAML applies
//! unchanged, and the BGP kinds this product ignores.
//!
//! The types implement `kube::Resource` by hand instead of deriving
//! `kube::CustomResource`: the derive's value is generating the CRD schema (through
//! schemars), but the CRDs we ship (`deploy/crds/`) are written from MetalLB's
//! documented schema and must stay that schema, whatever our Rust types look like;
//! the derive would also pull kube-derive and schemars into every build of a
//! two-core CI machine for a few dozen lines of trait impls.
//!
//! Specs and statuses are [`Lenient`]: an object whose spec does not fit is still
//! listed and watched, with its error kept for a log line and an Event, so one bad
//! object never stops a list or a watch, and the others carry on.

mod advertisement;
mod bgp;
mod lenient;
mod pool;
mod pool_set;
mod service_l2_status;

pub use advertisement::{Advertisement, AdvertisementError, L2Advertisement, L2AdvertisementSpec};
pub(crate) use bgp::tell_ignored;
pub use bgp::{IgnoredKind, IGNORED_BGP_KINDS};
pub use lenient::Lenient;
pub use pool::{IPAddressPool, IPAddressPoolStatus};
pub(crate) use pool_set::pool_set_of;
pub use service_l2_status::{
    InterfaceInfo, ServiceL2Status, ServiceL2StatusFields, LABEL_NODE, LABEL_SERVICE_NAME,
    LABEL_SERVICE_NAMESPACE,
};

pub const GROUP: &str = "metallb.io";
pub const VERSION: &str = "v1beta1";
pub const API_VERSION: &str = "metallb.io/v1beta1";

/// Written by the controller on every Service it gives addresses to: the pool of
/// each address, in `status.loadBalancer.ingress` order without repeats (two names,
/// comma-joined, when the two families come from different pools).
pub const ANNOTATION_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

/// `kube::Resource` for a namespaced `metallb.io/v1beta1` kind whose struct has
/// `metadata`, `spec` and `status` fields, and `Serialize` with `apiVersion` and
/// `kind`, which create and replace requests must carry.
macro_rules! metallb_kind {
    ($type:ident, kind = $kind:literal, plural = $plural:literal, spec = $spec:ty, status = $status:ty) => {
        impl kube::Resource for $type {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::crd::GROUP.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::crd::VERSION.into()
            }
            fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::crd::API_VERSION.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &kube::core::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut kube::core::ObjectMeta {
                &mut self.metadata
            }
        }

        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[derive(serde::Serialize)]
                struct Tagged<'a> {
                    #[serde(rename = "apiVersion")]
                    api_version: &'static str,
                    kind: &'static str,
                    metadata: &'a kube::core::ObjectMeta,
                    spec: &'a $spec,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    status: &'a Option<$status>,
                }
                Tagged {
                    api_version: $crate::crd::API_VERSION,
                    kind: $kind,
                    metadata: &self.metadata,
                    spec: &self.spec,
                    status: &self.status,
                }
                .serialize(serializer)
            }
        }
    };
}
pub(crate) use metallb_kind;
