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

use super::nodes::exclusion;
use super::Attached;
use crate::k8s::LabelSelector;
use crate::k8s::WatchBackoff;

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
    // The particular reason, so the log names the label, condition, taint or
    // selector to look at.
    if let Some(why) = exclusion(node, selector) {
        return Eligibility::Ineligible(format!("its Node is excluded: {why}"));
    }
    let families = attached.reach.families;
    if !families.ipv4 && !families.ipv6 {
        return Eligibility::Ineligible("no attached interface with carrier".into());
    }
    Eligibility::Eligible
}

/// This node's Node object as the watch has shown it. A relist (after a
/// watch error, an API server restart) replaces it only once complete: the
/// Node is not gone while the list that will contain it is still arriving.
#[derive(Debug, Default)]
struct OwnNode {
    current: Option<Node>,
    listed: bool,
    /// The relist in progress, if any: what it has shown so far.
    relisting: Option<Option<Node>>,
}

impl OwnNode {
    /// Applies one watch event; true when the Node as known changed.
    fn apply(&mut self, event: watcher::Event<Node>) -> bool {
        match event {
            watcher::Event::Apply(node) => self.current = Some(node),
            watcher::Event::Delete(_) => self.current = None,
            watcher::Event::Init => {
                self.relisting = Some(None);
                return false;
            }
            watcher::Event::InitApply(node) => {
                self.relisting = Some(Some(node));
                return false;
            }
            watcher::Event::InitDone => {
                self.current = self.relisting.take().flatten();
                self.listed = true;
            }
        }
        true
    }

    /// The Node, once first listed.
    fn known(&self) -> Option<Option<&Node>> {
        self.listed.then_some(self.current.as_ref())
    }
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
    let mut own = OwnNode::default();
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if !own.apply(event) {
                        continue;
                    }
                }
                Some(Err(error)) => {
                    debug!(%error, "watching this Node failed; keeping the last eligibility");
                    continue;
                }
                None => return,
            },
            Ok(()) = attached.changed() => {}
        }
        if let Some(node) = own.known() {
            let verdict = judge(node, &selector, &attached.borrow());
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

    use super::*;
    use crate::cluster::{Families, Reach};

    fn node(labels: &[(&str, &str)]) -> Node {
        crate::k8s::fixtures::node("n1", labels)
    }

    fn serving(ipv4: bool) -> Attached {
        Attached {
            reach: Reach {
                families: Families { ipv4, ipv6: false },
                prefixes: Vec::new(),
                interfaces: None,
            },
            ..Attached::default()
        }
    }

    #[test]
    fn a_relist_replaces_the_node_only_once_complete() {
        let mut own = OwnNode::default();
        assert_eq!(own.known(), None, "nothing before the first list");
        own.apply(watcher::Event::Init);
        own.apply(watcher::Event::InitApply(node(&[])));
        assert_eq!(own.known(), None, "the first list is not complete");
        assert!(own.apply(watcher::Event::InitDone));
        assert!(own.known().flatten().is_some());

        // An API server restart: the watch relists. Until the list is done
        // the Node stays as it was (it is not "gone" meanwhile).
        assert!(!own.apply(watcher::Event::Init));
        assert!(own.known().flatten().is_some());
        assert!(!own.apply(watcher::Event::InitApply(node(&[("role", "edge")]))));
        assert!(own.known().flatten().is_some_and(|n| n
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.is_empty())));
        assert!(own.apply(watcher::Event::InitDone));
        assert!(own.known().flatten().is_some_and(|n| n
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("role"))));

        // A relist that no longer contains the Node: gone once complete.
        own.apply(watcher::Event::Init);
        assert!(own.known().flatten().is_some());
        own.apply(watcher::Event::InitDone);
        assert_eq!(own.known(), Some(None));

        own.apply(watcher::Event::Apply(node(&[])));
        assert!(own.known().flatten().is_some());
        own.apply(watcher::Event::Delete(node(&[])));
        assert_eq!(own.known(), Some(None));
    }

    #[test]
    fn an_excluded_node_is_told_why() {
        use k8s_openapi::api::core::v1::{NodeSpec, Taint};
        let any = LabelSelector::default();
        let mut tainted = node(&[]);
        tainted.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: crate::cluster::nodes::OUT_OF_SERVICE_TAINT.into(),
                value: Some("nodeshutdown".into()),
                effect: "NoExecute".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let labelled = node(&[(crate::cluster::nodes::EXCLUDE_LB_LABEL, "")]);
        for (node, named) in [
            (&tainted, crate::cluster::nodes::OUT_OF_SERVICE_TAINT),
            (&labelled, crate::cluster::nodes::EXCLUDE_LB_LABEL),
        ] {
            match judge(Some(node), &any, &serving(true)) {
                Eligibility::Ineligible(reason) => {
                    assert!(reason.contains(named), "{reason:?} does not name {named}")
                }
                Eligibility::Eligible => panic!("{named}: eligible"),
            }
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
                    Some(&node(&[(crate::cluster::nodes::EXCLUDE_LB_LABEL, "")])),
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
