//! Kernel side of the agent: loading and attaching the XDP program, the pin
//! directory, the maps, and the `vips` / `cleanup` views of a pin directory.

use std::{
    fs, io,
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::{
    maps::{HashMap, Map, MapData, MapError, PerCpuHashMap, PerCpuValues},
    programs::{
        links::{FdLink, PinnedLink},
        Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use responder_common::{
    VipKey, VipStats, VipValue, PIN_LINK_PREFIX, PIN_PROGRAM, PIN_VIPS, PIN_VIP_STATS,
    PROGRAM_NAME, VIPS_MAP, VIP_STATS_MAP,
};

use crate::{
    dataplane::VipMap,
    error::{display_chain, privileges_or, Error},
    netif::{format_mac, name_of, Interface},
    vip::{key_addr, key_vlan},
    EBPF_OBJECT,
};

pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/responder";

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
}

impl PinDir {
    /// Refuses a directory that is not on bpffs or already holds pins: those
    /// pins belong to a running agent or to one that was killed, and reusing
    /// them would fight over the same interfaces.
    fn create(path: &Path) -> Result<Self, Error> {
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
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let mut entries = fs::read_dir(path).map_err(|source| Error::Filesystem {
                    action: "reading",
                    path: path.to_owned(),
                    source,
                })?;
                if entries.next().is_some() {
                    return Err(Error::PinsExist {
                        path: path.to_owned(),
                    });
                }
                false
            }
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
        Ok(PinDir {
            path: path.to_owned(),
            created,
            pins: Vec::new(),
        })
    }

    /// Path for pin `name`, remembered for removal.
    fn pin_path(&mut self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        self.pins.push(path.clone());
        path
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

/// The loaded program and its attachments. Dropping it detaches from every
/// interface and removes every pin the agent created.
pub struct Loaded {
    links: Vec<(String, PinnedLink)>,
    pins: PinDir,
    _ebpf: Ebpf,
}

impl Loaded {
    /// Names of the interfaces the program is attached to.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|(name, _)| name.as_str())
    }

    pub fn pin_path(&self) -> &Path {
        &self.pins.path
    }
}

/// Loads the XDP object, pins program and maps under `pin_path` and attaches
/// to every interface, pinning each link as `link_<ifname>`.
pub fn load(
    interfaces: &[Interface],
    mode: AttachMode,
    pin_path: &Path,
) -> Result<(Loaded, BpfVipMap), Error> {
    let mut pins = PinDir::create(pin_path)?;
    let mut ebpf = EbpfLoader::new()
        .load(EBPF_OBJECT)
        .map_err(|e| privileges_or("loading the XDP object", e, Error::Load))?;

    let vips = take_pinned_map(&mut ebpf, VIPS_MAP, pins.pin_path(PIN_VIPS))?;
    let stats = take_pinned_map(&mut ebpf, VIP_STATS_MAP, pins.pin_path(PIN_VIP_STATS))?;
    let nr_cpus =
        aya::util::nr_cpus().map_err(|(_, e)| map_error("sizing", VIP_STATS_MAP, e.into()))?;
    let map = BpfVipMap {
        nr_cpus,
        vips: HashMap::try_from(vips).map_err(|source| map_error("opening", VIPS_MAP, source))?,
        stats: PerCpuHashMap::try_from(stats)
            .map_err(|source| map_error("opening", VIP_STATS_MAP, source))?,
    };

    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or(Error::MissingObject("program `responder`"))?
        .try_into()
        .map_err(|source| Error::LoadProgram {
            name: PROGRAM_NAME,
            source,
        })?;
    program.load().map_err(|source| {
        privileges_or("loading the XDP program", source, |source| {
            Error::LoadProgram {
                name: PROGRAM_NAME,
                source,
            }
        })
    })?;
    let path = pins.pin_path(PIN_PROGRAM);
    program
        .pin(&path)
        .map_err(|source| Error::Pin { path, source })?;

    let mut links = Vec::new();
    for interface in interfaces {
        let link_id = attach(program, interface, mode)?;
        let link = program.take_link(link_id).map_err(|source| Error::Attach {
            interface: interface.name.clone(),
            mode: "any",
            source,
        })?;
        let link =
            FdLink::try_from(link).map_err(|_| Error::UnpinnableLink(interface.name.clone()))?;
        let path = pins.pin_path(&format!("{PIN_LINK_PREFIX}{}", interface.name));
        let pinned = link
            .pin(&path)
            .map_err(|source| Error::Pin { path, source })?;
        links.push((interface.name.clone(), pinned));
    }
    Ok((
        Loaded {
            links,
            pins,
            _ebpf: ebpf,
        },
        map,
    ))
}

fn take_pinned_map(ebpf: &mut Ebpf, name: &'static str, path: PathBuf) -> Result<Map, Error> {
    let map = ebpf.take_map(name).ok_or(Error::MissingObject(name))?;
    map.pin(&path)
        .map_err(|source| Error::Pin { path, source })?;
    Ok(map)
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
    let stats: PerCpuHashMap<MapData, VipKey, VipStats> =
        PerCpuHashMap::try_from(open_pinned(pin_path, PIN_VIP_STATS)?)
            .map_err(|source| map_error("reading", PIN_VIP_STATS, source))?;
    let mut rows = Vec::new();
    for entry in vips.iter() {
        let (key, value) = entry.map_err(|source| map_error("reading", PIN_VIPS, source))?;
        let mut total = VipStats::default();
        match stats.get(&key, 0) {
            Ok(per_cpu) => per_cpu.iter().for_each(|s| total.add(s)),
            Err(MapError::KeyNotFound) => {}
            Err(source) => return Err(map_error("reading", PIN_VIP_STATS, source)),
        }
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
        });
    }
    rows.sort();
    Ok(rows)
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
            PIN_VIPS | PIN_VIP_STATS => 2,
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
