//! Receive VLAN offload hides tags from XDP: with `rx-vlan-offload` on (the
//! default of most NICs) the NIC moves a frame's 802.1Q tag into packet
//! metadata, and the program sees an untagged frame. A request from VLAN
//! 100 then matches untagged VIPs and never VLAN-scoped ones. So the agent
//! turns the tag-stripping offloads off on each interface it attaches to,
//! records what it changed in a pinned map, and turns them back on when the
//! program goes away for good (clean exit, `responder cleanup`). It never
//! fights an operator: an offload it finds already off is left alone and
//! never "restored", and one it turned off but finds on again is given up
//! (with a warning) rather than turned off a second time.
//!
//! The plan is pure ([`plan_turn_off`], [`plan_restore`]); [`Nic`] is the
//! IO seam (ethtool in the agent, a fake in tests).

use responder_common::nic::{OFFLOAD_RX_VLAN_CTAG, OFFLOAD_RX_VLAN_STAG};

use super::ethtool::{Ethtool, EthtoolError, FeatureState, Features};

/// The features that strip VLAN tags on receive, by their ethtool names
/// (`rx-vlan-offload` is shown for `rx-vlan-hw-parse`), with the bit the
/// record keeps for each.
pub const TAG_STRIPPING: [(&str, u32); 2] = [
    ("rx-vlan-hw-parse", OFFLOAD_RX_VLAN_CTAG),
    ("rx-vlan-stag-hw-parse", OFFLOAD_RX_VLAN_STAG),
];

/// Whether the agent may touch the offloads of the interfaces it attaches to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum VlanOffloadPolicy {
    /// Turn tag stripping off on attach, back on at cleanup.
    #[default]
    TurnOff,
    /// Leave the NIC as it is (VLAN-scoped VIPs are then only answered
    /// where tag stripping is already off).
    Leave,
}

/// What attaching to one interface does about its offloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnOffPlan {
    /// Bits to request off now.
    pub turn_off: u32,
    /// Bits the record keeps afterwards: turned off now or earlier and
    /// still off.
    pub record: u32,
    /// Bits on and `[fixed]`: the driver cannot stop stripping tags.
    pub fixed_on: u32,
    /// Bits this agent (or a previous one) turned off and someone turned
    /// back on: left on.
    pub turned_back_on: u32,
}

/// The plan for an interface whose tag-stripping features are `states`
/// (by record bit; None where the driver lacks the feature), given the bits
/// already `recorded` for it. Decided on what is *requested*, not what is
/// active: a request is what an operator (or the kernel default) set.
pub fn plan_turn_off(states: &[(u32, Option<FeatureState>)], recorded: u32) -> TurnOffPlan {
    let mut plan = TurnOffPlan::default();
    for (bit, state) in states {
        let Some(state) = state else { continue };
        let ours = recorded & bit != 0;
        match (state.requested, ours) {
            (false, true) => plan.record |= bit,
            (false, false) => {}
            (true, true) => plan.turned_back_on |= bit,
            (true, false) if state.changeable => {
                plan.turn_off |= bit;
                plan.record |= bit;
            }
            (true, false) => {
                if state.active {
                    plan.fixed_on |= bit;
                }
            }
        }
    }
    plan
}

/// The bits to request on again for an interface with `recorded` bits:
/// those still requested off. One turned back on meanwhile needs nothing.
pub fn plan_restore(states: &[(u32, Option<FeatureState>)], recorded: u32) -> u32 {
    states
        .iter()
        .filter(|(bit, state)| {
            recorded & bit != 0 && state.is_some_and(|s| !s.requested && s.changeable)
        })
        .fold(0, |bits, (bit, _)| bits | bit)
}

/// The feature names behind `bits`, for log lines.
pub fn names(bits: u32) -> String {
    TAG_STRIPPING
        .iter()
        .filter(|(_, bit)| bits & bit != 0)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reading and requesting an interface's tag-stripping features.
pub trait Nic {
    /// The state of each [`TAG_STRIPPING`] feature, by record bit.
    fn tag_stripping(
        &self,
        interface: &str,
    ) -> Result<Vec<(u32, Option<FeatureState>)>, EthtoolError>;
    /// Requests the features behind `bits` on or off; false when the driver
    /// kept some as they were.
    fn request(&self, interface: &str, bits: u32, on: bool) -> Result<bool, EthtoolError>;
}

/// The real NICs of the current network namespace, through ethtool.
pub struct EthtoolNic {
    ethtool: Ethtool,
}

impl EthtoolNic {
    pub fn open() -> std::io::Result<Self> {
        Ok(EthtoolNic {
            ethtool: Ethtool::open()?,
        })
    }

    fn features(&self, interface: &str) -> Result<Features, EthtoolError> {
        self.ethtool.features(interface)
    }
}

impl Nic for EthtoolNic {
    fn tag_stripping(
        &self,
        interface: &str,
    ) -> Result<Vec<(u32, Option<FeatureState>)>, EthtoolError> {
        let features = self.features(interface)?;
        Ok(TAG_STRIPPING
            .iter()
            .map(|(name, bit)| (*bit, features.get(name)))
            .collect())
    }

    fn request(&self, interface: &str, bits: u32, on: bool) -> Result<bool, EthtoolError> {
        let features = self.features(interface)?;
        let changes: Vec<(&str, bool)> = TAG_STRIPPING
            .iter()
            .filter(|(_, bit)| bits & bit != 0)
            .map(|(name, _)| (*name, on))
            .collect();
        self.ethtool.request(interface, &features, &changes)
    }
}

/// Turns tag stripping off on `interface` according to the plan for its
/// `recorded` bits, logging what it did; returns the bits to record (0:
/// drop the record). Errors are logged, never fatal: an interface whose
/// offloads cannot be read still gets its untagged VIPs answered.
pub fn turn_off(nic: &dyn Nic, interface: &str, recorded: u32) -> u32 {
    let states = match nic.tag_stripping(interface) {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!(
                interface,
                "cannot read offloads ({}); VLAN-scoped VIPs there may not be answered",
                crate::error::display_chain(&e)
            );
            return recorded;
        }
    };
    let plan = plan_turn_off(&states, recorded);
    if plan.turned_back_on != 0 {
        tracing::warn!(
            interface,
            features = names(plan.turned_back_on),
            "VLAN tag stripping was turned back on after the responder turned it off; leaving it on, so VLAN-scoped VIPs on this interface are not answered and requests from VLANs may match untagged VIPs"
        );
    }
    if plan.fixed_on != 0 {
        tracing::warn!(
            interface,
            features = names(plan.fixed_on),
            "the driver strips VLAN tags and cannot stop ([fixed]): XDP sees tagged requests untagged, so VLAN-scoped VIPs on this interface are not answered"
        );
    }
    if plan.turn_off == 0 {
        return plan.record;
    }
    match nic.request(interface, plan.turn_off, false) {
        Ok(complete) => {
            tracing::info!(
                interface,
                features = names(plan.turn_off),
                "turned receive VLAN offload off so XDP sees VLAN tags; it is turned back on when the responder detaches for good (clean exit or `responder cleanup`)"
            );
            if !complete {
                tracing::warn!(
                    interface,
                    "the driver did not apply every offload change; check `ethtool -k {interface}`"
                );
            }
            plan.record
        }
        Err(e) => {
            tracing::warn!(interface, "cannot turn receive VLAN offload off ({}); VLAN-scoped VIPs there may not be answered", crate::error::display_chain(&e));
            plan.record & !plan.turn_off
        }
    }
}

/// Turns back on what the record says this agent turned off on
/// `interface`, unless someone turned it on already; logs what it did.
pub fn restore(nic: &dyn Nic, interface: &str, recorded: u32) {
    let states = match nic.tag_stripping(interface) {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!(
                interface,
                "cannot read offloads to restore them: {}",
                crate::error::display_chain(&e)
            );
            return;
        }
    };
    let bits = plan_restore(&states, recorded);
    if bits == 0 {
        return;
    }
    match nic.request(interface, bits, true) {
        Ok(_) => tracing::info!(
            interface,
            features = names(bits),
            "turned receive VLAN offload back on"
        ),
        Err(e) => tracing::warn!(
            interface,
            "cannot turn receive VLAN offload back on: {}",
            crate::error::display_chain(&e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, collections::BTreeMap, io};

    use super::*;

    const CTAG: u32 = OFFLOAD_RX_VLAN_CTAG;
    const STAG: u32 = OFFLOAD_RX_VLAN_STAG;

    fn state(changeable: bool, requested: bool) -> Option<FeatureState> {
        Some(FeatureState {
            changeable,
            requested,
            active: requested,
        })
    }

    #[test]
    fn default_offloads_are_turned_off_and_recorded() {
        let plan = plan_turn_off(&[(CTAG, state(true, true)), (STAG, state(true, true))], 0);
        assert_eq!(
            plan,
            TurnOffPlan {
                turn_off: CTAG | STAG,
                record: CTAG | STAG,
                ..TurnOffPlan::default()
            }
        );
    }

    #[test]
    fn an_offload_already_off_is_neither_touched_nor_recorded() {
        let plan = plan_turn_off(&[(CTAG, state(true, false)), (STAG, None)], 0);
        assert_eq!(plan, TurnOffPlan::default());
        assert_eq!(plan_restore(&[(CTAG, state(true, false))], 0), 0);
    }

    #[test]
    fn a_recorded_offload_still_off_stays_recorded_and_is_restored() {
        let states = [(CTAG, state(true, false)), (STAG, state(true, false))];
        let plan = plan_turn_off(&states, CTAG | STAG);
        assert_eq!(plan.turn_off, 0);
        assert_eq!(plan.record, CTAG | STAG);
        assert_eq!(plan_restore(&states, CTAG | STAG), CTAG | STAG);
    }

    #[test]
    fn an_offload_turned_back_on_by_someone_is_not_fought() {
        let states = [(CTAG, state(true, true)), (STAG, state(true, false))];
        let plan = plan_turn_off(&states, CTAG | STAG);
        assert_eq!(plan.turn_off, 0, "not turned off a second time");
        assert_eq!(plan.turned_back_on, CTAG);
        assert_eq!(plan.record, STAG);
        assert_eq!(
            plan_restore(&states, CTAG | STAG),
            STAG,
            "only what is still off"
        );
    }

    #[test]
    fn fixed_offloads_are_reported_not_changed() {
        let fixed_on = Some(FeatureState {
            changeable: false,
            requested: true,
            active: true,
        });
        let plan = plan_turn_off(&[(CTAG, fixed_on), (STAG, state(false, false))], 0);
        assert_eq!(plan.fixed_on, CTAG);
        assert_eq!(plan.turn_off, 0);
        assert_eq!(plan.record, 0);
    }

    /// Features by interface and bit; requests applied unless `refuse`.
    #[derive(Default)]
    struct FakeNic {
        requested: RefCell<BTreeMap<(String, u32), bool>>,
        refuse: bool,
    }

    impl Nic for FakeNic {
        fn tag_stripping(
            &self,
            interface: &str,
        ) -> Result<Vec<(u32, Option<FeatureState>)>, EthtoolError> {
            let requested = self.requested.borrow();
            Ok([CTAG, STAG]
                .iter()
                .map(|bit| {
                    (
                        *bit,
                        requested
                            .get(&(interface.to_owned(), *bit))
                            .map(|on| FeatureState {
                                changeable: true,
                                requested: *on,
                                active: *on,
                            }),
                    )
                })
                .collect())
        }

        fn request(&self, interface: &str, bits: u32, on: bool) -> Result<bool, EthtoolError> {
            if self.refuse {
                return Err(EthtoolError {
                    interface: interface.to_owned(),
                    action: "changing features",
                    source: io::Error::from_raw_os_error(libc::EPERM),
                });
            }
            for bit in [CTAG, STAG] {
                if bits & bit != 0 {
                    self.requested
                        .borrow_mut()
                        .insert((interface.to_owned(), bit), on);
                }
            }
            Ok(true)
        }
    }

    #[test]
    fn turn_off_then_restore_round_trips_through_the_nic() {
        let nic = FakeNic::default();
        nic.requested
            .borrow_mut()
            .insert(("eth0".into(), CTAG), true);
        let recorded = turn_off(&nic, "eth0", 0);
        assert_eq!(recorded, CTAG, "eth0 has no S-tag feature");
        assert!(!nic.requested.borrow()[&("eth0".into(), CTAG)]);
        // A restarted agent finds its record and does not change anything.
        assert_eq!(turn_off(&nic, "eth0", recorded), CTAG);
        restore(&nic, "eth0", recorded);
        assert!(nic.requested.borrow()[&("eth0".into(), CTAG)]);
    }

    #[test]
    fn a_refused_change_is_not_recorded() {
        let nic = FakeNic {
            refuse: true,
            ..FakeNic::default()
        };
        nic.requested
            .borrow_mut()
            .insert(("eth0".into(), CTAG), true);
        assert_eq!(turn_off(&nic, "eth0", 0), 0);
    }
}
