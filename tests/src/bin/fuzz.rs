//! Differential fuzzer: generated frames go through the XDP program (with
//! BPF_PROG_TEST_RUN, ingress loopback) and through the reference model;
//! verdict, output bytes and counters must agree.
//!
//! `fuzz [--frames N] [--seed S]`. Needs root. Counters are compared in
//! batches (one read per VIP per batch, which is cheap); a batch whose totals
//! disagree is replayed frame by frame with a read around each frame to name
//! the frames at fault.

use std::{
    collections::BTreeMap,
    process::ExitCode,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use responder_common::{VipKey, VipStats};
use responder_model::{
    fuzzgen::{generate, nics, vip_table, Class, Rng, INGRESS_IFINDEX},
    respond_with_nics, Expected, Nics, Verdict, VipTable,
};
use responder_tests::testrun::{hex, LoadedResponder, XDP_PASS, XDP_TX};

/// Frames between counter comparisons.
const BATCH: usize = 64;
/// Divergences printed in full; the rest are only counted.
const PRINT_LIMIT: usize = 200;

struct Args {
    frames: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        frames: 200_000,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|error| error.to_string())?
            .as_nanos() as u64,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = value
            .parse::<u64>()
            .map_err(|error| format!("{flag} {value}: {error}"))?;
        match flag.as_str() {
            "--frames" => args.frames = number,
            "--seed" => args.seed = number,
            _ => {
                return Err(format!(
                    "unknown argument {flag}; usage: fuzz [--frames N] [--seed S]"
                ))
            }
        }
    }
    Ok(args)
}

fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Pass => "PASS (untouched)".to_string(),
        Verdict::Tx(frame) => format!("TX {}", hex(frame)),
    }
}

struct Fuzzer {
    responder: LoadedResponder,
    vips: VipTable,
    nics: Nics,
    /// Counter totals the model predicts, per VIP.
    expected_totals: BTreeMap<VipKey, VipStats>,
    divergences: usize,
}

impl Fuzzer {
    fn report(&mut self, class: &str, frame: &[u8], what: &str, model: String, program: String) {
        self.divergences += 1;
        if self.divergences <= PRINT_LIMIT {
            println!(
                "DIVERGENCE #{} [{class}] {what}\n  frame:   {}\n  model:   {model}\n  program: {program}",
                self.divergences,
                hex(frame)
            );
        }
    }

    fn totals(&self) -> BTreeMap<VipKey, VipStats> {
        self.vips
            .keys()
            .map(|key| {
                let stats = self.responder.stats(key).expect("read VIP counters");
                (*key, stats)
            })
            .collect()
    }

    /// Runs one frame and compares verdict and bytes; returns the model's
    /// prediction for the counter check.
    fn run_one(&mut self, class: &str, frame: &[u8]) -> Expected {
        let expected = respond_with_nics(&self.vips, &self.nics, INGRESS_IFINDEX, frame);
        let (action, output) = match self.responder.try_run(frame, INGRESS_IFINDEX) {
            Ok(outcome) => outcome,
            Err(error) => {
                let model = describe(&expected.verdict);
                self.report(class, frame, "test run failed", model, error.to_string());
                return expected;
            }
        };
        let agrees = match &expected.verdict {
            Verdict::Pass => action == XDP_PASS && output == frame,
            Verdict::Tx(reply) => action == XDP_TX && output == *reply,
        };
        if !agrees {
            let program = format!("action {action} output {}", hex(&output));
            let model = describe(&expected.verdict);
            self.report(class, frame, "verdict", model, program);
        }
        expected
    }

    fn add_expected(&mut self, expected: &Expected) {
        if let Some((key, delta)) = expected.counted {
            self.expected_totals.entry(key).or_default().add(&delta);
        }
    }

    /// Compares counter totals after a batch; on a mismatch, replays the
    /// batch with a read before and after every frame to find the culprits.
    fn check_counters(&mut self, batch: &[(Class, bool, Vec<u8>)]) {
        let actual = self.totals();
        if actual == self.expected_totals {
            return;
        }
        let mut culprits = 0;
        for (class, mutated, frame) in batch {
            let before = self.totals();
            let expected = respond_with_nics(&self.vips, &self.nics, INGRESS_IFINDEX, frame);
            // The verdict was already compared; only the counters matter here.
            let _ = self.responder.try_run(frame, INGRESS_IFINDEX);
            let after = self.totals();
            let moved: Vec<(VipKey, VipStats)> = after
                .iter()
                .filter(|(key, stats)| before[key] != **stats)
                .map(|(key, stats)| {
                    let was = before[key];
                    let delta = VipStats {
                        requests: stats.requests - was.requests,
                        replies: stats.replies - was.replies,
                        conflicts: stats.conflicts - was.conflicts,
                        stale: stats.stale - was.stale,
                    };
                    (*key, delta)
                })
                .collect();
            let predicted: Vec<(VipKey, VipStats)> = expected.counted.into_iter().collect();
            if moved != predicted {
                culprits += 1;
                let name = class_label(*class, *mutated);
                self.report(
                    &name,
                    frame,
                    "counters",
                    format!("{predicted:?}"),
                    format!("{moved:?}"),
                );
            }
        }
        if culprits == 0 {
            self.report(
                "batch",
                &[],
                "counter totals (not reproduced frame by frame)",
                format!("{:?}", self.expected_totals),
                format!("{actual:?}"),
            );
        }
        // Start the next batch from what the program counted.
        self.expected_totals = self.totals();
    }
}

/// Writes the model's own MACs and bond members into the program's maps.
fn install_nics(responder: &mut LoadedResponder, nics: &Nics) {
    for mac in &nics.own_macs {
        responder.add_own_mac(*mac).expect("insert own MAC");
    }
    for (member, bond) in &nics.bond_of {
        responder
            .add_bond_member(*member, *bond)
            .expect("insert bond member");
    }
}

fn class_label(class: Class, mutated: bool) -> String {
    if mutated {
        format!("{}+mutated", class.name())
    } else {
        class.name().to_string()
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    println!(
        "fuzz: {} frames, seed {} (reproduce with --seed {})",
        args.frames, args.seed, args.seed
    );
    let mut responder = LoadedResponder::load().expect("load the XDP program (root needed)");
    let vips = vip_table();
    for (key, value) in &vips {
        responder.insert_vip(*key, *value).expect("insert VIP");
    }
    let nics = nics();
    install_nics(&mut responder, &nics);
    let mut fuzzer = Fuzzer {
        responder,
        vips,
        nics,
        expected_totals: BTreeMap::new(),
        divergences: 0,
    };
    fuzzer.expected_totals = fuzzer.totals();

    let mut rng = Rng::new(args.seed);
    let mut per_class: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    let mut batch = Vec::with_capacity(BATCH);
    let started = Instant::now();
    for done in 1..=args.frames {
        let generated = generate(&mut rng);
        let label = class_label(generated.class, generated.mutated);
        let expected = fuzzer.run_one(&label, &generated.frame);
        let tally = per_class.entry(label).or_default();
        match (&expected.verdict, expected.counted.is_some()) {
            (Verdict::Tx(_), _) => tally[0] += 1,
            (Verdict::Pass, true) => tally[1] += 1,
            (Verdict::Pass, false) => tally[2] += 1,
        }
        fuzzer.add_expected(&expected);
        batch.push((generated.class, generated.mutated, generated.frame));
        if batch.len() == BATCH || done == args.frames {
            fuzzer.check_counters(&batch);
            batch.clear();
        }
        if done % 1_000_000 == 0 {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!(
                "  {done} frames, {rate:.0} frames/s, {} divergences",
                fuzzer.divergences
            );
        }
    }
    let elapsed = started.elapsed();

    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10}",
        "class", "frames", "tx", "conflict", "pass"
    );
    for (label, [tx, conflict, pass]) in &per_class {
        let total = tx + conflict + pass;
        println!("{label:<32} {total:>10} {tx:>10} {conflict:>10} {pass:>10}");
    }
    println!(
        "{} frames in {:.1} s ({:.0} frames/s), seed {}, {} divergences",
        args.frames,
        elapsed.as_secs_f64(),
        args.frames as f64 / elapsed.as_secs_f64(),
        args.seed,
        fuzzer.divergences
    );
    if fuzzer.divergences > 0 {
        if fuzzer.divergences > PRINT_LIMIT {
            println!("(only the first {PRINT_LIMIT} divergences were printed)");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
