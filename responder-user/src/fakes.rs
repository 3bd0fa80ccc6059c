//! Test doubles of the kernel-facing traits, shared by the unit tests of
//! the data-plane reconciliation and of the agent's core.

use std::collections::{BTreeMap, BTreeSet};

use responder_common::{VipKey, VipValue};

use crate::{
    dataplane::{Dataplane, VipMap},
    error::Error,
    garp::{Announce, Rounds},
    netif::Interface,
    vip::VipSpec,
};

#[derive(Default)]
pub(crate) struct FakeMap {
    pub(crate) entries: BTreeMap<VipKey, VipValue>,
    pub(crate) fail_inserts: bool,
    pub(crate) fail_removes: bool,
    pub(crate) writes: usize,
}

impl VipMap for FakeMap {
    fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error> {
        if self.fail_inserts {
            return Err(Error::UnknownInterface("injected insert failure".into()));
        }
        self.writes += 1;
        self.entries.insert(*key, *value);
        Ok(())
    }

    fn remove(&mut self, key: &VipKey) -> Result<(), Error> {
        if self.fail_removes {
            return Err(Error::UnknownInterface("injected remove failure".into()));
        }
        self.writes += 1;
        self.entries.remove(key);
        Ok(())
    }

    fn flags(&self, key: &VipKey) -> Result<u32, Error> {
        Ok(self.entries.get(key).map_or(0, |value| value.flags))
    }
}

#[derive(Default)]
pub(crate) struct FakeAnnouncer {
    /// Full bursts started, in order.
    pub(crate) announced: Vec<(VipKey, [u8; 6])>,
    /// Single defending rounds sent, in order.
    pub(crate) defended: Vec<VipKey>,
    pub(crate) withdrawn: Vec<VipKey>,
    pub(crate) interfaces: Vec<u32>,
}

impl Announce for FakeAnnouncer {
    fn announce(&mut self, key: VipKey, mac: [u8; 6], rounds: Rounds) {
        match rounds {
            Rounds::Burst => self.announced.push((key, mac)),
            Rounds::Once => self.defended.push(key),
        }
    }

    fn withdraw(&mut self, key: &VipKey) {
        self.withdrawn.push(*key);
    }

    fn set_interfaces(&mut self, interfaces: &[Interface]) {
        self.interfaces = interfaces.iter().map(|i| i.ifindex).collect();
    }
}

pub(crate) const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
pub(crate) const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

pub(crate) fn interface(name: &str, ifindex: u32, mac: [u8; 6], addrs: &[&str]) -> Interface {
    Interface {
        name: name.into(),
        ifindex,
        mac,
        carrier: true,
        addresses: addrs.iter().map(|a| a.parse().expect("addr")).collect(),
        ipv6: true,
    }
}

pub(crate) fn eth0() -> Interface {
    interface("eth0", 2, MAC0, &["198.51.100.1/24"])
}

pub(crate) fn eth1() -> Interface {
    interface("eth1", 3, MAC1, &[])
}

pub(crate) fn dataplane() -> Dataplane<FakeMap, FakeAnnouncer> {
    Dataplane::new(
        vec![eth0(), eth1()],
        FakeMap::default(),
        FakeAnnouncer::default(),
    )
}

pub(crate) fn set(specs: &[&str]) -> BTreeSet<VipSpec> {
    specs
        .iter()
        .map(|s| s.parse().expect("test spec"))
        .collect()
}

pub(crate) fn v4(ifindex: u32, outer: u16, inner: u16, last: u8) -> VipKey {
    VipKey::v4(ifindex, outer, inner, [192, 0, 2, last])
}

pub(crate) fn value(mac: [u8; 6]) -> VipValue {
    VipValue {
        mac,
        ..Default::default()
    }
}
