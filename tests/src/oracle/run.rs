//! The oracle's loop: frames go out in batches, each followed by a marker,
//! to both client ends; the answers between two markers belong to the frame
//! before the second. Answers that come late because the kernel first had
//! to resolve the requester (the oracle answers for it, as the requester
//! would) are matched by the requester's address, which no other frame in
//! the batch uses. After each batch the kernel forgets its neighbours.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use responder_model::{
    frames::{link_addr_option, Ethernet, Nd, Vlan, ND_OPT_TARGET_LL_ADDR},
    fuzzgen::{generate_with, vip_table, Profile, Rng, INGRESS_IFINDEX, MAC_A},
};

use super::{
    answer::{compare, Difference},
    be16,
    identity::{answered_marker, marker, requester, IPV4_POOL},
    intended::{explain, Case, INTENDED},
    link::ClientEnd,
    request::{parse, Body},
    segment::Segment,
    OracleError, Vips, ETHERTYPE_ARP, ETHERTYPE_IPV6, ICMPV6, ICMPV6_NA, ICMPV6_NS, IPV6_HLEN,
};
use crate::testrun::hex;

/// How long both sides get to answer a batch before the run gives up.
mod classify;
mod stream;

use classify::{
    answered_address, kernel_output, oracle_vips, solicitor, touches, KernelOutput, Touches,
};
use stream::{collect, split};

const BATCH_DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// Divergences printed in full; the rest are counted.
const PRINT_LIMIT: u64 = 100;
const NA_FLAGS_SOLICITED_OVERRIDE: u8 = 0x60;
/// Tries per batch, each with markers of its own, and the pause that lets
/// stragglers of a failed try arrive before the next.
const ATTEMPTS: u16 = 3;
const MARKERS_PER_ATTEMPT: u16 = 1024;
const DRAIN: Duration = Duration::from_millis(200);

pub struct Settings {
    pub frames: u64,
    pub seed: u64,
    /// Frames in flight at once.
    pub batch: usize,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub frames: u64,
    pub divergences: u64,
    /// Frames answered alike by both sides, and left alone by both.
    pub agreed_answered: u64,
    pub agreed_silent: u64,
    /// Per entry of the intended-differences table.
    pub intended: BTreeMap<&'static str, u64>,
    /// Frames the kernel sent of its own accord (resolution, NUD, MLD).
    pub kernel_own: u64,
    /// Requesters the oracle answered the kernel's resolution for.
    pub resolutions: u64,
    pub batches: u64,
}

/// The kernel solicited the requester of the frame at `position` before
/// answering it; the oracle answers in the requester's name.
struct Resolution {
    position: usize,
    kernel_mac: [u8; 6],
    kernel_address: [u8; 16],
    requester: [u8; 16],
}

/// What came back for a batch.
struct Answers {
    /// Per frame, in batch order.
    kernel: Vec<Vec<Vec<u8>>>,
    responder: Vec<Vec<Vec<u8>>>,
    /// Answers no frame explains (after the last marker).
    unattributed: Vec<Vec<u8>>,
    kernel_own: u64,
    resolutions: u64,
}

/// One generated frame on its way.
struct Frame {
    /// Position in the run, for reproduction.
    number: u64,
    label: String,
    bytes: Vec<u8>,
}

struct Oracle<'a> {
    settings: &'a Settings,
    vips: Vips,
    segment: Segment,
    kernel: ClientEnd,
    responder: ClientEnd,
    rng: Rng,
    generated: u64,
    carried: Option<Frame>,
    summary: Summary,
    per_class: BTreeMap<String, [u64; 5]>,
}

/// Runs the oracle and prints what it finds.
pub fn run(settings: &Settings) -> Result<Summary, OracleError> {
    if settings.batch == 0 || settings.batch as u64 >= IPV4_POOL {
        return Err(OracleError::Batch {
            batch: settings.batch,
            max: IPV4_POOL - 1,
        });
    }
    pin_to_this_cpu()?;
    let vips = oracle_vips();
    let segment = Segment::new(&vips, MAC_A)?;
    let kernel = segment.kernel_end()?;
    let responder = segment.responder_end()?;
    let mut oracle = Oracle {
        settings,
        vips,
        segment,
        kernel,
        responder,
        rng: Rng::new(settings.seed),
        generated: 0,
        carried: None,
        summary: Summary::default(),
        per_class: BTreeMap::new(),
    };
    let started = Instant::now();
    let mut next_progress = 100_000;
    while oracle.summary.frames < settings.frames {
        let batch = oracle.next_batch();
        let answers = oracle.exchange_retrying(&batch)?;
        oracle.record(&batch, answers);
        oracle.segment.flush_neighbours();
        oracle.summary.batches += 1;
        if oracle.summary.frames >= next_progress {
            next_progress += 100_000;
            println!(
                "  {} frames, {:.0} frames/s, {} divergences",
                oracle.summary.frames,
                oracle.summary.frames as f64 / started.elapsed().as_secs_f64(),
                oracle.summary.divergences
            );
        }
    }
    oracle.print_summary(started.elapsed());
    Ok(oracle.summary)
}

/// On one CPU the frames of a batch are processed in the order they were
/// sent (one backlog, one NAPI ring), which the markers rely on.
fn pin_to_this_cpu() -> Result<(), OracleError> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() }.max(0) as usize;
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(OracleError::Affinity)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(OracleError::Affinity)
}

impl Oracle<'_> {
    fn generate(&mut self) -> Frame {
        let number = self.generated;
        self.generated += 1;
        let profile = Profile {
            requester: requester(number),
            vlan_tags: false,
        };
        let generated = generate_with(&mut self.rng, &profile);
        let label = if generated.mutated {
            format!("{}+mutated", generated.class.name())
        } else {
            generated.class.name().to_string()
        };
        Frame {
            number,
            label,
            bytes: generated.frame,
        }
    }

    /// Up to `batch` frames, in order, no two touching one neighbour entry.
    fn next_batch(&mut self) -> Vec<Frame> {
        let mut batch = Vec::with_capacity(self.settings.batch);
        let mut touched = HashSet::new();
        while batch.len() < self.settings.batch && self.summary.frames < self.settings.frames {
            let frame = match self.carried.take() {
                Some(frame) => frame,
                None => self.generate(),
            };
            let clash = match touches(&frame.bytes) {
                Some(Touches::Source(address)) => {
                    touched.contains(&Touches::Source(address))
                        || touched.contains(&Touches::Target(address))
                }
                Some(Touches::Target(address)) => touched.contains(&Touches::Source(address)),
                None => false,
            };
            if clash {
                self.carried = Some(frame);
                break;
            }
            if let Some(entry) = touches(&frame.bytes) {
                touched.insert(entry);
            }
            self.summary.frames += 1;
            batch.push(frame);
        }
        batch
    }

    /// `exchange`, again from a clean slate when a side lost a marker (a
    /// full ring under a load spike drops frames): the frames are
    /// independent, so the batch can simply be sent again.
    fn exchange_retrying(&mut self, batch: &[Frame]) -> Result<Answers, OracleError> {
        let mut attempt = 0;
        loop {
            let first_marker = attempt * MARKERS_PER_ATTEMPT;
            match self.exchange(batch, first_marker) {
                Err(OracleError::Stream { side, what }) if attempt + 1 < ATTEMPTS => {
                    println!(
                        "  batch {}: {side} side: {what}; sending it again",
                        self.summary.batches
                    );
                    let mut stragglers = Vec::new();
                    self.kernel.receive(&mut stragglers, DRAIN)?;
                    self.responder.receive(&mut stragglers, DRAIN)?;
                    self.segment.flush_neighbours();
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Sends `batch` to both sides, each frame followed by a marker
    /// numbered from `first_marker`, and sorts what comes back.
    fn exchange(&mut self, batch: &[Frame], first_marker: u16) -> Result<Answers, OracleError> {
        let marker_vip = self.vips.v4[0];
        let mut wire = Vec::with_capacity(batch.len() * 2);
        for (position, frame) in batch.iter().enumerate() {
            wire.push(frame.bytes.clone());
            wire.push(marker(first_marker + position as u16, marker_vip));
        }
        let last = first_marker + batch.len() as u16 - 1;
        self.kernel.send(&wire)?;
        self.responder.send(&wire)?;
        let kernel_stream = collect(&self.kernel, last, "kernel")?;
        let responder_stream = collect(&self.responder, last, "responder")?;
        let (kernel_segments, kernel_late) =
            split(kernel_stream, first_marker, batch.len(), "kernel")?;
        let (responder, responder_late) =
            split(responder_stream, first_marker, batch.len(), "responder")?;

        let mut answers = Answers {
            kernel: vec![Vec::new(); batch.len()],
            responder,
            unattributed: responder_late,
            kernel_own: 0,
            resolutions: 0,
        };
        let mut resolutions = Vec::new();
        for (position, segment) in kernel_segments.into_iter().enumerate() {
            for frame in segment {
                match kernel_output(&frame) {
                    KernelOutput::Answer => answers.kernel[position].push(frame),
                    KernelOutput::Solicitation {
                        eth_src,
                        src,
                        target,
                    } if solicitor(&batch[position].bytes) == Some(target) => {
                        resolutions.push(Resolution {
                            position,
                            kernel_mac: eth_src,
                            kernel_address: src,
                            requester: target,
                        });
                        answers.kernel_own += 1;
                    }
                    _ => answers.kernel_own += 1,
                }
            }
        }
        let mut late = kernel_late;
        let (resolved, after_resolution) = self.resolve(batch, &resolutions, last + 1)?;
        answers.resolutions = resolved;
        late.extend(after_resolution);
        for frame in late {
            match kernel_output(&frame) {
                KernelOutput::Answer => {
                    match resolutions
                        .iter()
                        .find(|resolution| answered_address(&frame) == Some(resolution.requester))
                    {
                        Some(resolution) => answers.kernel[resolution.position].push(frame),
                        None => answers.unattributed.push(frame),
                    }
                }
                _ => answers.kernel_own += 1,
            }
        }
        Ok(answers)
    }

    fn record(&mut self, batch: &[Frame], answers: Answers) {
        self.summary.kernel_own += answers.kernel_own;
        self.summary.resolutions += answers.resolutions;
        for frame in answers.unattributed {
            self.summary.divergences += 1;
            println!(
                "DIVERGENCE #{}: an answer no frame of the batch explains: {}",
                self.summary.divergences,
                hex(&frame)
            );
        }
        for ((frame, kernel), responder) in
            batch.iter().zip(&answers.kernel).zip(&answers.responder)
        {
            self.judge(frame, kernel, responder);
        }
    }

    /// Answers the kernel's resolution of requesters, as each of them
    /// would from the MAC it sent its frame from (a group or zero MAC is
    /// no host's, so nobody answers those); returns what the kernel sends
    /// until a marker after the answers comes back.
    fn resolve(
        &self,
        batch: &[Frame],
        resolutions: &[Resolution],
        marker_index: u16,
    ) -> Result<(u64, Vec<Vec<u8>>), OracleError> {
        let mut wire = Vec::new();
        for resolution in resolutions {
            let Resolution {
                position,
                kernel_mac,
                kernel_address,
                requester,
            } = resolution;
            let request = parse(&batch[*position].bytes);
            let mac = request.eth_src;
            if mac[0] & 1 == 1 || mac == [0; 6] {
                continue;
            }
            let eth = Ethernet {
                dst: *kernel_mac,
                src: mac,
                vlan: Vlan::Untagged,
            };
            let advertisement = Nd::advertisement(
                *requester,
                *kernel_address,
                *requester,
                NA_FLAGS_SOLICITED_OVERRIDE,
                vec![link_addr_option(ND_OPT_TARGET_LL_ADDR, mac)],
            );
            wire.push(advertisement.frame(&eth));
        }
        if wire.is_empty() {
            return Ok((0, Vec::new()));
        }
        let resolved = wire.len() as u64;
        wire.push(marker(marker_index, self.vips.v4[0]));
        self.kernel.send(&wire)?;
        let stream = collect(&self.kernel, marker_index, "kernel")?;
        let late = stream
            .into_iter()
            .filter(|frame| answered_marker(frame).is_none())
            .collect();
        Ok((resolved, late))
    }

    fn judge(&mut self, frame: &Frame, kernel: &[Vec<u8>], responder: &[Vec<u8>]) {
        let tally = self.per_class.entry(frame.label.clone()).or_default();
        tally[0] += 1;
        let differences = compare(kernel, responder);
        if differences.is_empty() {
            if kernel.is_empty() {
                tally[2] += 1;
                self.summary.agreed_silent += 1;
            } else {
                tally[1] += 1;
                self.summary.agreed_answered += 1;
            }
            return;
        }
        let request = parse(&frame.bytes);
        let case = Case {
            request: &request,
            responder,
            differences: &differences,
            vips: &self.vips,
        };
        if let Some(intended) = explain(&case) {
            tally[3] += 1;
            *self.summary.intended.entry(intended.name).or_default() += 1;
            return;
        }
        tally[4] += 1;
        self.summary.divergences += 1;
        if self.summary.divergences > PRINT_LIMIT {
            return;
        }
        println!(
            "DIVERGENCE #{} [{}] frame {} of seed {}\n  frame:     {}",
            self.summary.divergences,
            frame.label,
            frame.number,
            self.settings.seed,
            hex(&frame.bytes)
        );
        for (side, answers) in [("kernel", kernel), ("responder", responder)] {
            if answers.is_empty() {
                println!("  {side:<10} no answer");
            }
            for answer in answers {
                println!("  {side:<10} {}", hex(answer));
            }
        }
        for difference in &differences {
            match difference {
                Difference::Answered { kernel, responder } => {
                    println!("    answers: kernel {kernel}, responder {responder}")
                }
                Difference::Field {
                    index,
                    name,
                    kernel,
                    responder,
                } => println!("    #{index} {name}: kernel {kernel}, responder {responder}"),
            }
        }
    }

    fn print_summary(&self, elapsed: Duration) {
        println!(
            "{:<32} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "class", "frames", "answered", "silent", "intended", "diverged"
        );
        for (label, [frames, answered, silent, intended, diverged]) in &self.per_class {
            println!(
                "{label:<32} {frames:>9} {answered:>9} {silent:>9} {intended:>9} {diverged:>9}"
            );
        }
        println!("intended differences:");
        for intended in INTENDED {
            let count = self
                .summary
                .intended
                .get(intended.name)
                .copied()
                .unwrap_or(0);
            println!("  {count:>9}  {}", intended.name);
        }
        println!(
            "kernel's own frames ignored: {}; requesters resolved for the kernel: {}",
            self.summary.kernel_own, self.summary.resolutions
        );
        println!(
            "{} frames in {} batches, {:.1} s ({:.0} frames/s), seed {}, {} divergences",
            self.summary.frames,
            self.summary.batches,
            elapsed.as_secs_f64(),
            self.summary.frames as f64 / elapsed.as_secs_f64(),
            self.settings.seed,
            self.summary.divergences
        );
        if self.summary.divergences > PRINT_LIMIT {
            println!("(only the first {PRINT_LIMIT} divergences were printed)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use responder_model::frames::{
        expected_na, link_addr_option, Arp, Ethernet, Nd, Vlan, BROADCAST_MAC,
        ND_OPT_TARGET_LL_ADDR, OUR_MAC, PEER4, PEER6, PEER_MAC, VIP4, VIP6,
    };

    fn eth() -> Ethernet {
        Ethernet {
            dst: BROADCAST_MAC,
            src: PEER_MAC,
            vlan: Vlan::Untagged,
        }
    }

    fn marker_answer(index: u16) -> Vec<u8> {
        let mac = crate::oracle::identity::marker_mac(index);
        Arp::reply(OUR_MAC, VIP4, mac, [0; 4]).frame(&eth().with_addrs(mac, OUR_MAC))
    }

    #[test]
    fn markers_split_the_answers_by_frame() {
        let answer = vec![1u8; 20];
        let late = vec![2u8; 20];
        let stream = vec![
            marker_answer(0),
            answer.clone(),
            marker_answer(1),
            marker_answer(2),
            late.clone(),
        ];
        let (segments, after) = split(stream, 0, 3, "test").expect("in order");
        assert_eq!(segments, vec![vec![], vec![answer], vec![]]);
        assert_eq!(after, vec![late]);
        let reordered = vec![marker_answer(1), marker_answer(0)];
        assert!(split(reordered, 0, 2, "test").is_err());
        assert!(split(vec![marker_answer(0)], 0, 2, "test").is_err());
        // A retry numbers its markers anew; a straggler of the first try is
        // no marker of it.
        let retried = vec![marker_answer(0), marker_answer(1024)];
        let (segments, _) = split(retried, 1024, 1, "test").expect("retry");
        assert_eq!(segments, vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn kernel_frames_are_answers_solicitations_or_its_own() {
        let reply = Arp::reply(OUR_MAC, VIP4, PEER_MAC, PEER4).frame(&eth());
        assert!(matches!(kernel_output(&reply), KernelOutput::Answer));
        let request = Arp::request(OUR_MAC, VIP4, PEER4).frame(&eth());
        assert!(matches!(kernel_output(&request), KernelOutput::Own));
        let na = expected_na(&eth(), PEER_MAC, OUR_MAC, VIP6, PEER6, true);
        assert!(matches!(kernel_output(&na), KernelOutput::Answer));
        assert_eq!(answered_address(&na), Some(PEER6));
        let resolution = Nd::solicitation(VIP6, PEER6, PEER6, vec![]).frame(&eth());
        assert!(matches!(
            kernel_output(&resolution),
            KernelOutput::Solicitation { target, .. } if target == PEER6
        ));
    }

    #[test]
    fn one_neighbour_entry_per_batch() {
        let tlla = link_addr_option(ND_OPT_TARGET_LL_ADDR, PEER_MAC);
        let ns = Nd::solicitation(PEER6, VIP6, VIP6, vec![]).frame(&eth());
        let na = Nd::advertisement(VIP6, PEER6, PEER6, 0x20, vec![tlla]).frame(&eth());
        let dad = Nd::solicitation([0; 16], VIP6, VIP6, vec![]).frame(&eth());
        assert!(touches(&ns) == Some(Touches::Source(PEER6)));
        assert!(touches(&na) == Some(Touches::Target(PEER6)));
        assert!(touches(&dad).is_none());
        assert_eq!(solicitor(&ns), Some(PEER6));
        assert_eq!(solicitor(&dad), None);
    }
}
