//! Each VIP's counters in a slot of its own, and a VIP without one.
use super::*;

#[test]
fn each_vip_counts_in_its_own_slot() {
    let responder = responder();
    let (request, reply) = arp_request_and_reply(DOT1Q);
    assert_answers(&responder, &request, &reply);
    let (ns, na) = ns_and_na(QINQ);
    assert_answers(&responder, &ns, &na);
    assert_answers(&responder, &ns, &na);
    let counted_slots: Vec<(u32, VipStats)> = (0..8)
        .map(|slot| (slot, responder.slot_stats(slot).expect("read a slot")))
        .filter(|(_, counters)| *counters != VipStats::default())
        .collect();
    let slot_of = |key| {
        responder
            .vip(&key)
            .expect("read the VIP entry")
            .counter_slot
    };
    assert_eq!(
        counted_slots,
        vec![
            (slot_of(key4(DOT1Q, VIP4)), counted(1, 1, 0)),
            (slot_of(key6(QINQ, VIP6)), counted(2, 2, 0)),
        ],
        "only the slots of the two VIPs asked for moved"
    );
}

#[test]
fn a_vip_without_a_counter_slot_is_answered_and_counted_nowhere() {
    let mut responder = responder();
    for slot in [NO_COUNTER_SLOT, COUNTER_SLOTS as u32] {
        for key in [key4(Vlan::Untagged, VIP4), key6(Vlan::Untagged, VIP6)] {
            responder
                .insert_vip_as_is(
                    key,
                    VipValue {
                        counter_slot: slot,
                        ..ours()
                    },
                )
                .expect("insert a VIP without counters");
        }
        let (request, reply) = arp_request_and_reply(Vlan::Untagged);
        assert_answers(&responder, &request, &reply);
        let (ns, na) = ns_and_na(Vlan::Untagged);
        assert_answers(&responder, &ns, &na);
        let gratuitous = Arp::gratuitous(OTHER_MAC, VIP4).frame(&broadcast(Vlan::Untagged));
        assert_passes(&responder, &gratuitous, LOOPBACK_IFINDEX);
        for counter_slot in 0..8 {
            assert_eq!(
                responder.slot_stats(counter_slot).expect("read a slot"),
                VipStats::default(),
                "slot {counter_slot} moved for a VIP in slot {slot}"
            );
        }
    }
}
