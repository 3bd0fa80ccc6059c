#![no_std]
// The library target exists so `responder-user` can name this crate as a
// build dependency (aya-build relies on that to rebuild on changes).
