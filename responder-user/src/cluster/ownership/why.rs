//! The problem ownership reports for an address it leaves unannounced, one
//! function per filter that can leave no node.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::super::membership::Member;
use super::super::nodes::OwnAddress;
use super::super::reason::{Problem, Reason};
use crate::crd::Advertisement;
use crate::ipam::{reserved_anycast, IpFamily};

type Labels = BTreeMap<String, String>;

/// A node's own address, or a reserved anycast address (RFC 4291 §2.6.1,
/// RFC 2526) which no pool of ours hands out but another controller may
/// have written: refused by every agent alike.
pub(super) fn refused(ip: IpAddr, forbidden: &BTreeMap<IpAddr, OwnAddress>) -> Option<Problem> {
    if let Some(own) = forbidden.get(&ip) {
        let problem = Problem::new(
            Reason::NodeAddress,
            Some(ip),
            format!("ingress ip {ip} is not answered for: it is {}", own.what),
        );
        let mut problem = problem.caused_by(format!("Node/{}", own.node));
        problem.local_only = own.local_only;
        return Some(problem);
    }
    let reserved = reserved_anycast(ip)?;
    Some(Problem::new(
        Reason::ReservedAnycast,
        Some(ip),
        format!("ingress ip {ip} is not answered for: it is {reserved}"),
    ))
}

pub(super) fn no_eligible_node(ip: IpAddr) -> Problem {
    Problem::new(
        Reason::NoEligibleNode,
        Some(ip),
        format!(
            "ingress ip {ip} is not answered for: no node is live and eligible \
             (each is excluded, or runs no live agent)"
        ),
    )
}

pub(super) fn no_local_endpoint(ip: IpAddr) -> Problem {
    Problem::new(
        Reason::NoLocalEndpoint,
        Some(ip),
        format!(
            "ingress ip {ip} is not answered for: externalTrafficPolicy is Local and no \
             live, eligible node has a ready endpoint of the Service"
        ),
    )
}

/// The advertisements covering `ip` admit none of `members`: their
/// `nodeSelectors` match none, or those they match lack the interfaces
/// they name.
pub(super) fn not_admitted<'l>(
    ip: IpAddr,
    covering: &[&Advertisement],
    members: &[(&String, &Member)],
    labels_of: impl Fn(&str) -> &'l Labels,
    owner: Option<&str>,
) -> Problem {
    // One owner per Service: an address whose advertisements select other
    // nodes than the one its Service's other addresses chose stays out.
    let but = match owner {
        Some(owner) => format!(" (the Service's other addresses chose owner {owner})"),
        None => String::new(),
    };
    let names: Vec<&str> = covering.iter().map(|adv| adv.name()).collect();
    let object = match names.as_slice() {
        [one] => format!("L2Advertisement/{one}"),
        _ => format!("L2Advertisement/{{{}}}", names.join(",")),
    };
    let selected = covering.iter().any(|adv| {
        members
            .iter()
            .any(|(node, _)| adv.covers_node(labels_of(node)))
    });
    let problem = match selected {
        true => {
            let mut interfaces: Vec<&str> = covering
                .iter()
                .flat_map(|adv| adv.interfaces())
                .map(String::as_str)
                .collect();
            interfaces.sort_unstable();
            interfaces.dedup();
            Problem::new(
                Reason::InterfaceMissing,
                Some(ip),
                format!(
                    "ingress ip {ip} is not answered for: no live node that {object} selects \
                     has any of its interfaces [{}] up and attached{but}",
                    interfaces.join(", ")
                ),
            )
        }
        false => Problem::new(
            Reason::NoNodeSelected,
            Some(ip),
            format!(
                "ingress ip {ip} is not answered for: the nodeSelectors of {object} match \
                 no live, eligible node{but}"
            ),
        ),
    };
    problem.caused_by(object)
}

pub(super) fn no_serving_interface(ip: IpAddr) -> Problem {
    Problem::new(
        Reason::NoServingInterface,
        Some(ip),
        format!(
            "ingress ip {ip} is not answered for: no live node has a serving {} interface",
            IpFamily::of(ip)
        ),
    )
}
