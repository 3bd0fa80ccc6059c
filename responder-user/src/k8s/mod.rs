//! What the agent and the controller both read from Kubernetes, below both:
//! a Service's identity and whether it is ours, label selectors in their
//! textual and object forms, and how failed watches are retried. Nothing
//! here imports the agent's or the controller's loops, nor the IPAM core.

mod backoff;
mod order;
mod selector;
mod selector_spec;
mod service;

#[cfg(test)]
pub(crate) mod fixtures;

pub(crate) use backoff::WatchBackoff;
pub(crate) use order::oldest_first;
pub use selector::{LabelSelector, SelectorError};
pub use selector_spec::{LabelSelectorRequirement, LabelSelectorSpec};
pub use service::ServiceRef;
pub(crate) use service::{
    ingress_ips, is_load_balancer, is_ours, is_ours_by, UnusableIngress, SERVICE_NAME_LABEL,
};
