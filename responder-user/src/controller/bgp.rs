//! Says once, at start, that MetalLB's BGP objects in the namespace are ignored.

use kube::api::{Api, DynamicObject, ListParams};
use kube::Client;
use tracing::{debug, warn};

use crate::crd::{GROUP, IGNORED_BGP_KINDS};

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
