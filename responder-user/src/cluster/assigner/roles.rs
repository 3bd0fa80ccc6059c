//! This node's role in the announcer set, decided after each recomputation
//! and told to its Lease holder.

use tokio::time::Instant;
use tracing::info;

use super::super::announcers::Facts;
use super::{Assigner, Health};

impl Assigner {
    /// Decides this node's role from the current view and publishes the
    /// roster when it changed. Nothing is decided while the view is
    /// incomplete or frozen: the Lease holder keeps the last role. Only
    /// after a recomputation (`changed`: members, Services or Nodes) or
    /// when a grace or delay of the keeper runs out: renewals alone change
    /// nothing here, and a thousand members send ninety a second.
    pub(super) fn decide_role(&mut self, now: Instant, changed: bool) {
        if self.health != Health::Healthy {
            return;
        }
        let due = self.keeper.next_change().is_some_and(|at| at <= now);
        if !changed && !due && self.roster.borrow().role.is_some() {
            return;
        }
        let eligible = self.eligible_members();
        let facts = Facts {
            own: &self.settings.node_name,
            live: &self.last_members,
            eligible: &eligible,
            domains: &self.domains,
        };
        let roster = self.keeper.decide(&facts, now);
        let domains = self.domains.len();
        self.roster.send_if_modified(|current| {
            if current.role != roster.role {
                info!(
                    role = ?roster.role,
                    announcers = roster.announcers,
                    standbys = roster.standbys,
                    domains,
                    "this node's membership role"
                );
            }
            let changed = *current != roster;
            *current = roster;
            changed
        });
    }
}
