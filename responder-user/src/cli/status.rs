//! `responder status`: every LoadBalancer Service's addresses, each
//! announced by which node on which interfaces, or why not. It reads the
//! cluster through a kubeconfig as `kubectl` does, so it runs anywhere, and
//! judges with the agents' own decision (`responder::cluster::judge`).

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::Client;
use responder::cluster::{
    claim_of, judge, lease_selector, ClusterSettings, Report, Settings, Snapshot,
};
use responder::crd::{IPAddressPool, L2Advertisement, ServiceL2Status};
use responder::duration::parse_duration;
use responder::k8s::LabelSelector;
use serde::de::DeserializeOwned;

use super::report::{aligned, print_report};
use super::runtime;
use super::shared::{kube_client, namespace, ClusterAccess};

#[derive(Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) cluster: ClusterAccess,
    /// The agents' --node-selector.
    #[arg(long, value_name = "SELECTOR", default_value = "")]
    pub(crate) node_selector: LabelSelector,
    /// The agents' --hold-down.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value = "10s")]
    pub(crate) hold_down: Duration,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<()> {
    let settings = Settings {
        lb_class: args.cluster.lb_class.clone(),
        node_selector: args.node_selector.clone(),
        lease_duration: ClusterSettings::DEFAULT_LEASE_DURATION,
        hold_down: args.hold_down,
    };
    let snapshot = runtime()?.block_on(async {
        let client = kube_client(args.cluster.kubeconfig.as_deref()).await?;
        read(client, &namespace(args.cluster.namespace.clone())).await
    })?;
    let report = judge(&snapshot, &settings, Timestamp::now());
    print_report(&report, args.json, format_report)
}

async fn read(client: Client, namespace: &str) -> anyhow::Result<Snapshot> {
    let leases = ListParams::default().labels(&lease_selector());
    let claims = ListParams::default().fields("reason=AddressConflict");
    let events: Vec<Event> = list(Api::all(client.clone()), &claims, "Events").await?;
    Ok(Snapshot {
        services: list(Api::all(client.clone()), &ListParams::default(), "Services").await?,
        nodes: list::<Node>(Api::all(client.clone()), &ListParams::default(), "Nodes").await?,
        leases: list::<Lease>(
            Api::namespaced(client.clone(), namespace),
            &leases,
            "Leases",
        )
        .await?,
        pools: served(Api::<IPAddressPool>::namespaced(client.clone(), namespace))
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        advertisements: served(Api::<L2Advertisement>::namespaced(
            client.clone(),
            namespace,
        ))
        .await?
        .into_iter()
        .map(Into::into)
        .collect(),
        slices: served_or_none(Api::<EndpointSlice>::all(client.clone())).await?,
        l2_statuses: served(Api::<ServiceL2Status>::namespaced(client, namespace)).await?,
        claims: events.iter().filter_map(claim_of).collect(),
    })
}

async fn list<K>(api: Api<K>, params: &ListParams, what: &str) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(params)
        .await
        .with_context(|| format!("listing {what}"))?
        .items)
}

/// A kind that may not be installed (MetalLB's CRDs, discovery/v1 before
/// Kubernetes 1.21): `None` when the API server does not serve it.
async fn served_or_none<K>(api: Api<K>) -> anyhow::Result<Option<Vec<K>>>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error).with_context(|| format!("listing {}", K::plural(&()))),
    }
}

async fn served<K>(api: Api<K>) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(served_or_none(api).await?.unwrap_or_default())
}

fn format_report(report: &Report) -> String {
    let mut addresses = vec![[
        "SERVICE",
        "ADDRESS",
        "ANNOUNCED",
        "NODE",
        "INTERFACES",
        "REASON",
        "OBJECT",
        "CLAIMED BY",
    ]
    .map(String::from)
    .to_vec()];
    let dash = |text: String| match text.is_empty() {
        true => "-".to_owned(),
        false => text,
    };
    for row in &report.addresses {
        addresses.push(vec![
            row.service.clone(),
            dash(row.address.clone()),
            match row.announced {
                true => "yes".to_owned(),
                false => "no".to_owned(),
            },
            dash(row.node.clone().unwrap_or_default()),
            dash(row.interfaces.join(",")),
            dash(row.reason.map(|r| r.code().to_owned()).unwrap_or_default()),
            dash(row.object.clone().unwrap_or_default()),
            dash(row.claimant.clone().unwrap_or_default()),
        ]);
    }
    let mut text = aligned(&addresses, |_| false);
    let details: Vec<String> = report
        .addresses
        .iter()
        .filter(|row| !row.detail.is_empty())
        .map(|row| {
            format!(
                "  {} {}: {}",
                row.service,
                dash(row.address.clone()),
                row.detail
            )
        })
        .collect();
    if !details.is_empty() {
        text.push_str("\nWhy:\n");
        text.push_str(&details.join("\n"));
        text.push('\n');
    }
    let mut nodes = vec![["NODE", "ANNOUNCES"].map(String::from).to_vec()];
    for node in &report.nodes {
        nodes.push(vec![
            node.node.clone(),
            match (&node.excluded, node.role.as_deref()) {
                (Some(why), _) => format!("no: {why}"),
                (None, Some("standby")) => {
                    "standby (owns an address only where no announcer may)".to_owned()
                }
                (None, _) => "yes".to_owned(),
            },
        ]);
    }
    text.push('\n');
    text.push_str(&aligned(&nodes, |_| false));
    text
}
