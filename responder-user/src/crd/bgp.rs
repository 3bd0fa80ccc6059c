//! MetalLB's BGP kinds: not this product's job (MetalLB's or FRR's BGP speaker can
//! run beside it). The controller says once that it ignores them.

/// A kind the controller looks for only to say that it ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IgnoredKind {
    pub kind: &'static str,
    pub plural: &'static str,
}

pub const IGNORED_BGP_KINDS: [IgnoredKind; 4] = [
    IgnoredKind {
        kind: "BGPPeer",
        plural: "bgppeers",
    },
    IgnoredKind {
        kind: "BGPAdvertisement",
        plural: "bgpadvertisements",
    },
    IgnoredKind {
        kind: "BFDProfile",
        plural: "bfdprofiles",
    },
    IgnoredKind {
        kind: "Community",
        plural: "communities",
    },
];
