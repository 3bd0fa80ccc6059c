//! Runs the XDP program on single frames with BPF_PROG_TEST_RUN: loaded but
//! not attached, so no interface is touched (the kernel oracle alone
//! attaches it, to a veth in a namespace of its own).

use std::{
    collections::BTreeMap,
    io,
    mem::size_of,
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
};

use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuValues},
    programs::{ProgramError, Xdp, XdpMode},
    util::nr_cpus,
    Ebpf, EbpfError,
};
use responder_common::{
    nic::{OwnMacKey, BOND_OF_MAP, OWN_MACS_MAP},
    AgentState, VipKey, VipStats, VipValue, AGENT_MAP, PROGRAM_NAME, VIPS_MAP, VIP_COUNTERS_MAP,
};

use crate::netns::NetNs;

/// `BPF_PROG_TEST_RUN` from `enum bpf_cmd`.
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// Room for any frame the program can grow (a test-run frame is one page).
const DATA_OUT_LEN: usize = 4096;
/// The loopback interface: present in every network namespace.
pub const LOOPBACK_IFINDEX: u32 = 1;
/// `enum xdp_action` values a test run returns.
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// A frame as one hex string, for failure messages that must show it whole.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error("loading the eBPF object: {0}")]
    Object(#[from] EbpfError),
    #[error("the object has no {0}")]
    Missing(&'static str),
    #[error("loading the XDP program: {0:#}")]
    Program(#[from] ProgramError),
    #[error("map access: {0}")]
    Map(#[from] MapError),
    #[error("per-CPU counters ({0}): {1}")]
    Cpus(&'static str, io::Error),
    #[error("BPF_PROG_TEST_RUN: {0}")]
    Syscall(io::Error),
}

impl TestRunError {
    /// The errno of a failed BPF_PROG_TEST_RUN, e.g. EINVAL for frames
    /// shorter than an Ethernet header.
    pub fn errno(&self) -> Option<i32> {
        match self {
            TestRunError::Syscall(error) => error.raw_os_error(),
            _ => None,
        }
    }
}

/// `struct xdp_md`: how the program sees the frame's context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// The `test` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit so it is zeroed: the kernel rejects (EINVAL) any non-zero
    /// byte after the last field it knows.
    _pad: u32,
}

/// What one BPF_PROG_TEST_RUN returned.
struct Outcome {
    action: u32,
    output: Vec<u8>,
    duration_ns: u32,
}

/// The responder program loaded with fresh, private maps.
pub struct LoadedResponder {
    ebpf: Ebpf,
    vips: HashMap<MapData, VipKey, VipValue>,
    counters: PerCpuArray<MapData, VipStats>,
    /// The counter slot of each key inserted, as the agent would hand
    /// them out (a key keeps its slot; none is reused).
    slots: BTreeMap<VipKey, u32>,
    agent: Array<MapData, AgentState>,
}

/// Now on CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` reads, in
/// nanoseconds.
pub fn monotonic_now_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(ret, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `HOP_BY_HOP_WALK` as a kernel without `bpf_xdp_load_bytes` gets it.
static WALK_OFF: u8 = 0;

impl LoadedResponder {
    pub fn load() -> Result<Self, TestRunError> {
        Self::load_from(responder::bpf::object_loader())
    }

    /// The program as the agent loads it on a kernel older than 5.18: the
    /// Hop-by-Hop walk turned off (see `responder_common::HOP_BY_HOP_WALK_GLOBAL`).
    pub fn load_without_hop_by_hop_walk() -> Result<Self, TestRunError> {
        let mut loader = responder::bpf::object_loader();
        loader.override_global(responder_common::HOP_BY_HOP_WALK_GLOBAL, &WALK_OFF, true);
        Self::load_from(loader)
    }

    /// Instructions of the program after the verifier (dead code removed).
    pub fn translated_size(&self) -> Result<u32, TestRunError> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(TestRunError::Missing("XDP program"))?
            .try_into()?;
        program
            .info()?
            .size_translated()
            .ok_or(TestRunError::Missing("translated size"))
    }

    fn load_from(mut loader: aya::EbpfLoader<'_>) -> Result<Self, TestRunError> {
        let mut ebpf = loader.load(responder::EBPF_OBJECT)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(TestRunError::Missing("XDP program"))?
            .try_into()?;
        responder::bpf::load_retrying(|| program.load())?;
        let vips = ebpf
            .take_map(VIPS_MAP)
            .ok_or(TestRunError::Missing("VIPS map"))?;
        let counters = ebpf
            .take_map(VIP_COUNTERS_MAP)
            .ok_or(TestRunError::Missing("VIP_COUNTERS map"))?;
        let agent = ebpf
            .take_map(AGENT_MAP)
            .ok_or(TestRunError::Missing("AGENT map"))?;
        Ok(LoadedResponder {
            ebpf,
            vips: HashMap::try_from(vips)?,
            counters: PerCpuArray::try_from(counters)?,
            slots: BTreeMap::new(),
            agent: Array::try_from(agent)?,
        })
    }

    /// Adds (or rewrites) a VIP, its counters zeroed when it is new, in a
    /// counter slot of its own, as the agent does.
    pub fn insert_vip(&mut self, key: VipKey, value: VipValue) -> Result<(), TestRunError> {
        let next = self.slots.len() as u32;
        let slot = match self.slots.get(&key) {
            Some(&slot) => slot,
            None => {
                let cpus = nr_cpus().map_err(|(what, error)| TestRunError::Cpus(what, error))?;
                let zeroed = PerCpuValues::try_from(vec![VipStats::default(); cpus])
                    .map_err(|error| TestRunError::Cpus("per-CPU values", error))?;
                self.counters.set(next, zeroed, 0)?;
                self.slots.insert(key, next);
                next
            }
        };
        self.insert_vip_as_is(
            key,
            VipValue {
                counter_slot: slot,
                ..value
            },
        )
    }

    /// Writes `value` for `key` exactly as given, counter slot included.
    pub fn insert_vip_as_is(&mut self, key: VipKey, value: VipValue) -> Result<(), TestRunError> {
        self.vips.insert(key, value, 0)?;
        Ok(())
    }

    /// Removes a VIP; its slot is not reused.
    pub fn remove_vip(&mut self, key: &VipKey) -> Result<(), TestRunError> {
        self.vips.remove(key)?;
        Ok(())
    }

    /// Attaches the program in driver mode to `ifname` in `ns` until `self`
    /// is dropped.
    pub fn attach(&mut self, ns: &NetNs, ifname: &str) -> Result<(), TestRunError> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(TestRunError::Missing("XDP program"))?
            .try_into()?;
        ns.enter(|| program.attach(ifname, XdpMode::Driver))?;
        Ok(())
    }

    /// The VIP's entry as the program last left it.
    pub fn vip(&self, key: &VipKey) -> Result<VipValue, TestRunError> {
        Ok(self.vips.get(key, 0)?)
    }

    /// Writes the agent's heartbeat entry, as the agent does every second.
    pub fn set_agent_state(&mut self, state: AgentState) -> Result<(), TestRunError> {
        self.agent.set(0, state, 0)?;
        Ok(())
    }

    /// The counters in the slot `insert_vip` gave `key`, summed over all
    /// CPUs; zero for a key it never saw.
    pub fn stats(&self, key: &VipKey) -> Result<VipStats, TestRunError> {
        match self.slots.get(key) {
            Some(slot) => self.slot_stats(*slot),
            None => Ok(VipStats::default()),
        }
    }

    /// The counters in `slot`, summed over all CPUs.
    pub fn slot_stats(&self, slot: u32) -> Result<VipStats, TestRunError> {
        let mut total = VipStats::default();
        for per_cpu in self.counters.get(&slot, 0)?.iter() {
            total.add(per_cpu);
        }
        Ok(total)
    }

    /// Runs the program once on `frame` as if it arrived on `ingress_ifindex`;
    /// returns the XDP action and the frame as the program left it.
    pub fn try_run(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
    ) -> Result<(u32, Vec<u8>), TestRunError> {
        let outcome = self.test_run(frame, ingress_ifindex, 1)?;
        Ok((outcome.action, outcome.output))
    }

    /// `try_run` for tests, which expect the kernel to accept the frame.
    pub fn run(&self, frame: &[u8], ingress_ifindex: u32) -> (u32, Vec<u8>) {
        self.try_run(frame, ingress_ifindex)
            .expect("BPF_PROG_TEST_RUN failed")
    }

    /// Mean run time in nanoseconds over `repeat` runs. The kernel reuses one
    /// buffer for all of them, so a frame the program rewrites (an answered
    /// request) is seen as its own reply from the second run on.
    pub fn run_repeat(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<u32, TestRunError> {
        Ok(self.test_run(frame, ingress_ifindex, repeat)?.duration_ns)
    }

    fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<Outcome, TestRunError> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(TestRunError::Missing("XDP program"))?
            .try_into()?;
        let program_fd = program.fd()?.as_fd().as_raw_fd();
        let mut output = vec![0u8; DATA_OUT_LEN];
        let raw = test_run_fd(
            program_fd,
            frame,
            ingress_ifindex,
            repeat,
            Some(&mut output),
        )?;
        output.truncate(raw.output_len);
        Ok(Outcome {
            action: raw.action,
            output,
            duration_ns: raw.duration_ns,
        })
    }
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES` from the UAPI: run the program on real
/// page-pool frames and carry out its verdict (XDP_TX and XDP_REDIRECT send
/// the frame, XDP_PASS hands it to the stack) instead of copying it back.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Runs the XDP program behind `program_fd` on `frames` copies of `frame`
/// in live-frame mode, `batch_size` at a time, as if they arrived on
/// `ingress_ifindex` (resolved in the calling thread's network namespace):
/// what the program returns is done to them for real. This is how
/// xdp-tools' `xdp-trafficgen` sends.
pub fn test_run_live(
    program_fd: RawFd,
    frame: &[u8],
    ingress_ifindex: u32,
    frames: u32,
    batch_size: u32,
) -> Result<(), TestRunError> {
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex,
        ..XdpMd::default()
    };
    let mut attr = TestRunAttr {
        prog_fd: program_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: frames,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size,
        ..TestRunAttr::default()
    };
    bpf_test_run(&mut attr)
}

fn bpf_test_run(attr: &mut TestRunAttr) -> Result<(), TestRunError> {
    // SAFETY: every pointer in `attr` refers to live buffers of the sizes
    // given, which outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestRunAttr,
            size_of::<TestRunAttr>(),
        )
    };
    if ret < 0 {
        return Err(TestRunError::Syscall(io::Error::last_os_error()));
    }
    Ok(())
}

/// What the kernel reported for one BPF_PROG_TEST_RUN.
pub struct RawOutcome {
    pub action: u32,
    /// Mean nanoseconds per repetition, measured by the kernel.
    pub duration_ns: u32,
    /// Bytes written to `output` (0 without one).
    pub output_len: usize,
}

/// One BPF_PROG_TEST_RUN of the XDP program behind `program_fd` on `frame`,
/// as if it arrived on `ingress_ifindex`. Without `output` the kernel copies
/// nothing back, which is what a benchmark wants.
pub fn test_run_fd(
    program_fd: RawFd,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
    output: Option<&mut [u8]>,
) -> Result<RawOutcome, TestRunError> {
    // data/data_end are offsets into the frame; the kernel insists they
    // cover it exactly and that there is no metadata.
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex,
        ..XdpMd::default()
    };
    let (data_out, data_size_out) = match output {
        Some(buffer) => (buffer.as_mut_ptr() as u64, buffer.len() as u32),
        None => (0, 0),
    };
    let mut attr = TestRunAttr {
        prog_fd: program_fd as u32,
        data_size_in: frame.len() as u32,
        data_size_out,
        data_in: frame.as_ptr() as u64,
        data_out,
        repeat,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        ..TestRunAttr::default()
    };
    bpf_test_run(&mut attr)?;
    Ok(RawOutcome {
        action: attr.retval,
        duration_ns: attr.duration,
        output_len: if data_out == 0 {
            0
        } else {
            attr.data_size_out as usize
        },
    })
}

/// The maps about the node's interfaces, written as the agent does.
impl LoadedResponder {
    /// Adds `mac` to `OWN_MACS`: a MAC of another interface of this node.
    pub fn add_own_mac(&mut self, mac: [u8; 6]) -> Result<(), TestRunError> {
        let map = self
            .ebpf
            .map_mut(OWN_MACS_MAP)
            .ok_or(TestRunError::Missing("OWN_MACS map"))?;
        let mut own_macs: HashMap<&mut MapData, OwnMacKey, u8> = HashMap::try_from(map)?;
        own_macs.insert(OwnMacKey::new(mac), 1, 0)?;
        Ok(())
    }

    /// Maps bond member `member` to `bond` in `BOND_OF`.
    pub fn add_bond_member(&mut self, member: u32, bond: u32) -> Result<(), TestRunError> {
        let map = self
            .ebpf
            .map_mut(BOND_OF_MAP)
            .ok_or(TestRunError::Missing("BOND_OF map"))?;
        let mut bond_of: HashMap<&mut MapData, u32, u32> = HashMap::try_from(map)?;
        bond_of.insert(member, bond, 0)?;
        Ok(())
    }
}
