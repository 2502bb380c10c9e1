//! Executable memory, W^X: no mapping is ever writable and executable at once.
//!
//! Generated code lives in *arenas*: a `memfd` mapped twice, once read-write (where the code is
//! written) and once read-execute (where it runs). A fuzzing campaign compiles ~10^5 programs a
//! second per core, and the classic alternative — map read-write, fill, `mprotect` to
//! read-execute, and back again before reuse — cost two system calls, a TLB flush and a
//! page-table walk per program: about a fifth of a fuzzing unit. With the double mapping, filling
//! a block is a plain `memcpy` into the read-write view and no system call at all.
//!
//! Blocks are handed out in power-of-two page counts from a bump pointer and recycled through
//! per-size free lists. Code bigger than the largest block, and every program when `memfd_create`
//! or the double mapping is refused (a seccomp sandbox, say), gets its own anonymous mapping that
//! is filled read-write and then switched to read-execute with `mprotect`.
//!
//! x86 keeps instruction fetch coherent with stores to the same physical page through any
//! virtual address, so code written through the read-write view and reached after the usual
//! synchronisation (the block is handed over under a mutex or on the same thread) is the code
//! that runs.

use std::io;
use std::sync::Mutex;

/// Bytes per arena (both views).
const ARENA_BYTES: usize = 8 << 20;
/// Block size classes: 1, 2, 4, … pages up to `1 << (CLASSES - 1)` pages.
const CLASSES: usize = 5;

/// A block of an arena: its two views.
#[derive(Debug, Clone, Copy)]
struct Block {
    rw: usize,
    rx: usize,
}

/// Where blocks come from: the current arena's unused tail and the free lists.
struct Arenas {
    /// Read-write and read-execute base of the arena being carved, and bytes carved so far.
    current: Option<(usize, usize, usize)>,
    /// Free blocks by class.
    free: [Vec<Block>; CLASSES],
    /// Set once the double mapping failed: every program then gets its own mapping.
    unavailable: bool,
}

static ARENAS: Mutex<Arenas> = Mutex::new(Arenas {
    current: None,
    free: [const { Vec::new() }; CLASSES],
    unavailable: false,
});

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Maps a new arena twice (read-write, read-execute) over one memfd.
fn map_arena() -> io::Result<(usize, usize)> {
    // SAFETY: a valid NUL-terminated name; the descriptor is checked and closed below.
    let fd = unsafe { libc::memfd_create(c"bpfconf-jit".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let map = |prot| {
        // SAFETY: a shared mapping of the whole memfd, no address hint; checked by the caller.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ARENA_BYTES,
                prot,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            Ok(p as usize)
        }
    };
    // SAFETY: fd is the memfd created above.
    let sized = unsafe { libc::ftruncate(fd, ARENA_BYTES as libc::off_t) };
    let result = if sized != 0 {
        Err(io::Error::last_os_error())
    } else {
        map(libc::PROT_READ | libc::PROT_WRITE).and_then(|rw| {
            match map(libc::PROT_READ | libc::PROT_EXEC) {
                Ok(rx) => Ok((rw, rx)),
                Err(e) => {
                    // SAFETY: unmapping the view mapped just above.
                    unsafe { libc::munmap(rw as *mut libc::c_void, ARENA_BYTES) };
                    Err(e)
                }
            }
        })
    };
    // SAFETY: the mappings keep the memory alive; the descriptor is no longer needed.
    unsafe { libc::close(fd) };
    result
}

/// A block of class `class` (`1 << class` pages), or `None` when arenas are unavailable.
fn take_block(class: usize, page: usize) -> Option<Block> {
    let mut arenas = ARENAS.lock().ok()?;
    if let Some(b) = arenas.free[class].pop() {
        return Some(b);
    }
    if arenas.unavailable {
        return None;
    }
    let bytes = page << class;
    match arenas.current {
        Some((_, _, used)) if used + bytes <= ARENA_BYTES => {}
        _ => match map_arena() {
            Ok((rw, rx)) => arenas.current = Some((rw, rx, 0)),
            Err(_) => {
                arenas.unavailable = true;
                return None;
            }
        },
    }
    let (rw, rx, used) = arenas.current.as_mut()?;
    let block = Block {
        rw: *rw + *used,
        rx: *rx + *used,
    };
    *used += bytes;
    Some(block)
}

/// Where an [`ExecMem`]'s pages come from.
#[derive(Debug)]
enum Backing {
    /// A block of class `class` of an arena; returned to the free list on drop.
    Arena { class: usize, rw: usize },
    /// An anonymous mapping of this many bytes of its own; unmapped on drop.
    Own(usize),
}

/// A read-execute block holding generated code.
#[derive(Debug)]
pub struct ExecMem {
    ptr: *mut u8,
    len: usize,
    backing: Backing,
}

// SAFETY: the code is read-execute at `ptr` and owned by this value; its read-write view (if
// any) is only written before construction returns.
unsafe impl Send for ExecMem {}
// SAFETY: as above; sharing only allows reading and executing the code.
unsafe impl Sync for ExecMem {}

/// Copies `code` to `dst` and fills the rest of `cap` bytes with int3, so that a stray jump
/// past the code traps.
///
/// # Safety
/// `dst` must be writable for `cap >= code.len()` bytes.
unsafe fn fill(dst: *mut u8, cap: usize, code: &[u8]) {
    // SAFETY: per the contract.
    unsafe {
        std::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len());
        std::ptr::write_bytes(dst.add(code.len()), 0xcc, cap - code.len());
    }
}

impl ExecMem {
    /// Places `code` in read-execute memory (writing it only through a read-write view or
    /// while its own mapping is read-write).
    pub fn new(code: &[u8]) -> io::Result<ExecMem> {
        let page = page_size();
        let pages = code.len().max(1).div_ceil(page);
        let class = pages.next_power_of_two().trailing_zeros() as usize;
        if class < CLASSES {
            if let Some(b) = take_block(class, page) {
                // SAFETY: the block's read-write view is `page << class` bytes, owned by us.
                unsafe { fill(b.rw as *mut u8, page << class, code) };
                return Ok(ExecMem {
                    ptr: b.rx as *mut u8,
                    len: code.len(),
                    backing: Backing::Arena { class, rw: b.rw },
                });
            }
        }
        Self::own_mapping(code, pages * page)
    }

    /// `code` in an anonymous mapping of `map_len` bytes of its own, W^X by `mprotect`.
    fn own_mapping(code: &[u8], map_len: usize) -> io::Result<ExecMem> {
        // SAFETY: an anonymous private mapping with no address hint; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = ptr as *mut u8;
        // SAFETY: the mapping is map_len bytes and writable.
        unsafe { fill(ptr, map_len, code) };
        // SAFETY: ptr/map_len describe the mapping made above.
        let rc = unsafe {
            libc::mprotect(
                ptr as *mut libc::c_void,
                map_len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the mapping made above.
            unsafe { libc::munmap(ptr as *mut libc::c_void, map_len) };
            return Err(e);
        }
        Ok(ExecMem {
            ptr,
            len: code.len(),
            backing: Backing::Own(map_len),
        })
    }

    /// The start of the code.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The code bytes (readable: the view is read-execute).
    pub fn code(&self) -> &[u8] {
        // SAFETY: the view is readable and len bytes long for the lifetime of self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ExecMem {
    fn drop(&mut self) {
        match self.backing {
            Backing::Arena { class, rw } => {
                if let Ok(mut arenas) = ARENAS.lock() {
                    arenas.free[class].push(Block {
                        rw,
                        rx: self.ptr as usize,
                    });
                }
            }
            // SAFETY: ptr/len describe a mapping owned by self.
            Backing::Own(map_len) => unsafe {
                libc::munmap(self.ptr as *mut libc::c_void, map_len);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions of the mapping containing `addr`, from /proc/self/maps.
    fn perms_of(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let lo = usize::from_str_radix(lo, 16).unwrap();
            let hi = usize::from_str_radix(hi, 16).unwrap();
            if (lo..hi).contains(&addr) {
                return perms.to_string();
            }
        }
        panic!("{addr:#x} not mapped");
    }

    fn returns(m: &ExecMem) -> u32 {
        // SAFETY: every test below fills the block with a complete `mov eax, imm; ret`.
        let f: extern "sysv64" fn() -> u32 = unsafe { std::mem::transmute(m.as_ptr()) };
        f()
    }

    #[test]
    fn code_is_executable_and_not_writable() {
        // mov eax, 42; ret
        let m = ExecMem::new(&[0xb8, 42, 0, 0, 0, 0xc3]).unwrap();
        assert_eq!(&perms_of(m.as_ptr() as usize)[..3], "r-x");
        assert_eq!(returns(&m), 42);
        assert_eq!(m.code(), &[0xb8, 42, 0, 0, 0, 0xc3]);
    }

    #[test]
    fn the_writable_view_is_not_executable() {
        let m = ExecMem::new(&[0xb8, 7, 0, 0, 0, 0xc3]).unwrap();
        let Backing::Arena { rw, .. } = m.backing else {
            panic!("arena expected on Linux with memfd: {:?}", m.backing);
        };
        assert_ne!(rw, m.as_ptr() as usize);
        assert_eq!(&perms_of(rw)[..3], "rw-");
        // SAFETY: reading the block's own read-write view.
        let seen = unsafe { std::slice::from_raw_parts(rw as *const u8, 6) };
        assert_eq!(seen, m.code());
    }

    #[test]
    fn recycled_blocks_hold_the_new_code_and_stay_read_execute() {
        for v in 0..200u8 {
            let m = ExecMem::new(&[0xb8, v, 0, 0, 0, 0xc3]).unwrap();
            assert_eq!(&perms_of(m.as_ptr() as usize)[..3], "r-x");
            assert_eq!(returns(&m), v as u32);
        }
    }

    #[test]
    fn live_blocks_do_not_overlap_and_the_tail_traps() {
        let page = page_size();
        let mut code = vec![0x90u8; 3 * page]; // three pages of nop → a 4-page block
        code.extend_from_slice(&[0xb8, 9, 0, 0, 0, 0xc3]);
        let big = ExecMem::new(&code).unwrap();
        let small: Vec<ExecMem> = (0..20u8)
            .map(|v| ExecMem::new(&[0xb8, v, 0, 0, 0, 0xc3]).unwrap())
            .collect();
        assert_eq!(returns(&big), 9);
        for (v, m) in small.iter().enumerate() {
            assert_eq!(returns(m), v as u32);
            let at = m.as_ptr() as usize;
            let big_at = big.as_ptr() as usize;
            assert!(at + page <= big_at || at >= big_at + 4 * page);
            // SAFETY: the block is one readable page.
            let tail = unsafe { std::slice::from_raw_parts(m.as_ptr().add(6), page - 6) };
            assert!(tail.iter().all(|&b| b == 0xcc));
        }
    }

    #[test]
    fn code_bigger_than_any_block_gets_its_own_mapping() {
        let page = page_size();
        let mut code = vec![0x90u8; (page << (CLASSES - 1)) + 1];
        code.extend_from_slice(&[0xb8, 5, 0, 0, 0, 0xc3]);
        let m = ExecMem::new(&code).unwrap();
        assert!(matches!(m.backing, Backing::Own(_)));
        assert_eq!(&perms_of(m.as_ptr() as usize)[..3], "r-x");
        assert_eq!(returns(&m), 5);
    }
}
