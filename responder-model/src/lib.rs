//! What the responder's data plane must do, stated without its code:
//!
//! - the reference model ([`respond`]): the verdict, reply bytes and counter
//!   moves for any frame, written from the RFCs, which the differential
//!   fuzzer holds the XDP program against;
//! - [`frames`]: test frames and the exact replies expected for them, built
//!   byte by byte for the PROG_TEST_RUN tests and the benchmarks;
//! - [`fuzzgen`]: seeded, structure-aware frame generators and the VIP table
//!   they aim at.
//!
//! Nothing here links the XDP program or the agent, so the model stays an
//! independent opinion and the cargo-fuzz crate can build it with sanitizers.

pub mod frames;
pub mod fuzzgen;
mod model;

pub use model::{
    layer3, link_layer_option, respond, respond_with_nics, Expected, Layer3, MalformedOptions,
    Nics, Verdict, VipTable,
};
