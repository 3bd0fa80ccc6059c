//! A short, fixed-seed run of the differential fuzzer (`cargo xtask fuzz`
//! runs the long ones): the XDP program under BPF_PROG_TEST_RUN must agree
//! with the reference model on verdict, bytes and counters. Needs root.

use std::collections::BTreeMap;

use responder_common::{VipKey, VipStats};
use responder_model::{
    fuzzgen::{generate, nics, vip_table, Rng, INGRESS_IFINDEX},
    respond_with_nics, Verdict,
};
use responder_tests::testrun::{hex, LoadedResponder, XDP_PASS, XDP_TX};

const FRAMES: usize = 20_000;
const SEED: u64 = 0x5eed;

#[test]
fn program_agrees_with_the_model_on_generated_frames() {
    let mut responder = LoadedResponder::load().expect("load the XDP program");
    let vips = vip_table();
    for (key, value) in &vips {
        responder.insert_vip(*key, *value).expect("insert VIP");
    }
    let nics = nics();
    for mac in &nics.own_macs {
        responder.add_own_mac(*mac).expect("insert own MAC");
    }
    let mut expected_totals: BTreeMap<VipKey, VipStats> =
        vips.keys().map(|key| (*key, VipStats::default())).collect();
    let mut rng = Rng::new(SEED);
    for _ in 0..FRAMES {
        let generated = generate(&mut rng);
        let frame = &generated.frame;
        let expected = respond_with_nics(&vips, &nics, INGRESS_IFINDEX, frame);
        let (action, output) = responder.run(frame, INGRESS_IFINDEX);
        match &expected.verdict {
            Verdict::Pass => assert!(
                action == XDP_PASS && output == *frame,
                "{}: model passes {}, program gave action {action}, {}",
                generated.class.name(),
                hex(frame),
                hex(&output)
            ),
            Verdict::Tx(reply) => assert!(
                action == XDP_TX && output == *reply,
                "{}: model answers {} with {}, program gave action {action}, {}",
                generated.class.name(),
                hex(frame),
                hex(reply),
                hex(&output)
            ),
        }
        if let Some((key, delta)) = expected.counted {
            expected_totals
                .get_mut(&key)
                .expect("counted keys are VIPs")
                .add(&delta);
        }
    }
    for (key, totals) in &expected_totals {
        let counted = responder.stats(key).expect("read VIP counters");
        assert_eq!(counted, *totals, "counters of {key:?}");
    }
}
