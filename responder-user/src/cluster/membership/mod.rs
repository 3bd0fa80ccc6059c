//! Membership: each agent keeps one Lease for its node fresh (`holder`), saying in
//! annotations what the node can answer for (`advert`), and judges the other Leases
//! alive by when it last saw them change, never by the timestamps written in them
//! (`tracker`), so clock skew between nodes cannot expire or prolong a member.

mod advert;
mod budget;
mod holder;
mod tracker;
mod wall_clock;

pub use budget::{Announcers, Cadence, Plan, Role};
pub(crate) use budget::{Roster, PER_DOMAIN};
pub use holder::{announcer_slots, first_lease, membership_cadence, renewal_patch, Departure};
pub(crate) use holder::{depart, hold_lease, Holding};
pub(crate) use tracker::{before_roles, roles_in_force, LeaseTracker, Member};
pub(crate) use wall_clock::member_at;

pub const LEASE_LABEL_KEY: &str = "app.kubernetes.io/component";
pub const LEASE_LABEL_VALUE: &str = "responder-membership";

pub fn lease_selector() -> String {
    format!("{LEASE_LABEL_KEY}={LEASE_LABEL_VALUE}")
}

/// `responder-<node>`. Node names may be 253 characters, as long as any
/// object name, so a long one is cut and suffixed with a hash of the whole
/// name to keep Lease names valid and distinct.
pub fn lease_name(node: &str) -> String {
    const PREFIX: &str = "responder-";
    const MAX_NAME: usize = 253;
    if PREFIX.len() + node.len() <= MAX_NAME {
        return format!("{PREFIX}{node}");
    }
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let suffix = format!("-{hash:016x}");
    // Node names are DNS subdomains (ASCII), so byte slicing is safe; a cut
    // name must still end alphanumeric.
    let kept = node[..MAX_NAME - PREFIX.len() - suffix.len()].trim_end_matches(['-', '.']);
    format!("{PREFIX}{kept}{suffix}")
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;
    use kube::core::ObjectMeta;

    use super::*;
    pub(crate) use advert::tests::with_role;

    pub(crate) fn lease(node: &str, renewed_at_second: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(node)),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.into()),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(renewed_at_second).expect("timestamp"),
                )),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn lease_names_stay_valid_for_the_longest_node_names() {
        assert_eq!(lease_name("node-a"), "responder-node-a");
        let longest_plain = "n".repeat(243);
        assert_eq!(lease_name(&longest_plain).len(), 253);
        // Cut right after the dash: the dash must not be kept.
        let long_a = format!("{}-{}", "n".repeat(225), "a".repeat(27));
        let long_b = format!("{}-{}", "n".repeat(225), "b".repeat(27));
        let (a, b) = (lease_name(&long_a), lease_name(&long_b));
        assert!(a.len() <= 253 && b.len() <= 253, "{a} {b}");
        assert_ne!(a, b, "cut names must stay distinct");
        assert!(!a.contains("--"), "{a}");
        assert_eq!(lease_name(&long_a), a, "stable");
    }
}
