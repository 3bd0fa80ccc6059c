//! The image's one layer: the binary, the shared libraries and ELF
//! interpreter it loads, as a reproducible tar, and its gzip.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, ensure, Context as _, Result};
use flate2::{Compression, GzBuilder};

/// zlib level of the layer; fixed, as the layer digest depends on it.
const GZIP_LEVEL: u32 = 9;

/// One regular file of the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFile {
    /// Absolute path in the image.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// The shared libraries `binary` loads, as `ldd` resolves them, and its ELF
/// interpreter; none for a static executable.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let data = fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    let Some(interp) = elf_interpreter(&data)
        .with_context(|| format!("{} is not an x86-64 ELF executable", binary.display()))?
    else {
        return Ok(Vec::new());
    };
    let out = Command::new("ldd")
        .arg(binary)
        .stderr(Stdio::inherit())
        .output()
        .context("failed to run ldd")?;
    ensure!(
        out.status.success(),
        "ldd {} failed: {}",
        binary.display(),
        out.status
    );
    let mut libs = BTreeSet::from([PathBuf::from(&interp)]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, the loader as
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`, the vDSO without a path.
        let path = match line.split_once(" => ") {
            Some((name, rest)) => {
                let path = rest.split(" (").next().unwrap_or_default();
                ensure!(
                    path.starts_with('/'),
                    "ldd {}: {name} not found",
                    binary.display()
                );
                path
            }
            None => line.split(" (").next().unwrap_or_default(),
        };
        if path.starts_with('/') {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs.into_iter().collect())
}

/// PT_INTERP of a little-endian ELF64 image: `Ok(None)` when it has none (a
/// static executable).
pub(super) fn elf_interpreter(data: &[u8]) -> Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    ensure!(
        data.len() >= 64 && data[..4] == *b"\x7fELF",
        "not an ELF file"
    );
    ensure!(
        data[4] == 2 && data[5] == 1,
        "not a little-endian 64-bit ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    ensure!(u16_at(18) == 62, "not an x86-64 ELF file");
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        ensure!(ph + 56 <= data.len(), "truncated program headers");
        if u32_at(ph) == PT_INTERP {
            let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
            let bytes = data.get(off..off + size).context("truncated PT_INTERP")?;
            let s = std::str::from_utf8(bytes.split(|b| *b == 0).next().unwrap_or_default())?;
            return Ok(Some(s.to_owned()));
        }
    }
    Ok(None)
}

/// A ustar header; its user and group names stay empty.
pub(super) fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

/// A tar of `files` and every directory above them (mode 0755), sorted, with
/// uid/gid 0, no user or group names and mtime `mtime`: the same bytes for the
/// same files whatever their order.
pub fn layer_tar(files: &[LayerFile], mtime: u64) -> Result<Vec<u8>> {
    let mut entries: BTreeMap<String, Option<&LayerFile>> = BTreeMap::new();
    for f in files {
        let rel = f
            .path
            .strip_prefix('/')
            .with_context(|| format!("{} is not absolute", f.path))?;
        ensure!(
            !rel.is_empty()
                && !rel
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == ".."),
            "{} is not a plain absolute path",
            f.path
        );
        let mut dir = String::new();
        let components: Vec<&str> = rel.split('/').collect();
        for c in &components[..components.len() - 1] {
            dir.push_str(c);
            dir.push('/');
            entries.entry(dir.clone()).or_insert(None);
        }
        if entries.insert(rel.to_owned(), Some(f)).is_some() {
            bail!("{} is in the layer twice (or is also a directory)", f.path);
        }
    }
    for (path, file) in &entries {
        ensure!(
            file.is_none() || !entries.contains_key(&format!("{path}/")),
            "/{path} is a file and a directory"
        );
    }
    // A directory's entry ends in '/', so it sorts before everything in it.
    let mut tar = tar::Builder::new(Vec::new());
    for (path, file) in &entries {
        match file {
            None => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                tar.append_data(&mut h, path, std::io::empty())?;
            }
            Some(f) => {
                let mut h = header(tar::EntryType::Regular, f.mode, f.data.len() as u64, mtime);
                tar.append_data(&mut h, path, f.data.as_slice())?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

/// gzip with a fixed header (no name, mtime 0, OS "unknown") and level.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(GZIP_LEVEL));
    gz.write_all(data)?;
    Ok(gz.finish()?)
}
