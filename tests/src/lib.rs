//! Test support.
pub mod lab;
pub mod netns;
pub mod prober;
pub mod real_cluster;

pub mod apiserver;
pub mod bench;
pub mod bulk_services;
pub mod cluster;
pub mod controller_lab;
pub mod oracle;
pub mod packet_socket;
pub mod segments;
pub mod testrun;
pub mod userspace_responder;
pub mod vlan_offload;
