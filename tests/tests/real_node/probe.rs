//! A client probing a VIP through the test, and what its tally must show.
use super::*;

/// Probes `vip` every 10 ms on a thread of its own until told to stop.
pub(super) struct Probe {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Tally>>,
}

impl Probe {
    pub(super) fn start(cluster: &RealCluster, vip: Ipv4Addr) -> Self {
        let prober = ArpProber::on(&cluster.client, CLIENT_IF, cluster.client_v4());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            // Bounded: no step of the test runs longer than this.
            prober.tally_until(vip, PROBE_EVERY, Duration::from_secs(600), &flag)
        });
        Probe {
            stop,
            handle: Some(handle),
        }
    }

    pub(super) fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().expect("running").join().expect("prober")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(super) fn assert_unbroken(what: &str, tally: &Tally, owner_mac: &str) {
    let answered: u64 = tally.replies.values().sum();
    assert!(
        tally.sent > 100,
        "{what}: the probe ran ({} sent)",
        tally.sent
    );
    assert_eq!(
        tally.replies.keys().collect::<Vec<_>>(),
        vec![&owner_mac.to_lowercase()],
        "{what}: only the owner's MAC answers: {tally:?}"
    );
    assert_eq!(
        answered, tally.sent,
        "{what}: every probe answered: {tally:?}"
    );
}

/// The owner of `vip` by the MAC that answers the client.
pub(super) fn owner_of(cluster: &RealCluster, vip: Ipv4Addr) -> String {
    let prober = ArpProber::on(&cluster.client, CLIENT_IF, cluster.client_v4());
    cluster.wait(&format!("one node answers ARP for {vip}"), WAIT, || {
        let macs = prober.answers(vip, Duration::from_millis(300));
        match macs.as_slice() {
            [one] => cluster.node_by_mac(one).map(|n| n.name.clone()),
            _ => None,
        }
    })
}
