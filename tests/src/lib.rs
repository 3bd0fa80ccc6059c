//! Test support.
pub mod netns;
pub mod lab;

pub mod frames;
pub mod testrun;
