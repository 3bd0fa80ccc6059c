//! Bounds-checked packet access. Every read and write of the frame goes
//! through `ptr_at` (or `load_bytes`, checked by the kernel), so each one
//! carries the check the verifier demands.

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::{helpers::bpf_xdp_load_bytes, programs::XdpContext};

/// The frame is not ours to answer (not owned, truncated, invalid, or
/// unrelated traffic): hand it to the kernel untouched.
pub struct Pass;

/// A pointer to a `T` at `offset` in the frame, if the whole `T` is inside
/// it. Pointers are derived from `ctx` on every call: after
/// `bpf_xdp_adjust_tail` older ones are invalid.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*mut T, Pass> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Pass);
    }
    Ok((start + offset) as *mut T)
}

/// Copies a `T` out of the frame.
#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, Pass> {
    let at = ptr_at::<T>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the bytes are inside the frame; every
    // header type has alignment <= 2 and sits at an even offset.
    Ok(unsafe { *at })
}

/// Copies the `len` bytes at `offset` into the start of an `N`-byte buffer
/// (`len` at most `N`), the kernel checking the bounds. For headers walked
/// byte by byte at offsets that depend on their contents: the compiler
/// merges frame bounds checks there in ways the verifier cannot follow,
/// while indexing a stack buffer it can.
#[inline(always)]
pub fn load_bytes<const N: usize>(
    ctx: &XdpContext,
    offset: usize,
    len: usize,
) -> Result<[u8; N], Pass> {
    let mut buffer = [0u8; N];
    if len == 0 || len > N {
        return Err(Pass);
    }
    // SAFETY: `buffer` has room for `len` bytes; the helper fails rather
    // than read outside the frame.
    let ret = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            offset as u32,
            buffer.as_mut_ptr() as *mut c_void,
            len as u32,
        )
    };
    if ret != 0 {
        return Err(Pass);
    }
    Ok(buffer)
}

#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

/// Byte-wise equality: `==` on arrays may become a `bcmp` call, which BPF
/// cannot link.
#[inline(always)]
pub fn bytes_eq<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    let mut diff = 0;
    let mut i = 0;
    while i < N {
        diff |= a[i] ^ b[i];
        i += 1;
    }
    diff == 0
}
