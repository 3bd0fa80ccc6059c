//! Every lab the tests build, from one set of pieces.
//!
//! - [`pair`]: the smallest lab, a client and a node namespace on one veth,
//!   with [`responder::Responder`] (`responder run` without a cluster) on the
//!   node side;
//! - [`kube::KubeLab`], the one builder of simulated clusters: a real
//!   kube-apiserver ([`apiserver`]), any number of [`segment::Segment`]s (a
//!   bridge in a namespace, its client on the bridge), nodes with one
//!   interface on each segment and an [`agent::Agent`] each (`responder run
//!   --kube` in the root namespace), and [`controller::Controller`] replicas.
//!   Its settings the tests use are [`cluster::Cluster`] (one segment, three
//!   nodes), [`segments::Segments`] (two segments, a controller) and
//!   [`controller_lab::ControllerLab`] (the API server and controllers only);
//! - [`real_cluster::RealCluster`]: the same segment joining a real control
//!   plane and kubelet nodes (`tests/k8s/node.sh`).
//!
//! Every name made here carries the test process's PID and a counter, and
//! everything is removed on drop, processes by PID first.
pub mod agent;
pub mod apiserver;
pub mod cluster;
pub mod controller;
pub mod controller_lab;
pub mod kube;
pub mod link;
pub mod pair;
pub mod real_cluster;
pub mod responder;
pub mod segment;
pub mod segments;

/// The clusters of one test binary run one at a time: each is an API
/// server, etcd and agents renewing 1 s Leases, and two side by side on a
/// small CI machine would starve renewals and make ownership flap for
/// reasons that have nothing to do with the code under test. (Each test
/// binary links its own copy of this lock; binaries run one after another.)
pub fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
