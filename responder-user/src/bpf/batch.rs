//! Reading a per-CPU array many elements per syscall (`BPF_MAP_LOOKUP_BATCH`,
//! Linux 5.6). The agent reads every VIP's counters each second to spot
//! conflicts; one lookup per slot would be ten thousand syscalls a second
//! with ten thousand VIPs. aya 0.14 has no batch operations, so this one
//! command is written by hand, as `tests/src/testrun.rs` does for
//! `BPF_PROG_TEST_RUN`.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use aya::Pod;

/// `BPF_MAP_LOOKUP_BATCH` from `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_int = 24;

/// Elements per syscall: bounds the buffer to `CHUNK × CPUs` values however
/// many CPUs the node has (256 × 256 CPUs × 32 bytes = 2 MiB).
const CHUNK: u32 = 256;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Per-CPU values are laid out for every possible CPU, each rounded up to
/// eight bytes.
fn stride<V>() -> usize {
    size_of::<V>().div_ceil(8) * 8
}

/// Calls `each(index, values on every CPU)` for the indexes `0..upto` of the
/// per-CPU array `fd`, `CHUNK` per syscall. `cpus` is the number of possible
/// CPUs (`aya::util::nr_cpus`). Fails as the kernel does, e.g. `EINVAL` on a
/// kernel without batch operations for arrays.
pub(super) fn for_each_per_cpu<V: Pod + Default + Copy>(
    fd: BorrowedFd<'_>,
    upto: u32,
    cpus: usize,
    mut each: impl FnMut(u32, &[V]),
) -> io::Result<()> {
    let stride = stride::<V>();
    let mut keys = vec![0u32; CHUNK as usize];
    // u64 elements keep the buffer eight-byte aligned for reading `V`s.
    let mut values = vec![0u64; CHUNK as usize * cpus * stride / 8];
    let mut per_cpu = Vec::with_capacity(cpus);
    let mut cursor: Option<u32> = None;
    let mut next = 0u32;
    let mut start = 0u32;
    while start < upto {
        let mut attr = BatchAttr {
            in_batch: cursor.as_ref().map_or(0, |c| c as *const u32 as u64),
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK.min(upto - start),
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` describes buffers of `count` keys and `count × cpus`
        // strided values, which the kernel fills and never keeps.
        let result = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        let last = match result {
            0 => false,
            _ => match io::Error::last_os_error() {
                // The end of the array: `count` says how many came first.
                error if error.raw_os_error() == Some(libc::ENOENT) => true,
                error => return Err(error),
            },
        };
        for (n, key) in keys.iter().take(attr.count as usize).enumerate() {
            let at = n * cpus * stride;
            per_cpu.clear();
            per_cpu.extend((0..cpus).map(|cpu| {
                let offset = at + cpu * stride;
                // SAFETY: in bounds (`count ≤ CHUNK`, `cpu < cpus`), and `V`
                // is Pod: any bytes are a value.
                unsafe {
                    std::ptr::read_unaligned((values.as_ptr() as *const u8).add(offset) as *const V)
                }
            }));
            each(*key, &per_cpu);
        }
        if last || attr.count == 0 {
            break;
        }
        start += attr.count;
        cursor = Some(next);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_values_are_eight_byte_strided() {
        assert_eq!(stride::<u32>(), 8);
        assert_eq!(stride::<[u8; 12]>(), 16);
        assert_eq!(stride::<responder_common::VipStats>(), 32);
    }

    #[test]
    fn the_attribute_matches_the_kernels_layout() {
        // struct { __aligned_u64 in_batch, out_batch, keys, values;
        //          __u32 count, map_fd; __u64 elem_flags, flags; } batch;
        assert_eq!(size_of::<BatchAttr>(), 56);
        assert_eq!(std::mem::offset_of!(BatchAttr, count), 32);
        assert_eq!(std::mem::offset_of!(BatchAttr, elem_flags), 40);
    }
}
