//! Test support.
pub mod lab;
pub mod netns;

pub mod apiserver;
pub mod cluster;
pub mod frames;
pub mod fuzzgen;
pub mod loadgen;
pub mod model;
pub mod testrun;
pub mod userspace_responder;
