//! Code buffer with labels and kernel-style branch relaxation: iterate until every jump's
//! short/near form (and so every address) converges, then encode.
//!
//! Code generators emit ordinary instructions through iced-x86's [`CodeAssembler`] (the `a`
//! field) and branches through [`Asm::jcc`], [`Asm::jmp`] and [`Asm::call`] with a [`Label`]
//! target. [`Asm::finish`] lays the code out the way the kernel's x86 JIT does
//! (`arch/x86/net/bpf_jit_comp.c`, `do_jit` called in passes until the image size stops
//! changing): pass 1 assumes every branch is near (rel32); each later pass computes addresses
//! from the previous choices and turns a branch short (rel8) when its displacement fits.
//! Sizes only shrink from pass to pass, so displacements only shrink, a branch once short stays
//! reachable, and the loop ends when a pass changes nothing. The final encoding checks every
//! branch again (iced-x86 refuses a rel8 that does not reach), so a layout bug is an error, not
//! wrong code.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::{Code, Encoder, IcedError, Instruction};

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

    fn near_code(self) -> Code {
        use Cond::*;
        match self {
            E => Code::Je_rel32_64,
            Ne => Code::Jne_rel32_64,
            A => Code::Ja_rel32_64,
            Ae => Code::Jae_rel32_64,
            B => Code::Jb_rel32_64,
            Be => Code::Jbe_rel32_64,
            G => Code::Jg_rel32_64,
            Ge => Code::Jge_rel32_64,
            L => Code::Jl_rel32_64,
            Le => Code::Jle_rel32_64,
            S => Code::Js_rel32_64,
            Ns => Code::Jns_rel32_64,
        }
    }
}

/// Why code generation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// iced-x86 refused an instruction.
    #[error("x86 encoder: {0}")]
    Encoder(String),
    /// A label was used but never bound.
    #[error("label {0} is never bound")]
    Unbound(usize),
    /// The branch layout did not converge (cannot happen with shrink-only passes; a guard).
    #[error("branch layout did not converge after {0} passes")]
    NoConvergence(usize),
}

impl From<IcedError> for EmitError {
    fn from(e: IcedError) -> Self {
        EmitError::Encoder(e.to_string())
    }
}

#[derive(Debug, Clone)]
enum Item {
    /// A fixed instruction, encoded once (its size does not depend on its address): its bytes
    /// in the encoder's buffer.
    Fixed { start: usize, len: usize },
    /// A relative branch or call to a label. `call` has no short form.
    Branch {
        instr: Instruction,
        target: Label,
        can_be_short: bool,
    },
    /// Binds a label here.
    Bind(Label),
    /// Starts the code of an origin here.
    Mark(Origin),
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
    /// Branches encoded short (rel8) and near (rel32; calls included).
    pub short_branches: usize,
    /// Branches encoded near.
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

/// A code buffer: instructions through [`Asm::a`], labels and branches through the methods.
pub struct Asm {
    /// Emits ordinary (non-branch) instructions: `asm.a.mov(rax, rcx)?`.
    pub a: CodeAssembler,
    items: Vec<Item>,
    labels: usize,
    /// Encodes fixed instructions.
    encoder: Encoder,
    /// The bytes of the fixed instructions, in order.
    fixed: Vec<u8>,
}

/// Most encodings [`ENCODINGS`] keeps before it starts over (immediates make the set of
/// distinct instructions unbounded).
const ENCODING_CACHE_LIMIT: usize = 1 << 16;

thread_local! {
    /// Per-thread memo of iced-x86 encodings of position-independent instructions.
    static ENCODINGS: std::cell::RefCell<rustc_hash::FxHashMap<Instruction, ([u8; 15], u8)>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}

impl Asm {
    /// An empty 64-bit code buffer.
    pub fn new() -> Result<Self, EmitError> {
        Asm::with_capacity(0)
    }

    /// An empty 64-bit code buffer with room for about `instructions` instructions.
    pub fn with_capacity(instructions: usize) -> Result<Self, EmitError> {
        Ok(Asm {
            a: CodeAssembler::new(64)?,
            items: Vec::with_capacity(instructions),
            labels: 0,
            encoder: Encoder::new(64),
            fixed: Vec::with_capacity(instructions * 5),
        })
    }

    /// Moves the instructions emitted through [`Asm::a`] so far into the item list, encoding
    /// them once into the shared byte buffer (their size does not depend on their address).
    /// Encodings are memoized per thread: iced-x86's encoder is most of the cost of a compile,
    /// and generated code repeats the same instructions (spills, checks, stubs) endlessly.
    fn flush(&mut self) -> Result<(), EmitError> {
        let (encoder, fixed, items) = (&mut self.encoder, &mut self.fixed, &mut self.items);
        ENCODINGS.with_borrow_mut(|cache| -> Result<(), EmitError> {
            if cache.len() > ENCODING_CACHE_LIMIT {
                cache.clear();
            }
            for instr in self.a.instructions() {
                let start = fixed.len();
                match cache.get(instr) {
                    Some((bytes, len)) => fixed.extend_from_slice(&bytes[..*len as usize]),
                    None => {
                        let len = encoder.encode(instr, 0)?;
                        let buf = encoder.take_buffer();
                        let mut bytes = [0u8; 15];
                        bytes[..len].copy_from_slice(&buf[..len]);
                        fixed.extend_from_slice(&buf);
                        cache.insert(*instr, (bytes, len as u8));
                    }
                }
                items.push(Item::Fixed {
                    start,
                    len: fixed.len() - start,
                });
            }
            Ok(())
        })?;
        self.a.reset();
        Ok(())
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    /// Binds `label` to the current position.
    pub fn bind(&mut self, label: Label) -> Result<(), EmitError> {
        self.flush()?;
        self.items.push(Item::Bind(label));
        Ok(())
    }

    /// Marks the start of `origin`'s code at the current position.
    pub fn mark(&mut self, origin: Origin) -> Result<(), EmitError> {
        self.flush()?;
        self.items.push(Item::Mark(origin));
        Ok(())
    }

    /// Appends already assembled, position-independent code (its branches all stay inside
    /// it): its bytes as they are, its marks, and `labels` — pairs of (a label of the code's
    /// own buffer, a label of this one) — bound at the same offsets.
    pub fn splice(&mut self, code: &Assembled, labels: &[(Label, Label)]) -> Result<(), EmitError> {
        self.flush()?;
        let mut points: Vec<(usize, Option<Label>, Option<Origin>)> = labels
            .iter()
            .map(|&(theirs, ours)| (code.offset(theirs), Some(ours), None))
            .chain(code.marks.iter().map(|&(o, at)| (at, None, Some(o))))
            .collect();
        points.sort_by_key(|p| p.0);
        let mut done = 0;
        for (at, label, mark) in points.into_iter().chain([(code.code.len(), None, None)]) {
            if at > done {
                let start = self.fixed.len();
                self.fixed.extend_from_slice(&code.code[done..at]);
                self.items.push(Item::Fixed {
                    start,
                    len: at - done,
                });
                done = at;
            }
            if let Some(l) = label {
                self.items.push(Item::Bind(l));
            }
            if let Some(o) = mark {
                self.items.push(Item::Mark(o));
            }
        }
        Ok(())
    }

    fn branch(&mut self, code: Code, target: Label, can_be_short: bool) -> Result<(), EmitError> {
        self.flush()?;
        let instr = Instruction::with_branch(code, 0)?;
        self.items.push(Item::Branch {
            instr,
            target,
            can_be_short,
        });
        Ok(())
    }

    /// A conditional jump to `target`.
    pub fn jcc(&mut self, cond: Cond, target: Label) -> Result<(), EmitError> {
        self.branch(cond.near_code(), target, true)
    }

    /// An unconditional jump to `target`.
    pub fn jmp(&mut self, target: Label) -> Result<(), EmitError> {
        self.branch(Code::Jmp_rel32_64, target, true)
    }

    /// A near call to `target`.
    pub fn call(&mut self, target: Label) -> Result<(), EmitError> {
        self.branch(Code::Call_rel32_64, target, false)
    }

    /// Lays the code out (branch relaxation until convergence) and encodes it.
    pub fn finish(mut self) -> Result<Assembled, EmitError> {
        self.flush()?;
        let items = self.items;
        // Sizes with every branch near; passes only ever shrink branches to 2 bytes.
        let mut sizes: Vec<u32> = items
            .iter()
            .map(|item| match item {
                Item::Fixed { len, .. } => *len as u32,
                Item::Branch { instr, .. } => match instr.code() {
                    Code::Jmp_rel32_64 | Code::Call_rel32_64 => 5,
                    _ => 6,
                },
                Item::Bind(_) | Item::Mark(_) => 0,
            })
            .collect();
        let branches: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| matches!(item, Item::Branch { .. }))
            .map(|(i, _)| i)
            .collect();
        let mut addrs = vec![0usize; items.len()];
        let mut labels = vec![usize::MAX; self.labels];
        let mut passes = 0;
        loop {
            passes += 1;
            if passes > MAX_PASSES {
                return Err(EmitError::NoConvergence(MAX_PASSES));
            }
            let mut pc = 0usize;
            for (i, item) in items.iter().enumerate() {
                addrs[i] = pc;
                if let Item::Bind(l) = item {
                    labels[l.0] = pc;
                }
                pc += sizes[i] as usize;
            }
            let mut changed = false;
            for &i in &branches {
                let Item::Branch {
                    target,
                    can_be_short,
                    ..
                } = &items[i]
                else {
                    continue;
                };
                let t = labels[target.0];
                if t == usize::MAX {
                    return Err(EmitError::Unbound(target.0));
                }
                if *can_be_short && sizes[i] != 2 {
                    let disp = t as i64 - (addrs[i] as i64 + 2);
                    if i8::try_from(disp).is_ok() {
                        sizes[i] = 2;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let fixed = self.fixed;
        let mut code = Vec::with_capacity(fixed.len() + 6 * items.len());
        let mut marks = Vec::new();
        let (mut nshort, mut nnear) = (0, 0);
        let mut encoder = Encoder::new(64);
        for (i, item) in items.iter().enumerate() {
            debug_assert_eq!(code.len(), addrs[i]);
            match item {
                Item::Fixed { start, len } => code.extend_from_slice(&fixed[*start..start + len]),
                Item::Branch { instr, target, .. } => {
                    let t = labels[target.0];
                    if t == usize::MAX {
                        return Err(EmitError::Unbound(target.0));
                    }
                    let mut instr = *instr;
                    if sizes[i] == 2 {
                        instr.as_short_branch();
                        nshort += 1;
                    } else {
                        nnear += 1;
                    }
                    instr.set_near_branch64(t as u64);
                    let len = encoder.encode(&instr, addrs[i] as u64)?;
                    if len != sizes[i] as usize {
                        return Err(EmitError::Encoder(format!(
                            "branch at {:#x} encoded in {len} bytes, laid out in {}",
                            addrs[i], sizes[i]
                        )));
                    }
                    code.extend_from_slice(&encoder.take_buffer());
                }
                Item::Bind(_) => {}
                Item::Mark(o) => marks.push((*o, addrs[i])),
            }
        }
        Ok(Assembled {
            code,
            marks,
            labels,
            passes,
            short_branches: nshort,
            near_branches: nnear,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;
    use iced_x86::{Decoder, DecoderOptions};

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
