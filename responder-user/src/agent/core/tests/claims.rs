//! Claims the data plane reports with the claimant's MAC (issue #22):
//! answered at once, remembered per VIP with what was done.

use responder_common::claims::Claim;

use super::*;
use crate::conflicts::Defence;

const CLAIMANT: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn claim(key: VipKey) -> Claim {
    Claim {
        at_ns: 1,
        key,
        mac: CLAIMANT,
        _pad: [0; 6],
    }
}

#[test]
fn a_reported_claim_is_defended_at_once_and_its_mac_remembered() {
    let mut core = owning_core();
    let key = v4(2, 0, 0, 10);
    let start = Instant::now();
    core.on_claims(&[claim(key)], start);
    assert_eq!(core.dataplane.announcer().defended, vec![key]);
    let last = core.claimants().last_for_key(&key).expect("remembered");
    assert_eq!(last.mac, CLAIMANT);
    assert_eq!(last.interface, "eth0");
    assert_eq!(last.defence, Defence::Defended);
    assert_eq!(
        core.claimants()
            .last_for_ip("192.0.2.10".parse().expect("ip"))
            .map(|r| r.claimant()),
        Some("02:00:00:00:00:0b".to_owned())
    );
    // The tick that sees the counter grow for the same claim sends nothing
    // more; a second report within the defence interval neither.
    tick_at(&mut core, start, &conflicts(key, 1));
    core.on_claims(&[claim(key)], start + Duration::from_secs(1));
    assert_eq!(core.dataplane.announcer().defended, vec![key]);
    assert_eq!(
        core.claimants().last_for_key(&key).map(|r| r.defence),
        Some(Defence::DefendedRecently)
    );
}

#[test]
fn a_reported_claim_with_a_frozen_view_is_yielded_and_says_so() {
    let mut core = owning_core();
    let key = v4(3, 0, 0, 10);
    core.on_ownership(ownership(View::Frozen { epoch: 1 }, &["192.0.2.10"]));
    core.on_claims(&[claim(key)], Instant::now());
    assert_eq!(core.dataplane.map().entries[&key].flags, VIP_FLAG_YIELDED);
    let last = core.claimants().last_for_key(&key).expect("remembered");
    assert_eq!(
        (last.interface.as_str(), last.defence),
        ("eth1", Defence::Yielded)
    );
    core.on_claims(&[claim(key)], Instant::now());
    assert_eq!(
        core.claimants().last_for_key(&key).map(|r| r.defence),
        Some(Defence::StillYielded)
    );

    // The view recovers: the VIP is taken back, and told as such, so the
    // last word on the claim is no longer the yield.
    let mut told = core.claimants().subscribe();
    core.on_ownership(ownership(View::Fresh { epoch: 2 }, &["192.0.2.10"]));
    assert_eq!(
        core.dataplane.map().entries[&key].flags,
        0,
        "answered again"
    );
    let report = told.try_recv().expect("the take-back is told");
    assert_eq!((report.key, report.defence), (key, Defence::TookBack));
    assert_eq!(report.mac, last.mac, "naming the last claimant");
}

#[test]
fn a_claim_on_a_vip_no_longer_installed_changes_nothing_but_is_named() {
    let mut core = owning_core();
    let gone = v4(2, 0, 0, 99);
    core.on_claims(&[claim(gone)], Instant::now());
    assert!(core.dataplane.announcer().defended.is_empty());
    assert_eq!(
        core.claimants().last_for_key(&gone).map(|r| r.defence),
        Some(Defence::NotInstalled)
    );
}
