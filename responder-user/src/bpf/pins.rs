//! The pin directory on bpffs: where the program, its links and maps live
//! between agents, created and removed here. (`responder cleanup`, which
//! removes what an agent left, is in `cleanup`.)

use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::maps::{Map, MapData, MapError};
use responder_common::PIN_LINK_PREFIX;

use crate::{
    error::Error,
    nic::capabilities::{privileges, privileges_or},
};

pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/responder";

/// Pins are made under this prefix and renamed into place (bpffs rejects
/// names with dots, so no hidden files).
pub(super) const STAGING_PREFIX: &str = "staging_";

/// `f_type` of a bpffs mount (linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

pub(super) fn is_bpffs(path: &Path) -> Result<bool, Error> {
    let stat = nix::sys::statfs::statfs(path).map_err(|errno| Error::Filesystem {
        action: "checking the filesystem of",
        path: path.to_owned(),
        source: errno.into(),
    })?;
    Ok(stat.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}

/// Whether `path` is the root of a mount (its own filesystem, unlike its
/// parent): a pin directory mounted on its own (the DaemonSet mounts only
/// the host's `/sys/fs/bpf/responder`) must never be removed.
pub(super) fn is_mount_point(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (fs::metadata(path), fs::metadata(parent)) {
        (Ok(dir), Ok(parent)) => dir.dev() != parent.dev(),
        _ => false,
    }
}

/// Where pins under `path` would live is bpffs: the directory itself when
/// it exists (it may be a bpffs mount of its own under a parent that is
/// not), else its parent, where it would be created.
fn check_on_bpffs(path: &Path, parent: &Path) -> Result<(), Error> {
    let checked = if path.exists() { path } else { parent };
    if is_bpffs(checked)? {
        Ok(())
    } else {
        Err(Error::NotBpffs {
            path: checked.to_owned(),
        })
    }
}

/// Pins under the agent's pin directory, removed on drop (also when startup
/// fails halfway), plus the directory itself if the agent created it.
pub(super) struct PinDir {
    pub(super) path: PathBuf,
    pub(super) created: bool,
    pub(super) pins: Vec<PathBuf>,
    /// `link_<ifname>` pins a previous agent left, by interface name.
    pub(super) previous_links: Vec<String>,
    /// Whether a previous agent left any pins: they are adopted, not refused.
    pub(super) previous: bool,
}

impl PinDir {
    /// Opens (creating it if needed) a directory on bpffs. Pins already in
    /// it belong to a previous agent (killed, restarting or an older build):
    /// they are noted for adoption rather than refused, so a restart never
    /// takes the program off the interfaces.
    pub(super) fn open(path: &Path) -> Result<Self, Error> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => {
                return Err(Error::NotBpffs {
                    path: path.to_owned(),
                })
            }
        };
        check_on_bpffs(path, parent)?;
        let created = match fs::create_dir(path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(source) => {
                let action = format!("creating {}", path.display());
                return Err(if source.kind() == io::ErrorKind::PermissionDenied {
                    privileges(action, source)
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
            // on a clean exit is now this agent's job; a mounted one stays.
            created: (created || previous) && !is_mount_point(path),
            pins: Vec::new(),
            previous_links,
            previous,
        })
    }

    /// Path for pin `name`, remembered for removal.
    pub(super) fn pin_path(&mut self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        if !self.pins.contains(&path) {
            self.pins.push(path.clone());
        }
        path
    }

    /// Pins an object as `name` through `pin`, atomically replacing a pin of
    /// that name a previous agent left: readers (`responder vips`, a later
    /// agent) always find either the old object or the new one.
    pub(super) fn pin_replacing(
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

    /// Removes pin `name` of a previous agent that this one has no
    /// counterpart for (its content was copied into a map of another
    /// layout), so the directory holds one agent's layout only.
    pub(super) fn remove_legacy(&mut self, name: &str) {
        let path = self.path.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(pin = %path.display(), "removed the previous agent's pin, whose content was copied")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(pin = %path.display(), "removing the previous agent's pin: {e}")
            }
        }
    }

    /// Stops tracking `path` once it has been unpinned by other means.
    pub(super) fn forget(&mut self, path: &Path) {
        self.pins.retain(|p| p != path);
    }

    /// Keeps every pin (and with them the links and the program) in place
    /// after the agent exits, for the next agent to adopt.
    pub(super) fn keep(&mut self) {
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

pub(super) fn open_pinned(pin_path: &Path, name: &str) -> Result<Map, Error> {
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

/// A map operation's error, naming the missing capability when that is the cause.
pub(super) fn map_error(action: &'static str, map: &str, source: MapError) -> Error {
    privileges_or(&format!("{action} map {map}"), source, |source| {
        Error::Map {
            action,
            map: map.to_owned(),
            source,
        }
    })
}
