//! Loading the XDP program, attaching it to interfaces as pinned bpf_links,
//! and adopting what a previous agent left pinned (its links switched to the
//! new program in place, its VIPs and counters copied).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
    sync::{Arc, Mutex},
};

use aya::{
    maps::{Array, HashMap, IterableMap as _, MapData, PerCpuArray},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
        ProgramError, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use responder_common::{
    VipKey, VipValue, AGENT_MAP, HOP_BY_HOP_WALK_GLOBAL, PIN_AGENT, PIN_LEGACY_VIP_STATS,
    PIN_LINK_PREFIX, PIN_PROGRAM, PIN_VIPS, PIN_VIP_COUNTERS, PROGRAM_NAME, VIPS_MAP,
    VIP_COUNTERS_MAP,
};

use super::{
    claims::{ClaimMaps, ClaimReader},
    heartbeat::{self, Heartbeat, StaleGate},
    maps::{copy_previous_entries, BpfVipMap},
    nic_maps::NicMaps,
    offloads::Offloads,
    pins::{map_error, PinDir},
    slots::CounterSlots,
};
use crate::{
    error::{display_chain, Error},
    netif::{topology::Topology, Interface},
    nic::{
        capabilities::{self, privileges_or, CAP_PERFMON, CAP_SYS_ADMIN},
        kernel_floor::{check_kernel_floor, has_xdp_load_bytes},
        vlan_offload::VlanOffloadPolicy,
    },
    EBPF_OBJECT,
};

/// The program's read-only globals, for [`object_loader`].
static WALK_OFF: u8 = 0;
static WALK_ON: u8 = 1;

/// A loader for [`EBPF_OBJECT`] with the program's read-only globals set
/// for the running kernel (features it may use); every loader of the
/// object, tests and benchmarks included, goes through here.
pub fn object_loader() -> EbpfLoader<'static> {
    let mut loader = EbpfLoader::new();
    let walk = match has_xdp_load_bytes() {
        true => &WALK_ON,
        false => &WALK_OFF,
    };
    loader.override_global(HOP_BY_HOP_WALK_GLOBAL, walk, true);
    loader
}

/// Loading attempts when the verifier gives up with EAGAIN.
const LOAD_ATTEMPTS: usize = 5;

/// Loads a program into the kernel (`load` is its `Program::load`),
/// again when the verifier gave up with EAGAIN: it does so whenever a signal
/// is pending for the loading thread (a child exiting, SIGTERM being
/// handled), not because the program is wrong. libbpf retries the same way.
/// Every loader of the object's programs, tests included, goes through here.
pub fn load_retrying(
    mut load: impl FnMut() -> Result<(), ProgramError>,
) -> Result<(), ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.kind() == std::io::ErrorKind::WouldBlock && attempt < LOAD_ATTEMPTS =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic (skb) mode where the
    /// driver has no XDP support.
    Auto,
    Driver,
    Skb,
}

/// What a previous agent left behind and this one took over.
#[derive(Debug, Default)]
pub(crate) struct Adopted {
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
pub(crate) struct Loaded {
    links: BTreeMap<u32, (String, PinnedLink)>,
    mode: AttachMode,
    heartbeat: Heartbeat,
    nic_maps: NicMaps,
    claims: ClaimMaps,
    // Dropped after `pins`, whose removal detaches XDP: offloads are turned
    // back on once no program depends on them being off.
    pins: PinDir,
    offloads: Offloads,
    ebpf: Ebpf,
}

impl Loaded {
    /// Names of the interfaces the program is attached to, by ifindex.
    pub(crate) fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.values().map(|(name, _)| name.as_str())
    }

    /// The ifindexes the program is attached to.
    pub(crate) fn attached_ifindexes(&self) -> Vec<u32> {
        self.links.keys().copied().collect()
    }

    /// The interface attached under `ifindex`, by name.
    pub(crate) fn attached_name(&self, ifindex: u32) -> Option<&str> {
        self.links.get(&ifindex).map(|(name, _)| name.as_str())
    }

    pub(crate) fn pin_path(&self) -> &Path {
        &self.pins.path
    }

    /// A handle on the heartbeat, for a task that beats it on its own.
    pub(crate) fn heartbeat(&self) -> Result<Heartbeat, Error> {
        self.heartbeat.try_clone()
    }

    /// The reader of the data plane's claims ring buffer (who claimed which
    /// VIP); `None` once taken.
    pub(crate) fn take_claim_reader(&mut self) -> Result<Option<ClaimReader>, Error> {
        self.claims.take_reader()
    }

    /// On drop, leaves the program attached and everything pinned, for the
    /// next agent to adopt; the stale gate bounds how long it keeps
    /// answering without an agent.
    pub(crate) fn keep_pinned(&mut self) {
        self.pins.keep();
        self.offloads.keep();
    }

    /// Makes the data plane's `OWN_MACS` exactly `macs`: every MAC of this
    /// node's interfaces (see `netif::topology::own_macs`). A gratuitous ARP,
    /// ARP reply or NA from any of them is then neither a conflict nor a
    /// reason to yield. Call after `load` (before attaching, ideally) and
    /// whenever the links change; an adopted map is kept until then.
    pub(crate) fn set_own_macs(&mut self, macs: &BTreeSet<[u8; 6]>) -> Result<(), Error> {
        self.nic_maps.set_own_macs(macs)
    }

    /// Makes the data plane's `BOND_OF` exactly `members` (member ifindex →
    /// bond ifindex, see `netif::topology::bond_members`), so VIPs keyed on a
    /// bond answer frames its members receive. Call like `set_own_macs`.
    pub(crate) fn set_bond_members(&mut self, members: &BTreeMap<u32, u32>) -> Result<(), Error> {
        self.nic_maps.set_bond_members(members)
    }

    /// Both of the above from one description of the node's links.
    pub(crate) fn set_topology(&mut self, topology: &Topology) -> Result<(), Error> {
        self.set_own_macs(&topology.own_macs)?;
        self.set_bond_members(&topology.bond_members)
    }

    /// Whether attaching turns receive VLAN offload off (the default) or
    /// leaves NICs alone. Applies to attachments made after the call.
    pub(crate) fn set_vlan_offload_policy(&mut self, policy: VlanOffloadPolicy) {
        self.offloads.set_policy(policy);
    }

    /// Whether a newer agent has adopted this one's pins: its program is
    /// pinned now and its links run it, so removing "our" pins (same names)
    /// would tear the newer agent down.
    pub(crate) fn superseded(&mut self) -> bool {
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
    pub(crate) fn attach(&mut self, interface: &Interface) -> Result<(), Error> {
        if self.links.contains_key(&interface.ifindex) {
            return Ok(());
        }
        self.offloads.prepare(interface);
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
    pub(crate) fn detach(&mut self, ifindex: u32) -> Option<String> {
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

/// Refuses a kernel older than the floor (`nic::kernel_floor`), then loads
/// the XDP object with fresh maps and writes the first heartbeat. When
/// `pin_path` holds a previous agent's pins, adopts them: its VIPs and
/// summed counters are copied into the new maps, its links switched to the
/// new program in place, and its pins replaced by the new ones (the link pins
/// stay). Otherwise the program is pinned and attached with
/// [`Loaded::attach`] as usual.
pub(crate) fn load(
    mode: AttachMode,
    pin_path: &Path,
    gate: StaleGate,
) -> Result<(Loaded, BpfVipMap, Adopted), Error> {
    // Before anything is pinned or loaded: an old kernel gets the floor
    // named, not a verifier log.
    check_kernel_floor()?;
    let pins = PinDir::open(pin_path)?;
    if pins.previous {
        heartbeat::renew_previous(pin_path);
    }
    let mut ebpf = object_loader()
        .load(EBPF_OBJECT)
        .map_err(|e| privileges_or("loading the XDP object", e, Error::Load))?;

    let take =
        |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(Error::MissingObject(name));
    let vips = take(&mut ebpf, VIPS_MAP)?;
    let counters = take(&mut ebpf, VIP_COUNTERS_MAP)?;
    let agent = take(&mut ebpf, AGENT_MAP)?;
    let nr_cpus =
        aya::util::nr_cpus().map_err(|(_, e)| map_error("sizing", VIP_COUNTERS_MAP, e.into()))?;
    let counters: PerCpuArray<MapData, _> = PerCpuArray::try_from(counters)
        .map_err(|source| map_error("opening", VIP_COUNTERS_MAP, source))?;
    let slots = CounterSlots::new(counters.len());
    let mut map = BpfVipMap {
        nr_cpus,
        vips: HashMap::try_from(vips).map_err(|source| map_error("opening", VIPS_MAP, source))?,
        counters,
        slots: Arc::new(Mutex::new(slots)),
    };
    let mut heartbeat = Heartbeat {
        map: Array::try_from(agent).map_err(|source| map_error("opening", AGENT_MAP, source))?,
        gate,
    };
    let mut nic_maps = NicMaps::take(&mut ebpf)?;
    let mut offloads = Offloads::take(&mut ebpf)?;
    let mut claims = ClaimMaps::take(&mut ebpf)?;

    let mut adopted = Adopted::default();
    if pins.previous {
        tracing::info!(pin_path = %pin_path.display(), "adopting pinned program from a previous agent");
        adopted.vips = copy_previous_entries(pin_path, &mut map)?;
        nic_maps.copy_previous(pin_path)?;
        offloads.copy_previous(pin_path)?;
        claims.copy_previous(pin_path)?;
    }
    // Before any interface runs the new program, or it would treat the
    // agent as long dead.
    heartbeat.beat()?;

    let program = xdp_program(&mut ebpf)?;
    load_retrying(|| program.load()).map_err(|source| {
        if restricted_verifier() {
            return capabilities::privileges(
                "loading the XDP program (refused by the verifier's restricted mode)",
                source,
            );
        }
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
        nic_maps,
        claims,
        pins,
        offloads,
        ebpf,
    };
    adopted.interfaces = loaded.adopt_links();

    let pins = &mut loaded.pins;
    pins.pin_replacing(PIN_VIPS, |path| map.vips.map().pin(path))?;
    pins.pin_replacing(PIN_VIP_COUNTERS, |path| map.counters.map().pin(path))?;
    pins.pin_replacing(PIN_AGENT, |path| loaded.heartbeat.map.map().pin(path))?;
    pins.remove_legacy(PIN_LEGACY_VIP_STATS);
    loaded.nic_maps.pin(pins)?;
    loaded.offloads.pin(pins)?;
    loaded.claims.pin(pins)?;
    let program = xdp_program(&mut loaded.ebpf)?;
    pins.pin_replacing(PIN_PROGRAM, |path| program.pin(path))?;
    Ok((loaded, map, adopted))
}

/// Whether the verifier runs in its restricted mode for this process
/// (neither CAP_PERFMON nor CAP_SYS_ADMIN), where it refuses what the
/// program does with packet pointers: a load failure is then that.
fn restricted_verifier() -> bool {
    capabilities::effective().is_some_and(|effective| {
        !capabilities::has(effective, CAP_PERFMON) && !capabilities::has(effective, CAP_SYS_ADMIN)
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
mod load_tests {
    use std::io;

    use aya::programs::ProgramError;

    use super::{load_retrying, LOAD_ATTEMPTS};

    fn refused(code: i32) -> ProgramError {
        ProgramError::LoadError {
            io_error: io::Error::from_raw_os_error(code),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        }
    }

    #[test]
    fn a_load_interrupted_by_a_signal_is_tried_again() {
        let mut calls = 0;
        let result = load_retrying(|| {
            calls += 1;
            match calls {
                1 | 2 => Err(refused(libc::EAGAIN)),
                _ => Ok(()),
            }
        });
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_refusal_is_returned_at_once_and_eagain_only_so_often() {
        let mut calls = 0;
        let result = load_retrying(|| {
            calls += 1;
            Err(refused(libc::EACCES))
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
        calls = 0;
        let result = load_retrying(|| {
            calls += 1;
            Err(refused(libc::EAGAIN))
        });
        assert!(result.is_err());
        assert_eq!(calls, LOAD_ATTEMPTS);
    }
}
