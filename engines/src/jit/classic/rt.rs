//! Run-time functions the generated code calls (`extern "sysv64"`, first argument the
//! [`RunCtx`]). Each wraps the interpreter's own implementation, so the JIT cannot drift from
//! it. Results that may fail are returned as a `u64`: the 32-bit value, or [`FAIL`] (sign bit
//! set) when the program must return 0.

use super::RunCtx;
use crate::interp::classic as interp;

/// A failed call-out: the program returns 0.
pub(super) const FAIL: u64 = u64::MAX;

/// The packet of the run.
///
/// # Safety
/// `rc` must be a live [`RunCtx`] filled by [`RunCtx::new`].
unsafe fn packet<'a>(rc: *const RunCtx) -> &'a [u8] {
    // SAFETY: RunCtx::new took pkt/pkt_len from a slice that outlives the run.
    unsafe { std::slice::from_raw_parts((*rc).pkt, (*rc).pkt_len) }
}

/// Linux packet load at a signed offset (negative offsets through the network/MAC header).
pub(super) unsafe extern "sysv64" fn load(rc: *mut RunCtx, off: u32, size: u32) -> u64 {
    // SAFETY: called by generated code with the RunCtx it was given.
    let (pkt, ctx) = unsafe { (packet(rc), &*(*rc).ctx) };
    interp::load_linux(pkt, ctx, off as i32, size).map_or(FAIL, u64::from)
}

/// `SKF_AD_NLATTR`.
pub(super) unsafe extern "sysv64" fn nla(rc: *mut RunCtx, a: u32, x: u32) -> u32 {
    // SAFETY: as in `load`.
    interp::nla_find_at(unsafe { packet(rc) }, a, x)
}

/// `SKF_AD_NLATTR_NEST`.
pub(super) unsafe extern "sysv64" fn nlan(rc: *mut RunCtx, a: u32, x: u32) -> u32 {
    // SAFETY: as in `load`.
    interp::nla_find_nested_at(unsafe { packet(rc) }, a, x)
}

/// `SKF_AD_RANDOM`: the case's value or the run's next pseudo-random number.
pub(super) unsafe extern "sysv64" fn rand(rc: *mut RunCtx) -> u32 {
    // SAFETY: as in `load`; rand_state is only touched here during the run.
    unsafe {
        let rc = &mut *rc;
        interp::rand_value(&*rc.ctx, &mut rc.rand_state)
    }
}

/// NetBSD `cop`/`copx`: coprocessor function `idx` on A, the packet and the memory store.
pub(super) unsafe extern "sysv64" fn cop(rc: *mut RunCtx, idx: u32, a: u32) -> u64 {
    // SAFETY: as in `load`; mem/mem_len come from the run's memory slice, which the generated
    // code does not use while this runs.
    let (pkt, ctx, mem) = unsafe {
        let r = &*rc;
        (
            packet(rc),
            &*r.ctx,
            std::slice::from_raw_parts_mut(r.mem, r.mem_len as usize),
        )
    };
    interp::cop_call(ctx, idx, a, pkt, mem).map_or(FAIL, u64::from)
}
