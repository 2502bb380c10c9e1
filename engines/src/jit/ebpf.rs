//! eBPF to x86-64: the compiled program, its run-time context and the Rust call-outs that
//! generated code makes (memory slow path, helpers, calls, map references).
//!
//! # Machine model
//!
//! Exactly the reference interpreter's ([`crate::interp::ebpf`]): registers hold the same
//! values (pointers are the interpreter's fake addresses: the buffer at `MEM_BASE`, frame *n*
//! at `STACK_BASE + n × 0x1000`, map values in their windows), the same [`Memory`] region table
//! backs every access, the same [`Maps`] and [`Helpers`] serve calls, and the same step limit
//! bounds a run. Generated code translates a fake address to a host pointer inline for the two
//! common regions (the current stack frame and the buffer) and calls [`rt_translate`] for the
//! rest (callers' frames, map values), which checks the access against the region table just
//! as the interpreter does. So a register, a byte of memory or a map that differs from the
//! interpreter after a run is a JIT bug, visible to the differential tests.
//!
//! # Registers
//!
//! | BPF | x86-64 | why |
//! |---|---|---|
//! | R0 | rax | return value, `div`/`cmpxchg` accumulator |
//! | R1–R5 | rdi, rsi, rdx, rcx, r8 | the SysV argument registers |
//! | R6–R9 | rbx, r13, r14, r15 | callee-saved, survive call-outs |
//! | R10 | rbp | callee-saved; always the current frame's fake frame pointer |
//! | — | r12 | the [`JitCtx`] |
//! | — | r9 | the step budget (spilled with R0–R5 around call-outs) |
//! | — | r10, r11 | scratch |
//!
//! Call-outs spill R0–R5 to [`JitCtx::regs`] and reload them afterwards, so helpers see R1–R5
//! there and leave them unchanged, as in the interpreter. BPF-to-BPF calls use the native stack
//! (`call`/`ret`), pushing R6–R10 around the call; the frame bookkeeping is the region table's.

mod gen;
mod ops;

use super::dump;
use super::emit::{Assembled, Origin};
use super::exec::ExecMem;
use super::Inject;
use crate::interp::ebpf::helpers::{HelperCtx, HelperReturn, HelperState, DEFAULT_SEED};
use crate::interp::ebpf::memory::{frame_pointer, RegionKind};
use crate::interp::ebpf::{
    EbpfResult, Helpers, Maps, Memory, MAX_CALL_FRAMES, MEM_BASE, STEP_LIMIT,
};
use crate::{EbpfInput, EbpfProgram, LoadError, RunError};
use bpfconf_spec::ebpf::maps::MapDef;
use bpfconf_spec::ebpf::{pseudo, Insn};

/// Run status in [`JitCtx::status`].
pub(crate) mod status {
    /// Running / returned normally.
    pub const OK: u64 = 0;
    /// A fault; the message is in the runtime or the static fault table.
    pub const FAULT: u64 = 1;
    /// A helper asked for a tail call to [`super::JitCtx::tail_target`].
    pub const TAIL_CALL: u64 = 2;
    /// A helper ended the program with [`super::JitCtx::ret`].
    pub const EXIT: u64 = 3;
}

/// The context generated code runs with (r12 points to it). Field offsets are taken with
/// `offset_of!` by the code generator.
#[repr(C)]
pub(crate) struct JitCtx {
    /// R0–R10, spilled around call-outs and loaded at entry.
    pub regs: [u64; 11],
    /// Host address of the memory buffer.
    pub mem_host: u64,
    /// Length of the memory buffer.
    pub mem_len: u64,
    /// `mem_lim[s]`: an access of `s` bytes at buffer offset `t` is inside iff `t < mem_lim[s]`.
    pub mem_lim: [u64; 9],
    /// Host address of the current stack frame's first byte.
    pub frame_host: u64,
    /// Current call depth (0 = the main program).
    pub depth: u64,
    /// Instructions the run may still execute.
    pub steps: u64,
    /// The native stack pointer after the prologue, for unwinding.
    pub saved_rsp: u64,
    /// One of [`status`].
    pub status: u64,
    /// Tail-call target index, for [`status::TAIL_CALL`].
    pub tail_target: u64,
    /// R0 at the end of the run.
    pub ret: u64,
    /// `1 + i` when static fault `i` of the compiled program ended the run; 0 otherwise.
    pub fault_code: u64,
    /// The Rust side of the run.
    pub rt: *mut Runtime<'static>,
}

/// The Rust side of one run: the interpreter's memory, maps and helper state.
pub(crate) struct Runtime<'a> {
    memory: Memory,
    maps: Maps,
    state: HelperState,
    helpers: &'a Helpers,
    /// Number of tail-call targets.
    targets: usize,
    /// A run-time fault message.
    fault: Option<String>,
    /// Memory slow-path sites of the compiled code.
    sites: &'a [gen::Site],
}

/// Packs where an instruction is for call-outs: program index and slot.
pub(crate) fn loc(prog: usize, pc: usize) -> u64 {
    ((prog as u64) << 32) | pc as u64
}

/// The interpreter's name for a location (`insn 3`, `progs[0] insn 3`).
fn where_(loc: u64) -> String {
    let (prog, pc) = (loc >> 32, loc as u32);
    match prog {
        0 => format!("insn {pc}"),
        n => format!("progs[{}] insn {pc}", n - 1),
    }
}

impl Runtime<'_> {
    /// Refreshes the fast-path pointers after anything that may have changed the regions.
    fn refresh(&mut self, ctx: &mut JitCtx) {
        let (mem, len) = self
            .memory
            .region_ptr(RegionKind::Mem)
            .unwrap_or((std::ptr::null_mut(), 0));
        ctx.mem_host = mem as u64;
        ctx.mem_len = len as u64;
        for (s, lim) in ctx.mem_lim.iter_mut().enumerate() {
            *lim = (len as u64 + 1).saturating_sub(s.max(1) as u64);
        }
        let depth = ctx.depth as usize;
        ctx.frame_host = self
            .memory
            .region_ptr(RegionKind::Stack(depth))
            .map_or(0, |(p, _)| p as u64);
    }

    fn fail(&mut self, ctx: &mut JitCtx, msg: String, loc: u64) {
        self.fault = Some(format!("{msg} ({})", where_(loc)));
        ctx.status = status::FAULT;
    }
}

/// # Safety
/// `ctx` must be the context of a run in progress (set up by [`Compiled::run_input`]).
unsafe fn parts<'a>(ctx: *mut JitCtx) -> (&'a mut JitCtx, &'a mut Runtime<'static>) {
    let ctx = &mut *ctx;
    let rt = &mut *ctx.rt;
    (ctx, rt)
}

/// Slow path of a load/store at `addr` for slow-path site `site` (its size, access kind and
/// location are in [`Runtime::sites`]); returns the host pointer, or 0 after recording the
/// fault.
pub(crate) extern "sysv64" fn rt_translate(ctx: *mut JitCtx, addr: u64, site: u64, _: u64) -> u64 {
    // SAFETY: called only from generated code with its context.
    let (ctx, rt) = unsafe { parts(ctx) };
    let gen::Site { size, access, loc } = rt.sites[site as usize];
    match rt.memory.host_ptr(addr, size, access) {
        Ok(p) => p as u64,
        Err(e) => {
            rt.fail(ctx, e, loc);
            0
        }
    }
}

/// `call imm` / `callx`: helper `id` with R1–R5 from the spilled registers; returns 0.
pub(crate) extern "sysv64" fn rt_helper(ctx: *mut JitCtx, id: u64, l: u64, _: u64) -> u64 {
    // SAFETY: called only from generated code with its context.
    let (ctx, rt) = unsafe { parts(ctx) };
    let mut args = [0u64; 5];
    args.copy_from_slice(&ctx.regs[1..6]);
    let mut hctx = HelperCtx {
        memory: &mut rt.memory,
        maps: &mut rt.maps,
        state: &mut rt.state,
    };
    match rt.helpers.call(id, &mut hctx, args) {
        Ok(HelperReturn::Value(v)) => ctx.regs[0] = v,
        Ok(HelperReturn::Void) => {}
        Ok(HelperReturn::Exit(v)) => {
            ctx.ret = v;
            ctx.status = status::EXIT;
        }
        Ok(HelperReturn::TailCall(target)) => {
            if target >= rt.targets {
                let msg = format!(
                    "tail call to progs[{target}], but there are {} targets",
                    rt.targets
                );
                rt.fail(ctx, msg, l);
            } else {
                // A fresh frame at the same depth, as the interpreter's tail_call.
                let depth = ctx.depth as usize;
                rt.memory.pop_frame(depth);
                if let Err(e) = rt.memory.push_frame(depth) {
                    rt.fail(ctx, e, l);
                } else {
                    ctx.tail_target = target as u64;
                    ctx.status = status::TAIL_CALL;
                }
            }
        }
        Err(e) => rt.fail(ctx, e, l),
    }
    rt.refresh(ctx);
    0
}

/// `call local`: a new frame one level deeper.
pub(crate) extern "sysv64" fn rt_enter(ctx: *mut JitCtx, l: u64, _: u64, _: u64) -> u64 {
    // SAFETY: called only from generated code with its context.
    let (ctx, rt) = unsafe { parts(ctx) };
    let depth = ctx.depth as usize + 1;
    if depth >= MAX_CALL_FRAMES {
        let msg = format!("call depth exceeded: more than {MAX_CALL_FRAMES} frames");
        rt.fail(ctx, msg, l);
        return 0;
    }
    if let Err(e) = rt.memory.push_frame(depth) {
        rt.fail(ctx, e, l);
        return 0;
    }
    ctx.depth = depth as u64;
    rt.refresh(ctx);
    0
}

/// `exit` from a called function: drops its frame.
pub(crate) extern "sysv64" fn rt_leave(ctx: *mut JitCtx, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: called only from generated code with its context.
    let (ctx, rt) = unsafe { parts(ctx) };
    rt.memory.pop_frame(ctx.depth as usize);
    ctx.depth -= 1;
    rt.refresh(ctx);
    0
}

/// `lddw` with a map reference: `a` = src | index << 32, `b` = the second slot's imm.
pub(crate) extern "sysv64" fn rt_map_ref(ctx: *mut JitCtx, a: u64, b: u64, l: u64) -> u64 {
    // SAFETY: called only from generated code with its context.
    let (ctx, rt) = unsafe { parts(ctx) };
    let index = (a >> 32) as u32;
    let r = match a as u8 {
        pseudo::MAP_FD => rt.maps.handle_of(index),
        _ => rt.maps.value_pointer(&mut rt.memory, index, b as u32),
    };
    rt.refresh(ctx);
    match r {
        Ok(v) => v,
        Err(e) => {
            rt.fail(ctx, e, l);
            0
        }
    }
}

/// A compiled eBPF program (the main program and its tail-call targets in one image).
pub struct Compiled {
    code: ExecMem,
    asm: Assembled,
    /// Offset of the entry point (the prologue, at the end of the shared runtime code).
    entry: usize,
    /// Static faults (jumps outside the program, undecodable slots…).
    faults: Vec<gen::Fault>,
    /// Memory slow-path sites (see [`rt_translate`]).
    sites: Vec<gen::Site>,
    maps: Vec<MapDef>,
    helpers: Helpers,
    programs: Vec<Vec<Insn>>,
    step_limit: u64,
}

impl Compiled {
    /// Compiles a validated program with the helper table [`Helpers::for_program`] chooses (as
    /// the interpreter engine does).
    pub fn new(p: &EbpfProgram, inject: Inject) -> Result<Compiled, LoadError> {
        Compiled::with_helpers(p, inject, Helpers::for_program(p))
    }

    /// Compiles a validated program with an explicit helper table.
    pub fn with_helpers(
        p: &EbpfProgram,
        inject: Inject,
        helpers: Helpers,
    ) -> Result<Compiled, LoadError> {
        crate::interp::ebpf::maps::check_program(p)?;
        let mut programs = vec![p.insns.clone()];
        programs.extend(p.progs.iter().cloned());
        let (asm, faults, sites, entry) = gen::compile(&programs, inject)
            .map_err(|e| LoadError::Engine(format!("JIT code generation failed: {e}")))?;
        let code = ExecMem::new(&asm.code)
            .map_err(|e| LoadError::Engine(format!("cannot map JIT code: {e}")))?;
        Ok(Compiled {
            code,
            asm,
            entry,
            faults,
            sites,
            maps: p.maps.clone(),
            helpers,
            programs,
            step_limit: STEP_LIMIT,
        })
    }

    /// Replaces the step limit (instructions executed before the run faults).
    pub fn with_step_limit(mut self, limit: u64) -> Self {
        self.step_limit = limit;
        self
    }

    /// The laid-out code.
    pub fn assembled(&self) -> &Assembled {
        &self.asm
    }

    /// The generated code disassembled, interleaved with the eBPF instructions.
    pub fn listing(&self) -> String {
        dump::listing(&self.asm, &|o| match o {
            Origin::Insn { prog, insn } => {
                let slots = &self.programs[prog];
                let next = slots.get(insn + 1).map_or(0, |n| n.imm);
                let text = bpfconf_spec::ebpf::disasm::render_insn(&slots[insn], next);
                match prog {
                    0 => format!("insn {insn}: {text}"),
                    n => format!("progs[{}] insn {insn}: {text}", n - 1),
                }
            }
            Origin::Stub(s) => s.to_string(),
        })
    }

    /// Runs on a copy of `mem` with no initial map contents.
    pub fn run(&self, mem: &[u8]) -> Result<EbpfResult, RunError> {
        self.run_input(&EbpfInput::new(mem.to_vec()))
    }

    /// Runs on an input, with the interpreter's set-up: R1 = buffer address (0 if empty),
    /// R2 = its length, R10 = the frame pointer, maps filled from the input.
    pub fn run_input(&self, input: &EbpfInput) -> Result<EbpfResult, RunError> {
        let mut session = self.session(&input.mem, &input.maps)?;
        let ret = session.execute()?;
        let rt = session.rt;
        let maps = rt.maps.snapshot(&rt.memory);
        Ok(EbpfResult {
            ret,
            mem: rt.memory.into_mem(),
            maps,
        })
    }

    /// A run environment (memory, maps, stack) for repeated runs, as benchmarks need: see
    /// [`Session::run`].
    pub fn session<'a>(
        &'a self,
        mem: &[u8],
        init: &[bpfconf_spec::ebpf::maps::MapContents],
    ) -> Result<Session<'a>, RunError> {
        let mut memory = Memory::with_mem(mem);
        let maps = Maps::new(&self.maps, self.programs.len() - 1, init, &mut memory)
            .map_err(RunError::Engine)?;
        memory
            .push_frame(0)
            .map_err(|e| RunError::Engine(format!("cannot set up the stack: {e}")))?;
        Ok(Session {
            code: self,
            rt: Box::new(Runtime {
                memory,
                maps,
                state: HelperState::new(DEFAULT_SEED),
                helpers: &self.helpers,
                targets: self.programs.len() - 1,
                fault: None,
                sites: &self.sites,
            }),
            mem_len: mem.len(),
        })
    }
}

/// A compiled program with its run environment, reusable for many runs without rebuilding
/// the address space (`bpfconf bench`). Maps keep their contents from run to run.
pub struct Session<'a> {
    code: &'a Compiled,
    rt: Box<Runtime<'a>>,
    mem_len: usize,
}

impl Session<'_> {
    /// Runs once on `mem` (which must have the length the session was made for), with a
    /// zeroed stack, and copies the buffer back into `mem`; returns R0.
    pub fn run(&mut self, mem: &mut [u8]) -> Result<u64, RunError> {
        if mem.len() != self.mem_len {
            return Err(RunError::Engine(format!(
                "session made for {} bytes of memory, run with {}",
                self.mem_len,
                mem.len()
            )));
        }
        let m = &mut self.rt.memory;
        let (buf, len) = m
            .region_ptr(RegionKind::Mem)
            .ok_or_else(|| RunError::Engine("the memory buffer is gone".into()))?;
        let (frame, flen) = m
            .region_ptr(RegionKind::Stack(0))
            .ok_or_else(|| RunError::Engine("the stack is gone".into()))?;
        // SAFETY: both regions are live, of these lengths, and not borrowed elsewhere.
        unsafe {
            std::ptr::copy_nonoverlapping(mem.as_ptr(), buf, len.min(mem.len()));
            std::ptr::write_bytes(frame, 0, flen);
        }
        self.rt.state = HelperState::new(DEFAULT_SEED);
        let ret = self.execute()?;
        let (buf, len) = self
            .rt
            .memory
            .region_ptr(RegionKind::Mem)
            .ok_or_else(|| RunError::Engine("the memory buffer is gone".into()))?;
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(buf, mem.as_mut_ptr(), len.min(mem.len())) };
        Ok(ret)
    }

    /// Calls the generated code once on the current environment.
    fn execute(&mut self) -> Result<u64, RunError> {
        let code = self.code;
        let rt = &mut *self.rt;
        rt.fault = None;
        // Frames a faulting earlier run left behind.
        for depth in 1..MAX_CALL_FRAMES {
            rt.memory.pop_frame(depth);
        }
        let mut regs = [0u64; 11];
        if self.mem_len > 0 {
            regs[1] = MEM_BASE;
            regs[2] = self.mem_len as u64;
        }
        regs[10] = frame_pointer(0);
        let mut ctx = JitCtx {
            regs,
            mem_host: 0,
            mem_len: 0,
            mem_lim: [0; 9],
            frame_host: 0,
            depth: 0,
            steps: code.step_limit,
            saved_rsp: 0,
            status: status::OK,
            tail_target: 0,
            ret: 0,
            fault_code: 0,
            // The runtime outlives the call below; the cast only erases the helper table's
            // lifetime for the raw pointer.
            rt: (rt as *mut Runtime<'_>).cast(),
        };
        rt.refresh(&mut ctx);
        // SAFETY: the code is a complete function generated for this context layout; it only
        // touches ctx, the regions of rt.memory (through pointers refreshed after every
        // call-out) and its own native stack frame.
        let entry: extern "sysv64" fn(*mut JitCtx) -> u64 =
            unsafe { std::mem::transmute(code.code.as_ptr().add(code.entry)) };
        entry(&mut ctx);
        match ctx.status {
            status::OK | status::EXIT => Ok(ctx.ret),
            _ => Err(RunError::Fault(match ctx.fault_code {
                0 => rt
                    .fault
                    .take()
                    .unwrap_or_else(|| "fault without a message".into()),
                gen::STEP_FAULT => {
                    format!("step limit of {} instructions exceeded", code.step_limit)
                }
                n => code.faults[n as usize - 1].message(),
            })),
        }
    }
}

#[cfg(test)]
mod tests;
