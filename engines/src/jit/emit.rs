//! Code buffer with labels and kernel-style branch relaxation: iterate until every jump's
//! short/near form (and so every address) converges, then encode.
//!
//! Code generators emit ordinary instructions through our [`X86`] encoder (the `a` field) and
//! branches through [`Asm::jcc`], [`Asm::jmp`] and [`Asm::call`] with a [`Label`] target. [`Asm::finish`] lays the code out the way the kernel's x86 JIT does
//! (`arch/x86/net/bpf_jit_comp.c`, `do_jit` called in passes until the image size stops
//! changing): pass 1 assumes every branch is near (rel32); each later pass computes addresses
//! from the previous choices and turns a branch short (rel8) when its displacement fits.
//! Sizes only shrink from pass to pass, so displacements only shrink, a branch once short stays
//! reachable, and the loop ends when a pass changes nothing. The final encoding checks every
//! branch again (a rel8 that does not reach is refused), so a layout bug is an error, not wrong
//! code.

use super::x86::X86;

/// Where a piece of generated code came from, for `jit-dump` listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Instruction (slot) `insn` of program `prog` (0 = the main program, 1 + i = tail-call
    /// target `progs[i]`; always 0 for classic programs).
    Insn {
        /// Program index.
        prog: usize,
        /// Instruction (slot) index.
        insn: usize,
    },
    /// A named stub (prologue, epilogue, fault handler…).
    Stub(&'static str),
}

/// A branch target, bound to a position with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// x86 condition codes for [`Asm::jcc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Equal / zero.
    E,
    /// Not equal / not zero.
    Ne,
    /// Unsigned above.
    A,
    /// Unsigned above or equal (no carry).
    Ae,
    /// Unsigned below (carry).
    B,
    /// Unsigned below or equal.
    Be,
    /// Signed greater.
    G,
    /// Signed greater or equal.
    Ge,
    /// Signed less.
    L,
    /// Signed less or equal.
    Le,
    /// Sign set.
    S,
    /// Sign clear.
    Ns,
}

impl Cond {
    /// The condition that holds exactly when `self` does not.
    pub fn negate(self) -> Cond {
        use Cond::*;
        match self {
            E => Ne,
            Ne => E,
            A => Be,
            Ae => B,
            B => Ae,
            Be => A,
            G => Le,
            Ge => L,
            L => Ge,
            Le => G,
            S => Ns,
            Ns => S,
        }
    }

    /// The condition's number in the `Jcc` opcodes (`0x70 + cc`, `0x0f 0x80 + cc`).
    fn cc(self) -> u8 {
        use Cond::*;
        match self {
            B => 0x2,
            Ae => 0x3,
            E => 0x4,
            Ne => 0x5,
            Be => 0x6,
            A => 0x7,
            S => 0x8,
            Ns => 0x9,
            L => 0xc,
            Ge => 0xd,
            Le => 0xe,
            G => 0xf,
        }
    }
}

/// Why code generation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The encoder refused an instruction's operands.
    #[error("x86 encoder: {0}")]
    Encoder(String),
    /// A label was used but never bound.
    #[error("label {0} is never bound")]
    Unbound(usize),
    /// The branch layout did not converge (cannot happen with shrink-only passes; a guard).
    #[error("branch layout did not converge after {0} passes")]
    NoConvergence(usize),
}

/// A relative branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Branch {
    /// `jcc rel8/rel32`.
    Jcc(Cond),
    /// `jmp rel8/rel32`.
    Jmp,
    /// `call rel32` (no short form).
    Call,
}

impl Branch {
    /// Bytes of the near (rel32) form.
    fn near_len(self) -> u32 {
        match self {
            Branch::Jcc(_) => 6,
            Branch::Jmp | Branch::Call => 5,
        }
    }

    /// Appends the branch at `at` to `target`, short (2 bytes) or near.
    fn encode(
        self,
        code: &mut Vec<u8>,
        at: usize,
        target: usize,
        short: bool,
    ) -> Result<(), EmitError> {
        let len = if short { 2 } else { self.near_len() as usize };
        let disp = target as i64 - (at + len) as i64;
        if short {
            let d8 = i8::try_from(disp).map_err(|_| {
                EmitError::Encoder(format!("short branch at {at:#x} cannot reach {target:#x}"))
            })?;
            let op = match self {
                Branch::Jcc(c) => 0x70 | c.cc(),
                Branch::Jmp => 0xeb,
                Branch::Call => return Err(EmitError::Encoder("a call has no short form".into())),
            };
            code.extend_from_slice(&[op, d8 as u8]);
        } else {
            let d32 = i32::try_from(disp).map_err(|_| {
                EmitError::Encoder(format!("branch at {at:#x} cannot reach {target:#x}"))
            })?;
            match self {
                Branch::Jcc(c) => code.extend_from_slice(&[0x0f, 0x80 | c.cc()]),
                Branch::Jmp => code.push(0xe9),
                Branch::Call => code.push(0xe8),
            }
            code.extend_from_slice(&d32.to_le_bytes());
        }
        Ok(())
    }
}

/// The laid-out, encoded code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// Machine code, position independent (all branches relative).
    pub code: Vec<u8>,
    /// Where each origin's code starts, in code order.
    pub marks: Vec<(Origin, usize)>,
    /// Offsets of every label, by label number.
    pub labels: Vec<usize>,
    /// Layout passes until the branch forms converged (the first, all-near pass included).
    pub passes: usize,
    /// Branches encoded short (rel8).
    pub short_branches: usize,
    /// Branches encoded near (rel32; calls included).
    pub near_branches: usize,
}

impl Assembled {
    /// The offset of `label`.
    pub fn offset(&self, label: Label) -> usize {
        self.labels[label.0]
    }
}

/// Most layout passes before giving up (the kernel gives up after 20 and falls back to the
/// interpreter; shrink-only passes converge long before on any real program).
pub const MAX_PASSES: usize = 64;

/// A position in the code before layout: `fixed` bytes of ordinary instructions and the first
/// `branches` branches precede it. Its address is `fixed` plus the sizes of those branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    fixed: u32,
    branches: u32,
}

/// A label not bound yet.
const UNBOUND: Pos = Pos {
    fixed: u32::MAX,
    branches: u32::MAX,
};

/// A branch before layout.
#[derive(Debug, Clone, Copy)]
struct PendingBranch {
    /// Bytes of ordinary instructions before it.
    fixed: u32,
    kind: Branch,
    target: Label,
}

/// A code buffer: instructions through [`Asm::a`], labels and branches through the methods.
///
/// Ordinary instructions go straight into `a`'s byte buffer; branches, label bindings and marks
/// are recorded by position (bytes before them, branches before them), so a layout pass costs
/// one step per branch, not per instruction.
pub struct Asm {
    /// Emits ordinary (non-branch) instructions: `asm.a.mov(rax, rcx)?`.
    pub a: X86,
    branches: Vec<PendingBranch>,
    /// Where each label is bound, by label number.
    labels: Vec<Pos>,
    marks: Vec<(Origin, Pos)>,
}

impl Asm {
    /// An empty 64-bit code buffer.
    pub fn new() -> Result<Self, EmitError> {
        Asm::with_capacity(0)
    }

    /// An empty 64-bit code buffer with room for about `instructions` instructions.
    pub fn with_capacity(instructions: usize) -> Result<Self, EmitError> {
        Ok(Asm {
            a: X86::with_capacity(instructions * 5),
            branches: Vec::with_capacity(instructions / 4),
            labels: Vec::with_capacity(instructions / 2),
            marks: Vec::with_capacity(instructions / 2),
        })
    }

    /// The current position.
    fn here(&self) -> Pos {
        Pos {
            fixed: self.a.buf.len() as u32,
            branches: self.branches.len() as u32,
        }
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(UNBOUND);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the current position.
    pub fn bind(&mut self, label: Label) -> Result<(), EmitError> {
        self.labels[label.0] = self.here();
        Ok(())
    }

    /// Marks the start of `origin`'s code at the current position.
    pub fn mark(&mut self, origin: Origin) -> Result<(), EmitError> {
        let here = self.here();
        self.marks.push((origin, here));
        Ok(())
    }

    /// Appends already assembled, position-independent code (its branches all stay inside
    /// it): its bytes as they are, its marks, and `labels` — pairs of (a label of the code's
    /// own buffer, a label of this one) — bound at the same offsets.
    pub fn splice(&mut self, code: &Assembled, labels: &[(Label, Label)]) -> Result<(), EmitError> {
        let here = self.here();
        let at = |offset: usize| Pos {
            fixed: here.fixed + offset as u32,
            ..here
        };
        for &(theirs, ours) in labels {
            self.labels[ours.0] = at(code.offset(theirs));
        }
        for &(o, offset) in &code.marks {
            self.marks.push((o, at(offset)));
        }
        self.a.buf.extend_from_slice(&code.code);
        Ok(())
    }

    fn branch(&mut self, kind: Branch, target: Label) -> Result<(), EmitError> {
        self.branches.push(PendingBranch {
            fixed: self.a.buf.len() as u32,
            kind,
            target,
        });
        Ok(())
    }

    /// A conditional jump to `target`.
    pub fn jcc(&mut self, cond: Cond, target: Label) -> Result<(), EmitError> {
        self.branch(Branch::Jcc(cond), target)
    }

    /// An unconditional jump to `target`.
    pub fn jmp(&mut self, target: Label) -> Result<(), EmitError> {
        self.branch(Branch::Jmp, target)
    }

    /// A near call to `target`.
    pub fn call(&mut self, target: Label) -> Result<(), EmitError> {
        self.branch(Branch::Call, target)
    }

    /// Lays the code out (branch relaxation until convergence) and encodes it.
    pub fn finish(self) -> Result<Assembled, EmitError> {
        // A label nobody branches to may stay unbound (its offset is then `usize::MAX`).
        if let Some(b) = self
            .branches
            .iter()
            .find(|b| self.labels[b.target.0] == UNBOUND)
        {
            return Err(EmitError::Unbound(b.target.0));
        }
        let branches = self.branches;
        // Sizes with every branch near; passes only ever shrink branches to 2 bytes.
        let mut sizes: Vec<u32> = branches.iter().map(|b| b.kind.near_len()).collect();
        // before[j]: bytes of the branches before branch j (before[n]: of all of them).
        let mut before = vec![0u32; branches.len() + 1];
        let addr = |p: Pos, before: &[u32]| (p.fixed + before[p.branches as usize]) as i64;
        let mut passes = 0;
        loop {
            passes += 1;
            if passes > MAX_PASSES {
                return Err(EmitError::NoConvergence(MAX_PASSES));
            }
            for j in 0..branches.len() {
                before[j + 1] = before[j] + sizes[j];
            }
            let mut changed = false;
            for (j, b) in branches.iter().enumerate() {
                if b.kind == Branch::Call || sizes[j] == 2 {
                    continue;
                }
                let from = b.fixed as i64 + before[j] as i64 + 2;
                let disp = addr(self.labels[b.target.0], &before) - from;
                if i8::try_from(disp).is_ok() {
                    sizes[j] = 2;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let fixed = self.a.buf;
        let mut code = Vec::with_capacity(fixed.len() + before[branches.len()] as usize);
        let (mut nshort, mut nnear, mut done) = (0, 0, 0usize);
        for (j, b) in branches.iter().enumerate() {
            code.extend_from_slice(&fixed[done..b.fixed as usize]);
            done = b.fixed as usize;
            let short = sizes[j] == 2;
            if short {
                nshort += 1;
            } else {
                nnear += 1;
            }
            let target = addr(self.labels[b.target.0], &before) as usize;
            b.kind
                .encode(&mut code, done + before[j] as usize, target, short)?;
        }
        code.extend_from_slice(&fixed[done..]);
        let at = |p: Pos| addr(p, &before) as usize;
        Ok(Assembled {
            code,
            marks: self.marks.iter().map(|&(o, p)| (o, at(p))).collect(),
            labels: self
                .labels
                .iter()
                .map(|&p| if p == UNBOUND { usize::MAX } else { at(p) })
                .collect(),
            passes,
            short_branches: nshort,
            near_branches: nnear,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::x86::*;
    use iced_x86::{Code, Decoder, DecoderOptions, Instruction};

    fn decode(code: &[u8]) -> Vec<Instruction> {
        let mut d = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
        let mut out = Vec::new();
        while d.can_decode() {
            out.push(d.decode());
        }
        out
    }

    #[test]
    fn short_forward_and_backward_jumps() {
        let mut asm = Asm::new().unwrap();
        let top = asm.label();
        let end = asm.label();
        asm.bind(top).unwrap();
        asm.a.add(rax, 1i32).unwrap();
        asm.jcc(Cond::E, end).unwrap();
        asm.jmp(top).unwrap();
        asm.bind(end).unwrap();
        asm.a.ret().unwrap();
        let out = asm.finish().unwrap();
        assert_eq!(out.short_branches, 2);
        assert_eq!(out.near_branches, 0);
        let d = decode(&out.code);
        assert_eq!(d[1].code(), Code::Je_rel8_64);
        assert_eq!(d[1].near_branch64(), out.offset(end) as u64);
        assert_eq!(d[2].code(), Code::Jmp_rel8_64);
        assert_eq!(d[2].near_branch64(), 0);
    }

    #[test]
    fn jump_over_more_than_127_bytes_is_near() {
        let mut asm = Asm::new().unwrap();
        let end = asm.label();
        asm.jcc(Cond::Ne, end).unwrap();
        for _ in 0..30 {
            asm.a.mov(rax, 0x1122_3344_5566_7788u64).unwrap(); // 10 bytes each
        }
        asm.bind(end).unwrap();
        asm.a.ret().unwrap();
        let out = asm.finish().unwrap();
        let d = decode(&out.code);
        assert_eq!(d[0].code(), Code::Jne_rel32_64);
        assert_eq!(d[0].near_branch64(), 6 + 300);
    }

    #[test]
    fn staggered_jumps_converge_over_several_passes() {
        // Every jump spans the later ones; only after the inner ones shrink do the outer ones
        // fit in a rel8, one more per pass.
        let mut asm = Asm::new().unwrap();
        let n = 40;
        let targets: Vec<Label> = (0..n).map(|_| asm.label()).collect();
        for t in &targets {
            asm.jmp(*t).unwrap();
            asm.a.add(rax, rcx).unwrap(); // 3 bytes
        }
        for t in targets.iter().rev() {
            asm.bind(*t).unwrap();
        }
        asm.a.ret().unwrap();
        let out = asm.finish().unwrap();
        assert!(out.passes > 3, "passes {}", out.passes);
        assert!(out.short_branches > 5 && out.near_branches > 0, "{out:?}");
        let d = decode(&out.code);
        for (i, ins) in d.iter().filter(|i| i.is_jmp_short_or_near()).enumerate() {
            assert_eq!(
                ins.near_branch64(),
                out.offset(targets[i]) as u64,
                "jump {i}"
            );
        }
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut asm = Asm::new().unwrap();
        let l = asm.label();
        asm.jmp(l).unwrap();
        assert_eq!(asm.finish().unwrap_err(), EmitError::Unbound(0));
    }

    #[test]
    fn marks_record_offsets() {
        let mut asm = Asm::new().unwrap();
        asm.mark(Origin::Insn { prog: 0, insn: 0 }).unwrap();
        asm.a.xor(eax, eax).unwrap();
        asm.mark(Origin::Insn { prog: 0, insn: 1 }).unwrap();
        asm.a.ret().unwrap();
        let out = asm.finish().unwrap();
        assert_eq!(
            out.marks,
            vec![
                (Origin::Insn { prog: 0, insn: 0 }, 0),
                (Origin::Insn { prog: 0, insn: 1 }, 2)
            ]
        );
    }
}
