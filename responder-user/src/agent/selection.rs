//! What `responder run` selects when it starts: the interfaces to attach to
//! (named, or chosen by the filter) and the static VIPs, checked against them
//! so a misspelt name or scope fails the start rather than never answers.

use std::{collections::BTreeSet, net::IpAddr};

use super::core::validate_all;
use super::AgentConfig;
use crate::{
    error::Error,
    netif::topology::Topology,
    netif::{self, Interface, InterfaceFilter, LinkInfo},
    vip::{read_vip_file, VipSpec},
};

/// The interfaces selected at start, and the static VIPs checked against
/// them.
pub(super) struct Selection {
    /// `--interface` names, deduplicated.
    pub(super) names: Vec<String>,
    pub(super) filter: InterfaceFilter,
    /// Named interfaces (whether up or not), for validating scopes.
    pub(super) named: Vec<Interface>,
    /// The interfaces to attach to now.
    pub(super) accepted: Vec<Interface>,
    /// Every address on the node.
    pub(super) local_addresses: BTreeSet<IpAddr>,
    /// The node's own MACs and bond members, from every link.
    pub(super) topology: Topology,
}

impl Selection {
    pub(super) async fn now(config: &AgentConfig) -> Result<Self, Error> {
        let mut names: Vec<String> = Vec::new();
        for name in &config.interfaces {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let links = netif::watch::list_links().await?;
        // A misspelt --interface is fatal; one that is down is attached once
        // it comes up.
        let named = names
            .iter()
            .map(|name| netif::lookup(&links, name))
            .collect::<Result<Vec<_>, _>>()?;
        for link in links
            .iter()
            .filter(|l| !l.admin_up && names.contains(&l.name))
        {
            tracing::warn!(interface = %link.name, "interface is down; VIPs on it answer once it comes up");
        }
        let filter = InterfaceFilter::new(
            names.clone(),
            config.interface_regex.clone(),
            config.exclude_interface_regex.clone(),
        );
        let accepted = attachable(links.iter().filter(|link| filter.accepts(link)));
        let local_addresses = links
            .iter()
            .flat_map(|link| &link.addresses)
            .map(|net| net.addr())
            .collect();
        Ok(Selection {
            names,
            filter,
            named,
            accepted,
            local_addresses,
            topology: Topology::of(&links),
        })
    }

    /// The `--vip` and `--vip-file` sets. Scopes must name an
    /// `--interface`, or without names an interface selected right now, so
    /// typos fail here rather than never answer.
    pub(super) fn static_vips(
        &self,
        config: &AgentConfig,
    ) -> Result<[BTreeSet<VipSpec>; 2], Error> {
        let check_against = match self.names.is_empty() {
            true => &self.accepted,
            false => &self.named,
        };
        let cli_vips: BTreeSet<VipSpec> = config.vips.iter().cloned().collect();
        validate_all(&cli_vips, check_against)?;
        let file_vips = match &config.vip_file {
            Some(path) => {
                let specs = read_vip_file(path)?;
                validate_all(&specs, check_against)?;
                specs
            }
            None => BTreeSet::new(),
        };
        Ok([cli_vips, file_vips])
    }
}

/// The links that can carry VIPs, as interfaces (those without an Ethernet
/// address are left out), with their IPv6 state read now.
pub(super) fn attachable<'a>(links: impl IntoIterator<Item = &'a LinkInfo>) -> Vec<Interface> {
    links.into_iter().filter_map(netif::interface_of).collect()
}
