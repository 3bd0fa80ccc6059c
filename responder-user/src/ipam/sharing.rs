//! MetalLB's `allow-shared-ip` rule: Services share an address only when all of them
//! carry the same sharing key, select the same pods when their traffic policy is
//! Local, and no port/protocol pair is used twice.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::error::SharingConflict;
use super::request::Sharing;
use crate::k8s::ServiceRef;

/// The Services holding one address.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddressUse {
    pub holders: BTreeMap<ServiceRef, Sharing>,
}

impl AddressUse {
    /// Whether `service` may hold `address` too. A Service never conflicts with
    /// itself, so a sole holder may change its key or ports in place.
    pub(crate) fn admits(
        &self,
        address: IpAddr,
        service: &ServiceRef,
        sharing: &Sharing,
    ) -> Result<(), SharingConflict> {
        for (holder, theirs) in self.holders.iter().filter(|(h, _)| *h != service) {
            let holder = holder.clone();
            let (ours_key, theirs_key) = match (&sharing.key, &theirs.key) {
                (None, _) => return Err(SharingConflict::ClaimantDoesNotShare { address, holder }),
                (_, None) => return Err(SharingConflict::HolderDoesNotShare { address, holder }),
                (Some(ours), Some(theirs)) => (ours, theirs),
            };
            if ours_key != theirs_key {
                return Err(SharingConflict::KeyMismatch {
                    address,
                    holder,
                    ours: ours_key.clone(),
                    theirs: theirs_key.clone(),
                });
            }
            if sharing.backend != theirs.backend {
                let show = |b: &Option<String>| b.clone().unwrap_or_else(|| "any".into());
                return Err(SharingConflict::BackendMismatch {
                    address,
                    holder,
                    ours: show(&sharing.backend),
                    theirs: show(&theirs.backend),
                });
            }
            if let Some(&port) = sharing
                .ports
                .iter()
                .find(|p| theirs.ports.binary_search(p).is_ok())
            {
                return Err(SharingConflict::PortInUse {
                    address,
                    port,
                    holder,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::port::ServicePort;

    fn address() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    fn sharing(key: Option<&str>, ports: &[ServicePort]) -> Sharing {
        Sharing {
            key: key.map(str::to_owned),
            backend: None,
            ports: ports.to_vec(),
        }
    }

    fn held_by(name: &str, sharing: Sharing) -> AddressUse {
        AddressUse {
            holders: [(ServiceRef::new("default", name), sharing)].into(),
        }
    }

    fn me() -> ServiceRef {
        ServiceRef::new("default", "me")
    }

    #[test]
    fn same_key_and_distinct_ports_share() {
        let used = held_by("dns-tcp", sharing(Some("dns"), &[ServicePort::tcp(53)]));
        assert_eq!(
            used.admits(
                address(),
                &me(),
                &sharing(Some("dns"), &[ServicePort::udp(53)])
            ),
            Ok(())
        );
    }

    #[test]
    fn same_port_and_protocol_conflicts() {
        let used = held_by(
            "a",
            sharing(Some("k"), &[ServicePort::tcp(80), ServicePort::tcp(443)]),
        );
        let err = used
            .admits(
                address(),
                &me(),
                &sharing(Some("k"), &[ServicePort::tcp(443)]),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "port TCP/443 on 192.0.2.1 is already used by default/a"
        );
    }

    #[test]
    fn keys_must_be_present_and_equal() {
        let keyed = held_by("a", sharing(Some("k"), &[ServicePort::tcp(80)]));
        let unkeyed = held_by("a", sharing(None, &[ServicePort::tcp(80)]));
        let other_port = [ServicePort::tcp(81)];
        assert!(matches!(
            keyed.admits(address(), &me(), &sharing(None, &other_port)),
            Err(SharingConflict::ClaimantDoesNotShare { .. })
        ));
        assert!(matches!(
            unkeyed.admits(address(), &me(), &sharing(Some("k"), &other_port)),
            Err(SharingConflict::HolderDoesNotShare { .. })
        ));
        assert!(matches!(
            keyed.admits(address(), &me(), &sharing(Some("other"), &other_port)),
            Err(SharingConflict::KeyMismatch { .. })
        ));
    }

    #[test]
    fn local_traffic_needs_the_same_backend() {
        let mut theirs = sharing(Some("k"), &[ServicePort::tcp(80)]);
        theirs.backend = Some("app=a".into());
        let used = held_by("a", theirs);
        let mut ours = sharing(Some("k"), &[ServicePort::tcp(81)]);
        ours.backend = Some("app=b".into());
        assert!(matches!(
            used.admits(address(), &me(), &ours),
            Err(SharingConflict::BackendMismatch { .. })
        ));
        ours.backend = Some("app=a".into());
        assert_eq!(used.admits(address(), &me(), &ours), Ok(()));
    }

    #[test]
    fn a_sole_holder_may_change_in_place() {
        let used = held_by("me", sharing(None, &[ServicePort::tcp(80)]));
        assert_eq!(
            used.admits(
                address(),
                &me(),
                &sharing(Some("new"), &[ServicePort::tcp(80)])
            ),
            Ok(())
        );
    }
}
