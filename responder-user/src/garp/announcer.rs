//! Sending announcements: one task with a queue of due rounds, however many
//! VIPs are being announced (a task and a timer per VIP would cost memory in
//! proportion to the Services a node owns). The same task re-announces every
//! owned key once per `--reannounce-interval` (see [`super::periodic`]).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use responder_common::VipKey;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use super::{
    announcement_frames,
    periodic::{Periodic, MAX_PER_TICK, TICK},
    periodic_frame,
    socket::PacketSocket,
    Announce, Rounds,
};
use crate::{
    error::Error,
    metrics::{AnnouncementReason, Metrics},
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
/// one task, so installing VIPs never waits for announcements; and one frame
/// per announced key every `reannounce` (zero: never), until it is withdrawn.
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
    pub(crate) fn new(
        count: u32,
        interval: Duration,
        reannounce: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
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
        let schedule = Schedule::new(
            count,
            interval,
            Periodic::new(reannounce, MAX_PER_TICK, Instant::now()),
            sent.clone(),
            metrics,
        );
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
    reason: AnnouncementReason,
}

/// The announcement task's state: bursts by key, and their next rounds in
/// time order; the announced keys' MACs and periodic slots.
struct Schedule {
    count: u32,
    interval: Duration,
    sent: SentCounts,
    metrics: Arc<Metrics>,
    sockets: Sockets,
    pending: HashMap<VipKey, Pending>,
    due: BTreeSet<(Instant, VipKey)>,
    /// Every key announced and not withdrawn since, with its MAC, while
    /// periodic re-announcement is on.
    owned: HashMap<VipKey, [u8; 6]>,
    periodic: Periodic,
    /// When periodic keys were last handed out, to do so at most once per
    /// [`TICK`].
    last_periodic: Option<Instant>,
}

/// Rounds sent before the task lets others run: a node taking over
/// thousands of VIPs at once must not hog a runtime thread.
const ROUNDS_PER_SLICE: usize = 256;

impl Schedule {
    fn new(
        count: u32,
        interval: Duration,
        periodic: Periodic,
        sent: SentCounts,
        metrics: Arc<Metrics>,
    ) -> Self {
        Schedule {
            count,
            interval,
            sent,
            metrics,
            sockets: Sockets::new(),
            pending: HashMap::new(),
            due: BTreeSet::new(),
            owned: HashMap::new(),
            periodic,
            last_periodic: None,
        }
    }

    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Command>) {
        loop {
            let next = self.due.first().map(|(at, _)| *at);
            let next = match (next, self.next_periodic()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                command = queue.recv() => match command {
                    Some(command) => self.apply(command, Instant::now()),
                    None => return,
                },
                () = sleep_until(next) => {
                    let now = Instant::now();
                    self.send_due(now).await;
                    self.send_periodic(now);
                }
            }
        }
    }

    /// When periodic keys are next handed out: the earliest slot, but not
    /// within a [`TICK`] of the last time.
    fn next_periodic(&self) -> Option<Instant> {
        let at = self.periodic.next_due()?;
        Some(match self.last_periodic {
            Some(last) => at.max(last + TICK),
            None => at,
        })
    }

    /// Sends one frame for each key due for periodic re-announcement, at
    /// most [`MAX_PER_TICK`] keys once per [`TICK`]. A key whose burst is
    /// still going is skipped until its next slot.
    fn send_periodic(&mut self, now: Instant) {
        if self.next_periodic().is_none_or(|at| at > now) {
            return;
        }
        self.last_periodic = Some(now);
        for key in self.periodic.due(now) {
            // A burst going, or an interface without a socket (its bursts
            // log that): nothing to add.
            if self.pending.contains_key(&key) || !self.sockets.contains_key(&key.ifindex) {
                continue;
            }
            let Some(&mac) = self.owned.get(&key) else {
                continue;
            };
            self.send_frames(
                &key,
                [periodic_frame(&key, mac)],
                AnnouncementReason::Periodic,
            );
        }
    }

    fn apply(&mut self, command: Command, now: Instant) {
        match command {
            Command::Announce { key, mac, rounds } => {
                if self.periodic.enabled() {
                    self.owned.insert(key, mac);
                }
                if rounds == Rounds::Once && self.pending.contains_key(&key) {
                    // A burst is on its way already.
                    return;
                }
                self.cancel(&key);
                // Announced now: the next periodic frame waits its turn.
                self.periodic.announced(key, now);
                let (left, reason) = match rounds {
                    Rounds::Burst => (self.count, AnnouncementReason::New),
                    Rounds::Once => (1, AnnouncementReason::Defence),
                };
                if left > 0 {
                    self.pending.insert(
                        key,
                        Pending {
                            mac,
                            left,
                            due: now,
                            reason,
                        },
                    );
                    self.due.insert((now, key));
                }
            }
            Command::Withdraw(key) => {
                self.cancel(&key);
                self.owned.remove(&key);
                self.periodic.remove(&key);
            }
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
            self.send_frames(&key, announcement_frames(&key, pending.mac), pending.reason);
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

    fn send_frames(
        &self,
        key: &VipKey,
        frames: impl IntoIterator<Item = Vec<u8>>,
        reason: AnnouncementReason,
    ) {
        let addr = key_addr(key);
        let Some((name, socket)) = self.sockets.get(&key.ifindex) else {
            tracing::error!(
                %addr,
                ifindex = key.ifindex,
                "no packet socket for interface; VIP not announced"
            );
            return;
        };
        for frame in frames {
            match socket.send(&frame) {
                Ok(()) => {
                    self.sent.add(*key, 1);
                    self.metrics.announcement_sent(reason);
                }
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
        schedule_with(Duration::ZERO, Instant::now())
    }

    fn schedule_with(reannounce: Duration, epoch: Instant) -> Schedule {
        Schedule::new(
            3,
            Duration::from_secs(1),
            Periodic::new(reannounce, MAX_PER_TICK, epoch),
            SentCounts::default(),
            Metrics::new(),
        )
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
    async fn announced_keys_are_tracked_for_periodic_slots_until_withdrawn() {
        let start = Instant::now();
        let mut schedule = schedule_with(Duration::from_secs(60), start);
        let announce = |last, rounds| Command::Announce {
            key: key(last),
            mac: MAC,
            rounds,
        };
        schedule.apply(announce(1, Rounds::Burst), start);
        schedule.apply(announce(2, Rounds::Once), start);
        assert_eq!(schedule.owned.len(), 2);
        assert_eq!(schedule.periodic.len(), 2);
        let first = schedule.next_periodic().expect("periodic slot");
        assert!(
            first >= start + Duration::from_secs(30),
            "not right after a burst"
        );
        // Handing out at most once per tick.
        schedule.send_periodic(first);
        assert_eq!(schedule.last_periodic, Some(first));
        if let Some(next) = schedule.next_periodic() {
            assert!(next >= first + TICK);
        }
        schedule.apply(Command::Withdraw(key(1)), start);
        schedule.apply(Command::Withdraw(key(2)), start);
        assert!(schedule.owned.is_empty());
        assert_eq!(schedule.next_periodic(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn without_reannouncement_nothing_is_tracked() {
        let start = Instant::now();
        let mut schedule = schedule();
        schedule.apply(
            Command::Announce {
                key: key(1),
                mac: MAC,
                rounds: Rounds::Burst,
            },
            start,
        );
        assert!(schedule.owned.is_empty());
        assert_eq!(schedule.next_periodic(), None);
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
