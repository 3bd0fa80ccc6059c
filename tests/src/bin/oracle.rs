//! The kernel oracle: generated ARP and Neighbor Discovery frames through
//! the Linux kernel and the XDP responder side by side (see
//! `responder_tests::oracle`). Needs root.
//!
//! `oracle [--frames N] [--seed S] [--batch B]`; `--batch 1` sends one
//! frame at a time, to rule out that frames in flight together interfere.

use std::{
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use responder_tests::oracle::{run, Settings};

const USAGE: &str = "usage: oracle [--frames N] [--seed S] [--batch B]";

fn parse_args() -> Result<Settings, String> {
    let mut settings = Settings {
        frames: 20_000,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|error| error.to_string())?
            .as_nanos() as u64,
        batch: 128,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = value
            .parse::<u64>()
            .map_err(|error| format!("{flag} {value}: {error}"))?;
        match flag.as_str() {
            "--frames" => settings.frames = number,
            "--seed" => settings.seed = number,
            "--batch" => settings.batch = number as usize,
            _ => return Err(format!("unknown argument {flag}; {USAGE}")),
        }
    }
    Ok(settings)
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    println!(
        "kernel oracle: {} frames, batches of {}, seed {} (reproduce with --seed {})",
        settings.frames, settings.batch, settings.seed, settings.seed
    );
    match run(&settings) {
        Ok(summary) if summary.divergences == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("kernel oracle: {error}");
            ExitCode::FAILURE
        }
    }
}
