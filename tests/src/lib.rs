//! Test support.
pub mod netns;
pub mod lab;

pub mod frames;
pub mod testrun;
pub mod model;
pub mod fuzzgen;
pub mod apiserver;
pub mod cluster;
pub mod loadgen;
pub mod userspace_responder;
