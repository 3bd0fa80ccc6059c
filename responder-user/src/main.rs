//! The `responder` binary: logging, then one subcommand.

mod cli;

use tracing_subscriber::EnvFilter;

use cli::{
    args::{parse, Command},
    controller::controller,
    report::{cleanup, stats, vips},
    run::run,
    status::status,
};

/// kube-client's per-request trace logs every failed request at ERROR: four
/// lines a second from Lease renewals alone while the API server is down. The
/// agent logs each failing watch or renewal once, and its recovery, with the
/// same error text, so the trace is off unless `RUST_LOG` names kube_client.
const KUBE_REQUEST_TRACE_OFF: &str = "kube_client::client::builder=off";

/// `RUST_LOG` (or `info`), with kube-client's request trace off; an invalid
/// `RUST_LOG` falls back to the default rather than failing the start.
fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let default = || EnvFilter::new(format!("info,{KUBE_REQUEST_TRACE_OFF}"));
    match rust_log {
        Some(spec) if spec.contains("kube_client") => EnvFilter::try_new(spec),
        Some(spec) => EnvFilter::try_new(format!("{spec},{KUBE_REQUEST_TRACE_OFF}")),
        None => return default(),
    }
    .unwrap_or_else(|_| default())
}

fn main() -> anyhow::Result<()> {
    let cli = parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        // Colour codes would garble log files and `kubectl logs`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Controller(args) => controller(*args),
        Command::Status(args) => status(*args),
        Command::Vips { pin_path, json } => vips(&pin_path, json),
        Command::Stats { pin_path, json } => stats(&pin_path, json),
        Command::Cleanup { pin_path } => cleanup(&pin_path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filter_keeps_the_request_trace_off_unless_asked_for() {
        let shown = |spec: Option<&str>| log_filter(spec).to_string();
        assert_eq!(shown(None), "kube_client::client::builder=off,info");
        assert_eq!(
            shown(Some("debug")),
            "kube_client::client::builder=off,debug"
        );
        assert_eq!(shown(Some("kube_client=trace")), "kube_client=trace");
        assert_eq!(
            shown(Some("not a filter[")),
            shown(None),
            "an invalid RUST_LOG falls back to the default"
        );
    }
}
