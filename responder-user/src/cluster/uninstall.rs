//! Telling an uninstall from a restart when the agent is stopped. Both send
//! SIGTERM; a restart (rolling update, `kubectl delete pod`) wants the program
//! left attached for the next agent, an uninstall (`kubectl delete -k
//! deploy/`) wants nothing left on the node. The DaemonSet that runs the
//! agent says which: gone or being deleted, and the agent is not coming back.
//! When the API cannot say (unreachable, slow), the agent keeps the restart's
//! behaviour, which never loses a reply; `responder cleanup` removes what an
//! uninstall left then.

use k8s_openapi::api::{apps::v1::DaemonSet, core::v1::Pod};
use kube::{Api, Client};

/// What a stopping agent learnt of the DaemonSet that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Removal {
    /// Not coming back; the reason, for the log.
    Uninstalled(String),
    /// The DaemonSet stays (a restart), or the agent is not run by one.
    Staying,
    /// The API did not answer; the reason, for the log.
    Unknown(String),
}

/// The verdict from a lookup's outcome: `Ok(Some(deleting))` when the object
/// exists, `Ok(None)` when it does not, `Err(status)` with the HTTP status of
/// an API error (`None` for a transport failure) and its text.
pub(crate) fn judge(what: &str, found: Result<Option<bool>, (Option<u16>, String)>) -> Removal {
    match found {
        Ok(Some(false)) => Removal::Staying,
        Ok(Some(true)) => Removal::Uninstalled(format!("{what} is being deleted")),
        Ok(None) => Removal::Uninstalled(format!("{what} was deleted")),
        // A rolling update never takes the agent's own permissions away; an
        // uninstall deletes its ServiceAccount and RBAC before its pods stop.
        Err((Some(401), _)) => {
            Removal::Uninstalled("this agent's ServiceAccount token is no longer valid".into())
        }
        Err((Some(403), _)) => {
            Removal::Uninstalled(format!("this agent may no longer read {what}"))
        }
        Err((_, error)) => Removal::Unknown(format!("reading {what}: {error}")),
    }
}

fn status_of(error: kube::Error) -> (Option<u16>, String) {
    match &error {
        kube::Error::Api(status) => (Some(status.code), error.to_string()),
        _ => (None, error.to_string()),
    }
}

/// Looks up the pod `pod_name` in `namespace`, then the DaemonSet that
/// controls it.
pub(super) async fn daemonset_removal(client: Client, namespace: &str, pod_name: &str) -> Removal {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("pod {namespace}/{pod_name}");
    let pod = match pods.get_opt(pod_name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => return Removal::Unknown(format!("{what} is already gone")),
        // The pod is still there while it stops: 401/403 on it is the same
        // lost permission as on the DaemonSet.
        Err(error) => return judge(&what, Err(status_of(error))),
    };
    let owner = pod
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|owner| owner.kind == "DaemonSet" && owner.controller == Some(true));
    let Some(owner) = owner else {
        return Removal::Staying;
    };
    let daemonsets: Api<DaemonSet> = Api::namespaced(client, namespace);
    let what = format!("DaemonSet {namespace}/{}", owner.name);
    let found = daemonsets
        .get_opt(&owner.name)
        .await
        .map(|ds| {
            ds.filter(|ds| ds.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                .map(|ds| ds.metadata.deletion_timestamp.is_some())
        })
        .map_err(status_of);
    judge(&what, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemonset_that_stays_is_a_restart() {
        assert_eq!(judge("ds", Ok(Some(false))), Removal::Staying);
    }

    #[test]
    fn a_daemonset_deleted_or_being_deleted_is_an_uninstall() {
        assert!(
            matches!(judge("ds", Ok(Some(true))), Removal::Uninstalled(r) if r.contains("being deleted"))
        );
        assert!(
            matches!(judge("ds", Ok(None)), Removal::Uninstalled(r) if r.contains("was deleted"))
        );
    }

    #[test]
    fn lost_permissions_are_an_uninstall() {
        for code in [401, 403] {
            assert!(matches!(
                judge("ds", Err((Some(code), "no".into()))),
                Removal::Uninstalled(_)
            ));
        }
    }

    #[test]
    fn an_unreachable_or_failing_api_decides_nothing() {
        for status in [None, Some(500), Some(429), Some(404)] {
            assert!(matches!(
                judge("ds", Err((status, "boom".into()))),
                Removal::Unknown(r) if r.contains("boom")
            ));
        }
    }
}
