//! The reference eBPF interpreter: executable RFC 9669 semantics, memory-safe by construction.
//!
//! # Machine model
//!
//! - Registers R0–R10 are 64-bit. At entry R1 = address of a copy of the input memory
//!   ([`MEM_BASE`]) and R2 = its length, or R1 = R2 = 0 when the input is empty (uBPF's
//!   bpf_conformance plugin passes a null pointer and length 0 then); R10 = the frame pointer,
//!   one past the end of a zeroed 512-byte stack frame; every other register is 0.
//! - Memory is a table of regions at fake base addresses ([`memory`]): the buffer, one region
//!   per live stack frame, map values. Every load, store and atomic must lie wholly inside
//!   one region, else the run ends with [`RunError::Fault`]`("out-of-bounds load of 8 bytes at
//!   0x… (insn N)")`. Nothing real is dereferenced, so no program can cause undefined behaviour
//!   or a panic.
//! - Faults are also: executing a slot no ISA row describes (unknown opcode or selector),
//!   a register field above 10 or a write to R10, a jump or call outside the program or into the
//!   second slot of an `lddw`, running past the last slot, an `lddw` map reference the program's
//!   maps cannot satisfy, `lddw` with `src` 3–6 (variables, code, fd_array indices), a call to a
//!   helper the [`Helpers`] table lacks or whose arguments are bad (see [`maps`]), a kfunc call,
//!   more than [`MAX_CALL_FRAMES`] frames, and more than the step limit ([`STEP_LIMIT`] by
//!   default; loops are legal, so the limit is what bounds a run). Unused instruction fields
//!   are ignored at run time (the validator rejects them at load).
//!
//! # Calls
//!
//! - `call imm` (`src` 0) and `callx` (`JMP|CALL|X`, the helper id in register `dst`, as uBPF
//!   implements it) call a helper from the [`Helpers`] registry; see [`helpers`] for the
//!   bpf_conformance environment ([`Helpers::bpf_conformance`], the default here).
//! - `call local` (`src` 1) transfers to `pc + 1 + imm` with R1–R5 as arguments; the callee gets
//!   its own zeroed 512-byte frame and its own R10; R6–R9 are saved and restored at its `exit`,
//!   which returns R0 to the caller. A program may have at most [`MAX_CALL_FRAMES`] = 8 frames
//!   live, the main program's included, as the kernel's `MAX_CALL_FRAMES`. Unlike the kernel
//!   verifier, the frames' combined size is not limited to 512 bytes.
//! - `exit` in the main program ends the run with R0.
//!
//! # Maps and tail calls
//!
//! [`Interpreter::for_program`] takes a whole [`EbpfProgram`]: its maps, created afresh for every
//! run and filled from [`EbpfInput::maps`], and its tail-call targets. `lddw_map_fd` (`src` 1)
//! loads a map handle, `lddw_map_value` (`src` 2) a pointer into element 0 of a one-element
//! array; the map helpers, their return codes and value lifetimes are described in [`maps`],
//! `tail_call` and the helper tables in [`helpers`]. A successful tail call replaces the running
//! function by the target program: fault messages then name the slot as `progs[i] insn N`. After
//! the run, [`EbpfResult::maps`] holds every map's canonical snapshot.
//!
//! # Legacy packet loads (`LD ABS/IND`, group `packet`)
//!
//! The packet is the memory buffer (the kernel's implicit skb in R6 has no counterpart here;
//! R6 is ignored). `ABS` reads at offset `imm`, `IND` at `(src + imm)` truncated to a signed
//! 32-bit offset, `W`/`H`/`B` bytes big-endian, zero-extended into R0; R1–R5 are clobbered (set
//! to 0). A negative or out-of-bounds offset behaves as `r0 = 0; exit`: the kernel rewrites
//! these loads into a helper call followed by exactly that (`bpf_gen_ld_abs`, net/core/filter.c),
//! so in the main program the run returns 0.
//!
//! The ALU, byte-swap and jump semantics are in [`alu`].

pub mod alu;
pub(crate) mod exec;
pub mod helpers;
pub mod maps;
pub mod memory;

pub use helpers::{Helper, HelperCtx, HelperFn, HelperReturn, HelperState, Helpers};
pub use maps::Maps;
pub use memory::{
    Memory, Region, RegionKind, MAP_BASE, MAP_WINDOW, MEM_BASE, STACK_BASE, STACK_STRIDE,
};

use crate::{EbpfInput, EbpfProgram, LoadError, RunError};
use bpfconf_spec::ebpf::isa::{classify_insn, slot_starts, IsaRow, Use};
use bpfconf_spec::ebpf::maps::{MapContents, MapDef};
use bpfconf_spec::ebpf::Insn;

/// Default maximum number of instructions executed in one run.
pub const STEP_LIMIT: u64 = 1 << 22;

/// Maximum number of live frames (the main program's included), as the kernel's
/// `MAX_CALL_FRAMES`.
pub const MAX_CALL_FRAMES: usize = 8;

/// The result of a run that reached `exit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpfResult {
    /// R0 at the final `exit`.
    pub ret: u64,
    /// The memory buffer after the run.
    pub mem: Vec<u8>,
    /// Every map's contents after the run, by index (empty without maps).
    pub maps: Vec<MapContents>,
}

impl From<EbpfResult> for crate::Outcome {
    /// What an engine that runs eBPF exactly (the interpreter, our JIT) observes: the full
    /// 64-bit R0, the memory buffer and every map's snapshot.
    fn from(r: EbpfResult) -> Self {
        crate::Outcome {
            ret: crate::Observed::Exact(r.ret),
            mem: None,
            memory: Some(r.mem),
            maps: Some(r.maps),
        }
    }
}

/// One program's slots, decoded once.
#[derive(Debug, Clone)]
struct Code {
    insns: Vec<Insn>,
    /// Per slot: its ISA row, or why executing it faults.
    slots: Vec<Result<&'static IsaRow, SlotFault>>,
}

impl Code {
    fn new(insns: &[Insn]) -> Self {
        Code {
            insns: insns.to_vec(),
            slots: decode_slots(insns),
        }
    }
}

/// A program prepared for running: slots decoded once, maps, tail-call targets, a helper table,
/// a step limit and a random seed.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// `code[0]`: the main program; `code[1 + i]`: tail-call target `progs[i]`.
    code: Vec<Code>,
    maps: Vec<MapDef>,
    helpers: Helpers,
    step_limit: u64,
    seed: u64,
}

/// Decodes every slot of a program: its row, or the fault message for executing it (shared with
/// the JIT, which compiles exactly the slots the interpreter would execute).
pub(crate) fn decode_slots(insns: &[Insn]) -> Vec<Result<&'static IsaRow, SlotFault>> {
    let starts = slot_starts(insns);
    (0..insns.len())
        .map(|pc| decode(insns, pc, starts[pc]))
        .collect()
}

/// Why executing a slot faults. Kept as data and rendered only when the slot executes: most
/// such slots (the second halves of `lddw`s) never do, and programs are decoded ~10^5 times a
/// second when fuzzing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotFault {
    /// The second slot of an `lddw` at `pc - 1`.
    SecondHalf(usize),
    /// No ISA row matches.
    Unknown(Insn),
    /// Instruction `name` names a register above r10.
    Register(&'static str, u8),
    /// Instruction `name` writes r10.
    WritesR10(&'static str),
    /// An `lddw` in the last slot.
    LddwLast,
}

impl std::fmt::Display for SlotFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotFault::SecondHalf(pc) => write!(f, "slot {pc} is the second half of an `lddw`"),
            SlotFault::Unknown(insn) => write!(
                f,
                "unknown instruction: opcode {:#04x} (src {}, off {}, imm {})",
                insn.code, insn.src, insn.off, insn.imm
            ),
            SlotFault::Register(name, reg) => write!(f, "`{name}` names register r{reg}"),
            SlotFault::WritesR10(name) => {
                write!(f, "`{name}` writes r10, the read-only frame pointer")
            }
            SlotFault::LddwLast => write!(f, "`lddw` in the last slot has no second slot"),
        }
    }
}

/// Decodes one slot: its row, or why executing it faults.
fn decode(prog: &[Insn], pc: usize, start: bool) -> Result<&'static IsaRow, SlotFault> {
    let insn = &prog[pc];
    if !start {
        return Err(SlotFault::SecondHalf(pc));
    }
    let row = classify_insn(insn).ok_or(SlotFault::Unknown(*insn))?;
    let u = row.uses();
    for (usage, reg) in [(u.dst, insn.dst), (u.src, insn.src)] {
        if usage == Use::Reg && reg > 10 {
            return Err(SlotFault::Register(row.name, reg));
        }
    }
    if (row.writes_dst() && insn.dst == 10) || (row.writes_src() && insn.src == 10) {
        return Err(SlotFault::WritesR10(row.name));
    }
    if row.is_wide() && pc + 1 >= prog.len() {
        return Err(SlotFault::LddwLast);
    }
    Ok(row)
}

impl Interpreter {
    /// Prepares a program without maps, with the bpf_conformance helpers and the default step
    /// limit. Any slot sequence is accepted; problems surface as faults when the bad slot is
    /// executed.
    pub fn new(insns: &[Insn]) -> Self {
        Interpreter {
            code: vec![Code::new(insns)],
            maps: Vec::new(),
            helpers: Helpers::bpf_conformance(),
            step_limit: STEP_LIMIT,
            seed: helpers::DEFAULT_SEED,
        }
    }

    /// Prepares a whole program: its maps and tail-call targets, after the load-time map checks
    /// of [`maps::check_program`], with the helper table [`Helpers::for_program`] chooses. (The
    /// structural validation of the instructions is the engine's business.)
    pub fn for_program(p: &EbpfProgram) -> Result<Self, LoadError> {
        maps::check_program(p)?;
        let mut code = vec![Code::new(&p.insns)];
        code.extend(p.progs.iter().map(|t| Code::new(t)));
        Ok(Interpreter {
            code,
            maps: p.maps.clone(),
            helpers: Helpers::for_program(p),
            step_limit: STEP_LIMIT,
            seed: helpers::DEFAULT_SEED,
        })
    }

    /// Replaces the helper table.
    pub fn with_helpers(mut self, helpers: Helpers) -> Self {
        self.helpers = helpers;
        self
    }

    /// Replaces the step limit.
    pub fn with_step_limit(mut self, limit: u64) -> Self {
        self.step_limit = limit;
        self
    }

    /// Replaces the seed of `get_prandom_u32`'s generator.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The helper table.
    pub fn helpers(&self) -> &Helpers {
        &self.helpers
    }

    /// The map definitions.
    pub fn maps(&self) -> &[MapDef] {
        &self.maps
    }

    /// Runs the program on a copy of `mem`, its maps empty (arrays zero-filled).
    pub fn run(&self, mem: &[u8]) -> Result<EbpfResult, RunError> {
        self.run_with_maps(mem, &[])
    }

    /// Runs the program on an input: memory and initial map contents.
    pub fn run_input(&self, input: &EbpfInput) -> Result<EbpfResult, RunError> {
        self.run_with_maps(&input.mem, &input.maps)
    }

    /// Runs the program on a copy of `mem` with maps filled from `init` (by index; missing or
    /// `Unknown` = empty). Initial contents that do not fit a map (wrong sizes, too many
    /// entries, an index out of range, a prog_array value naming no target, a sequence for a
    /// keyed map or the reverse) are an engine error naming the map and key.
    pub fn run_with_maps(&self, mem: &[u8], init: &[MapContents]) -> Result<EbpfResult, RunError> {
        let mut memory = Memory::with_mem(mem);
        let maps = Maps::new(&self.maps, self.code.len() - 1, init, &mut memory)
            .map_err(RunError::Engine)?;
        memory
            .push_frame(0)
            .map_err(|e| RunError::Engine(format!("cannot set up the stack: {e}")))?;
        let mut regs = [0u64; 11];
        if !mem.is_empty() {
            regs[1] = MEM_BASE;
            regs[2] = mem.len() as u64;
        }
        regs[10] = memory::frame_pointer(0);
        let mut m = Machine {
            prog: self,
            cur: 0,
            regs,
            memory,
            maps,
            state: HelperState::new(self.seed),
            frames: Vec::new(),
        };
        let mut pc = 0;
        let mut steps = 0u64;
        loop {
            if steps >= self.step_limit {
                return Err(RunError::Fault(format!(
                    "step limit of {} instructions exceeded ({})",
                    self.step_limit,
                    m.where_(pc)
                )));
            }
            steps += 1;
            match m.step(pc) {
                Ok(Flow::Next(next)) => pc = next,
                Ok(Flow::Exit(ret)) => {
                    let maps = m.maps.snapshot(&m.memory);
                    return Ok(EbpfResult {
                        ret,
                        mem: m.memory.into_mem(),
                        maps,
                    });
                }
                Err(e) => return Err(RunError::Fault(format!("{e} ({})", m.where_(pc)))),
            }
        }
    }
}

/// Runs `insns` on `mem` with the interpreter's defaults (bpf_conformance helpers,
/// [`STEP_LIMIT`]).
pub fn run(insns: &[Insn], mem: &[u8]) -> Result<EbpfResult, RunError> {
    Interpreter::new(insns).run(mem)
}

/// A caller's state saved by `call local`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The caller's program (0 = main, 1 + i = `progs[i]`).
    code: usize,
    /// Where the caller resumes.
    ret_pc: usize,
    /// The caller's R6–R9.
    saved: [u64; 4],
}

/// What to do after an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Continue at this slot (of the current program).
    Next(usize),
    /// The program ended with this R0.
    Exit(u64),
}

/// The state of one run.
struct Machine<'p> {
    prog: &'p Interpreter,
    /// The running program: 0 = main, 1 + i = `progs[i]`.
    cur: usize,
    regs: [u64; 11],
    memory: Memory,
    maps: Maps,
    state: HelperState,
    /// The callers of the running function (empty in the main program).
    frames: Vec<Frame>,
}

impl<'p> Machine<'p> {
    /// The running program's code.
    fn code(&self) -> &'p Code {
        let prog: &'p Interpreter = self.prog;
        &prog.code[self.cur]
    }

    /// Names slot `pc` of the running program for messages.
    fn where_(&self, pc: usize) -> String {
        match self.cur {
            0 => format!("insn {pc}"),
            n => format!("progs[{}] insn {pc}", n - 1),
        }
    }

    /// The slot `disp` slots after `pc + 1`, if it is inside the program.
    fn target(&self, pc: usize, disp: i64) -> Result<usize, String> {
        let len = self.code().insns.len();
        let t = pc as i64 + 1 + disp;
        if t < 0 || t >= len as i64 {
            return Err(format!("jump to slot {t}, outside the program (0..{len})"));
        }
        Ok(t as usize)
    }

    /// `call local`: enters the function at `target` in a new frame.
    fn call_local(&mut self, pc: usize, target: usize) -> Result<Flow, String> {
        let depth = self.frames.len() + 1;
        if depth >= MAX_CALL_FRAMES {
            return Err(format!(
                "call depth exceeded: more than {MAX_CALL_FRAMES} frames"
            ));
        }
        self.memory.push_frame(depth)?;
        let r = &self.regs;
        self.frames.push(Frame {
            code: self.cur,
            ret_pc: pc + 1,
            saved: [r[6], r[7], r[8], r[9]],
        });
        self.regs[10] = memory::frame_pointer(depth);
        Ok(Flow::Next(target))
    }

    /// `exit`: returns to the caller, or ends the program.
    fn exit(&mut self) -> Flow {
        match self.frames.pop() {
            Some(f) => {
                let depth = self.frames.len();
                self.memory.pop_frame(depth + 1);
                self.regs[6..10].copy_from_slice(&f.saved);
                self.regs[10] = memory::frame_pointer(depth);
                self.cur = f.code;
                Flow::Next(f.ret_pc)
            }
            None => Flow::Exit(self.regs[0]),
        }
    }

    /// A successful tail call: the running function becomes `progs[target]`, in a fresh frame
    /// at the same depth.
    fn tail_call(&mut self, target: usize) -> Result<Flow, String> {
        if target + 1 >= self.prog.code.len() {
            return Err(format!(
                "tail call to progs[{target}], but there are {} targets",
                self.prog.code.len() - 1
            ));
        }
        let depth = self.frames.len();
        self.memory.pop_frame(depth);
        self.memory.push_frame(depth)?;
        self.regs[10] = memory::frame_pointer(depth);
        self.cur = target + 1;
        Ok(Flow::Next(0))
    }

    /// Calls helper `id` with R1–R5.
    fn call_helper(&mut self, pc: usize, id: u64) -> Result<Flow, String> {
        let prog = self.prog;
        let mut args = [0u64; 5];
        args.copy_from_slice(&self.regs[1..6]);
        let mut ctx = HelperCtx {
            memory: &mut self.memory,
            maps: &mut self.maps,
            state: &mut self.state,
        };
        match prog.helpers.call(id, &mut ctx, args)? {
            HelperReturn::Value(v) => {
                self.regs[0] = v;
                Ok(Flow::Next(pc + 1))
            }
            HelperReturn::Void => Ok(Flow::Next(pc + 1)),
            HelperReturn::Exit(v) => Ok(Flow::Exit(v)),
            HelperReturn::TailCall(target) => self.tail_call(target),
        }
    }

    /// Executes the slot at `pc`.
    fn step(&mut self, pc: usize) -> Result<Flow, String> {
        let code = self.code();
        let Some(slot) = code.slots.get(pc) else {
            return Err(format!(
                "ran past the end of the program ({} slots)",
                code.insns.len()
            ));
        };
        let row = slot.as_ref().map_err(ToString::to_string)?;
        self.execute(row, code.insns[pc], pc)
    }
}
