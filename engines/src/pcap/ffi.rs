//! libpcap, loaded at run time with `dlopen(3)`: the handful of functions the `pcap` engine and
//! `--expr` use, and the C structures they exchange.
//!
//! Why not link it: a machine without libpcap must still build and run everything else, and the
//! engine must then say *unavailable* (with the loader's reason) instead of failing the build.
//! `libc`'s `dlopen`/`dlsym` do that without another dependency. The library is looked for under
//! its usual sonames; `BPFCONF_LIBPCAP=/path/to/libpcap.so` selects another build (e.g. libpcap
//! master, to compare versions).
//!
//! ABI facts (libpcap 1.10.3's `pcap/bpf.h` and `pcap/pcap.h`, unchanged since 1.0):
//! - `struct bpf_insn { u_short code; u_char jt; u_char jf; bpf_u_int32 k; }` (8 bytes);
//! - `struct bpf_program { u_int bf_len; struct bpf_insn *bf_insns; }`;
//! - `u_int bpf_filter(const struct bpf_insn *, const u_char *pkt, u_int wirelen, u_int buflen)`;
//! - `int bpf_validate(const struct bpf_insn *, int len)` (1 = valid; exported under this name in
//!   1.10.x, internally `pcap_validate_filter`/`pcapint_validate_filter`);
//! - `pcap_t *pcap_open_dead(int linktype, int snaplen)`, `int pcap_compile(pcap_t *, struct
//!   bpf_program *, const char *, int optimize, bpf_u_int32 netmask)`, `void
//!   pcap_freecode(struct bpf_program *)`, `char *pcap_geterr(pcap_t *)`, `void pcap_close(pcap_t
//!   *)`, `int pcap_datalink_name_to_val(const char *)`, `const char *pcap_lib_version(void)`.

use bpfconf_spec::cbpf::Insn;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

/// `struct bpf_insn`, as libpcap lays it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Generic operand.
    pub k: u32,
}

impl From<&Insn> for BpfInsn {
    fn from(i: &Insn) -> Self {
        BpfInsn {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        }
    }
}

impl From<BpfInsn> for Insn {
    fn from(i: BpfInsn) -> Self {
        Insn::new(i.code, i.jt, i.jf, i.k)
    }
}

/// `struct bpf_program`.
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

/// `PCAP_NETMASK_UNKNOWN`: what `pcap_compile` gets when no netmask is known (only `ip
/// broadcast` needs one).
pub const PCAP_NETMASK_UNKNOWN: u32 = 0xffff_ffff;

type FilterFn = unsafe extern "C" fn(*const BpfInsn, *const u8, c_uint, c_uint) -> c_uint;
type ValidateFn = unsafe extern "C" fn(*const BpfInsn, c_int) -> c_int;
type VersionFn = unsafe extern "C" fn() -> *const c_char;
type OpenDeadFn = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type CompileFn =
    unsafe extern "C" fn(*mut c_void, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
type FreecodeFn = unsafe extern "C" fn(*mut BpfProgram);
type GeterrFn = unsafe extern "C" fn(*mut c_void) -> *mut c_char;
type CloseFn = unsafe extern "C" fn(*mut c_void);
type NameToValFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// Sonames tried in order when `BPFCONF_LIBPCAP` is not set: Debian/Ubuntu's `libpcap.so.0.8`,
/// the upstream `libpcap.so.1`, the development symlink, macOS.
const CANDIDATES: [&str; 4] = [
    "libpcap.so.0.8",
    "libpcap.so.1",
    "libpcap.so",
    "libpcap.A.dylib",
];

/// A loaded libpcap: function pointers resolved once (the library is never unloaded).
#[derive(Debug)]
pub struct Libpcap {
    path: String,
    version: String,
    filter: FilterFn,
    validate: ValidateFn,
    open_dead: OpenDeadFn,
    compile: CompileFn,
    freecode: FreecodeFn,
    geterr: GeterrFn,
    close: CloseFn,
    name_to_val: NameToValFn,
}

/// `pcap_compile` was not thread-safe before libpcap 1.8; an older library may be selected with
/// `BPFCONF_LIBPCAP`, so compilations are serialised.
static COMPILE_LOCK: Mutex<()> = Mutex::new(());

/// The last `dlerror()` message.
fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by the loader, valid until the
    // next dl* call on this thread; it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown dlopen error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// Resolves `name` in `handle` as a function of type `T`.
///
/// # Safety
/// `T` must be an `extern "C"` function pointer type matching the symbol's C declaration.
unsafe fn sym<T: Copy>(handle: *mut c_void, name: &str) -> Result<T, String> {
    let cname = CString::new(name).expect("symbol names have no NUL");
    // SAFETY: handle is a live dlopen handle (never closed) and cname is NUL-terminated.
    let p = unsafe { libc::dlsym(handle, cname.as_ptr()) };
    if p.is_null() {
        return Err(format!("symbol {name} not found: {}", dlerror()));
    }
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: p is a non-null code address of the named function; the caller guarantees T is a
    // function pointer type of the same signature, and function and data pointers have the same
    // size on the platforms with dlopen (checked above).
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

impl Libpcap {
    /// Opens the library at `name` (a soname or a path) and resolves every function.
    fn open(name: &str) -> Result<Libpcap, String> {
        let cname = CString::new(name).map_err(|_| format!("{name:?}: NUL in library name"))?;
        // SAFETY: cname is NUL-terminated. RTLD_NOW binds every symbol now, so nothing is bound
        // lazily later inside a forked child (see the isolate module).
        let handle = unsafe { libc::dlopen(cname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(dlerror());
        }
        // SAFETY: each type alias matches the C prototype quoted in the module docs.
        let lib = unsafe {
            Libpcap {
                path: name.to_string(),
                version: String::new(),
                filter: sym(handle, "bpf_filter")?,
                validate: sym(handle, "bpf_validate")?,
                open_dead: sym(handle, "pcap_open_dead")?,
                compile: sym(handle, "pcap_compile")?,
                freecode: sym(handle, "pcap_freecode")?,
                geterr: sym(handle, "pcap_geterr")?,
                close: sym(handle, "pcap_close")?,
                name_to_val: sym(handle, "pcap_datalink_name_to_val")?,
            }
        };
        // SAFETY: as above.
        let version_fn: VersionFn = unsafe { sym(handle, "pcap_lib_version")? };
        // SAFETY: pcap_lib_version returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(version_fn()) }
            .to_string_lossy()
            .into_owned();
        Ok(Libpcap {
            path: resolved_path(lib.filter as *const c_void).unwrap_or(lib.path.clone()),
            version,
            ..lib
        })
    }

    /// The file the library was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `pcap_lib_version()`, e.g. `libpcap version 1.10.3 (with TPACKET_V3)`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `bpf_validate(insns, len)`: true if libpcap's validator accepts the program.
    pub fn validate(&self, insns: &[BpfInsn]) -> bool {
        let Ok(len) = c_int::try_from(insns.len()) else {
            return false;
        };
        // SAFETY: the pointer is valid for `len` instructions (dangling but never read when
        // len = 0: bpf_validate returns before looking at it); bpf_validate only reads them.
        unsafe { (self.validate)(insns.as_ptr(), len) == 1 }
    }

    /// The raw `bpf_filter` function, for the isolated runner.
    pub fn filter_fn(&self) -> FilterFn {
        self.filter
    }

    /// `pcap_datalink_name_to_val(name)`: a DLT_ value from its name (`EN10MB`, `RAW`…).
    pub fn datalink_by_name(&self, name: &str) -> Option<i32> {
        let c = CString::new(name).ok()?;
        // SAFETY: c is NUL-terminated; the function only reads it.
        let v = unsafe { (self.name_to_val)(c.as_ptr()) };
        (v >= 0).then_some(v)
    }

    /// Compiles a tcpdump filter expression for link type `dlt` (a DLT_ value) and snapshot
    /// length `snaplen`, as `tcpdump -d` would (optimised, netmask unknown).
    pub fn compile(&self, expr: &str, dlt: i32, snaplen: i32) -> Result<Vec<Insn>, String> {
        let cexpr = CString::new(expr).map_err(|_| "the expression contains a NUL byte")?;
        let _guard = COMPILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: plain constructor; NULL on failure (checked).
        let p = unsafe { (self.open_dead)(dlt, snaplen) };
        if p.is_null() {
            return Err(format!("pcap_open_dead({dlt}, {snaplen}) failed"));
        }
        let mut prog = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        // SAFETY: p is a live pcap_t, prog a writable bpf_program, cexpr NUL-terminated.
        let rc = unsafe { (self.compile)(p, &mut prog, cexpr.as_ptr(), 1, PCAP_NETMASK_UNKNOWN) };
        let result = if rc < 0 {
            // SAFETY: pcap_geterr returns the pcap_t's NUL-terminated error buffer, copied
            // before pcap_close frees it.
            Err(unsafe { CStr::from_ptr((self.geterr)(p)) }
                .to_string_lossy()
                .into_owned())
        } else {
            let insns = if prog.bf_insns.is_null() || prog.bf_len == 0 {
                Vec::new()
            } else {
                // SAFETY: on success pcap_compile stores bf_len instructions at bf_insns.
                unsafe { std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) }
                    .iter()
                    .map(|&i| Insn::from(i))
                    .collect()
            };
            // SAFETY: prog was filled by a successful pcap_compile and is freed once.
            unsafe { (self.freecode)(&mut prog) };
            Ok(insns)
        };
        // SAFETY: p came from pcap_open_dead and is closed once; nothing refers to it after.
        unsafe { (self.close)(p) };
        result
    }
}

/// The file containing `addr`, per `dladdr(3)`.
fn resolved_path(addr: *const c_void) -> Option<String> {
    // SAFETY: Dl_info is plain data; zeroed is a valid initial value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: addr is a code address inside a loaded object; info is writable.
    let ok = unsafe { libc::dladdr(addr, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader, copied at once.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let name = name.to_string_lossy().into_owned();
    Some(std::fs::canonicalize(&name).map_or(name, |p| p.display().to_string()))
}

/// Loads libpcap once per process: `BPFCONF_LIBPCAP` if set, else the first soname that opens.
fn load() -> Result<Libpcap, String> {
    if let Ok(path) = std::env::var("BPFCONF_LIBPCAP") {
        return Libpcap::open(&path).map_err(|e| format!("BPFCONF_LIBPCAP={path}: {e}"));
    }
    let mut errors = Vec::new();
    for name in CANDIDATES {
        match Libpcap::open(name) {
            Ok(lib) => return Ok(lib),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "libpcap not found (install libpcap0.8 / libpcap-dev, or set BPFCONF_LIBPCAP): {}",
        errors.join("; ")
    ))
}

/// The process's libpcap, or why there is none.
pub fn libpcap() -> Result<&'static Libpcap, String> {
    static LIB: OnceLock<Result<Libpcap, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}
