//! A `responder controller` replica of a lab, against the lab's API server.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use super::responder::responder_bin;
use crate::netns::ChildGuard;

pub struct Controller {
    pub identity: String,
    log_path: PathBuf,
    child: Option<ChildGuard>,
}

impl Controller {
    pub(super) fn spawn(
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        log_path: PathBuf,
    ) -> Self {
        let log = File::create(&log_path).expect("create controller log");
        let mut cmd = Command::new(responder_bin());
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace, "--identity", identity])
            .args(["--metrics-addr", "127.0.0.1:0", "--health-addr", "off"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = ChildGuard::spawn(cmd, &format!("responder controller {identity}"));
        Controller {
            identity: identity.to_owned(),
            log_path,
            child: Some(child),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `signal` and reaps the replica; its exit code.
    pub(super) fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        child.signal(signal);
        child.wait_exit(timeout)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        drop(self.child.take());
        if std::thread::panicking() {
            eprintln!("--- controller {} log ---\n{}", self.identity, self.log());
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}
