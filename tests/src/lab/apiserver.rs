//! A real kube-apiserver (v1.20) + etcd of a test's own on 127.0.0.1, built
//! once and cached by `tests/k8s/apiserver.sh`, stopped on drop.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use kube::{
    config::{KubeConfigOptions, Kubeconfig},
    Client,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/apiserver.sh")
}

fn run_script(args: &[&str]) {
    run_script_with(args, &[]);
}

fn run_script_with(args: &[&str], env: &[(&str, &str)]) {
    let status = Command::new(script())
        .args(args)
        .envs(env.iter().copied())
        .status()
        .unwrap_or_else(|e| panic!("apiserver.sh {args:?} did not run: {e}"));
    assert!(status.success(), "apiserver.sh {args:?} failed: {status}");
}

pub struct ApiServer {
    state: PathBuf,
}

impl ApiServer {
    /// `name` says which test owns it; the PID and a counter make it unique.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// Dual-stack Services: `ipFamilyPolicy` and `ipFamilies` as a dual-stack
    /// cluster sets them (v1.20 needs the IPv6DualStack feature gate), IPv6
    /// cluster IPs from 2001:db8:ffff::/112.
    pub const DUAL_STACK_ENV: &'static [(&'static str, &'static str)] = &[
        ("KUBE_FEATURE_GATES", "IPv6DualStack=true"),
        (
            "SERVICE_CLUSTER_IP_RANGE",
            "198.51.100.0/24,2001:db8:ffff::/112",
        ),
    ];

    /// `env` for `apiserver.sh start` (see its header).
    pub fn start_with(name: &str, env: &[(&str, &str)]) -> Self {
        run_script(&["build"]);
        let state = std::env::temp_dir().join(format!(
            "responder-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let server = ApiServer { state };
        run_script_with(&["start", server.state_str()], env);
        server
    }

    fn state_str(&self) -> &str {
        self.state.to_str().expect("utf-8 temp dir")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    /// `kubectl` (the v1.20 one built with the server) against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(script())
            .args(["kubectl", self.state_str()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("kubectl {args:?} did not run: {e}"))
    }

    /// SIGKILLs kube-apiserver alone, as a crash would: clients are refused
    /// until `restart_api_server`; etcd and everything in it stay.
    pub fn kill_api_server(&self) {
        run_script(&["kill-apiserver", self.state_str()]);
    }

    /// Starts kube-apiserver again on the same port, etcd and certificates,
    /// and waits until it is ready.
    pub fn restart_api_server(&self) {
        run_script(&["start-apiserver", self.state_str()]);
    }

    /// Deletes `key` straight from etcd, behind the API server's back (a
    /// change nobody could watch, e.g. while the server is down). Returns how
    /// many keys were deleted.
    pub fn delete_from_etcd(&self, key: &str) -> u64 {
        let output = Command::new(script())
            .args(["etcd-delete", self.state_str(), key])
            .output()
            .unwrap_or_else(|e| panic!("apiserver.sh etcd-delete did not run: {e}"));
        assert!(
            output.status.success(),
            "apiserver.sh etcd-delete {key} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let count = String::from_utf8_lossy(&output.stdout);
        count
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("etcd-delete printed {count:?}, not a count"))
    }

    /// `apiserver_request_total` from the server's `/metrics`, summed over
    /// response codes, by (verb, resource, subresource). The counters start
    /// at zero whenever kube-apiserver (re)starts.
    pub fn request_counts(&self) -> BTreeMap<(String, String, String), u64> {
        let out = self.kubectl(&["get", "--raw", "/metrics"]);
        assert!(
            out.status.success(),
            "kubectl get --raw /metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut counts = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_default()
                    .to_owned()
            };
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            *counts
                .entry((label("verb"), label("resource"), label("subresource")))
                .or_default() += value as u64;
        }
        counts
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig readable");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig valid");
        Client::try_from(config).expect("client from kubeconfig")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.state_str()])
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
