//! MetalLB's BGP kinds: not this product's job (MetalLB's or FRR's BGP speaker can
//! run beside it). The controller and the agents say once, at start, that
//! they ignore them: the agents too, because a user who keeps MetalLB's
//! controller and replaces only its speaker runs no controller of ours.

use kube::api::{Api, DynamicObject, ListParams};
use kube::Client;
use tracing::{debug, warn};

use super::GROUP;

/// A kind the controller looks for only to say that it ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IgnoredKind {
    pub kind: &'static str,
    pub plural: &'static str,
}

pub const IGNORED_BGP_KINDS: [IgnoredKind; 4] = [
    IgnoredKind {
        kind: "BGPPeer",
        plural: "bgppeers",
    },
    IgnoredKind {
        kind: "BGPAdvertisement",
        plural: "bgpadvertisements",
    },
    IgnoredKind {
        kind: "BFDProfile",
        plural: "bfdprofiles",
    },
    IgnoredKind {
        kind: "Community",
        plural: "communities",
    },
];

/// Warns once for each BGP kind that has objects in `namespace`.
pub(crate) async fn tell_ignored(client: Client, namespace: String) {
    let group = match kube::discovery::group(&client, GROUP).await {
        Ok(group) => group,
        Err(error) => {
            debug!(%error, "no {GROUP} API group to look for BGP objects in");
            return;
        }
    };
    for (resource, _) in group.recommended_resources() {
        let Some(ignored) = IGNORED_BGP_KINDS.iter().find(|k| k.kind == resource.kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        match api.list(&ListParams::default().limit(1)).await {
            Ok(list) if !list.items.is_empty() => warn!(
                kind = ignored.kind,
                %namespace,
                "{} objects are ignored: responder announces addresses over layer 2 only; \
                 MetalLB's or FRR's BGP speaker can run beside it",
                ignored.kind
            ),
            Ok(_) => {}
            Err(error) => debug!(kind = ignored.kind, %error, "could not look for ignored objects"),
        }
    }
}
