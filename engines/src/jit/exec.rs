//! Executable memory, W^X: pages are mapped read-write, filled, then switched to read-execute
//! with `mprotect` before any code runs; they are never writable and executable at once.

use std::io;

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
        let map_len = code.len().max(1).div_ceil(page) * page;
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
        // Fill the unused tail with int3 so a stray jump past the code traps.
        // SAFETY: the mapping is map_len bytes, writable, and code.len() <= map_len.
        unsafe {
            std::ptr::write_bytes(ptr, 0xcc, map_len);
            std::ptr::copy_nonoverlapping(code.as_ptr(), ptr, code.len());
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

impl Drop for ExecMem {
    fn drop(&mut self) {
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
}
