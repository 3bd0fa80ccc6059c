//! Unit tests of the agent core, one file per concern; the fakes and helpers they share.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use responder_common::{VipKey, VipStats, VIP_FLAG_YIELDED};
use tokio::time::Instant;

use super::*;
use crate::{
    cluster::{Attached, Families, Ownership, Reach, View},
    error::VipError,
    fakes::*,
    k8s::ServiceRef,
    netif::multicast::{solicited_node_mac, tests::FakeMemberships, Group, Memberships},
    sources::{Source, SourceUpdate},
};

/// The program's attachments, heartbeat and multicast lists, as the core
/// sees them.
#[derive(Default)]
struct FakeAttachments {
    attached: BTreeMap<u32, String>,
    /// Every topology written, in order.
    topologies: Vec<Topology>,
    fail_topology: bool,
    groups: FakeMemberships,
    /// Interface names whose attach fails.
    refuse: Vec<String>,
    beats: usize,
    fail_beat: bool,
}

impl Memberships for FakeAttachments {
    fn join(&mut self, group: Group) -> std::io::Result<()> {
        self.groups.join(group)
    }

    fn leave(&mut self, group: Group) -> std::io::Result<()> {
        self.groups.leave(group)
    }
}

impl Attachments for FakeAttachments {
    fn attach(&mut self, interface: &Interface) -> Result<(), Error> {
        if self.refuse.contains(&interface.name) {
            return Err(Error::UnknownInterface(interface.name.clone()));
        }
        self.attached
            .insert(interface.ifindex, interface.name.clone());
        Ok(())
    }

    fn detach(&mut self, ifindex: u32) -> Option<String> {
        self.attached.remove(&ifindex)
    }

    fn is_attached(&self, ifindex: u32) -> bool {
        self.attached.contains_key(&ifindex)
    }

    fn attached_names(&self) -> Vec<String> {
        self.attached.values().cloned().collect()
    }

    fn set_topology(&mut self, topology: &Topology) -> Result<(), Error> {
        if self.fail_topology {
            return Err(Error::UnknownInterface("map write refused".into()));
        }
        self.topologies.push(topology.clone());
        Ok(())
    }

    fn beat(&mut self) -> Result<(), Error> {
        if self.fail_beat {
            return Err(Error::UnknownInterface("injected heartbeat failure".into()));
        }
        self.beats += 1;
        Ok(())
    }
}

type Core = AgentCore<FakeAttachments, FakeMap, FakeAnnouncer>;

const DEBOUNCE: Duration = Duration::from_secs(1);

/// The links changed to `links`, with no address elsewhere on the node.
fn links(core: &mut Core, links: Vec<Interface>) {
    core.on_links(links, BTreeSet::new(), Instant::now());
}

/// A core attached to eth0 and eth1, as `Agent::start` leaves it.
fn core(names: &[&str]) -> Core {
    let attachments = FakeAttachments {
        attached: [(2, "eth0".to_owned()), (3, "eth1".to_owned())].into(),
        ..Default::default()
    };
    AgentCore::new(
        dataplane(),
        attachments,
        names.iter().map(|n| n.to_string()).collect(),
        DEBOUNCE,
        Metrics::new(),
    )
}

fn update(source: Source, specs: &[&str]) -> SourceUpdate {
    SourceUpdate {
        source,
        vips: set(specs),
    }
}

fn keys(core: &Core) -> Vec<VipKey> {
    core.dataplane.map().entries.keys().copied().collect()
}

fn tick(core: &mut Core, counters: &[(VipKey, VipStats)]) {
    tick_at(core, Instant::now(), counters);
}

fn tick_at(core: &mut Core, now: Instant, counters: &[(VipKey, VipStats)]) {
    core.on_tick(TickInput {
        now,
        ipv6_enabled: |_: &str| true,
        counters,
    });
}

fn ownership(view: View, ips: &[&str]) -> Ownership {
    Ownership {
        vips: ips
            .iter()
            .map(|ip| {
                let service = ServiceRef {
                    namespace: "default".into(),
                    name: "web".into(),
                };
                (ip.parse().expect("ip"), service)
            })
            .collect(),
        interfaces: BTreeMap::new(),
        view,
    }
}

fn fresh(epoch: u64) -> View {
    View::Fresh { epoch }
}

/// Counters with `conflicts` for `key`.
fn conflicts(key: VipKey, conflicts: u64) -> [(VipKey, VipStats); 1] {
    [(
        key,
        VipStats {
            conflicts,
            ..Default::default()
        },
    )]
}

/// A kube-mode core owning 192.0.2.10 on eth0 and eth1 (keys announced
/// cleared).
fn owning_core() -> Core {
    let mut core = core(&[]);
    core.await_cluster();
    core.start(Vec::new()).expect("start");
    core.on_ownership(ownership(fresh(1), &["192.0.2.10"]));
    core.dataplane.announcer_mut().announced.clear();
    core
}

mod claims;
mod cluster;
mod defence;
mod links;
mod nic;
