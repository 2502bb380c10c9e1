//! Raw `bpf(2)` wrappers for the eBPF engine: maps (create, lookup, update, delete, iterate,
//! pop), program load with a verifier log, program ids, and `BPF_PROG_TEST_RUN`. Every
//! descriptor is an [`OwnedFd`].
//!
//! The attribute structs are the per-command members of `union bpf_attr`
//! (`include/uapi/linux/bpf.h`), laid out field by field; offsets are checked at compile time.
//! The kernel accepts a shorter attribute than its own union (`bpf_check_uarg_tail_zero`
//! zero-fills the rest), so each struct stops after the last field we use.

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `enum bpf_cmd` values.
mod cmd {
    pub const MAP_CREATE: libc::c_long = 0;
    pub const MAP_LOOKUP_ELEM: libc::c_long = 1;
    pub const MAP_UPDATE_ELEM: libc::c_long = 2;
    pub const MAP_DELETE_ELEM: libc::c_long = 3;
    pub const MAP_GET_NEXT_KEY: libc::c_long = 4;
    pub const PROG_LOAD: libc::c_long = 5;
    pub const PROG_TEST_RUN: libc::c_long = 10;
    pub const OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    pub const MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
}

/// `BPF_MAP_TYPE_ARRAY`.
pub const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = 6;
/// `BPF_OBJ_NAME_LEN`.
const OBJ_NAME_LEN: usize = 16;

/// `union bpf_attr` for `BPF_MAP_CREATE` (up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
}

/// `union bpf_attr` for the `BPF_MAP_*_ELEM` commands and `BPF_MAP_GET_NEXT_KEY` (whose
/// `next_key` shares `value`'s place).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD` (up to `log_true_size`, Linux 6.4).
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
    prog_name: [u8; OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD` (the `info` member).
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info` (the kernel fills at most `info_len` bytes).
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
}

/// `union bpf_attr` for `BPF_PROG_TEST_RUN` (the `test` member).
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
    _pad: u32,
}

// Offsets as in include/uapi/linux/bpf.h (x86_64; `__aligned_u64` is 8-aligned).
const _: () = {
    assert!(offset_of!(MapCreateAttr, map_name) == 28);
    assert!(size_of::<MapCreateAttr>() == 44);
    assert!(offset_of!(MapElemAttr, key) == 8 && offset_of!(MapElemAttr, flags) == 24);
    assert!(offset_of!(InfoAttr, info) == 8 && size_of::<InfoAttr>() == 16);
    assert!(offset_of!(ProgInfoHead, id) == 4);
    assert!(offset_of!(ProgLoadAttr, log_buf) == 32);
    assert!(offset_of!(ProgLoadAttr, prog_name) == 48);
    assert!(offset_of!(ProgLoadAttr, expected_attach_type) == 68);
    assert!(offset_of!(ProgLoadAttr, func_info) == 80);
    assert!(offset_of!(ProgLoadAttr, fd_array) == 120);
    assert!(offset_of!(ProgLoadAttr, log_true_size) == 140);
    assert!(size_of::<ProgLoadAttr>() == 144);
    assert!(offset_of!(TestRunAttr, data_in) == 16);
    assert!(offset_of!(TestRunAttr, repeat) == 32);
    assert!(offset_of!(TestRunAttr, ctx_in) == 48);
    assert!(offset_of!(TestRunAttr, flags) == 64);
    assert!(offset_of!(TestRunAttr, batch_size) == 72);
};

/// Calls `bpf(cmd, attr, sizeof *attr)`; the kernel may write results back into `attr`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable, `#[repr(C)]` prefix of `union bpf_attr` of exactly
    // `size_of::<T>()` bytes; every pointer it carries (set by the callers) points into buffers
    // that outlive this call and are as large as the lengths given alongside them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Wraps a descriptor returned by `bpf()`.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `bpf()` just returned `fd` as a new descriptor (created O_CLOEXEC by the kernel)
    // that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A NUL-padded object name.
fn obj_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut n = [0u8; OBJ_NAME_LEN];
    for (d, s) in n.iter_mut().zip(name.bytes().take(OBJ_NAME_LEN - 1)) {
        *d = s;
    }
    n
}

/// What [`map_create`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSpec {
    /// `enum bpf_map_type`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
}

/// Creates a map with `BPF_MAP_CREATE`. The name keeps only the characters the kernel allows
/// (`[A-Za-z0-9_.]`; others become `_`) and at most 15 of them.
pub fn map_create(spec: MapSpec, name: &str) -> io::Result<OwnedFd> {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut attr = MapCreateAttr {
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.flags,
        map_name: obj_name(&name),
        ..MapCreateAttr::default()
    };
    owned(bpf(cmd::MAP_CREATE, &mut attr)?)
}

/// Reads the value stored under `key` (`BPF_MAP_LOOKUP_ELEM`) into `value`, which must be the
/// map's value size.
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    bpf(cmd::MAP_LOOKUP_ELEM, &mut attr).map(drop)
}

/// A key (or none: queue and stack maps) as the pointer `bpf_attr` carries.
fn key_ptr(key: Option<&[u8]>) -> u64 {
    key.map_or(0, |k| k.as_ptr() as u64)
}

/// Stores `value` under `key` (`BPF_MAP_UPDATE_ELEM`; `None` pushes onto a queue or stack).
/// `key` and `value` must have the map's sizes.
pub fn map_update(map: &OwnedFd, key: Option<&[u8]>, value: &[u8], flags: u64) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key_ptr(key),
        value: value.as_ptr() as u64,
        flags,
        ..MapElemAttr::default()
    };
    bpf(cmd::MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Deletes the entry under `key` (`BPF_MAP_DELETE_ELEM`).
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..MapElemAttr::default()
    };
    bpf(cmd::MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// Writes the key after `key` (the first key for `None`) into `next`
/// (`BPF_MAP_GET_NEXT_KEY`); `ENOENT` after the last one.
pub fn map_next_key(map: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key_ptr(key),
        value: next.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    bpf(cmd::MAP_GET_NEXT_KEY, &mut attr).map(drop)
}

/// Pops the front of a queue or the top of a stack into `value`
/// (`BPF_MAP_LOOKUP_AND_DELETE_ELEM` without a key); `ENOENT` when empty.
pub fn map_pop(map: &OwnedFd, value: &mut [u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        value: value.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    bpf(cmd::MAP_LOOKUP_AND_DELETE_ELEM, &mut attr).map(drop)
}

/// The kernel's id of a loaded program (`BPF_OBJ_GET_INFO_BY_FD`), which is what looking up a
/// `prog_array` slot from user space returns.
pub fn prog_id(prog: &OwnedFd) -> io::Result<u32> {
    let mut info = ProgInfoHead::default();
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: size_of::<ProgInfoHead>() as u32,
        info: (&mut info as *mut ProgInfoHead) as u64,
    };
    bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.id)
}

/// What a failed `BPF_PROG_LOAD` left: the error and the verifier log (empty without one).
#[derive(Debug)]
pub struct LoadFailure {
    /// The errno.
    pub error: io::Error,
    /// The verifier log, as far as it was kept (the kernel's log rotates: the tail survives).
    pub log: String,
    /// The size the whole log needed, terminating NUL included (0 from kernels before 6.4).
    pub log_true_size: u32,
}

/// Loads a program with `BPF_PROG_LOAD`. `log_size` 0 loads without a log; otherwise the
/// verifier writes a level-1 log into a buffer of that size. `fd_array` (unless empty) is what
/// `lddw` with `src` `BPF_PSEUDO_MAP_IDX`/`_IDX_VALUE` indexes; the kernel does not know its
/// length, so callers must check those indices first.
pub fn prog_load(
    prog_type: u32,
    insns: &[u8],
    license: &std::ffi::CStr,
    name: &str,
    log_size: u32,
    fd_array: &[i32],
) -> Result<OwnedFd, LoadFailure> {
    let mut log = vec![0u8; log_size as usize];
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(log_size > 0),
        log_size,
        log_buf: if log_size > 0 {
            log.as_mut_ptr() as u64
        } else {
            0
        },
        prog_name: obj_name(name),
        fd_array: if fd_array.is_empty() {
            0
        } else {
            fd_array.as_ptr() as u64
        },
        ..ProgLoadAttr::default()
    };
    match bpf(cmd::PROG_LOAD, &mut attr) {
        Ok(fd) => owned(fd).map_err(|error| LoadFailure {
            error,
            log: String::new(),
            log_true_size: 0,
        }),
        Err(error) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(LoadFailure {
                error,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
                log_true_size: attr.log_true_size,
            })
        }
    }
}

/// The result of one `BPF_PROG_TEST_RUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRun {
    /// The program's 32-bit return value (of the last run, with `repeat`).
    pub retval: u32,
    /// Bytes of output data the kernel had (it copied at most the buffer's size).
    pub data_size_out: u32,
    /// The kernel's mean time per run in nanoseconds (`duration`: the time of the whole loop,
    /// measured around the program calls, divided by `repeat`).
    pub duration: u32,
}

/// Runs a program once on `data_in`, copying the data after the run into `data_out`.
pub fn prog_test_run(prog: &OwnedFd, data_in: &[u8], data_out: &mut [u8]) -> io::Result<TestRun> {
    prog_test_run_repeat(prog, data_in, data_out, 1)
}

/// Runs a program `repeat` times in a row on the same data (`repeat` 0 counts as 1), copying the
/// data after the last run into `data_out`; the `duration` is the mean per run. An interrupted
/// call (`EINTR`) is restarted.
pub fn prog_test_run_repeat(
    prog: &OwnedFd,
    data_in: &[u8],
    data_out: &mut [u8],
    repeat: u32,
) -> io::Result<TestRun> {
    loop {
        let mut attr = TestRunAttr {
            prog_fd: prog.as_raw_fd() as u32,
            data_size_in: data_in.len() as u32,
            data_size_out: data_out.len() as u32,
            data_in: data_in.as_ptr() as u64,
            data_out: data_out.as_mut_ptr() as u64,
            repeat: repeat.max(1),
            ..TestRunAttr::default()
        };
        match bpf(cmd::PROG_TEST_RUN, &mut attr) {
            Ok(_) => {
                return Ok(TestRun {
                    retval: attr.retval,
                    data_size_out: attr.data_size_out,
                    duration: attr.duration,
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
