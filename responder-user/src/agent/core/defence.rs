//! Another MAC claims a VIP this node answers for: warn once per growing
//! conflict counter, then defend the VIP, take it back from the data plane's
//! yield, or yield it, depending on how fresh the Kubernetes view is. Claims
//! the data plane reports with the claimant's MAC are answered the same way
//! at once, logged with the MAC and what was done, and remembered.

use std::collections::BTreeSet;
use std::time::Duration;

use responder_common::{claims::Claim, VipKey, VipStats};
use tokio::time::Instant;

use super::{AgentCore, Attachments};
use crate::{
    cluster::View,
    conflicts::{self, ClaimReport, ConflictCounts, Defence},
    dataplane::VipMap,
    error::display_chain,
    garp::Announce,
    interface_names::InterfaceNames,
    vip::key_addr,
};

/// RFC 5227 §2.4 (b): defend an address at most once per DEFEND_INTERVAL.
pub(crate) const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

impl<L: Attachments, M: VipMap, A: Announce> AgentCore<L, M, A> {
    /// Another MAC claimed `key`. With a working view this node is the
    /// owner: it defends the VIP (one announcement, at most every
    /// [`DEFEND_INTERVAL`]), and takes it back if the data plane yielded it
    /// while the agent was late. With a frozen view the claimant more likely
    /// knows better: the VIP is yielded until the view recovers.
    pub(super) fn answer_conflict(&mut self, key: &VipKey, now: Instant) -> Defence {
        if !self.dataplane.installed().contains_key(key) {
            return Defence::NotInstalled;
        }
        let ip = key_addr(key);
        let frozen = matches!(self.view, Some(View::Frozen { .. }));
        let yielded = match self.dataplane.is_yielded(key) {
            Ok(yielded) => yielded,
            Err(e) => {
                tracing::error!(%ip, "reading the VIP's flags: {}", display_chain(&e));
                return Defence::Failed;
            }
        };
        let defence = if frozen {
            if yielded {
                Defence::StillYielded
            } else {
                tracing::warn!(%ip, "another MAC claims a VIP while this node's Kubernetes view is frozen: yielding it until the view recovers");
                if let Err(e) = self.dataplane.yield_key(key) {
                    tracing::error!(%ip, "yielding VIP: {}", display_chain(&e));
                }
                Defence::Yielded
            }
        } else if yielded {
            tracing::warn!(%ip, "the data plane yielded a VIP this node still owns while the agent was late; taking it back");
            self.dataplane
                .reassert(|candidate| candidate == key, &BTreeSet::new());
            self.last_defended.insert(*key, now);
            Defence::TookBack
        } else if self
            .last_defended
            .get(key)
            .is_none_or(|at| now.duration_since(*at) >= DEFEND_INTERVAL)
        {
            tracing::info!(%ip, "defending a VIP this node owns with one announcement");
            self.dataplane.defend(key);
            self.last_defended.insert(*key, now);
            Defence::Defended
        } else {
            Defence::DefendedRecently
        };
        self.metrics.set_yielded(self.dataplane.yielded_count());
        defence
    }

    /// Claims the data plane reported, each naming the claimant's MAC: each
    /// is answered as [`Self::answer_conflict`] decides (at once, not at the
    /// next tick), logged as one line with what was done, and remembered as
    /// the VIP's last claimant. The data plane sends at most one per VIP per
    /// second; the tick that then sees the counter grow finds the VIP just
    /// defended and sends nothing more.
    pub(crate) fn on_claims(&mut self, claims: &[Claim], now: Instant) {
        if claims.is_empty() {
            return;
        }
        let names = self.interface_names();
        for claim in claims {
            let defence = self.answer_conflict(&claim.key, now);
            let report = ClaimReport::new(claim.key, claim.mac, &names, defence, now);
            let service = self.services.service_of(report.ip).map(|s| s.to_string());
            report.log(service.as_deref());
            self.claimants.record(report);
        }
    }

    /// VIPs this node had yielded and takes back now that its view is
    /// complete again: each is told as an answer to its last claim, so the
    /// claims' history (the AddressConflict Events `responder status`
    /// reads) ends with the node answering again, not with the yield.
    pub(super) fn tell_taken_back(&self, keys: &[VipKey]) {
        let names = self.interface_names();
        for key in keys {
            if let Some(last) = self.claimants.last_for_key(key) {
                let report =
                    ClaimReport::new(*key, last.mac, &names, Defence::TookBack, Instant::now());
                report.log(None);
                self.claimants.record(report);
            }
        }
    }

    fn interface_names(&self) -> InterfaceNames {
        self.dataplane
            .interfaces()
            .iter()
            .map(|i| (i.ifindex, i.name.clone()))
            .collect()
    }

    /// Warns once per VIP key whose conflict counter grew since the last
    /// tick (another MAC claimed a VIP this node answers for), and returns
    /// those keys.
    pub(super) fn warn_on_new_conflicts(&mut self, counters: &[(VipKey, VipStats)]) -> Vec<VipKey> {
        let current: ConflictCounts = counters
            .iter()
            .map(|(key, stats)| (*key, stats.conflicts))
            .collect();
        let names = self.interface_names();
        let grown =
            conflicts::warn_on_new_conflicts(&self.last_conflicts, &current, &names, |key| {
                self.services.service_of(key_addr(key))
            });
        self.last_conflicts = current;
        grown.into_iter().map(|g| g.key).collect()
    }
}
