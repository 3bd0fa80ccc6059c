//! Sending announcements: one task with a queue of due rounds, however many
//! VIPs are being announced (a task and a timer per VIP would cost memory in
//! proportion to the Services a node owns).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use responder_common::VipKey;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use super::{announcement_frames, socket::PacketSocket, Announce, Rounds};
use crate::{
    error::Error,
    netif::Interface,
    nic::capabilities::privileges_or,
    vip::{key_addr, key_vlan},
};

/// Gratuitous packets sent per VIP key, for metrics.
#[derive(Clone, Debug, Default)]
pub(crate) struct SentCounts(Arc<Mutex<BTreeMap<VipKey, u64>>>);

impl SentCounts {
    pub(crate) fn snapshot(&self) -> BTreeMap<VipKey, u64> {
        self.0.lock().expect("sent counts lock").clone()
    }

    fn add(&self, key: VipKey, packets: u64) {
        *self
            .0
            .lock()
            .expect("sent counts lock")
            .entry(key)
            .or_default() += packets;
    }

    fn forget(&self, key: &VipKey) {
        self.0.lock().expect("sent counts lock").remove(key);
    }
}

type Sockets = HashMap<u32, (String, Arc<PacketSocket>)>;

enum Command {
    Announce {
        key: VipKey,
        mac: [u8; 6],
        rounds: Rounds,
    },
    Withdraw(VipKey),
    Sockets(Sockets),
}

/// Sends each announced VIP's frames `count` times, `interval` apart, from
/// one task, so installing VIPs never waits for announcements.
pub(crate) struct Announcer {
    commands: mpsc::UnboundedSender<Command>,
    sockets: Sockets,
    sent: SentCounts,
    task: JoinHandle<()>,
}

impl Announcer {
    /// Opens a packet socket up front, so missing CAP_NET_RAW is a startup
    /// error rather than a silent failure at the first announcement. Must
    /// run inside a tokio runtime.
    pub(crate) fn new(count: u32, interval: Duration) -> Result<Self, Error> {
        PacketSocket::bind(0).map_err(|source| {
            privileges_or("opening a packet socket", source, |source| {
                Error::PacketSocket {
                    interface: "any".into(),
                    source,
                }
            })
        })?;
        let (commands, queue) = mpsc::unbounded_channel();
        let sent = SentCounts::default();
        let schedule = Schedule {
            count,
            interval,
            sent: sent.clone(),
            sockets: Sockets::new(),
            pending: HashMap::new(),
            due: BTreeSet::new(),
        };
        let task = tokio::spawn(schedule.run(queue));
        Ok(Announcer {
            commands,
            sockets: Sockets::new(),
            sent,
            task,
        })
    }

    pub(crate) fn sent_counts(&self) -> SentCounts {
        self.sent.clone()
    }

    fn send(&self, command: Command) {
        // The task only ends when the announcer is dropped.
        let _ = self.commands.send(command);
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Announce for Announcer {
    fn announce(&mut self, key: VipKey, mac: [u8; 6], rounds: Rounds) {
        self.send(Command::Announce { key, mac, rounds });
    }

    fn withdraw(&mut self, key: &VipKey) {
        self.sent.forget(key);
        self.send(Command::Withdraw(*key));
    }

    fn set_interfaces(&mut self, interfaces: &[Interface]) {
        let before = self.sockets.len();
        self.sockets.retain(|ifindex, (name, _)| {
            interfaces
                .iter()
                .any(|i| i.ifindex == *ifindex && i.name == *name)
        });
        let mut changed = self.sockets.len() != before;
        for interface in interfaces {
            if self.sockets.contains_key(&interface.ifindex) {
                continue;
            }
            match PacketSocket::bind(interface.ifindex) {
                Ok(socket) => {
                    self.sockets.insert(
                        interface.ifindex,
                        (interface.name.clone(), Arc::new(socket)),
                    );
                    changed = true;
                }
                // The interface may vanish again before the socket is bound.
                Err(e) => tracing::warn!(
                    interface = %interface.name,
                    "opening a packet socket: {e}; its VIPs are answered but not announced"
                ),
            }
        }
        if changed {
            self.send(Command::Sockets(self.sockets.clone()));
        }
    }
}

/// A burst in progress.
struct Pending {
    mac: [u8; 6],
    left: u32,
    due: Instant,
}

/// The announcement task's state: bursts by key, and their next rounds in
/// time order.
struct Schedule {
    count: u32,
    interval: Duration,
    sent: SentCounts,
    sockets: Sockets,
    pending: HashMap<VipKey, Pending>,
    due: BTreeSet<(Instant, VipKey)>,
}

/// Rounds sent before the task lets others run: a node taking over
/// thousands of VIPs at once must not hog a runtime thread.
const ROUNDS_PER_SLICE: usize = 256;

impl Schedule {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Command>) {
        loop {
            let next = self.due.first().map(|(at, _)| *at);
            tokio::select! {
                command = queue.recv() => match command {
                    Some(command) => self.apply(command, Instant::now()),
                    None => return,
                },
                () = sleep_until(next) => self.send_due(Instant::now()).await,
            }
        }
    }

    fn apply(&mut self, command: Command, now: Instant) {
        match command {
            Command::Announce { key, mac, rounds } => {
                if rounds == Rounds::Once && self.pending.contains_key(&key) {
                    // A burst is on its way already.
                    return;
                }
                self.cancel(&key);
                let left = match rounds {
                    Rounds::Burst => self.count,
                    Rounds::Once => 1,
                };
                if left > 0 {
                    self.pending.insert(
                        key,
                        Pending {
                            mac,
                            left,
                            due: now,
                        },
                    );
                    self.due.insert((now, key));
                }
            }
            Command::Withdraw(key) => self.cancel(&key),
            Command::Sockets(sockets) => self.sockets = sockets,
        }
    }

    fn cancel(&mut self, key: &VipKey) {
        if let Some(pending) = self.pending.remove(key) {
            self.due.remove(&(pending.due, *key));
        }
    }

    async fn send_due(&mut self, now: Instant) {
        let mut sent_in_slice = 0;
        while let Some(&(at, key)) = self.due.first() {
            if at > now {
                return;
            }
            self.due.pop_first();
            let Some(mut pending) = self.pending.remove(&key) else {
                continue;
            };
            self.send_round(&key, pending.mac);
            pending.left -= 1;
            if pending.left > 0 {
                pending.due = at + self.interval;
                self.due.insert((pending.due, key));
                self.pending.insert(key, pending);
            } else {
                tracing::debug!(addr = %key_addr(&key), vlan = %key_vlan(&key), "announced");
            }
            sent_in_slice += 1;
            if sent_in_slice == ROUNDS_PER_SLICE {
                sent_in_slice = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    fn send_round(&self, key: &VipKey, mac: [u8; 6]) {
        let addr = key_addr(key);
        let Some((name, socket)) = self.sockets.get(&key.ifindex) else {
            tracing::error!(
                %addr,
                ifindex = key.ifindex,
                "no packet socket for interface; VIP not announced"
            );
            return;
        };
        for frame in announcement_frames(key, mac) {
            match socket.send(&frame) {
                Ok(()) => self.sent.add(*key, 1),
                Err(e) => {
                    tracing::warn!(%addr, interface = %name, vlan = %key_vlan(key), "sending announcement: {e}")
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            count: 3,
            interval: Duration::from_secs(1),
            sent: SentCounts::default(),
            sockets: Sockets::new(),
            pending: HashMap::new(),
            due: BTreeSet::new(),
        }
    }

    fn key(last: u8) -> VipKey {
        VipKey::v4(2, 0, 0, [192, 0, 2, last])
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[tokio::test(start_paused = true)]
    async fn bursts_go_round_by_round_and_a_defence_never_cuts_one_short() {
        let mut schedule = schedule();
        let start = Instant::now();
        let announce = |rounds| Command::Announce {
            key: key(1),
            mac: MAC,
            rounds,
        };
        schedule.apply(announce(Rounds::Burst), start);
        schedule.send_due(start).await;
        assert_eq!(schedule.pending[&key(1)].left, 2);
        schedule.apply(announce(Rounds::Once), start);
        assert_eq!(schedule.pending[&key(1)].left, 2, "the burst goes on");
        for second in 1..=2 {
            schedule.send_due(start + Duration::from_secs(second)).await;
        }
        assert!(schedule.pending.is_empty() && schedule.due.is_empty());

        schedule.apply(announce(Rounds::Once), start);
        assert_eq!(schedule.pending[&key(1)].left, 1);
        schedule.apply(Command::Withdraw(key(1)), start);
        assert!(schedule.pending.is_empty() && schedule.due.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn ten_thousand_bursts_share_one_queue() {
        let mut schedule = schedule();
        let start = Instant::now();
        for i in 0..10_000u32 {
            let key = VipKey::v6(2, 0, 0, {
                let mut addr = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                addr[12..].copy_from_slice(&i.to_be_bytes());
                addr
            });
            schedule.apply(
                Command::Announce {
                    key,
                    mac: MAC,
                    rounds: Rounds::Burst,
                },
                start,
            );
        }
        assert_eq!(schedule.due.len(), 10_000);
        schedule.send_due(start).await;
        assert_eq!(schedule.due.len(), 10_000, "rescheduled for the next round");
        assert!(schedule
            .due
            .iter()
            .all(|(at, _)| *at == start + Duration::from_secs(1)));
    }
}
