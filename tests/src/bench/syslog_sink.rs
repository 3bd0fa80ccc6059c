//! A `/dev/log` that reads and discards, for machines without a syslog
//! daemon. farpd logs every reply with syslog(3); glibc, finding no
//! `/dev/log`, writes each line to `/dev/console` instead — on a VM a
//! 9600-baud serial console, which would then be what limits farpd, as on
//! no real node. A node's syslog daemon does at least what the sink does
//! for each line (one read), so the sink runs on the node CPU and its CPU
//! time counts as part of farpd's.
use std::{
    io::ErrorKind,
    os::unix::{fs::MetadataExt as _, net::UnixDatagram},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicI32, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::threads::{current_tid, own_thread_runtime, pin_current_thread};

const DEV_LOG: &str = "/dev/log";
/// How often the reader looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Upper bound on the sink's life, should its owner never stop it.
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

pub(super) struct SyslogSink {
    /// Inode of the socket made here: only that one is removed again.
    inode: u64,
    stop: Arc<AtomicBool>,
    tid: Arc<AtomicI32>,
    reader: Option<JoinHandle<()>>,
}

impl SyslogSink {
    /// The sink, reading on `cpu`; None when `/dev/log` exists (a syslog
    /// daemon of the machine's own, left alone).
    pub(super) fn start(cpu: usize) -> Option<SyslogSink> {
        if Path::new(DEV_LOG).exists() {
            return None;
        }
        let socket = UnixDatagram::bind(DEV_LOG).expect("bind /dev/log");
        let inode = std::fs::metadata(DEV_LOG).expect("stat /dev/log").ino();
        socket
            .set_read_timeout(Some(POLL))
            .expect("read timeout on /dev/log");
        let stop = Arc::new(AtomicBool::new(false));
        let tid = Arc::new(AtomicI32::new(0));
        let reader = {
            let (stop, tid) = (Arc::clone(&stop), Arc::clone(&tid));
            thread::spawn(move || {
                pin_current_thread(cpu);
                tid.store(current_tid(), Ordering::Relaxed);
                let started = Instant::now();
                let mut line = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_LIFETIME {
                    match socket.recv(&mut line) {
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) => {}
                        Err(e) => panic!("reading /dev/log: {e}"),
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while tid.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            thread::yield_now();
        }
        Some(SyslogSink {
            inode,
            stop,
            tid,
            reader: Some(reader),
        })
    }

    /// On-CPU time of the reader so far.
    pub(super) fn runtime(&self) -> Duration {
        own_thread_runtime(self.tid.load(Ordering::Relaxed))
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if std::fs::metadata(DEV_LOG).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(DEV_LOG);
        }
    }
}
