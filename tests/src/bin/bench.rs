//! `cargo xtask bench`: measures (needs root) or, with `--render-only`,
//! only rewrites the Markdown and chart from an existing JSON report. The
//! work is in `responder_tests::bench`.
//!
//! Usage: bench [--quick | --render-only] --out BENCHMARKS.md --json BENCHMARKS.json --chart benchmarks.png
//!        bench --membership-markdown MEMBERSHIP.json [UNBUDGETED.json]
use std::{path::PathBuf, process::ExitCode, time::Instant};

use responder_tests::bench::{self, BenchError, Settings};

struct Args {
    quick: bool,
    render_only: bool,
    markdown: PathBuf,
    json: PathBuf,
    chart: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = |flag: &str| -> Result<PathBuf, String> {
        let at = args
            .iter()
            .position(|a| a == flag)
            .ok_or_else(|| format!("{flag} PATH is required"))?;
        args.get(at + 1)
            .map(PathBuf::from)
            .ok_or_else(|| format!("{flag} needs a path"))
    };
    Ok(Args {
        quick: args.iter().any(|a| a == "--quick"),
        render_only: args.iter().any(|a| a == "--render-only"),
        markdown: path("--out")?,
        json: path("--json")?,
        chart: path("--chart")?,
    })
}

fn main() -> ExitCode {
    // `bench --membership-markdown MEMBERSHIP.json [UNBUDGETED.json]`:
    // section 4 alone, from `membership_measure`'s reports, on stdout.
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--membership-markdown") {
        let Some(membership) = raw.get(1) else {
            eprintln!("bench: --membership-markdown MEMBERSHIP.json [UNBUDGETED.json]");
            return ExitCode::from(2);
        };
        let unbudgeted = raw.get(2).map(PathBuf::from);
        return match bench::membership_markdown(membership.as_ref(), unbudgeted.as_deref()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("bench: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("bench: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), BenchError> {
    if args.render_only {
        let report = bench::read_json(&args.json)?;
        bench::write_reports(&report, &args.markdown, &args.chart)?;
        eprintln!(
            "bench: rewrote {} and {} from {}",
            args.markdown.display(),
            args.chart.display(),
            args.json.display()
        );
        return Ok(());
    }
    let settings = if args.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let started = Instant::now();
    let report = bench::measure(&settings);
    bench::write_json(&report, &args.json)?;
    bench::write_reports(&report, &args.markdown, &args.chart)?;
    eprintln!(
        "bench: done in {:.0} s: {}, {}, {}",
        started.elapsed().as_secs_f64(),
        args.markdown.display(),
        args.json.display(),
        args.chart.display()
    );
    Ok(())
}
