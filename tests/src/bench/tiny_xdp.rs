//! BPF programs of a few instructions, assembled here, loaded with
//! BPF_PROG_LOAD and attached with BPF_LINK_CREATE: the generator's
//! replay program, the XDP_DROP that counts replies on the client (in the
//! driver's own statistics, spending next to nothing on them) or gives the
//! node's receive floor, and an XDP_PASS for the client while a reply is
//! read from its stack; and `false_failover`'s random-drop cls_bpf filter,
//! pinned for `tc`. Nothing else needs a program of its own, so no object
//! file is built for them.
use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
};

/// `enum bpf_cmd`.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `enum bpf_prog_type`.
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `TC_ACT_*` from linux/pkt_cls.h.
const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
/// `enum bpf_attach_type`: what libbpf declares `SEC("xdp")` programs as.
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_DRV_MODE` from linux/if_link.h.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `enum xdp_action`.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// One `struct bpf_insn`, as the kernel reads it.
type Insn = [u8; 8];

/// Opcodes (linux/bpf.h, bpf_common.h) of the instructions used here.
const LDX_MEM_W: u8 = 0x61;
const ST_MEM_W: u8 = 0x62;
const ST_MEM_H: u8 = 0x6a;
const ST_MEM_B: u8 = 0x72;
const ALU64_ADD_K: u8 = 0x07;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JGT_X: u8 = 0x2d;
const JMP_JLT_K: u8 = 0xa5;
const JMP_CALL: u8 = 0x85;
const JMP_EXIT: u8 = 0x95;
/// `BPF_FUNC_get_prandom_u32`.
const GET_PRANDOM_U32: i32 = 7;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    let mut insn = [0u8; 8];
    insn[0] = code;
    insn[1] = dst | (src << 4);
    insn[2..4].copy_from_slice(&off.to_le_bytes());
    insn[4..].copy_from_slice(&imm.to_le_bytes());
    insn
}

/// `r0 = action; exit`.
fn constant(action: u32) -> Vec<Insn> {
    vec![
        insn(ALU64_MOV_K, 0, 0, 0, action as i32),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// `if bpf_get_prandom_u32() < threshold { TC_ACT_SHOT } else { TC_ACT_OK }`.
fn random_drop(threshold: u32) -> Vec<Insn> {
    vec![
        insn(JMP_CALL, 0, 0, 0, GET_PRANDOM_U32),
        insn(JMP_JLT_K, 0, 0, 2, threshold as i32),
        insn(ALU64_MOV_K, 0, 0, 0, TC_ACT_OK),
        insn(JMP_EXIT, 0, 0, 0, 0),
        insn(ALU64_MOV_K, 0, 0, 0, TC_ACT_SHOT),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// Writes `frame` over the start of every frame and returns XDP_TX (frames
/// shorter than `frame` are dropped). In live-frame mode the kernel fills
/// each page once and recycles it: a receiver that rewrote the frame in
/// place (an XDP responder turning a request into its reply) would
/// otherwise have the generator send its reply next time.
fn replay(frame: &[u8]) -> Vec<Insn> {
    let (data, data_end, end) = (2, 3, 4);
    // r2 = xdp_md->data; r3 = xdp_md->data_end; r4 = r2 + len.
    let mut program = vec![
        insn(LDX_MEM_W, data, 1, 0, 0),
        insn(LDX_MEM_W, data_end, 1, 4, 0),
        insn(ALU64_MOV_X, end, data, 0, 0),
        insn(ALU64_ADD_K, end, 0, 0, frame.len() as i32),
    ];
    let mut stores = vec![];
    let mut at = 0;
    for (width, code) in [(4, ST_MEM_W), (2, ST_MEM_H), (1, ST_MEM_B)] {
        while frame.len() - at >= width {
            let mut bytes = [0u8; 4];
            bytes[..width].copy_from_slice(&frame[at..at + width]);
            stores.push(insn(code, data, 0, at as i16, i32::from_le_bytes(bytes)));
            at += width;
        }
    }
    // if r4 > r3 skip the stores and the XDP_TX exit.
    program.push(insn(JMP_JGT_X, end, data_end, stores.len() as i16 + 2, 0));
    program.extend(stores);
    program.extend(constant(XDP_TX));
    program.extend(constant(XDP_DROP));
    program
}

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to the last field
/// set here (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_OBJ_PIN` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// The `BPF_LINK_CREATE` member of `union bpf_attr` for an XDP link.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid `union bpf_attr` prefix of the size given;
    // every pointer in it refers to memory that outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// A `bpf` command that returns a new file descriptor (load, link).
fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: on success these commands return a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn load(prog_type: u32, attach_type: u32, insns: &[Insn], name: &str) -> io::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut prog_name = [0u8; 16];
    prog_name[..name.len()].copy_from_slice(name.as_bytes());
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type: attach_type,
        ..ProgLoadAttr::default()
    };
    bpf_fd(BPF_PROG_LOAD, &mut attr)
}

/// Loads a cls_bpf program dropping each frame with `probability` and pins
/// it at `path` (bpffs), for `tc … bpf da object-pinned`; the pin keeps it
/// loaded until removed.
pub fn pin_random_drop(probability: f64, path: &str) -> io::Result<()> {
    let program = random_drop((probability * f64::from(u32::MAX)) as u32);
    let fd = load(BPF_PROG_TYPE_SCHED_CLS, 0, &program, "bench_drop")?;
    let path = std::ffi::CString::new(path)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the pin path"))?;
    let mut pin = ObjPinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &mut pin)?;
    Ok(())
}

/// A loaded XDP program.
pub struct TinyXdp {
    fd: OwnedFd,
}

impl TinyXdp {
    /// A program that returns `action` for every frame.
    pub fn constant(action: u32) -> io::Result<TinyXdp> {
        Self::load(&constant(action), "bench_constant")
    }

    /// The generator's program: `frame` again, sent back out (see `replay`).
    pub fn replay(frame: &[u8]) -> io::Result<TinyXdp> {
        Self::load(&replay(frame), "bench_replay")
    }

    fn load(insns: &[Insn], name: &str) -> io::Result<TinyXdp> {
        Ok(TinyXdp {
            fd: load(BPF_PROG_TYPE_XDP, BPF_XDP, insns, name)?,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Attaches the program in driver mode to `ifindex` of the calling
    /// thread's network namespace; it stays attached while the returned
    /// link lives.
    pub fn attach_driver(&self, ifindex: u32) -> io::Result<OwnedFd> {
        let mut attr = LinkCreateAttr {
            prog_fd: self.fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: XDP_FLAGS_DRV_MODE,
        };
        bpf_fd(BPF_LINK_CREATE, &mut attr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_stores_every_byte_once_in_order() {
        let frame: Vec<u8> = (1..=7).collect();
        let program = replay(&frame);
        let stores: Vec<(u8, i16, [u8; 4])> = program
            .iter()
            .filter(|i| [ST_MEM_W, ST_MEM_H, ST_MEM_B].contains(&i[0]))
            .map(|i| {
                (
                    i[0],
                    i16::from_le_bytes([i[2], i[3]]),
                    [i[4], i[5], i[6], i[7]],
                )
            })
            .collect();
        assert_eq!(
            stores,
            vec![
                (ST_MEM_W, 0, [1, 2, 3, 4]),
                (ST_MEM_H, 4, [5, 6, 0, 0]),
                (ST_MEM_B, 6, [7, 0, 0, 0]),
            ]
        );
        // The bounds check jumps over the stores and the XDP_TX exit.
        let check = &program[4];
        assert_eq!(check[0], JMP_JGT_X);
        let target = 5 + i16::from_le_bytes([check[2], check[3]]) as usize;
        assert_eq!(program[target], insn(ALU64_MOV_K, 0, 0, 0, XDP_DROP as i32));
        assert_eq!(
            program[target - 2],
            insn(ALU64_MOV_K, 0, 0, 0, XDP_TX as i32)
        );
    }
}
