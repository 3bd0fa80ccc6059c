//! Whether this node may announce at all: its Node exists, is eligible (labels,
//! conditions, `--node-selector`), and an attached interface serves. A node that
//! may not takes no part in the membership: no Lease, no Lease watch, so the API
//! load follows the announcing nodes, not the size of the cluster.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::debug;

use super::backoff::WatchBackoff;
use super::ownership::node_eligible;
use super::selector::LabelSelector;
use super::Attached;

/// Why this node may or may not announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Eligibility {
    Eligible,
    Ineligible(String),
}

/// The verdict for `node` (None: no such Node) and what is attached.
pub(super) fn judge(
    node: Option<&Node>,
    selector: &LabelSelector,
    attached: &Attached,
) -> Eligibility {
    let Some(node) = node else {
        return Eligibility::Ineligible("its Node object does not exist".into());
    };
    if !node_eligible(node, selector) {
        return Eligibility::Ineligible(
            "its Node is excluded from load balancers, has no network, or does not match \
             --node-selector"
                .into(),
        );
    }
    let families = attached.reach.families;
    if !families.ipv4 && !families.ipv6 {
        return Eligibility::Ineligible("no attached interface with carrier".into());
    }
    Eligibility::Eligible
}

/// Publishes into `out` the eligibility of `node` as its Node object and the
/// attached interfaces change; `None` until the Node was first listed. Runs
/// until cancelled; while the watch fails the last verdict stands.
pub(super) async fn follow(
    client: Client,
    node: String,
    selector: LabelSelector,
    mut attached: watch::Receiver<Attached>,
    out: watch::Sender<Option<Eligibility>>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let mut events = watcher(Api::<Node>::all(client), config)
        .backoff(WatchBackoff::new())
        .boxed();
    let mut own: Option<Node> = None;
    let mut listed = false;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node))) => own = Some(node),
                Some(Ok(watcher::Event::Delete(_) | watcher::Event::Init)) => own = None,
                Some(Ok(watcher::Event::InitDone)) => listed = true,
                Some(Err(error)) => {
                    debug!(%error, "watching this Node failed; keeping the last eligibility");
                    continue;
                }
                None => return,
            },
            Ok(()) = attached.changed() => {}
        }
        if listed {
            let verdict = judge(own.as_ref(), &selector, &attached.borrow());
            out.send_if_modified(|current| {
                let changed = current.as_ref() != Some(&verdict);
                *current = Some(verdict);
                changed
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;

    use super::*;
    use crate::cluster::{Families, Reach};

    fn node(labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn serving(ipv4: bool) -> Attached {
        Attached {
            reach: Reach {
                families: Families { ipv4, ipv6: false },
                prefixes: Vec::new(),
            },
            ..Attached::default()
        }
    }

    #[test]
    fn a_node_takes_part_only_when_it_exists_is_eligible_and_serves() {
        let any = LabelSelector::default();
        assert_eq!(
            judge(Some(&node(&[])), &any, &serving(true)),
            Eligibility::Eligible
        );
        for (verdict, what) in [
            (judge(None, &any, &serving(true)), "no Node"),
            (
                judge(
                    Some(&node(&[(crate::cluster::ownership::EXCLUDE_LB_LABEL, "")])),
                    &any,
                    &serving(true),
                ),
                "excluded",
            ),
            (
                judge(
                    Some(&node(&[])),
                    &"role=edge".parse().expect("selector"),
                    &serving(true),
                ),
                "not selected",
            ),
            (
                judge(Some(&node(&[])), &any, &serving(false)),
                "nothing attached",
            ),
        ] {
            assert!(
                matches!(verdict, Eligibility::Ineligible(_)),
                "{what}: {verdict:?}"
            );
        }
    }
}
