//! Roles: announcers own what they can; a standby owns a Service only when
//! no announcer may, and the domain reported is the same whatever the roles.
use super::*;
use crate::cluster::membership::Role;

fn with_roles(roles: &[(&str, Option<Role>)]) -> BTreeMap<String, Member> {
    roles
        .iter()
        .map(|(name, role)| {
            let mut member = settled(Reach::UNKNOWN);
            member.role = *role;
            (name.to_string(), member)
        })
        .collect()
}

fn owners_and_domains(
    members: &BTreeMap<String, Member>,
    services: &[Arc<ServiceFacts>],
    endpoints: Option<&HashMap<ServiceRef, BTreeSet<String>>>,
) -> Vec<(Option<String>, Vec<String>)> {
    let inputs = Inputs {
        lb_class: None,
        members,
        endpoints,
        forbidden: &BTreeMap::new(),
        advertising: None,
        node_labels: &BTreeMap::new(),
    };
    services
        .iter()
        .map(|service| {
            let mut domain = Vec::new();
            let assignment = assign_among(
                service,
                &inputs,
                |_| {},
                |candidates| {
                    domain = candidates.iter().map(|c| (*c).to_owned()).collect();
                },
            )
            .expect("ours");
            (assignment.owner, domain)
        })
        .collect()
}

fn services_with(count: usize, policy: &str) -> Vec<Arc<ServiceFacts>> {
    (0..count)
        .map(|i| {
            let ip = format!("198.51.100.{}", i + 1);
            facts(lb_service(
                &format!("web-{i}"),
                None,
                policy,
                &[(Some(&ip), None)],
            ))
        })
        .collect()
}

fn services(count: usize) -> Vec<Arc<ServiceFacts>> {
    services_with(count, "Cluster")
}

#[test]
fn announcers_own_everything_they_may() {
    let members = with_roles(&[
        ("a", Some(Role::Announcer)),
        ("b", Some(Role::Standby)),
        ("c", Some(Role::Announcer)),
        ("d", Some(Role::Standby)),
    ]);
    let services = services(50);
    let mut owners = BTreeSet::new();
    for (owner, domain) in owners_and_domains(&members, &services, None) {
        assert_eq!(domain, ["a", "b", "c", "d"], "the domain ignores roles");
        owners.insert(owner.expect("an owner"));
    }
    assert_eq!(owners, nodes(&["a", "c"]));
}

#[test]
fn a_standby_owns_what_no_announcer_may() {
    let members = with_roles(&[
        ("a", Some(Role::Announcer)),
        ("b", Some(Role::Standby)),
        ("c", Some(Role::Standby)),
    ]);
    // Local traffic policy with endpoints on the standbys only.
    let local = services_with(20, "Local");
    let endpoints: HashMap<ServiceRef, BTreeSet<String>> = local
        .iter()
        .map(|service| (service.key.clone(), nodes(&["b", "c"])))
        .collect();
    let mut owners = BTreeSet::new();
    for (owner, domain) in owners_and_domains(&members, &local, Some(&endpoints)) {
        assert_eq!(domain, ["b", "c"]);
        owners.insert(owner.expect("an owner"));
    }
    assert_eq!(owners, nodes(&["b", "c"]), "spread among the standbys");
}

#[test]
fn without_roles_everyone_announces_as_before() {
    let members = with_roles(&[("a", None), ("b", None), ("c", None)]);
    let services = services(60);
    let owners: BTreeSet<String> = owners_and_domains(&members, &services, None)
        .into_iter()
        .filter_map(|(owner, _)| owner)
        .collect();
    assert_eq!(owners, nodes(&["a", "b", "c"]));
    let all_standby = with_roles(&[
        ("a", Some(Role::Standby)),
        ("b", Some(Role::Standby)),
        ("c", Some(Role::Standby)),
    ]);
    let same: Vec<_> = owners_and_domains(&all_standby, &services, None);
    let before: Vec<_> = owners_and_domains(&members, &services, None);
    assert_eq!(same, before, "with no announcer, rendezvous over all");
}
