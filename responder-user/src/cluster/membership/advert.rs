//! What a membership Lease says beside "alive": annotations written by its holder
//! and read by every other agent.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::coordination::v1::Lease;

use super::budget::Role;
use crate::cluster::{Families, Reach};

/// The IP families the holder can answer for right now (`IPv4`, `IPv6`,
/// comma-separated, Kubernetes' spelling; empty when nothing serves). A Lease
/// without it is from an agent that predates it: both.
const FAMILIES_ANNOTATION: &str = "responder/ip-families";

/// The subnets (comma-separated prefixes) of the holder's serving interfaces.
const PREFIXES_ANNOTATION: &str = "responder/prefixes";

/// The names (comma-separated) of the holder's serving interfaces, so every
/// agent knows which nodes an L2Advertisement naming interfaces can use.
const INTERFACES_ANNOTATION: &str = "responder/interfaces";

/// How long the holder's Lease lasts after each renewal, in milliseconds: it
/// follows the number of members and the cluster's write budget, and
/// `leaseDurationSeconds` cannot say "1.5 s".
const DURATION_ANNOTATION: &str = "responder/lease-duration-ms";

/// `announcer` or `standby` (see `budget`). A live Lease without it is from
/// an agent that predates roles and announces wherever it is a candidate:
/// while one is live, every agent announces, as they all did then.
const ROLE_ANNOTATION: &str = "responder/role";

/// Set by an agent leaving for a restart (a DaemonSet rolling update): for this
/// many seconds after the Lease last changed, its holder counts as alive, so a
/// restart within the grace moves nothing. Its successor's first renewal
/// removes it.
const RESTART_GRACE_ANNOTATION: &str = "responder/restart-grace-seconds";

fn annotation<'a>(lease: &'a Lease, key: &str) -> Option<&'a str> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// What the holder of `lease` says it can answer for. Prefixes that do not
/// parse are left out (a newer agent may write more than this one reads).
pub(super) fn reach_of(lease: &Lease) -> Reach {
    let families = match annotation(lease, FAMILIES_ANNOTATION) {
        None => Families::BOTH,
        Some(value) => {
            let listed = |family: &str| value.split(',').any(|name| name.trim() == family);
            Families {
                ipv4: listed("IPv4"),
                ipv6: listed("IPv6"),
            }
        }
    };
    let prefixes = annotation(lease, PREFIXES_ANNOTATION)
        .map(|value| {
            value
                .split(',')
                .filter_map(|prefix| prefix.trim().parse::<IpNet>().ok())
                .collect()
        })
        .unwrap_or_default();
    let interfaces = annotation(lease, INTERFACES_ANNOTATION).map(|value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    });
    Reach {
        families,
        prefixes,
        interfaces,
    }
}

/// How long the holder says its Lease lasts; `None` from an agent that
/// predates the annotation (the observer's own setting applies).
pub(super) fn declared_duration_of(lease: &Lease) -> Option<Duration> {
    annotation(lease, DURATION_ANNOTATION)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// The role the holder declares; `None` from an agent that predates roles,
/// or a value this agent does not know (a newer one's), which it treats
/// alike: everyone announces.
pub(super) fn role_of(lease: &Lease) -> Option<Role> {
    match annotation(lease, ROLE_ANNOTATION).map(str::trim) {
        Some("announcer") => Some(Role::Announcer),
        Some("standby") => Some(Role::Standby),
        _ => None,
    }
}

fn role_annotation(role: Role) -> &'static str {
    match role {
        Role::Announcer => "announcer",
        Role::Standby => "standby",
    }
}

/// The restart grace the holder asked for when it left, if any.
pub(super) fn restart_grace_of(lease: &Lease) -> Option<Duration> {
    annotation(lease, RESTART_GRACE_ANNOTATION)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

pub(super) fn families_annotation(families: Families) -> String {
    let mut names = Vec::new();
    if families.ipv4 {
        names.push("IPv4");
    }
    if families.ipv6 {
        names.push("IPv6");
    }
    names.join(",")
}

/// The annotations a renewal writes: what the node reaches now, and no
/// restart grace (a renewal means the agent is back). `None` removes a key in
/// a merge patch.
pub(super) fn renewal_annotations(
    reach: &Reach,
    lease_duration: Duration,
    role: Role,
) -> BTreeMap<&'static str, Option<String>> {
    let prefixes: Vec<String> = reach
        .prefixes
        .iter()
        .map(|net| net.trunc().to_string())
        .collect();
    [
        (
            FAMILIES_ANNOTATION,
            Some(families_annotation(reach.families)),
        ),
        (PREFIXES_ANNOTATION, Some(prefixes.join(","))),
        (
            INTERFACES_ANNOTATION,
            Some(reach.interfaces.as_deref().unwrap_or_default().join(",")),
        ),
        (
            DURATION_ANNOTATION,
            Some(lease_duration.as_millis().to_string()),
        ),
        (ROLE_ANNOTATION, Some(role_annotation(role).to_owned())),
        (RESTART_GRACE_ANNOTATION, None),
    ]
    .into()
}

/// The annotation a departing agent writes to ask for `grace`.
pub(super) fn restart_grace_annotation(grace: Duration) -> (&'static str, String) {
    (
        RESTART_GRACE_ANNOTATION,
        grace.as_secs_f64().ceil().to_string(),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cluster::membership::tests::lease;

    pub(crate) fn annotated(mut lease: Lease, pairs: &[(&str, &str)]) -> Lease {
        lease.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        lease
    }

    pub(crate) fn with_families(lease: Lease, families: &str) -> Lease {
        annotated(lease, &[(FAMILIES_ANNOTATION, families)])
    }

    pub(crate) fn with_duration_ms(lease: Lease, ms: &str) -> Lease {
        annotated(lease, &[(DURATION_ANNOTATION, ms)])
    }

    pub(crate) fn with_grace(lease: Lease, seconds: &str) -> Lease {
        annotated(lease, &[(RESTART_GRACE_ANNOTATION, seconds)])
    }

    #[test]
    fn families_and_prefixes_come_from_annotations_and_their_absence_means_unknown() {
        assert_eq!(reach_of(&lease("old", 1)), Reach::UNKNOWN);
        let v4_only = Families {
            ipv4: true,
            ipv6: false,
        };
        assert_eq!(
            reach_of(&with_families(lease("v4", 1), "IPv4")).families,
            v4_only
        );
        assert_eq!(
            reach_of(&with_families(lease("dual", 1), "IPv4, IPv6")).families,
            Families::BOTH
        );
        assert_eq!(
            reach_of(&with_families(lease("idle", 1), "")).families,
            Families::default()
        );
        let subnets = annotated(
            lease("a", 1),
            &[(
                PREFIXES_ANNOTATION,
                "198.51.100.0/24, nonsense,2001:db8:100::/64",
            )],
        );
        assert_eq!(
            reach_of(&subnets).prefixes,
            vec![
                "198.51.100.0/24".parse::<IpNet>().expect("prefix"),
                "2001:db8:100::/64".parse().expect("prefix"),
            ],
            "what does not parse is left out"
        );
    }

    #[test]
    fn renewals_spell_families_as_kubernetes_does_and_clear_the_grace() {
        let reach = Reach {
            families: Families {
                ipv4: true,
                ipv6: false,
            },
            prefixes: vec!["198.51.100.7/24".parse().expect("prefix")],
            interfaces: Some(vec!["eth0".into(), "eth1".into()]),
        };
        let written = renewal_annotations(&reach, Duration::from_millis(1500), Role::Standby);
        assert_eq!(written[ROLE_ANNOTATION].as_deref(), Some("standby"));
        assert_eq!(written[INTERFACES_ANNOTATION].as_deref(), Some("eth0,eth1"));
        let read = reach_of(&annotated(
            lease("a", 1),
            &[(INTERFACES_ANNOTATION, "eth0, eth1,")],
        ));
        assert_eq!(
            read.interfaces, reach.interfaces,
            "round trip, blanks dropped"
        );
        assert!(read.has_any_interface(&["eth1".into()]));
        assert!(!read.has_any_interface(&["eth2".into()]));
        assert!(
            Reach::UNKNOWN.has_any_interface(&["eth2".into()]),
            "an older agent is not held to names it never published"
        );
        assert_eq!(written[FAMILIES_ANNOTATION].as_deref(), Some("IPv4"));
        assert_eq!(
            written[PREFIXES_ANNOTATION].as_deref(),
            Some("198.51.100.0/24"),
            "the subnet, not the address"
        );
        assert_eq!(written[RESTART_GRACE_ANNOTATION], None);
        assert_eq!(written[DURATION_ANNOTATION].as_deref(), Some("1500"));
        let lease = annotated(lease("a", 1), &[(DURATION_ANNOTATION, "1500")]);
        assert_eq!(
            declared_duration_of(&lease),
            Some(Duration::from_millis(1500))
        );
        let zero = annotated(lease.clone(), &[(DURATION_ANNOTATION, "0")]);
        assert_eq!(declared_duration_of(&zero), None);
        assert_eq!(families_annotation(Families::BOTH), "IPv4,IPv6");
        assert_eq!(families_annotation(Families::default()), "");
    }

    pub(crate) fn with_role(lease: Lease, role: &str) -> Lease {
        annotated(lease, &[(ROLE_ANNOTATION, role)])
    }

    #[test]
    fn roles_round_trip_and_anything_else_is_an_agent_before_roles() {
        for role in [Role::Announcer, Role::Standby] {
            let written = renewal_annotations(&Reach::UNKNOWN, Duration::from_secs(1), role);
            let value = written[ROLE_ANNOTATION].clone().expect("written");
            assert_eq!(role_of(&with_role(lease("a", 1), &value)), Some(role));
        }
        assert_eq!(role_of(&lease("old", 1)), None);
        assert_eq!(role_of(&with_role(lease("new", 1), "reflector")), None);
    }

    #[test]
    fn the_restart_grace_round_trips_in_whole_seconds() {
        let (key, value) = restart_grace_annotation(Duration::from_millis(9_500));
        let lease = annotated(lease("a", 1), &[(key, &value)]);
        assert_eq!(restart_grace_of(&lease), Some(Duration::from_secs(10)));
        assert_eq!(restart_grace_of(&with_grace(lease, "soon")), None);
    }
}
