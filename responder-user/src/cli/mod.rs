//! The `responder` command line, one file per concern: arguments, `run`,
//! and the reports read from the pins.

pub(crate) mod args;
pub(crate) mod controller;
pub(crate) mod report;
pub(crate) mod run;
