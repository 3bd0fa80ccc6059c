//! Kernel side of the agent: loading and attaching the XDP program, the pin
//! directory, the maps, and the `vips` / `cleanup` views of a pin directory.

use std::{
    collections::BTreeMap,
    fs, io,
    net::IpAddr,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    maps::{Array, HashMap, IterableMap as _, Map, MapData, MapError, PerCpuHashMap, PerCpuValues},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
        Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use responder_common::{
    AgentState, VipKey, VipStats, VipValue, AGENT_MAP, PIN_AGENT, PIN_LINK_PREFIX, PIN_PROGRAM,
    PIN_VIPS, PIN_VIP_STATS, PROGRAM_NAME, VIPS_MAP, VIP_STATS_MAP,
};

use crate::{
    dataplane::VipMap,
    error::{display_chain, privileges_or, Error},
    netif::{format_mac, name_of, Interface},
    vip::{key_addr, key_vlan},
    EBPF_OBJECT,
};

pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/responder";

/// Pins are made under this prefix and renamed into place (bpffs rejects
/// names with dots, so no hidden files).
const STAGING_PREFIX: &str = "staging_";

/// `f_type` of a bpffs mount (linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic (skb) mode where the
    /// driver has no XDP support.
    Auto,
    Driver,
    Skb,
}

fn is_bpffs(path: &Path) -> Result<bool, Error> {
    let stat = nix::sys::statfs::statfs(path).map_err(|errno| Error::Filesystem {
        action: "checking the filesystem of",
        path: path.to_owned(),
        source: errno.into(),
    })?;
    Ok(stat.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}

/// Pins under the agent's pin directory, removed on drop (also when startup
/// fails halfway), plus the directory itself if the agent created it.
struct PinDir {
    path: PathBuf,
    created: bool,
    pins: Vec<PathBuf>,
    /// `link_<ifname>` pins a previous agent left, by interface name.
    previous_links: Vec<String>,
    /// Whether a previous agent left any pins: they are adopted, not refused.
    previous: bool,
}

impl PinDir {
    /// Opens (creating it if needed) a directory on bpffs. Pins already in
    /// it belong to a previous agent (killed, restarting or an older build):
    /// they are noted for adoption rather than refused, so a restart never
    /// takes the program off the interfaces.
    fn open(path: &Path) -> Result<Self, Error> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => {
                return Err(Error::NotBpffs {
                    path: path.to_owned(),
                })
            }
        };
        if !is_bpffs(parent)? {
            return Err(Error::NotBpffs {
                path: parent.to_owned(),
            });
        }
        let created = match fs::create_dir(path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(source) => {
                let action = format!("creating {}", path.display());
                return Err(if source.kind() == io::ErrorKind::PermissionDenied {
                    Error::Privileges {
                        action,
                        source: Box::new(source),
                    }
                } else {
                    Error::Filesystem {
                        action: "creating",
                        path: path.to_owned(),
                        source,
                    }
                });
            }
        };
        let read_error = |source| Error::Filesystem {
            action: "reading",
            path: path.to_owned(),
            source,
        };
        let mut previous = false;
        let mut previous_links = Vec::new();
        for entry in fs::read_dir(path).map_err(read_error)? {
            let name = entry.map_err(read_error)?.file_name();
            let name = name.to_string_lossy();
            previous = true;
            if let Some(ifname) = name.strip_prefix(PIN_LINK_PREFIX) {
                previous_links.push(ifname.to_owned());
            }
        }
        previous_links.sort();
        Ok(PinDir {
            path: path.to_owned(),
            // An adopted directory is the previous agent's, whose removal
            // on a clean exit is now this agent's job.
            created: created || previous,
            pins: Vec::new(),
            previous_links,
            previous,
        })
    }

    /// Path for pin `name`, remembered for removal.
    fn pin_path(&mut self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        if !self.pins.contains(&path) {
            self.pins.push(path.clone());
        }
        path
    }

    /// Pins an object as `name` through `pin`, atomically replacing a pin of
    /// that name a previous agent left: readers (`responder vips`, a later
    /// agent) always find either the old object or the new one.
    fn pin_replacing(
        &mut self,
        name: &str,
        pin: impl FnOnce(&Path) -> Result<(), aya::pin::PinError>,
    ) -> Result<(), Error> {
        let staging = self.path.join(format!("{STAGING_PREFIX}{name}"));
        // Left over by an agent that died between pin and rename.
        let _ = fs::remove_file(&staging);
        pin(&staging).map_err(|source| Error::Pin {
            path: staging.clone(),
            source,
        })?;
        let path = self.pin_path(name);
        fs::rename(&staging, &path).map_err(|source| {
            let _ = fs::remove_file(&staging);
            Error::Filesystem {
                action: "replacing pin",
                path,
                source,
            }
        })
    }

    /// Stops tracking `path` once it has been unpinned by other means.
    fn forget(&mut self, path: &Path) {
        self.pins.retain(|p| p != path);
    }

    /// Keeps every pin (and with them the links and the program) in place
    /// after the agent exits, for the next agent to adopt.
    fn keep(&mut self) {
        self.pins.clear();
        self.created = false;
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Links first: removing their pins detaches XDP before the maps go.
        self.pins.sort_by_key(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(PIN_LINK_PREFIX))
        });
        for pin in &self.pins {
            match fs::remove_file(pin) {
                Ok(()) => tracing::debug!(pin = %pin.display(), "unpinned"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(pin = %pin.display(), "removing pin: {e}"),
            }
        }
        if self.created {
            if let Err(e) = fs::remove_dir(&self.path) {
                tracing::warn!(path = %self.path.display(), "removing pin directory: {e}");
            }
        }
    }
}

/// How long the data plane keeps answering without a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleGate {
    /// Heartbeat age after which nothing is answered.
    pub stale_after: Duration,
    /// Heartbeat age after which a conflicting announcement yields the VIP.
    pub yield_after: Duration,
}

/// The `AGENT` entry proving the agent alive at `now` (CLOCK_MONOTONIC).
/// Never 0 on the heartbeat, which would switch the gate off.
pub fn agent_state(now: Duration, gate: StaleGate) -> AgentState {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    AgentState {
        heartbeat_ns: nanos(now).max(1),
        stale_after_ns: nanos(gate.stale_after),
        yield_after_ns: nanos(gate.yield_after),
    }
}

/// CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` reads (not boottime, not
/// wall time).
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The agent's side of the stale gate: the `AGENT` map.
pub struct Heartbeat {
    map: Array<MapData, AgentState>,
    gate: StaleGate,
}

impl Heartbeat {
    /// Writes the whole entry (limits included) with a fresh heartbeat.
    pub fn beat(&mut self) -> Result<(), Error> {
        self.map
            .set(0, agent_state(monotonic_now(), self.gate), 0)
            .map_err(|source| map_error("writing", AGENT_MAP, source))
    }
}

/// What a previous agent left behind and this one took over.
#[derive(Debug, Default)]
pub struct Adopted {
    /// The previous VIPS entries, copied into the new map with their flags
    /// cleared; the agent starts from them, so until its first reconcile the
    /// node answers exactly as before.
    pub vips: BTreeMap<VipKey, VipValue>,
    /// Interfaces whose pinned link now runs the new program.
    pub interfaces: Vec<String>,
}

/// The loaded program and its attachments, keyed by ifindex. Dropping it
/// detaches from every interface and removes every pin the agent created,
/// unless [`Loaded::keep_pinned`] was called.
pub struct Loaded {
    links: BTreeMap<u32, (String, PinnedLink)>,
    mode: AttachMode,
    heartbeat: Heartbeat,
    pins: PinDir,
    ebpf: Ebpf,
}

impl Loaded {
    /// Names of the interfaces the program is attached to, by ifindex.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.values().map(|(name, _)| name.as_str())
    }

    /// The ifindexes the program is attached to.
    pub fn attached_ifindexes(&self) -> Vec<u32> {
        self.links.keys().copied().collect()
    }

    /// The interface attached under `ifindex`, by name.
    pub fn attached_name(&self, ifindex: u32) -> Option<&str> {
        self.links.get(&ifindex).map(|(name, _)| name.as_str())
    }

    pub fn pin_path(&self) -> &Path {
        &self.pins.path
    }

    /// Refreshes the heartbeat the data plane's stale gate checks.
    pub fn beat(&mut self) -> Result<(), Error> {
        self.heartbeat.beat()
    }

    /// On drop, leaves the program attached and everything pinned, for the
    /// next agent to adopt; the stale gate bounds how long it keeps
    /// answering without an agent.
    pub fn keep_pinned(&mut self) {
        self.pins.keep();
    }

    /// Whether a newer agent has adopted this one's pins: its program is
    /// pinned now and its links run it, so removing "our" pins (same names)
    /// would tear the newer agent down.
    pub fn superseded(&mut self) -> bool {
        let pinned = aya::programs::ProgramInfo::from_pin(self.pins.path.join(PIN_PROGRAM));
        let ours = self.program().ok().and_then(|p| p.info().ok());
        match (pinned, ours) {
            (Ok(pinned), Some(ours)) => pinned.id() != ours.id(),
            // Our pin is gone: someone else cleaned up or replaced it.
            (Err(_), _) => true,
            (_, None) => false,
        }
    }

    fn program(&mut self) -> Result<&mut Xdp, Error> {
        xdp_program(&mut self.ebpf)
    }

    /// Attaches the program to `interface` and pins the link as
    /// `link_<ifname>`. Attaching an ifindex twice is a no-op.
    pub fn attach(&mut self, interface: &Interface) -> Result<(), Error> {
        if self.links.contains_key(&interface.ifindex) {
            return Ok(());
        }
        let mode = self.mode;
        let program = self.program()?;
        let link_id = attach(program, interface, mode)?;
        let link = program.take_link(link_id).map_err(|source| Error::Attach {
            interface: interface.name.clone(),
            mode: "any",
            source,
        })?;
        let link =
            FdLink::try_from(link).map_err(|_| Error::UnpinnableLink(interface.name.clone()))?;
        let path = self
            .pins
            .pin_path(&format!("{PIN_LINK_PREFIX}{}", interface.name));
        // On failure the dropped link detaches again.
        let pinned = link.pin(&path).map_err(|source| {
            self.pins.forget(&path);
            Error::Pin { path, source }
        })?;
        self.links
            .insert(interface.ifindex, (interface.name.clone(), pinned));
        Ok(())
    }

    /// Unpins and closes the link on `ifindex`, which detaches the program
    /// (the kernel has already done so if the interface was deleted).
    /// Returns the interface name, or None when nothing was attached there.
    pub fn detach(&mut self, ifindex: u32) -> Option<String> {
        let (name, link) = self.links.remove(&ifindex)?;
        let path = self.pins.path.join(format!("{PIN_LINK_PREFIX}{name}"));
        self.pins.forget(&path);
        if let Err(e) = link.unpin() {
            tracing::warn!(interface = %name, pin = %path.display(), "removing link pin: {e}");
        }
        Some(name)
    }

    /// Points every pinned link of the previous agent at the new program
    /// with BPF_LINK_UPDATE: the same link, no moment without a program.
    /// A link whose interface is gone is defunct; its pin is removed and the
    /// interface, should it come back, gets a fresh attachment.
    fn adopt_links(&mut self) -> Vec<String> {
        let mut adopted = Vec::new();
        for name in std::mem::take(&mut self.pins.previous_links) {
            let path = self.pins.path.join(format!("{PIN_LINK_PREFIX}{name}"));
            match self.replace_program_on(&name, &path) {
                Ok((ifindex, pinned)) => {
                    self.pins.pin_path(&format!("{PIN_LINK_PREFIX}{name}"));
                    self.links.insert(ifindex, (name.clone(), pinned));
                    adopted.push(name);
                }
                Err(reason) => {
                    tracing::warn!(interface = %name, pin = %path.display(), "cannot adopt link ({reason}); removing its pin");
                    if let Err(e) = fs::remove_file(&path) {
                        tracing::warn!(pin = %path.display(), "removing link pin: {e}");
                    }
                }
            }
        }
        adopted
    }

    fn replace_program_on(&mut self, name: &str, path: &Path) -> Result<(u32, PinnedLink), String> {
        let ifindex =
            nix::net::if_::if_nametoindex(name).map_err(|e| format!("interface {name}: {e}"))?;
        let pinned = PinnedLink::from_pin(path).map_err(|e| display_chain(&e))?;
        let old_program = FdLink::from(pinned)
            .info()
            .map(|info| (info.id(), info.program_id()));
        let fd_link = FdLink::from(PinnedLink::from_pin(path).map_err(|e| display_chain(&e))?);
        let link = XdpLink::try_from(fd_link).map_err(|e| display_chain(&e))?;
        let program = self.program().map_err(|e| display_chain(&e))?;
        let link_id = program
            .attach_to_link(link)
            .map_err(|e| display_chain(&e))?;
        // The program must not own the link: dropping it would detach.
        drop(program.take_link(link_id).map_err(|e| display_chain(&e))?);
        let pinned = PinnedLink::from_pin(path).map_err(|e| display_chain(&e))?;
        let info = FdLink::from(PinnedLink::from_pin(path).map_err(|e| display_chain(&e))?)
            .info()
            .map_err(|e| display_chain(&e))?;
        let old_program = old_program.map_or(0, |(_, prog)| prog);
        tracing::info!(
            interface = name,
            ifindex,
            link_id = info.id(),
            old_program,
            new_program = info.program_id(),
            "replaced program on link {} of {name} without detaching",
            info.id()
        );
        Ok((ifindex, pinned))
    }
}

/// Loads the XDP object with fresh maps and writes the first heartbeat. When
/// `pin_path` holds a previous agent's pins, adopts them: its VIPs and
/// summed counters are copied into the new maps, its links switched to the
/// new program in place, and its pins replaced by the new ones (the link pins
/// stay). Otherwise the program is pinned and attached with
/// [`Loaded::attach`] as usual.
pub fn load(
    mode: AttachMode,
    pin_path: &Path,
    gate: StaleGate,
) -> Result<(Loaded, BpfVipMap, Adopted), Error> {
    let pins = PinDir::open(pin_path)?;
    let mut ebpf = EbpfLoader::new()
        .load(EBPF_OBJECT)
        .map_err(|e| privileges_or("loading the XDP object", e, Error::Load))?;

    let take =
        |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(Error::MissingObject(name));
    let vips = take(&mut ebpf, VIPS_MAP)?;
    let stats = take(&mut ebpf, VIP_STATS_MAP)?;
    let agent = take(&mut ebpf, AGENT_MAP)?;
    let nr_cpus =
        aya::util::nr_cpus().map_err(|(_, e)| map_error("sizing", VIP_STATS_MAP, e.into()))?;
    let mut map = BpfVipMap {
        nr_cpus,
        vips: HashMap::try_from(vips).map_err(|source| map_error("opening", VIPS_MAP, source))?,
        stats: PerCpuHashMap::try_from(stats)
            .map_err(|source| map_error("opening", VIP_STATS_MAP, source))?,
    };
    let mut heartbeat = Heartbeat {
        map: Array::try_from(agent).map_err(|source| map_error("opening", AGENT_MAP, source))?,
        gate,
    };

    let mut adopted = Adopted::default();
    if pins.previous {
        tracing::info!(pin_path = %pin_path.display(), "adopting pinned program from a previous agent");
        adopted.vips = copy_previous_entries(pin_path, &mut map)?;
    }
    // Before any interface runs the new program, or it would treat the
    // agent as long dead.
    heartbeat.beat()?;

    let program = xdp_program(&mut ebpf)?;
    program.load().map_err(|source| {
        privileges_or("loading the XDP program", source, |source| {
            Error::LoadProgram {
                name: PROGRAM_NAME,
                source,
            }
        })
    })?;
    let mut loaded = Loaded {
        links: BTreeMap::new(),
        mode,
        heartbeat,
        pins,
        ebpf,
    };
    adopted.interfaces = loaded.adopt_links();

    let pins = &mut loaded.pins;
    pins.pin_replacing(PIN_VIPS, |path| map.vips.map().pin(path))?;
    pins.pin_replacing(PIN_VIP_STATS, |path| map.stats.map().pin(path))?;
    pins.pin_replacing(PIN_AGENT, |path| loaded.heartbeat.map.map().pin(path))?;
    let program = xdp_program(&mut loaded.ebpf)?;
    pins.pin_replacing(PIN_PROGRAM, |path| program.pin(path))?;
    Ok((loaded, map, adopted))
}

/// Copies the previous agent's VIPs (flags cleared: this agent re-asserts
/// them) and their counters summed over CPUs into the new maps. Counters
/// are decoded from the old value layout, whatever its size.
fn copy_previous_entries(
    pin_path: &Path,
    map: &mut BpfVipMap,
) -> Result<BTreeMap<VipKey, VipValue>, Error> {
    let mut copied = BTreeMap::new();
    let vips_path = pin_path.join(PIN_VIPS);
    if !vips_path.exists() {
        return Ok(copied);
    }
    let old_vips: HashMap<MapData, VipKey, VipValue> =
        HashMap::try_from(open_pinned(pin_path, PIN_VIPS)?)
            .map_err(|source| map_error("reading the previous", PIN_VIPS, source))?;
    let old_stats = match pin_path.join(PIN_VIP_STATS).exists() {
        true => read_stats_any_layout(pin_path)?,
        false => BTreeMap::new(),
    };
    for entry in old_vips.iter() {
        let (key, mut value) =
            entry.map_err(|source| map_error("reading the previous", PIN_VIPS, source))?;
        value.flags = 0;
        let total = old_stats.get(&key).copied().unwrap_or_default();
        let mut per_cpu = vec![VipStats::default(); map.nr_cpus];
        per_cpu[0] = total;
        let per_cpu = PerCpuValues::try_from(per_cpu)
            .map_err(|e| map_error("sizing", VIP_STATS_MAP, e.into()))?;
        map.stats
            .insert(key, per_cpu, 0)
            .map_err(|e| map_error("inserting into", VIP_STATS_MAP, e))?;
        map.vips
            .insert(key, value, 0)
            .map_err(|e| map_error("inserting into", VIPS_MAP, e))?;
        copied.insert(key, value);
    }
    tracing::info!(
        vips = copied.len(),
        "copied the previous agent's VIPs and counters"
    );
    Ok(copied)
}

/// Counters from their leading `u64`s: an older agent's value may be shorter
/// (missing counters are 0) or a newer one's longer (extra ones ignored).
pub fn decode_stats_prefix(words: &[u64]) -> VipStats {
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    VipStats {
        requests: word(0),
        replies: word(1),
        conflicts: word(2),
        stale: word(3),
    }
}

fn sum_stats_words<const N: usize>(data: MapData) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let map = Map::from_map_data(data)
        .and_then(PerCpuHashMap::<MapData, VipKey, [u64; N]>::try_from)
        .map_err(|source| map_error("reading", PIN_VIP_STATS, source))?;
    let mut totals = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(|source| map_error("reading", PIN_VIP_STATS, source))?;
        let mut total = VipStats::default();
        per_cpu
            .iter()
            .for_each(|words| total.add(&decode_stats_prefix(words)));
        totals.insert(key, total);
    }
    Ok(totals)
}

/// The pinned counters summed over CPUs, whichever agent version wrote them.
fn read_stats_any_layout(pin_path: &Path) -> Result<BTreeMap<VipKey, VipStats>, Error> {
    let path = pin_path.join(PIN_VIP_STATS);
    let data = MapData::from_pin(&path)
        .map_err(|source| map_error("opening pinned", PIN_VIP_STATS, source))?;
    let value_size = data
        .info()
        .map_err(|source| map_error("inspecting", PIN_VIP_STATS, source))?
        .value_size();
    match value_size {
        8 => sum_stats_words::<1>(data),
        16 => sum_stats_words::<2>(data),
        24 => sum_stats_words::<3>(data),
        32 => sum_stats_words::<4>(data),
        40 => sum_stats_words::<5>(data),
        48 => sum_stats_words::<6>(data),
        56 => sum_stats_words::<7>(data),
        64 => sum_stats_words::<8>(data),
        other => {
            tracing::warn!(
                value_size = other,
                "unknown counter layout in {}; counters not read",
                path.display()
            );
            Ok(BTreeMap::new())
        }
    }
}

fn map_error(action: &'static str, map: &str, source: MapError) -> Error {
    privileges_or(&format!("{action} map {map}"), source, |source| {
        Error::Map {
            action,
            map: map.to_owned(),
            source,
        }
    })
}

fn attach(
    program: &mut Xdp,
    interface: &Interface,
    mode: AttachMode,
) -> Result<aya::programs::xdp::XdpLinkId, Error> {
    let try_mode = |program: &mut Xdp, mode: XdpMode, label: &'static str| {
        let result = program
            .attach_to_if_index(interface.ifindex, mode)
            .map_err(|source| {
                privileges_or(
                    &format!("attaching XDP to {}", interface.name),
                    source,
                    |source| Error::Attach {
                        interface: interface.name.clone(),
                        mode: label,
                        source,
                    },
                )
            });
        if result.is_ok() {
            tracing::info!(interface = %interface.name, mode = label, "attached XDP program");
        }
        result
    };
    match mode {
        AttachMode::Driver => try_mode(program, XdpMode::Driver, "driver"),
        AttachMode::Skb => try_mode(program, XdpMode::Skb, "skb"),
        AttachMode::Auto => match try_mode(program, XdpMode::Driver, "driver") {
            Err(e @ Error::Privileges { .. }) => Err(e),
            Err(e) => {
                tracing::info!(
                    interface = %interface.name,
                    "driver-mode XDP unavailable ({}); falling back to skb (generic) mode",
                    display_chain(&e)
                );
                try_mode(program, XdpMode::Skb, "skb")
            }
            ok => ok,
        },
    }
}

/// The VIPS and VIP_STATS maps of a loaded program.
pub struct BpfVipMap {
    nr_cpus: usize,
    vips: HashMap<MapData, VipKey, VipValue>,
    stats: PerCpuHashMap<MapData, VipKey, VipStats>,
}

const BPF_NOEXIST: u64 = 1;

fn os_error(error: &MapError) -> Option<i32> {
    match error {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    }
}

impl BpfVipMap {
    /// A second handle on the counters, for reading them from other tasks
    /// (metrics scrapes) while the agent keeps writing VIPs.
    pub fn stats_reader(&self) -> Result<StatsReader, Error> {
        let fd = self
            .stats
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| map_error("duplicating", VIP_STATS_MAP, MapError::from(e)))?;
        let stats = MapData::from_fd(fd)
            .and_then(Map::from_map_data)
            .and_then(PerCpuHashMap::try_from)
            .map_err(|source| map_error("opening", VIP_STATS_MAP, source))?;
        Ok(StatsReader { stats })
    }
}

/// Read access to the per-CPU VIP counters of a running agent.
pub struct StatsReader {
    stats: PerCpuHashMap<MapData, VipKey, VipStats>,
}

impl StatsReader {
    /// Every VIP key's counters summed over CPUs; entries removed while
    /// iterating are skipped.
    pub fn read(&self) -> Vec<(VipKey, VipStats)> {
        self.stats
            .iter()
            .filter_map(Result::ok)
            .map(|(key, per_cpu)| {
                let mut total = VipStats::default();
                per_cpu.iter().for_each(|s| total.add(s));
                (key, total)
            })
            .collect()
    }
}

impl VipMap for BpfVipMap {
    fn insert(&mut self, key: &VipKey, value: &VipValue) -> Result<(), Error> {
        // Counters first, so the program never sees a VIP without them; an
        // existing entry (value update) keeps its counts.
        let zeros = PerCpuValues::try_from(vec![VipStats::default(); self.nr_cpus])
            .map_err(|e| map_error("sizing", VIP_STATS_MAP, e.into()))?;
        match self.stats.insert(key, zeros, BPF_NOEXIST) {
            Err(e) if os_error(&e) != Some(libc::EEXIST) => {
                return Err(map_error("inserting into", VIP_STATS_MAP, e))
            }
            _ => {}
        }
        self.vips
            .insert(key, value, 0)
            .map_err(|e| map_error("inserting into", VIPS_MAP, e))
    }

    fn remove(&mut self, key: &VipKey) -> Result<(), Error> {
        for (name, result) in [
            (VIPS_MAP, self.vips.remove(key)),
            (VIP_STATS_MAP, self.stats.remove(key)),
        ] {
            match result {
                Err(e) if os_error(&e) != Some(libc::ENOENT) => {
                    return Err(map_error("removing from", name, e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// One row of `responder vips`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct VipRow {
    pub ip: IpAddr,
    pub interface: String,
    pub ifindex: u32,
    /// `None` untagged, else `"100"` or `"100.200"`.
    pub vlan: Option<String>,
    pub mac: String,
    pub requests: u64,
    pub replies: u64,
    pub conflicts: u64,
    /// Requests left unanswered by the stale gate or a yielded VIP.
    pub stale: u64,
}

fn open_pinned(pin_path: &Path, name: &str) -> Result<Map, Error> {
    let path = pin_path.join(name);
    if !path.exists() {
        return Err(Error::NothingPinned {
            path: pin_path.to_owned(),
        });
    }
    let data =
        MapData::from_pin(&path).map_err(|source| map_error("opening pinned", name, source))?;
    Map::from_map_data(data).map_err(|source| map_error("opening pinned", name, source))
}

/// Reads the pinned maps of an agent (running or not), counters summed over
/// CPUs, sorted by address, interface and VLAN.
pub fn read_pinned_vips(pin_path: &Path) -> Result<Vec<VipRow>, Error> {
    let vips: HashMap<MapData, VipKey, VipValue> =
        HashMap::try_from(open_pinned(pin_path, PIN_VIPS)?)
            .map_err(|source| map_error("reading", PIN_VIPS, source))?;
    let stats = match pin_path.join(PIN_VIP_STATS).exists() {
        true => read_stats_any_layout(pin_path)?,
        false => BTreeMap::new(),
    };
    let mut rows = Vec::new();
    for entry in vips.iter() {
        let (key, value) = entry.map_err(|source| map_error("reading", PIN_VIPS, source))?;
        let total = stats.get(&key).copied().unwrap_or_default();
        let vlan = key_vlan(&key);
        rows.push(VipRow {
            ip: key_addr(&key),
            interface: name_of(key.ifindex).unwrap_or_else(|| format!("#{}", key.ifindex)),
            ifindex: key.ifindex,
            vlan: vlan.is_tagged().then(|| vlan.to_string()),
            mac: format_mac(&value.mac),
            requests: total.requests,
            replies: total.replies,
            conflicts: total.conflicts,
            stale: total.stale,
        });
    }
    rows.sort();
    Ok(rows)
}

/// Counters of `responder stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub requests: u64,
    pub replies: u64,
    pub conflicts: u64,
    pub stale: u64,
}

impl From<VipStats> for Totals {
    fn from(s: VipStats) -> Self {
        Totals {
            requests: s.requests,
            replies: s.replies,
            conflicts: s.conflicts,
            stale: s.stale,
        }
    }
}

/// One attached interface of `responder stats`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkRow {
    pub interface: String,
    /// None when the interface no longer exists (the link is defunct).
    pub ifindex: Option<u32>,
    pub link_id: u32,
    pub program_id: u32,
    /// Counters of the VIPs on this interface.
    pub counters: Totals,
}

/// The `AGENT` entry of `responder stats`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HeartbeatRow {
    /// Seconds since the agent's last heartbeat; None if it never wrote one.
    pub heartbeat_age_seconds: Option<f64>,
    pub stale_after_seconds: f64,
    pub yield_after_seconds: f64,
    /// Whether the data plane considers the agent dead right now.
    pub stale: bool,
}

impl HeartbeatRow {
    pub fn new(state: &AgentState, now: Duration) -> Self {
        let seconds = |ns: u64| Duration::from_nanos(ns).as_secs_f64();
        let age = (state.heartbeat_ns != 0).then(|| {
            Duration::from_nanos(
                u64::try_from(now.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(state.heartbeat_ns),
            )
        });
        HeartbeatRow {
            heartbeat_age_seconds: age.map(|a| a.as_secs_f64()),
            stale_after_seconds: seconds(state.stale_after_ns),
            yield_after_seconds: seconds(state.yield_after_ns),
            stale: age.is_some_and(|a| a > Duration::from_nanos(state.stale_after_ns)),
        }
    }
}

/// `responder stats`: what the pins say, whether or not an agent runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PinnedStats {
    pub interfaces: Vec<LinkRow>,
    pub totals: Totals,
    /// None when nothing is pinned as `agent` (an agent older than the gate).
    pub agent: Option<HeartbeatRow>,
}

/// Reads the link pins, the counters and the heartbeat under `pin_path`.
pub fn read_pinned_stats(pin_path: &Path) -> Result<PinnedStats, Error> {
    if !pin_path.join(PIN_VIP_STATS).exists() {
        return Err(Error::NothingPinned {
            path: pin_path.to_owned(),
        });
    }
    let counters = read_stats_any_layout(pin_path)?;
    let mut totals = VipStats::default();
    counters.values().for_each(|s| totals.add(s));
    let read_error = |source| Error::Filesystem {
        action: "reading",
        path: pin_path.to_owned(),
        source,
    };
    let mut interfaces = Vec::new();
    for entry in fs::read_dir(pin_path).map_err(read_error)? {
        let file_name = entry.map_err(read_error)?.file_name();
        let Some(name) = file_name
            .to_string_lossy()
            .strip_prefix(PIN_LINK_PREFIX)
            .map(str::to_owned)
        else {
            continue;
        };
        let path = pin_path.join(&file_name);
        let link_error = |e: aya::programs::links::LinkError| Error::Filesystem {
            action: "reading link pin",
            path: path.clone(),
            source: io::Error::other(display_chain(&e)),
        };
        let info = FdLink::from(PinnedLink::from_pin(&path).map_err(link_error)?)
            .info()
            .map_err(link_error)?;
        let ifindex = nix::net::if_::if_nametoindex(name.as_str()).ok();
        let mut on_interface = VipStats::default();
        counters
            .iter()
            .filter(|(key, _)| Some(key.ifindex) == ifindex)
            .for_each(|(_, s)| on_interface.add(s));
        interfaces.push(LinkRow {
            interface: name,
            ifindex,
            link_id: info.id(),
            program_id: info.program_id(),
            counters: on_interface.into(),
        });
    }
    interfaces.sort_by(|a, b| a.interface.cmp(&b.interface));
    let agent = match pin_path.join(PIN_AGENT).exists() {
        true => {
            let map: Array<MapData, AgentState> =
                Array::try_from(open_pinned(pin_path, PIN_AGENT)?)
                    .map_err(|source| map_error("reading", PIN_AGENT, source))?;
            let state = map
                .get(&0, 0)
                .map_err(|source| map_error("reading", PIN_AGENT, source))?;
            Some(HeartbeatRow::new(&state, monotonic_now()))
        }
        false => None,
    };
    Ok(PinnedStats {
        interfaces,
        totals: totals.into(),
        agent,
    })
}

/// Removes the pins an agent leaves under `pin_path` (links first, which
/// detaches XDP unless a running agent still holds the link), then the
/// directory if it is empty. Returns what was removed; nothing is fine.
/// Only names the agent creates are touched, and only on bpffs, so a wrong
/// `--pin-path` cannot delete unrelated files.
pub fn cleanup(pin_path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !pin_path.exists() {
        return Ok(Vec::new());
    }
    if !is_bpffs(pin_path)? {
        return Err(Error::NotBpffs {
            path: pin_path.to_owned(),
        });
    }
    let read_error = |source| Error::Filesystem {
        action: "reading",
        path: pin_path.to_owned(),
        source,
    };
    let mut pins = Vec::new();
    for entry in fs::read_dir(pin_path).map_err(read_error)? {
        let name = entry
            .map_err(read_error)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        let order = match name.as_str() {
            n if n.starts_with(PIN_LINK_PREFIX) => 0,
            PIN_PROGRAM => 1,
            PIN_VIPS | PIN_VIP_STATS | PIN_AGENT => 2,
            n if n.starts_with(STAGING_PREFIX) => 2,
            _ => continue,
        };
        pins.push((order, pin_path.join(name)));
    }
    pins.sort();
    let mut removed = Vec::new();
    for (_, pin) in pins {
        match fs::remove_file(&pin) {
            Ok(()) => removed.push(pin),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Filesystem {
                    action: "removing",
                    path: pin,
                    source,
                })
            }
        }
    }
    match fs::remove_dir(pin_path) {
        Ok(()) => removed.push(pin_path.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %pin_path.display(), "pin directory not removed: {e}"),
    }
    Ok(removed)
}

/// The responder's XDP program in `ebpf`.
fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, Error> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(Error::MissingObject("program `responder`"))?
        .try_into()
        .map_err(|source| Error::LoadProgram {
            name: PROGRAM_NAME,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_decode_from_older_and_newer_layouts() {
        let current = VipStats {
            requests: 5,
            replies: 4,
            conflicts: 3,
            stale: 2,
        };
        assert_eq!(decode_stats_prefix(&[5, 4, 3, 2]), current);
        assert_eq!(
            decode_stats_prefix(&[5, 4, 3]),
            VipStats {
                stale: 0,
                ..current
            },
            "an agent without the stale counter"
        );
        assert_eq!(
            decode_stats_prefix(&[5, 4, 3, 2, 99]),
            current,
            "counters a newer agent added are ignored"
        );
        assert_eq!(decode_stats_prefix(&[]), VipStats::default());
    }

    #[test]
    fn heartbeat_entry_is_in_nanoseconds_and_never_disables_the_gate() {
        let gate = StaleGate {
            stale_after: Duration::from_secs(10),
            yield_after: Duration::from_millis(2500),
        };
        assert_eq!(
            agent_state(Duration::new(3, 7), gate),
            AgentState {
                heartbeat_ns: 3_000_000_007,
                stale_after_ns: 10_000_000_000,
                yield_after_ns: 2_500_000_000,
            }
        );
        assert_eq!(agent_state(Duration::ZERO, gate).heartbeat_ns, 1);
        let now = monotonic_now();
        assert!(now > Duration::ZERO && monotonic_now() >= now);
    }

    #[test]
    fn heartbeat_row_reports_age_and_staleness() {
        let state = agent_state(
            Duration::from_secs(100),
            StaleGate {
                stale_after: Duration::from_secs(3),
                yield_after: Duration::from_secs(1),
            },
        );
        let fresh = HeartbeatRow::new(&state, Duration::from_millis(101_500));
        assert_eq!(fresh.heartbeat_age_seconds, Some(1.5));
        assert!(!fresh.stale);
        assert_eq!(
            (fresh.stale_after_seconds, fresh.yield_after_seconds),
            (3.0, 1.0)
        );
        assert!(HeartbeatRow::new(&state, Duration::from_secs(104)).stale);
        let never = HeartbeatRow::new(&AgentState::default(), Duration::from_secs(104));
        assert_eq!(never.heartbeat_age_seconds, None);
        assert!(!never.stale, "no heartbeat: the gate is off");
    }
}
