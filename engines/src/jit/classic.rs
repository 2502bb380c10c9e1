//! Classic BPF to x86-64, for the Linux, BSD (libpcap) and NetBSD dialects: the compiled
//! program, the context its code runs with, and how a run is set up and read back.
//!
//! # Semantics
//!
//! Exactly [`crate::interp::classic::run`]'s, dialect by dialect: the generated code returns
//! the same value and leaves the same memory store, and where the interpreter traps (the step
//! limit of a BSD backward-jump loop, a pc outside the program) [`Compiled::run`] reports the
//! same [`Trap`]. Everything that is not a plain register or memory operation reuses the
//! interpreter's own functions: Linux negative-offset loads (`load_linux`), `nla` /
//! `nlan`, `rand`, the skb fields of ancillary loads (`skb_field`), the `ld len`
//! value, the initial memory store and NetBSD's coprocessor calls (`cop_call`).
//!
//! # Registers
//!
//! | x86-64 | holds |
//! |---|---|
//! | ebx | A |
//! | r12d | X |
//! | r13 | the run context (`RunCtx`) |
//! | r14 | the first packet byte |
//! | r15 | the load bound: a load of `n` bytes at offset `o` is inside iff `o + n <= r15` (64-bit) |
//! | rbp | `M[0]` (the memory store: 16 words, or NetBSD's external memory) |
//! | eax, ecx, edx | scratch (division, shift counts, offsets) |
//!
//! All six are callee-saved, so call-outs into Rust need no spilling. The prologue pushes them
//! and one more slot, so rsp is 16-byte aligned at every call.
//!
//! # Step counting
//!
//! Only a BSD program with a backward `ja` can loop. For those (and for programs longer than
//! [`STEP_LIMIT`]) the code keeps `RunCtx::steps`, the steps the run may still take, and
//! charges each straight-line block at its entry. Blocks end at every jump target, after
//! every jump or return and after every instruction that may end the run early (packet and
//! memory loads, division, coprocessor calls), so within a block only the last instruction
//! can leave it and charging the whole block up front traps exactly when the interpreter's
//! one-step-per-instruction count would.

mod gen;
mod rt;
#[cfg(test)]
mod tests;

use super::dump;
use super::emit::{Assembled, Origin};
use super::exec::ExecMem;
use super::Inject;
use crate::interp::classic::{self as interp, ClassicResult, Trap, STEP_LIMIT};
use crate::{ClassicProgram, LoadError, RunError};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::disasm::disasm_insn;
use bpfconf_spec::cbpf::ext::Ext;
use bpfconf_spec::cbpf::Insn;
use bpfconf_spec::Dialect;

/// [`RunCtx::trap`] values.
mod trap {
    /// The run returned normally.
    pub const NONE: u32 = 0;
    /// More than [`super::STEP_LIMIT`] instructions.
    pub const STEP_LIMIT: u32 = 1;
    /// A jump or fall-through left the program; the pc is in `trap_pc`.
    pub const PC_OUT_OF_RANGE: u32 = 2;
}

/// Number of ancillary slots in [`RunCtx::anc`]: `SKF_AD_MAX / 4`.
const ANC_SLOTS: usize = 16;

/// What the generated code runs with (r13 points to it). Filled by [`RunCtx::new`] before each
/// run; field offsets are taken with `offset_of!` by the code generator.
#[repr(C)]
pub(crate) struct RunCtx {
    /// The first packet byte.
    pkt: *const u8,
    /// The packet length.
    pkt_len: usize,
    /// Load bound (r15): the packet length on Linux, at most `u32::MAX` on BSD and NetBSD
    /// (whose `offset + size` must not overflow 32 bits).
    bound: u64,
    /// The first memory word (rbp).
    mem: *mut u32,
    /// Words in the memory store.
    mem_len: u64,
    /// The run's context, for call-outs.
    ctx: *const Ctx,
    /// What `ld len` / `ldx len` load.
    len: u32,
    /// Ancillary skb fields by `SKF_AD_*` offset / 4 (only those the program reads are filled).
    anc: [u32; ANC_SLOTS],
    /// Bit `i` set when `anc[i]` exists (clear: `ifidx`/`hatype` without a device, which end
    /// the program returning A).
    anc_ok: u32,
    /// Steps the run may still take (counted only when the program can loop).
    steps: u32,
    /// One of the [`trap`] values.
    trap: u32,
    /// The state of the `rand` sequence when the case does not fix a value.
    rand_state: u32,
    /// The pc that left the program, for [`trap::PC_OUT_OF_RANGE`].
    trap_pc: u64,
}

impl RunCtx {
    fn new(c: &Compiled, pkt: &[u8], ctx: &Ctx, mem: &mut [u32]) -> RunCtx {
        let bound = match c.dialect {
            Dialect::Linux => pkt.len() as u64,
            Dialect::Bsd | Dialect::Netbsd => pkt.len().min(u32::MAX as usize) as u64,
        };
        let mut rc = RunCtx {
            pkt: pkt.as_ptr(),
            pkt_len: pkt.len(),
            bound,
            mem: mem.as_mut_ptr(),
            mem_len: mem.len() as u64,
            ctx,
            len: interp::len_value(c.dialect, pkt.len(), ctx),
            anc: [0; ANC_SLOTS],
            anc_ok: 0,
            steps: STEP_LIMIT as u32,
            trap: trap::NONE,
            rand_state: interp::RAND_SEED,
            trap_pc: 0,
        };
        for &(ext, slot) in &c.fields {
            if let Some(v) = interp::skb_field(ext, pkt.len(), ctx) {
                rc.anc[slot] = v;
                rc.anc_ok |= 1 << slot;
            }
        }
        rc
    }
}

/// The signature of generated code.
type JitFn = unsafe extern "sysv64" fn(*mut RunCtx) -> u32;

/// A compiled classic program.
pub struct Compiled {
    code: ExecMem,
    asm: Assembled,
    insns: Vec<Insn>,
    dialect: Dialect,
    /// The skb fields the program's ancillary loads read, with their [`RunCtx::anc`] slot.
    fields: Vec<(Ext, usize)>,
}

impl Compiled {
    /// Compiles a program. [`super::Jit`] runs the dialect's checker first, but any program
    /// compiles: what the interpreter traps on (jumps out of the program, runaway loops) traps
    /// here too, and no program makes the code touch memory outside the packet, the run
    /// context and the memory store.
    pub fn new(p: &ClassicProgram, inject: Inject) -> Result<Compiled, LoadError> {
        let out = gen::compile(&p.insns, p.dialect, inject)
            .map_err(|e| LoadError::Engine(format!("classic JIT: {e}")))?;
        let code = ExecMem::new(&out.asm.code)
            .map_err(|e| LoadError::Engine(format!("classic JIT: executable memory: {e}")))?;
        Ok(Compiled {
            code,
            asm: out.asm,
            insns: p.insns.clone(),
            dialect: p.dialect,
            fields: out.fields,
        })
    }

    /// Runs the program on a packet: the return value and the memory store afterwards, or the
    /// interpreter's trap as [`RunError::Engine`] (`JIT trap: step limit exceeded`).
    pub fn run(&self, pkt: &[u8], ctx: &Ctx) -> Result<ClassicResult, RunError> {
        let mut mem = interp::initial_mem(self.dialect, ctx).to_vec();
        match self.exec(pkt, ctx, &mut mem) {
            Ok(ret) => Ok(ClassicResult { ret, mem }),
            Err(t) => Err(RunError::Engine(format!("JIT trap: {t}"))),
        }
    }

    /// Runs the program and returns only its return value, without allocating (the memory
    /// store lives on the stack unless a NetBSD external memory exceeds 32 words). A run that
    /// traps returns 0.
    pub fn filter(&self, pkt: &[u8], ctx: &Ctx) -> u32 {
        let init = interp::initial_mem(self.dialect, ctx);
        let mut buf = [0u32; 32];
        let mut heap;
        let mem: &mut [u32] = if init.len() <= buf.len() {
            let m = &mut buf[..init.len()];
            m.copy_from_slice(init);
            m
        } else {
            heap = init.to_vec();
            &mut heap
        };
        self.exec(pkt, ctx, mem).unwrap_or(0)
    }

    /// The laid-out machine code, with its origin marks and branch statistics.
    pub fn assembled(&self) -> &Assembled {
        &self.asm
    }

    /// The `jit-dump` listing: the machine code disassembled, each block headed by the BPF
    /// instruction (`insn 3: jeq #0x800, l5, l4`) or stub it came from.
    pub fn listing(&self) -> String {
        dump::listing(&self.asm, &|o| match o {
            Origin::Insn { insn, .. } => match self.insns.get(insn) {
                Some(i) => {
                    let text = disasm_insn(i, insn);
                    let body = text
                        .strip_prefix(&format!("l{insn}: "))
                        .unwrap_or(&text)
                        .to_string();
                    format!("insn {insn}: {body}")
                }
                None => format!("insn {insn}"),
            },
            Origin::Stub(s) => s.to_string(),
        })
    }

    fn exec(&self, pkt: &[u8], ctx: &Ctx, mem: &mut [u32]) -> Result<u32, Trap> {
        let mut rc = RunCtx::new(self, pkt, ctx, mem);
        // SAFETY: the mapping holds a complete function generated for this signature; it reads
        // only the packet (bounds-checked against rc.bound), rc and rc.mem[..rc.mem_len], which
        // all outlive the call.
        let ret = unsafe {
            let f: JitFn = std::mem::transmute::<*const u8, JitFn>(self.code.as_ptr());
            f(&mut rc)
        };
        match rc.trap {
            trap::NONE => Ok(ret),
            trap::STEP_LIMIT => Err(Trap::StepLimit),
            _ => Err(Trap::PcOutOfRange(rc.trap_pc as usize)),
        }
    }
}
