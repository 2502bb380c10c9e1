//! The eBPF code generator's driver: prologue and epilogue, basic blocks and step accounting,
//! control flow (jumps, calls, exits, tail calls) and static faults. Instruction bodies are in
//! [`super::ops`].

use super::super::emit::{Asm, Assembled, Cond, EmitError, Label, Origin};
use super::super::Inject;
use super::{loc, rt_enter, rt_helper, rt_leave, status, JitCtx};
use crate::interp::ebpf::memory::STACK_STRIDE;
use crate::interp::ebpf::{decode_slots, SlotFault};
use crate::jit::x86::*;
use bpfconf_spec::ebpf::isa::{slot_starts, Form, IsaRow};
use bpfconf_spec::ebpf::{class, jmp, Insn};
use std::mem::offset_of;

/// BPF register → x86-64 register (see the table in [`super`]).
pub(super) const R64: [Reg64; 11] = [rax, rdi, rsi, rdx, rcx, r8, rbx, r13, r14, r15, rbp];
/// The same registers, 32-bit views.
pub(super) const R32: [Reg32; 11] = [eax, edi, esi, edx, ecx, r8d, ebx, r13d, r14d, r15d, ebp];
/// 16-bit views.
pub(super) const R16: [Reg16; 11] = [ax, di, si, dx, cx, r8w, bx, r13w, r14w, r15w, bp];
/// 8-bit views.
pub(super) const R8: [Reg8; 11] = [al, dil, sil, dl, cl, r8b, bl, r13b, r14b, r15b, bpl];

/// The remaining step budget lives in r9 between call-outs (in [`JitCtx::steps`] across them):
/// a counter in memory would make every loop iteration wait on a store-to-load round trip.
pub(super) const STEPS: Reg64 = r9;

/// A run-time function generated code calls: `f(ctx, a, b, c)`.
pub(super) type Callout = extern "sysv64" fn(*mut JitCtx, u64, u64, u64) -> u64;

/// The displacement of a [`JitCtx`] field.
macro_rules! ctx_off {
    ($f:ident) => {
        offset_of!(JitCtx, $f) as i32
    };
}
pub(super) use ctx_off;

/// Code generation state for one image (the main program and its tail-call targets).
pub(super) struct Gen {
    pub asm: Asm,
    pub inject: Inject,
    /// Static faults; fault stub `i` stores `i + 1` in `fault_code`.
    pub faults: Vec<Fault>,
    /// Per program, per slot: the slot's label.
    pub slot_labels: Vec<Vec<Label>>,
    /// Shared `exit` sequence.
    pub exit: Label,
    /// Restores the host state and returns to Rust (status already set).
    pub out: Label,
    /// After a call-out whose status is not OK: fault, unwind exit or tail call.
    pub dispatch: Label,
    /// The step limit was reached.
    pub step_fault: Label,
    /// Out-of-line code emitted after all programs.
    pub deferred: Vec<Deferred>,
    /// Memory slow-path sites, indexed by site number.
    pub sites: Vec<Site>,
    /// Shared slow path: r10 = address, r11 = site; returns r11 = host pointer or 0.
    pub translate_stub: Label,
    /// Shared helper call: r10 = helper id, r11 = location.
    pub helper_stub: Label,
}

/// A memory access whose slow path may call `rt_translate`: what it accesses and where it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site {
    /// Bytes accessed.
    pub size: usize,
    /// Load, store or atomic.
    pub access: crate::interp::ebpf::memory::Access,
    /// The instruction ([`super::loc`]), for fault messages.
    pub loc: u64,
}

/// Out-of-line code.
pub(super) enum Deferred {
    /// The out-of-line part of a memory access: the check of the other region, then the
    /// shared translate stub for `site`; back with the host pointer in r11.
    Translate {
        at: Label,
        back: Label,
        site: u32,
        region: super::ops::Region,
        size: usize,
    },
}

/// A static fault: its message is rendered only when the fault happens (every program has
/// one, for running past its end, and a fuzzing campaign compiles ~10^5 programs a second).
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Running past the end of program `prog`, `len` slots long.
    PastEnd { prog: usize, len: usize },
    /// Executing slot `pc` of program `prog`, which does not decode.
    Slot {
        fault: SlotFault,
        prog: usize,
        pc: usize,
    },
    /// Any other message.
    Msg(String),
}

impl Fault {
    /// The fault's message.
    pub fn message(&self) -> String {
        match self {
            Fault::PastEnd { prog, len } => format!(
                "ran past the end of the program ({len} slots) ({})",
                where_(*prog, *len)
            ),
            Fault::Slot { fault, prog, pc } => format!("{fault} ({})", where_(*prog, *pc)),
            Fault::Msg(m) => m.clone(),
        }
    }
}

/// The compiled image, its static faults, its memory slow-path sites and the offset of its
/// entry point.
pub(crate) type Image = (Assembled, Vec<Fault>, Vec<Site>, usize);

/// `fault_code` of the step-limit stub (static faults count from 1).
pub(crate) const STEP_FAULT: u64 = u64::MAX;

/// The code every image shares — exit, epilogue, step-limit fault, the memory slow path and
/// helper call stubs, and (last, so it falls through into the main program) the prologue —
/// assembled once per process: it is position-independent (relative branches inside it,
/// absolute call-out addresses) and about a third of a small program's code.
struct Runtime {
    code: Assembled,
    /// Labels of the blob's own [`Asm`]: exit, out, step fault, translate stub, helper stub,
    /// prologue.
    labels: [Label; 6],
}

fn runtime_blob() -> Result<&'static Runtime, EmitError> {
    static BLOB: std::sync::OnceLock<Result<Runtime, EmitError>> = std::sync::OnceLock::new();
    BLOB.get_or_init(|| {
        let mut asm = Asm::with_capacity(160)?;
        let labels: [Label; 6] = std::array::from_fn(|_| asm.label());
        let mut g = Gen::new(asm, Inject::default(), Vec::new(), labels);
        g.runtime_stubs()?;
        g.asm.bind(labels[5])?;
        g.prologue()?;
        Ok(Runtime {
            code: g.asm.finish()?,
            labels,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Compiles `programs` (`[0]` the main program, `[1 + i]` tail-call target `i`) into one
/// image: the shared runtime blob, whose prologue falls into the main program, then the
/// programs, the tail-call dispatch and the out-of-line parts of memory accesses.
pub(crate) fn compile(programs: &[Vec<Insn>], inject: Inject) -> Result<Image, EmitError> {
    let blob = runtime_blob()?;
    let slots: usize = programs.iter().map(Vec::len).sum();
    let mut asm = Asm::with_capacity(64 + 8 * slots)?;
    let slot_labels = programs
        .iter()
        .map(|p| (0..p.len().max(1)).map(|_| asm.label()).collect())
        .collect();
    let labels: [Label; 6] = std::array::from_fn(|_| asm.label());
    let map: Vec<(Label, Label)> = blob.labels.iter().copied().zip(labels).collect();
    asm.splice(&blob.code, &map)?;
    let mut g = Gen::new(asm, inject, slot_labels, labels);
    for (i, p) in programs.iter().enumerate() {
        g.program(i, p)?;
    }
    g.image_stubs(programs.len())?;
    let faults = std::mem::take(&mut g.faults);
    let sites = std::mem::take(&mut g.sites);
    let code = g.asm.finish()?;
    let entry = code.offset(labels[5]);
    Ok((code, faults, sites, entry))
}

/// Whether control can leave a slot other than by falling through to the next one.
fn ends_block(form: Form) -> bool {
    matches!(
        form,
        Form::JmpK
            | Form::JmpX
            | Form::Ja
            | Form::Ja32
            | Form::Call
            | Form::Callx
            | Form::CallLocal
            | Form::Exit
            | Form::LdAbs
            | Form::LdInd
    )
}

/// The slot a jump or local call at `pc` goes to, if inside the program.
fn target(insns: &[Insn], pc: usize, row: &IsaRow) -> Option<Result<usize, i64>> {
    let disp = match row.form {
        Form::JmpK | Form::JmpX | Form::Ja => insns[pc].off as i64,
        Form::Ja32 | Form::CallLocal => insns[pc].imm as i64,
        _ => return None,
    };
    let t = pc as i64 + 1 + disp;
    Some(if t < 0 || t >= insns.len() as i64 {
        Err(t)
    } else {
        Ok(t as usize)
    })
}

/// Per slot, the instructions charged when control enters it: the slots executed from there
/// up to the end of its basic block (0 for slots inside a block).
fn block_charges(insns: &[Insn], slots: &[Result<&'static IsaRow, SlotFault>]) -> Vec<u64> {
    let n = insns.len();
    let starts = slot_starts(insns);
    let mut leader = vec![false; n + 1];
    if n > 0 {
        leader[0] = true;
    }
    for pc in 0..n {
        match &slots[pc] {
            Ok(row) => {
                if let Some(Ok(t)) = target(insns, pc, row) {
                    leader[t] = true;
                }
                let next = if row.is_wide() { pc + 2 } else { pc + 1 };
                if ends_block(row.form) {
                    leader[next.min(n)] = true;
                }
            }
            Err(_) => leader[pc + 1] = true,
        }
    }
    // The second half of an lddw is only ever a jump target (then it faults).
    let mut charge = vec![0u64; n];
    let mut pc = 0;
    while pc < n {
        if !leader[pc] {
            pc += 1;
            continue;
        }
        let start = pc;
        let mut count = 0;
        loop {
            count += 1;
            let wide = starts[pc] && slots[pc].as_ref().is_ok_and(|r| r.is_wide());
            pc += if wide { 2 } else { 1 };
            if pc >= n || leader[pc] {
                break;
            }
        }
        charge[start] = count;
    }
    charge
}

impl Gen {
    /// Entry: save the host's callee-saved registers, keep rsp 16-byte aligned, load R0–R10.
    fn prologue(&mut self) -> Result<(), EmitError> {
        self.asm.mark(Origin::Stub("prologue"))?;
        let a = &mut self.asm.a;
        for r in [rbx, rbp, r12, r13, r14, r15] {
            a.push(r)?;
        }
        a.sub(rsp, 8)?;
        a.mov(r12, rdi)?;
        a.mov(qword_ptr(r12 + ctx_off!(saved_rsp)), rsp)?;
        for (i, r) in R64.iter().enumerate() {
            a.mov(*r, qword_ptr(r12 + ctx_off!(regs) + 8 * i as i32))?;
        }
        a.mov(STEPS, qword_ptr(r12 + ctx_off!(steps)))?;
        Ok(())
    }

    /// Records a static fault message and emits its stub.
    pub fn fault(&mut self, msg: String) -> Result<(), EmitError> {
        self.static_fault(Fault::Msg(msg))
    }

    /// Records a static fault and emits its stub.
    pub fn static_fault(&mut self, fault: Fault) -> Result<(), EmitError> {
        self.faults.push(fault);
        let code = self.faults.len() as i32;
        let a = &mut self.asm.a;
        a.mov(qword_ptr(r12 + ctx_off!(fault_code)), code)?;
        a.mov(qword_ptr(r12 + ctx_off!(status)), status::FAULT as i32)?;
        self.asm.jmp(self.out)
    }

    /// Spills R0–R5 (and the step budget) to the context before a call-out.
    pub fn spill(&mut self) -> Result<(), EmitError> {
        self.asm.a.mov(qword_ptr(r12 + ctx_off!(steps)), STEPS)?;
        for (i, r) in R64.iter().enumerate().take(6) {
            self.asm
                .a
                .mov(qword_ptr(r12 + ctx_off!(regs) + 8 * i as i32), *r)?;
        }
        Ok(())
    }

    /// Reloads R0–R5 (and the step budget) after a call-out.
    pub fn reload(&mut self) -> Result<(), EmitError> {
        self.asm.a.mov(STEPS, qword_ptr(r12 + ctx_off!(steps)))?;
        for (i, r) in R64.iter().enumerate().take(6) {
            self.asm
                .a
                .mov(*r, qword_ptr(r12 + ctx_off!(regs) + 8 * i as i32))?;
        }
        Ok(())
    }

    /// Calls a run-time function `f(ctx, rsi, rdx, rcx)`; the arguments must already be in
    /// rsi/rdx/rcx (after [`Gen::spill`]).
    pub fn callout(&mut self, f: Callout) -> Result<(), EmitError> {
        let a = &mut self.asm.a;
        a.mov(rdi, r12)?;
        a.mov(rax, f as *const () as u64)?;
        a.call(rax)?;
        Ok(())
    }

    /// Jumps to [`Gen::dispatch`] unless the status is OK.
    pub fn check_status(&mut self) -> Result<(), EmitError> {
        self.asm
            .a
            .cmp(qword_ptr(r12 + ctx_off!(status)), status::OK as i32)?;
        self.asm.jcc(Cond::Ne, self.dispatch)
    }

    fn program(&mut self, prog: usize, insns: &[Insn]) -> Result<(), EmitError> {
        let slots = decode_slots(insns);
        let charges = block_charges(insns, &slots);
        for pc in 0..insns.len() {
            let label = self.slot_labels[prog][pc];
            self.asm.bind(label)?;
            self.asm.mark(Origin::Insn { prog, insn: pc })?;
            let row = match &slots[pc] {
                Ok(row) => *row,
                Err(fault) => {
                    if charges[pc] > 0 {
                        self.charge(charges[pc])?;
                        self.static_fault(Fault::Slot {
                            fault: *fault,
                            prog,
                            pc,
                        })?;
                    }
                    continue;
                }
            };
            if charges[pc] > 0 {
                self.charge(charges[pc])?;
            }
            self.insn(prog, insns, pc, row)?;
        }
        if insns.is_empty() {
            self.asm.bind(self.slot_labels[prog][0])?;
        }
        // Falling off the end.
        self.asm.mark(Origin::Stub("end of program"))?;
        self.static_fault(Fault::PastEnd {
            prog,
            len: insns.len(),
        })
    }

    /// Takes `n` instructions from the step budget, faulting when it runs out.
    fn charge(&mut self, n: u64) -> Result<(), EmitError> {
        self.asm.a.sub(qword_ptr(r12 + ctx_off!(steps)), n as i32)?;
        self.asm.jcc(Cond::B, self.step_fault)
    }

    /// The label of a jump/call target, or a fault stub for a target outside the program.
    fn target_label(
        &mut self,
        prog: usize,
        insns: &[Insn],
        pc: usize,
        row: &IsaRow,
    ) -> Result<Label, EmitError> {
        match target(insns, pc, row) {
            Some(Ok(t)) => Ok(self.slot_labels[prog][t]),
            Some(Err(t)) => {
                let stub = self.asm.label();
                let skip = self.asm.label();
                self.asm.jmp(skip)?;
                self.asm.bind(stub)?;
                self.fault(format!(
                    "jump to slot {t}, outside the program (0..{}) ({})",
                    insns.len(),
                    where_(prog, pc)
                ))?;
                self.asm.bind(skip)?;
                Ok(stub)
            }
            None => unreachable!("not a jump"),
        }
    }

    fn insn(
        &mut self,
        prog: usize,
        insns: &[Insn],
        pc: usize,
        row: &'static IsaRow,
    ) -> Result<(), EmitError> {
        let insn = insns[pc];
        let l = loc(prog, pc);
        match row.form {
            Form::JmpK | Form::JmpX => {
                let to = self.target_label(prog, insns, pc, row)?;
                self.cond_jump(insn, row, to)
            }
            Form::Ja | Form::Ja32 => {
                let to = self.target_label(prog, insns, pc, row)?;
                self.asm.jmp(to)
            }
            Form::Exit => self.asm.jmp(self.exit),
            Form::Call => match insn.src {
                0 => self.helper_call(None, insn.imm as u32 as u64, l),
                src => self.fault(format!(
                    "call with src {src} (kfunc {}): kfuncs are not supported ({})",
                    insn.imm,
                    where_(prog, pc)
                )),
            },
            Form::Callx => self.helper_call(Some(insn.dst as usize), 0, l),
            Form::CallLocal => {
                let to = self.target_label(prog, insns, pc, row)?;
                self.local_call(to, l)
            }
            _ => self.body(prog, insns, pc, row),
        }
    }

    /// `jop dst, src|imm, target`.
    fn cond_jump(&mut self, insn: Insn, row: &IsaRow, to: Label) -> Result<(), EmitError> {
        let op = insn.code & 0xf0;
        let wide = insn.class() == class::JMP;
        let (d, s) = (insn.dst as usize, insn.src as usize);
        let a = &mut self.asm.a;
        let test = op == jmp::JSET;
        match (row.form, wide, test) {
            (Form::JmpK, true, false) => a.cmp(R64[d], insn.imm)?,
            (Form::JmpK, true, true) => a.test(R64[d], insn.imm)?,
            (Form::JmpK, false, false) => a.cmp(R32[d], insn.imm)?,
            (Form::JmpK, false, true) => a.test(R32[d], insn.imm)?,
            (_, true, false) => a.cmp(R64[d], R64[s])?,
            (_, true, true) => a.test(R64[d], R64[s])?,
            (_, false, false) => a.cmp(R32[d], R32[s])?,
            (_, false, true) => a.test(R32[d], R32[s])?,
        }
        let cond = match op {
            jmp::JEQ if self.inject.flip_jeq => Cond::Ne,
            jmp::JEQ => Cond::E,
            jmp::JNE | jmp::JSET => Cond::Ne,
            jmp::JGT => Cond::A,
            jmp::JGE => Cond::Ae,
            jmp::JLT => Cond::B,
            jmp::JLE => Cond::Be,
            jmp::JSGT => Cond::G,
            jmp::JSGE => Cond::Ge,
            jmp::JSLT => Cond::L,
            _ => Cond::Le, // JSLE: the only condition left in a validated row
        };
        self.asm.jcc(cond, to)
    }

    /// `call imm` (`reg` None) or `callx reg`, through the shared helper stub.
    fn helper_call(&mut self, reg: Option<usize>, id: u64, l: u64) -> Result<(), EmitError> {
        let a = &mut self.asm.a;
        match reg {
            Some(r) => a.mov(r10, R64[r])?,
            None => a.mov(r10, id)?,
        }
        a.mov(r11, l)?;
        self.asm.call(self.helper_stub)?;
        self.check_status()
    }

    /// A shared stub called (natively) with rsp ≡ 8 (mod 16): realigns, spills R0–R5, calls
    /// `f(ctx, r10, r11)`, reloads, and returns with f's result in r11.
    fn shared_stub(&mut self, at: Label, name: &'static str, f: Callout) -> Result<(), EmitError> {
        self.asm.mark(Origin::Stub(name))?;
        self.asm.bind(at)?;
        self.asm.a.sub(rsp, 8)?;
        self.spill()?;
        self.asm.a.mov(rsi, r10)?;
        self.asm.a.mov(rdx, r11)?;
        self.callout(f)?;
        self.asm.a.mov(r11, rax)?;
        self.reload()?;
        self.asm.a.add(rsp, 8)?;
        self.asm.a.ret()?;
        Ok(())
    }

    /// `call local`: a new frame, R6–R10 saved on the native stack around a native call.
    fn local_call(&mut self, to: Label, l: u64) -> Result<(), EmitError> {
        self.spill()?;
        self.asm.a.mov(rsi, l)?;
        self.callout(rt_enter)?;
        self.reload()?;
        self.check_status()?;
        let a = &mut self.asm.a;
        for r in [rbx, r13, r14, r15, rbp] {
            a.push(r)?;
        }
        a.add(rbp, STACK_STRIDE as i32)?;
        self.asm.call(to)?;
        let a = &mut self.asm.a;
        for r in [rbp, r15, r14, r13, rbx] {
            a.pop(r)?;
        }
        Ok(())
    }

    /// A code generator over `asm` with the runtime labels `[exit, out, step fault, translate
    /// stub, helper stub, prologue]`.
    fn new(mut asm: Asm, inject: Inject, slot_labels: Vec<Vec<Label>>, l: [Label; 6]) -> Gen {
        let dispatch = asm.label();
        Gen {
            asm,
            inject,
            faults: Vec::new(),
            slot_labels,
            exit: l[0],
            out: l[1],
            dispatch,
            step_fault: l[2],
            deferred: Vec::new(),
            sites: Vec::new(),
            translate_stub: l[3],
            helper_stub: l[4],
        }
    }

    /// The stubs of the shared runtime blob: exit, epilogue, step-limit fault, memory slow
    /// path and helper call.
    fn runtime_stubs(&mut self) -> Result<(), EmitError> {
        // exit: return to the caller's frame, or end the run.
        self.asm.mark(Origin::Stub("exit"))?;
        self.asm.bind(self.exit)?;
        let finish = self.asm.label();
        self.asm.a.cmp(qword_ptr(r12 + ctx_off!(depth)), 0)?;
        self.asm.jcc(Cond::E, finish)?;
        self.spill()?;
        self.callout(rt_leave)?;
        self.reload()?;
        self.asm.a.ret()?;
        self.asm.bind(finish)?;
        self.asm.a.mov(qword_ptr(r12 + ctx_off!(ret)), rax)?;
        self.asm
            .a
            .mov(qword_ptr(r12 + ctx_off!(status)), status::OK as i32)?;
        self.asm.jmp(self.out)?;

        self.asm.mark(Origin::Stub("step limit"))?;
        self.asm.bind(self.step_fault)?;
        let a = &mut self.asm.a;
        a.mov(
            qword_ptr(r12 + ctx_off!(fault_code)),
            STEP_FAULT as i64 as i32,
        )?;
        a.mov(qword_ptr(r12 + ctx_off!(status)), status::FAULT as i32)?;
        self.asm.jmp(self.out)?;

        self.shared_stub(self.translate_stub, "memory slow path", super::rt_translate)?;
        self.shared_stub(self.helper_stub, "helper call", rt_helper)?;

        // out: unwind the native stack to the prologue's and return the status.
        self.asm.mark(Origin::Stub("epilogue"))?;
        self.asm.bind(self.out)?;
        let a = &mut self.asm.a;
        a.mov(rsp, qword_ptr(r12 + ctx_off!(saved_rsp)))?;
        a.mov(rax, qword_ptr(r12 + ctx_off!(status)))?;
        a.add(rsp, 8)?;
        for r in [r15, r14, r13, r12, rbp, rbx] {
            a.pop(r)?;
        }
        a.ret()?;
        Ok(())
    }

    /// The per-image stubs: tail-call dispatch and the out-of-line parts of memory accesses.
    fn image_stubs(&mut self, programs: usize) -> Result<(), EmitError> {
        // dispatch: a tail call continues in the target; anything else ends the run.
        self.asm.mark(Origin::Stub("dispatch"))?;
        self.asm.bind(self.dispatch)?;
        self.asm
            .a
            .cmp(qword_ptr(r12 + ctx_off!(status)), status::TAIL_CALL as i32)?;
        self.asm.jcc(Cond::Ne, self.out)?;
        self.asm
            .a
            .mov(qword_ptr(r12 + ctx_off!(status)), status::OK as i32)?;
        self.asm
            .a
            .mov(r10, qword_ptr(r12 + ctx_off!(tail_target)))?;
        for t in 0..programs.saturating_sub(1) {
            self.asm.a.cmp(r10, t as i32)?;
            let entry = self.slot_labels[t + 1][0];
            self.asm.jcc(Cond::E, entry)?;
        }
        self.fault("tail call to a target that does not exist".into())?;

        if !self.deferred.is_empty() {
            self.asm
                .mark(Origin::Stub("memory accesses, out of line"))?;
        }
        for d in std::mem::take(&mut self.deferred) {
            let Deferred::Translate {
                at,
                back,
                site,
                region,
                size,
            } = d;
            let slow = self.asm.label();
            self.asm.bind(at)?;
            self.region_check(region, size, slow)?;
            self.asm.jmp(back)?;
            self.asm.bind(slow)?;
            self.asm.a.mov(r11d, site)?;
            self.asm.call(self.translate_stub)?;
            self.asm.a.test(r11, r11)?;
            self.asm.jcc(Cond::E, self.out)?;
            self.asm.jmp(back)?;
        }
        Ok(())
    }
}

/// The interpreter's name for slot `pc` of program `prog`.
pub(super) fn where_(prog: usize, pc: usize) -> String {
    super::where_(loc(prog, pc))
}
