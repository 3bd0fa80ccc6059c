//! Arbitrary bytes through the reference model and its parsers: nothing may
//! panic, and whatever the model answers must itself be left alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use responder_model::{fuzzgen, layer3, link_layer_option, respond_with_nics, Verdict};

fuzz_target!(|data: &[u8]| {
    let vips = fuzzgen::vip_table();
    let nics = fuzzgen::nics();
    let _ = layer3(data);
    if let Some((kind, options)) = data.split_first() {
        let _ = link_layer_option(options, *kind);
    }
    let expected = respond_with_nics(&vips, &nics, fuzzgen::INGRESS_IFINDEX, data);
    if let Verdict::Tx(reply) = expected.verdict {
        assert!(expected.counted.is_some(), "a reply is counted");
        let l3 = layer3(data).expect("a reply has an Ethernet header");
        assert_eq!(
            layer3(&reply).map(|r| r.vlan_ids),
            Some(l3.vlan_ids),
            "VLAN stack kept"
        );
        // Our own reply coming back is neither answered nor a conflict.
        let echoed = respond_with_nics(&vips, &nics, fuzzgen::INGRESS_IFINDEX, &reply);
        assert_eq!(echoed.verdict, Verdict::Pass, "reply answered again");
        assert_eq!(echoed.counted, None, "own reply counted");
    }
});
