//! Executable memory, W^X: pages are mapped read-write, filled, then switched to read-execute
//! with `mprotect` before any code runs; they are never writable and executable at once.
//!
//! Mappings are recycled through a small pool: a fuzzing campaign compiles ~10^5 programs per
//! second, and mmap + munmap (with its TLB shootdown and the first-touch page fault) per
//! program cost more than the compile. A recycled mapping goes back to read-write with
//! `mprotect` before it is refilled, so the W^X rule holds for every use.

use std::io;
use std::sync::Mutex;

/// Mappings waiting for reuse: (address, length), all read-execute and unused.
static POOL: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
/// Most mappings kept in [`POOL`].
const POOL_MAX: usize = 64;
/// Largest mapping recycled (bigger ones are unmapped on drop).
const POOL_MAP_MAX: usize = 1 << 16;

/// A read-execute mapping holding generated code. Unmapped on drop.
#[derive(Debug)]
pub struct ExecMem {
    ptr: *mut u8,
    map_len: usize,
    len: usize,
}

// SAFETY: the mapping is immutable (read-execute) after construction and owned by this value.
unsafe impl Send for ExecMem {}
// SAFETY: as above; sharing only allows reading and executing the code.
unsafe impl Sync for ExecMem {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl ExecMem {
    /// Maps `code` read-execute (writes it while the pages are read-write only).
    pub fn new(code: &[u8]) -> io::Result<ExecMem> {
        let page = page_size();
        let need = code.len().max(1).div_ceil(page) * page;
        let (ptr, map_len) = match take_from_pool(need) {
            Some((ptr, len)) => {
                // SAFETY: a pooled mapping of len bytes, owned by nobody else now.
                let rc = unsafe {
                    libc::mprotect(
                        ptr as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                    )
                };
                if rc != 0 {
                    // SAFETY: as above; give the mapping back to the kernel.
                    unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
                    return Err(io::Error::last_os_error());
                }
                (ptr as *mut u8, len)
            }
            None => {
                // SAFETY: an anonymous private mapping with no address hint; checked below.
                let ptr = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        need,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if ptr == libc::MAP_FAILED {
                    return Err(io::Error::last_os_error());
                }
                (ptr as *mut u8, need)
            }
        };
        // Fill the unused tail with int3 so a stray jump past the code traps.
        // SAFETY: the mapping is map_len bytes, writable, and code.len() <= map_len.
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), ptr, code.len());
            std::ptr::write_bytes(ptr.add(code.len()), 0xcc, map_len - code.len());
        }
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
            map_len,
            len: code.len(),
        })
    }

    /// The start of the code.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The code bytes (readable: the mapping is read-execute).
    pub fn code(&self) -> &[u8] {
        // SAFETY: the mapping is readable and len bytes long for the lifetime of self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A pooled mapping of at least `need` bytes, if one is free.
fn take_from_pool(need: usize) -> Option<(usize, usize)> {
    let mut pool = POOL.lock().ok()?;
    let i = pool.iter().position(|&(_, len)| len >= need)?;
    Some(pool.swap_remove(i))
}

impl Drop for ExecMem {
    fn drop(&mut self) {
        if self.map_len <= POOL_MAP_MAX {
            if let Ok(mut pool) = POOL.lock() {
                if pool.len() < POOL_MAX {
                    pool.push((self.ptr as usize, self.map_len));
                    return;
                }
            }
        }
        // SAFETY: ptr/map_len describe a mapping owned by self.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.map_len) };
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

    #[test]
    fn code_is_executable_and_not_writable() {
        // mov eax, 42; ret
        let m = ExecMem::new(&[0xb8, 42, 0, 0, 0, 0xc3]).unwrap();
        assert_eq!(&perms_of(m.as_ptr() as usize)[..3], "r-x");
        // SAFETY: the bytes above are a complete function returning 42.
        let f: extern "sysv64" fn() -> u32 = unsafe { std::mem::transmute(m.as_ptr()) };
        assert_eq!(f(), 42);
        assert_eq!(m.code(), &[0xb8, 42, 0, 0, 0, 0xc3]);
    }

    #[test]
    fn recycled_mappings_hold_the_new_code_and_stay_read_execute() {
        for v in 0..50u8 {
            let m = ExecMem::new(&[0xb8, v, 0, 0, 0, 0xc3]).unwrap();
            assert_eq!(&perms_of(m.as_ptr() as usize)[..3], "r-x");
            // SAFETY: a complete function returning v.
            let f: extern "sysv64" fn() -> u32 = unsafe { std::mem::transmute(m.as_ptr()) };
            assert_eq!(f(), v as u32);
        }
    }
}
