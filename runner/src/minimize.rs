//! Delta-debugging minimizer for differential divergences that keeps the *same divergence
//! signature*: the engine pair, the differing field and the culprit opcode.
//!
//! The culprit opcode of a divergence is found first: the rarest opcode of the program whose
//! instances, all replaced by no-ops, make the divergence go away. A candidate is kept only if
//! it still diverges in the same field *and* still stops diverging when the culprit's instances
//! become no-ops, so the minimizer cannot drift to a different bug (which libFuzzer's `tmin`
//! does when every divergence crashes at the same place).
//!
//! Passes, repeated until nothing changes: remove chunks of instructions (halving chunk sizes,
//! jump offsets fixed so targets after the chunk still land on the same instruction and targets
//! inside it land just after it), replace instructions with no-ops (`ja +0`), shrink constants
//! toward 0, 1 and edge values, and shrink the packet (truncate, then zero bytes) and context.

use crate::diff::{diff_unit, differs_in, run_side, Diff};
use bpfconf_engines::{ClassicInput, Engine, Input, Program};

/// What must stay the same while minimizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The first engine's name.
    pub a: String,
    /// The second engine's name.
    pub b: String,
    /// The differing field (`ret`, `mem`, `memory`, `maps`, `fault`).
    pub field: &'static str,
    /// The culprit opcode, if one opcode alone is necessary for the divergence.
    pub opcode: Option<u16>,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} vs {}: {}", self.a, self.b, self.field)?;
        match self.opcode {
            Some(op) => write!(f, " (opcode {op:#04x})"),
            None => Ok(()),
        }
    }
}

/// A minimized unit.
#[derive(Debug, Clone)]
pub struct Minimized {
    /// The smaller program.
    pub program: Program,
    /// The smaller input.
    pub input: Input,
    /// Its divergence.
    pub diff: Diff,
    /// The signature it keeps.
    pub signature: Signature,
    /// Engine runs the minimizer spent.
    pub tries: usize,
}

/// Opcodes of the program's instructions, by slot (`None` for slots that are not
/// replaceable: the final instruction, `exit`, and `lddw` second halves).
fn opcodes(p: &Program) -> Vec<Option<u16>> {
    match p {
        Program::Classic(c) => {
            let n = c.insns.len();
            c.insns
                .iter()
                .enumerate()
                .map(|(i, x)| (i + 1 < n && x.class() != 0x06).then_some(x.code))
                .collect()
        }
        Program::Ebpf(e) => {
            let mut out = Vec::with_capacity(e.insns.len());
            let mut second = false;
            for x in &e.insns {
                if second {
                    out.push(None);
                    second = false;
                    continue;
                }
                second = x.is_lddw();
                out.push((x.code != 0x95).then_some(u16::from(x.code)));
            }
            out
        }
    }
}

/// The program with the instruction at slot `i` replaced by `ja +0` (both slots of a `lddw`).
fn nop_at(p: &Program, i: usize) -> Program {
    let mut p = p.clone();
    match &mut p {
        Program::Classic(c) => c.insns[i] = bpfconf_spec::cbpf::Insn::stmt(0x05, 0),
        Program::Ebpf(e) => {
            let lddw = e.insns[i].is_lddw();
            e.insns[i] = bpfconf_spec::ebpf::Insn::new(0x05, 0, 0, 0, 0);
            if lddw && i + 1 < e.insns.len() {
                e.insns[i + 1] = bpfconf_spec::ebpf::Insn::new(0x05, 0, 0, 0, 0);
            }
        }
    }
    p
}

/// Simple instructions that may stand in for the one at a slot: immediate moves of 1 and -1
/// into each register (classic: `ld #k`, `ldx #k`), so a value computed by a long chain can be
/// set directly.
fn simpler_at(p: &Program, i: usize) -> Vec<Program> {
    let mut out = Vec::new();
    match p {
        Program::Classic(c) => {
            for code in [0x00u16, 0x01] {
                for k in [1u32, u32::MAX] {
                    let x = bpfconf_spec::cbpf::Insn::stmt(code, k);
                    if c.insns[i] != x {
                        let mut c2 = c.clone();
                        c2.insns[i] = x;
                        out.push(Program::Classic(c2));
                    }
                }
            }
        }
        Program::Ebpf(e) => {
            for r in 0..10u8 {
                for k in [1, -1] {
                    let x = bpfconf_spec::ebpf::Insn::new(0xb7, r, 0, 0, k);
                    if e.insns[i] != x {
                        let mut q = nop_at(p, i);
                        if let Program::Ebpf(e2) = &mut q {
                            e2.insns[i] = x;
                        }
                        out.push(q);
                    }
                }
            }
        }
    }
    out
}

/// Programs that return another register directly: an instruction moving it into the return
/// register inserted just before the final `exit`/`ret` (jumps to the end then land on it, as
/// their offsets are unchanged). Classic: `txa` or `ld M[k]` before a final `ret a`.
fn redirects(p: &Program) -> Vec<Program> {
    let mut out = Vec::new();
    match p {
        Program::Classic(c) => {
            let n = c.insns.len();
            if n == 0 || c.insns[n - 1].code != 0x16 {
                return out;
            }
            let mut ins = vec![bpfconf_spec::cbpf::Insn::stmt(0x87, 0)];
            ins.extend((0..16).map(|k| bpfconf_spec::cbpf::Insn::stmt(0x60, k)));
            for x in ins {
                if n >= 2 && c.insns[n - 2] == x {
                    continue;
                }
                let mut c2 = c.clone();
                c2.insns.insert(n - 1, x);
                out.push(Program::Classic(c2));
            }
        }
        Program::Ebpf(e) => {
            let n = e.insns.len();
            if n == 0 || e.insns[n - 1].code != 0x95 {
                return out;
            }
            for r in 1..10 {
                let x = bpfconf_spec::ebpf::Insn::new(0xbf, 0, r, 0, 0);
                if n >= 2 && e.insns[n - 2] == x {
                    continue;
                }
                let mut e2 = e.clone();
                e2.insns.insert(n - 1, x);
                out.push(Program::Ebpf(e2));
            }
        }
    }
    out
}

/// The program with every instance of `opcode` replaced by no-ops.
fn without_opcode(p: &Program, opcode: u16) -> Program {
    let mut out = p.clone();
    for (i, op) in opcodes(p).into_iter().enumerate() {
        if op == Some(opcode) {
            out = nop_at(&out, i);
        }
    }
    out
}

/// The program with slots `lo..hi` removed and jumps fixed, or `None` if the range includes
/// the last instruction or splits a `lddw`.
fn remove_range(p: &Program, lo: usize, hi: usize) -> Option<Program> {
    let n = crate::fuzz::program_len(p);
    if lo >= hi || hi >= n {
        return None;
    }
    let size = (hi - lo) as i64;
    // New relative offset for a jump at `j` (outside the range) with old target `t`.
    let fix = |j: usize, t: i64| -> i64 {
        let new_t = if t >= hi as i64 {
            t - size
        } else if t >= lo as i64 {
            lo as i64
        } else {
            t
        };
        let new_j = if j >= hi { j as i64 - size } else { j as i64 };
        new_t - new_j - 1
    };
    match p {
        Program::Classic(c) => {
            let mut out = Vec::with_capacity(c.insns.len());
            for (j, x) in c.insns.iter().enumerate() {
                if (lo..hi).contains(&j) {
                    continue;
                }
                let mut x = *x;
                if x.class() == 0x05 {
                    if x.code & 0xf0 == 0 {
                        let t = j as i64 + 1 + i64::from(x.k);
                        x.k = u32::try_from(fix(j, t)).ok()?;
                    } else {
                        let tt = j as i64 + 1 + i64::from(x.jt);
                        let tf = j as i64 + 1 + i64::from(x.jf);
                        x.jt = u8::try_from(fix(j, tt)).ok()?;
                        x.jf = u8::try_from(fix(j, tf)).ok()?;
                    }
                }
                out.push(x);
            }
            let mut c = c.clone();
            c.insns = out;
            Some(Program::Classic(c))
        }
        Program::Ebpf(e) => {
            if e.insns[lo.saturating_sub(1)].is_lddw() && lo > 0 {
                return None;
            }
            if e.insns[hi - 1].is_lddw() {
                return None;
            }
            let mut out = Vec::with_capacity(e.insns.len());
            let mut second = false;
            for (j, x) in e.insns.iter().enumerate() {
                let is_second = second;
                second = !is_second && x.is_lddw();
                if (lo..hi).contains(&j) {
                    continue;
                }
                let mut x = *x;
                let cls = x.code & 0x07;
                let op = x.code & 0xf0;
                if !is_second && (cls == 0x05 || cls == 0x06) && op != 0x90 && op != 0x80 {
                    if cls == 0x06 && op == 0x00 {
                        let t = j as i64 + 1 + i64::from(x.imm);
                        x.imm = i32::try_from(fix(j, t)).ok()?;
                    } else {
                        let t = j as i64 + 1 + i64::from(x.off);
                        x.off = i16::try_from(fix(j, t)).ok()?;
                    }
                }
                out.push(x);
            }
            let mut e = e.clone();
            e.insns = out;
            Some(Program::Ebpf(e))
        }
    }
}

/// Must-initialised memory along forward control flow: true if every read of the classic
/// memory store (`ld M[k]`, `ldx M[k]`) or of the eBPF stack (`[r10 + off]` loads and atomics)
/// follows a write of those words/bytes on *every* path. Removing a store could otherwise turn
/// a divergence into a read of uninitialised memory (the kernel lets privileged programs read
/// uninitialised stack; libpcap's M[] starts with whatever the C stack held), a different
/// "bug" with the same field and opcode. Backward jumps (none in generated programs) make the
/// check give up and return true.
fn reads_initialized(p: &Program, input: &Input) -> bool {
    type Bits = [u64; 8];
    let set = |b: &mut Bits, lo: usize, n: usize| {
        for x in lo..(lo + n).min(512) {
            b[x / 64] |= 1 << (x % 64);
        }
    };
    let has = |b: &Bits, lo: usize, n: usize| {
        (lo..lo + n).all(|x| x < 512 && b[x / 64] & (1 << (x % 64)) != 0)
    };
    let meet = |slot: &mut Option<Bits>, b: &Bits| match slot {
        Some(s) => {
            for (x, y) in s.iter_mut().zip(b) {
                *x &= *y;
            }
        }
        None => *slot = Some(*b),
    };
    match (p, input) {
        (Program::Classic(c), Input::Classic(ci)) => {
            if ci.ctx.extmem.is_some() {
                return true;
            }
            let n = c.insns.len();
            let mut state: Vec<Option<Bits>> = vec![None; n + 1];
            state[0] = Some([0; 8]);
            for (i, x) in c.insns.iter().enumerate() {
                let Some(mut b) = state[i] else { continue };
                let k = x.k as usize;
                match x.code {
                    0x60 | 0x61 if !has(&b, k, 1) => return false,
                    0x02 | 0x03 => set(&mut b, k, 1),
                    _ => {}
                }
                match x.class() {
                    0x06 => {}
                    0x05 if x.code & 0xf0 == 0 => {
                        let t = i + 1 + k;
                        if t <= n {
                            meet(&mut state[t], &b);
                        }
                    }
                    0x05 => {
                        for off in [x.jt, x.jf] {
                            let t = i + 1 + usize::from(off);
                            if t <= n {
                                meet(&mut state[t], &b);
                            }
                        }
                    }
                    _ => meet(&mut state[i + 1], &b),
                }
            }
            true
        }
        (Program::Ebpf(e), _) => {
            let n = e.insns.len();
            let mut state: Vec<Option<Bits>> = vec![None; n + 1];
            state[0] = Some([0; 8]);
            let mut i = 0;
            while i < n {
                let x = e.insns[i];
                let width = if x.is_lddw() { 2 } else { 1 };
                let Some(mut b) = state[i] else {
                    i += width;
                    continue;
                };
                let cls = x.code & 0x07;
                let bytes = [4usize, 2, 1, 8][usize::from((x.code >> 3) & 0x03)];
                let at = |r: u8| (r == 10).then(|| 512 + i64::from(x.off));
                let slot = match cls {
                    0x01 => at(x.src),
                    0x02 | 0x03 => at(x.dst),
                    _ => None,
                };
                if let Some(lo) = slot {
                    let Ok(lo) = usize::try_from(lo) else {
                        return true;
                    };
                    let atomic = cls == 0x03 && x.code & 0xe0 == 0xc0;
                    if (cls == 0x01 || atomic) && !has(&b, lo, bytes) {
                        return false;
                    }
                    if cls != 0x01 {
                        set(&mut b, lo, bytes);
                    }
                }
                let op = x.code & 0xf0;
                if (cls == 0x05 || cls == 0x06) && op != 0x80 {
                    if op == 0x90 {
                        i += 1;
                        continue;
                    }
                    let rel = if cls == 0x06 && op == 0x00 {
                        i64::from(x.imm)
                    } else {
                        i64::from(x.off)
                    };
                    if rel < 0 {
                        return true;
                    }
                    let t = i + 1 + rel as usize;
                    if t <= n {
                        meet(&mut state[t], &b);
                    }
                    if op != 0x00 {
                        meet(&mut state[i + 1], &b);
                    }
                } else if i + width <= n {
                    meet(&mut state[i + width], &b);
                }
                i += width;
            }
            true
        }
        _ => true,
    }
}

/// Candidate replacement constants, simplest first.
const SIMPLE: [u32; 6] = [0, 1, 2, 0xffff_ffff, 0x8000_0000, 0x7fff_ffff];

/// Programs with one constant of slot `i` shrunk (simpler candidates first).
fn shrink_constant(p: &Program, i: usize) -> Vec<Program> {
    let mut out = Vec::new();
    match p {
        Program::Classic(c) => {
            let x = c.insns[i];
            // `ja k` and `ret` k are offsets/verdicts handled elsewhere; shifts/divisors keep
            // the checker's constraints through the divergence test itself.
            if x.class() == 0x05 && x.code & 0xf0 == 0 {
                return out;
            }
            let rank = |k: u32| SIMPLE.iter().position(|s| *s == k).unwrap_or(SIMPLE.len());
            let mut cands: Vec<u32> = SIMPLE.to_vec();
            cands.push(x.k / 2);
            for k in cands {
                let better = rank(k) < rank(x.k) || (rank(x.k) == SIMPLE.len() && k < x.k);
                if better {
                    let mut c2 = c.clone();
                    c2.insns[i].k = k;
                    out.push(Program::Classic(c2));
                }
            }
        }
        Program::Ebpf(e) => {
            let x = e.insns[i];
            if matches!(x.code, 0x06 | 0x95 | 0x85) || (i > 0 && e.insns[i - 1].is_lddw()) {
                return out;
            }
            let cur = x.imm as u32;
            let rank = |k: u32| SIMPLE.iter().position(|s| *s == k).unwrap_or(SIMPLE.len());
            let mut cands: Vec<u32> = SIMPLE.to_vec();
            cands.push(cur / 2);
            for k in cands {
                let better = rank(k) < rank(cur) || (rank(cur) == SIMPLE.len() && k < cur);
                if better {
                    let mut e2 = e.clone();
                    e2.insns[i].imm = k as i32;
                    if x.is_lddw() && i + 1 < e2.insns.len() {
                        e2.insns[i + 1].imm = 0;
                    }
                    out.push(Program::Ebpf(e2));
                }
            }
        }
    }
    out
}

/// Smaller inputs to try (classic: truncated and zeroed packets, simpler contexts).
fn shrink_input(input: &Input) -> Vec<Input> {
    let mut out = Vec::new();
    if let Input::Classic(c) = input {
        let len = c.packet.len();
        for new_len in [0, len / 4, len / 2, len.saturating_sub(1)] {
            if new_len < len {
                let mut c2 = c.clone();
                c2.packet.truncate(new_len);
                out.push(Input::Classic(c2));
            }
        }
        for i in 0..len {
            if c.packet[i] != 0 {
                let mut c2 = c.clone();
                c2.packet[i] = 0;
                out.push(Input::Classic(c2));
            }
        }
        if c.ctx.wirelen.is_some() {
            let mut c2: ClassicInput = c.clone();
            c2.ctx.wirelen = None;
            out.push(Input::Classic(c2));
        }
        if let Some(m) = &c.ctx.extmem {
            if m.iter().any(|w| *w != 0) {
                let mut c2 = c.clone();
                c2.ctx.extmem = Some(vec![0; m.len()]);
                out.push(Input::Classic(c2));
            }
        }
    }
    out
}

struct Search<'e> {
    a: &'e dyn Engine,
    b: &'e dyn Engine,
    field: &'static str,
    opcode: Option<u16>,
    tries: usize,
    budget: usize,
    /// Refuse candidates that read uninitialised memory (when the original did not).
    init_check: bool,
}

impl Search<'_> {
    /// True if the engines differ in the signature's field on this unit.
    fn differs(&mut self, p: &Program, i: &Input) -> bool {
        self.tries += 1;
        let x = run_side(self.a, p, i);
        let y = run_side(self.b, p, i);
        differs_in(&x, &y, i.data_len(), self.field)
    }

    /// Removes chunks of instructions, halving the chunk size, while the signature holds.
    fn remove_chunks(&mut self, mut prog: Program, input: &Input) -> Program {
        let mut size = crate::fuzz::program_len(&prog) / 2;
        while size >= 1 {
            let mut lo = 0;
            while lo + size < crate::fuzz::program_len(&prog) {
                match remove_range(&prog, lo, lo + size) {
                    Some(c) if self.keeps(&c, input) => prog = c,
                    _ => lo += 1,
                }
            }
            size /= 2;
        }
        prog
    }

    /// True if the candidate keeps the signature.
    fn keeps(&mut self, p: &Program, i: &Input) -> bool {
        if self.tries >= self.budget {
            return false;
        }
        if let Some(op) = self.opcode {
            if !opcodes(p).contains(&Some(op)) {
                return false;
            }
        }
        if self.init_check && !reads_initialized(p, i) {
            return false;
        }
        if !self.differs(p, i) {
            return false;
        }
        match self.opcode {
            Some(op) => !self.differs(&without_opcode(p, op), i),
            None => true,
        }
    }
}

/// The possible signatures of a divergent unit, most likely culprit first: every opcode whose
/// instances, replaced by no-ops, make the divergence go away (ALU opcodes first, then the rest,
/// rarest first); just the field when no single opcode is necessary. Empty if the engines do
/// not diverge on the unit.
pub fn signatures(a: &dyn Engine, b: &dyn Engine, p: &Program, i: &Input) -> Vec<Signature> {
    let Diff::Divergence { field, .. } = diff_unit(a, b, p, i) else {
        return Vec::new();
    };
    let mut counts: Vec<(usize, u16)> = Vec::new();
    for op in opcodes(p).into_iter().flatten() {
        match counts.iter_mut().find(|(_, o)| *o == op) {
            Some(c) => c.0 += 1,
            None => counts.push((1, op)),
        }
    }
    // Operations first (ALU, atomics, cop), immediate moves (which only feed values) last;
    // rarest first within each.
    let classic = matches!(p, Program::Classic(_));
    let rank = |op: u16| -> u8 {
        let moves: &[u16] = if classic {
            &[0x00, 0x01]
        } else {
            &[0xb7, 0xb4, 0x18]
        };
        if moves.contains(&op) {
            2
        } else if op & 0x07 == 0x04 || op & 0x07 == 0x07 || (!classic && op & 0xe7 == 0xc3) {
            0
        } else {
            1
        }
    };
    counts.sort_by_key(|&(n, o)| (rank(o), n, o));
    let sig = |opcode| Signature {
        a: a.name().into(),
        b: b.name().into(),
        field,
        opcode,
    };
    let mut out: Vec<Signature> = counts
        .into_iter()
        .map(|(_, o)| o)
        .filter(|&o| {
            let q = without_opcode(p, o);
            !differs_in(
                &run_side(a, &q, i),
                &run_side(b, &q, i),
                i.data_len(),
                field,
            )
        })
        .map(|o| sig(Some(o)))
        .collect();
    if out.is_empty() {
        out.push(sig(None));
    }
    out
}

/// The signature of a divergent unit (its most likely culprit), or `None` if the engines do
/// not diverge on it.
pub fn signature(a: &dyn Engine, b: &dyn Engine, p: &Program, i: &Input) -> Option<Signature> {
    signatures(a, b, p, i).into_iter().next()
}

/// True if the unit diverges with signature `sig`: same field, and the signature's opcode is
/// present and necessary (its instances replaced by no-ops, the divergence goes away).
pub fn has_signature(
    a: &dyn Engine,
    b: &dyn Engine,
    p: &Program,
    i: &Input,
    sig: &Signature,
) -> bool {
    let mut s = Search {
        a,
        b,
        field: sig.field,
        opcode: sig.opcode,
        tries: 0,
        budget: usize::MAX,
        init_check: reads_initialized(p, i),
    };
    s.keeps(p, i)
}

/// Minimizes a divergent unit, keeping its signature; `None` if it does not diverge. When
/// several opcodes are necessary for the divergence, the first six candidates are each tried
/// and the smallest result is kept (ties: the likelier culprit).
pub fn minimize(a: &dyn Engine, b: &dyn Engine, p: &Program, i: &Input) -> Option<Minimized> {
    let mut best: Option<Minimized> = None;
    let mut tries = 0;
    for sig in signatures(a, b, p, i).into_iter().take(6) {
        let m = minimize_with(a, b, p, i, sig);
        tries += m.tries;
        let n = |m: &Minimized| crate::fuzz::program_len(&m.program);
        if best.as_ref().is_none_or(|b| n(&m) < n(b)) {
            best = Some(m);
        }
    }
    best.map(|mut m| {
        m.tries = tries;
        m
    })
}

/// Minimizes keeping one given signature.
fn minimize_with(
    a: &dyn Engine,
    b: &dyn Engine,
    p: &Program,
    i: &Input,
    sig: Signature,
) -> Minimized {
    let mut s = Search {
        a,
        b,
        field: sig.field,
        opcode: sig.opcode,
        tries: 0,
        budget: 20_000,
        init_check: reads_initialized(p, i),
    };
    let mut prog = p.clone();
    let mut input = i.clone();
    loop {
        let before = (prog.clone(), input.clone());
        // 1. Remove chunks, halving their size.
        prog = s.remove_chunks(prog, &input);
        // 1b. Return a register's (or M[]'s) value directly, if that lets more go.
        if crate::fuzz::program_len(&prog) <= 24 {
            for c in redirects(&prog) {
                if s.keeps(&c, &input) {
                    let shrunk = s.remove_chunks(c, &input);
                    if crate::fuzz::program_len(&shrunk) < crate::fuzz::program_len(&prog) {
                        prog = shrunk;
                        break;
                    }
                }
            }
        }
        // 2. No-ops in place of instructions removal could not drop.
        for (j, op) in opcodes(&prog).into_iter().enumerate() {
            if op.is_some_and(|o| o != 0x05) {
                let c = nop_at(&prog, j);
                if s.keeps(&c, &input) {
                    prog = c;
                }
            }
        }
        // 2b. Immediate moves in place of instructions, once the program is small.
        if crate::fuzz::program_len(&prog) <= 24 {
            for (j, op) in opcodes(&prog).into_iter().enumerate() {
                if op.is_some_and(|o| Some(o) != s.opcode) {
                    for c in simpler_at(&prog, j) {
                        if s.keeps(&c, &input) {
                            prog = c;
                            break;
                        }
                    }
                }
            }
        }
        // 3. Simpler constants.
        for j in 0..crate::fuzz::program_len(&prog) {
            for c in shrink_constant(&prog, j) {
                if s.keeps(&c, &input) {
                    prog = c;
                    break;
                }
            }
        }
        // 4. Smaller inputs.
        let mut changed = true;
        while changed {
            changed = false;
            for c in shrink_input(&input) {
                if s.keeps(&prog, &c) {
                    input = c;
                    changed = true;
                    break;
                }
            }
        }
        if (prog.clone(), input.clone()) == before || s.tries >= s.budget {
            break;
        }
    }
    let diff = diff_unit(a, b, &prog, &input);
    Minimized {
        program: prog,
        input,
        diff,
        signature: sig,
        tries: s.tries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::{unit, unit_seed, BuggyInterp, Isa};
    use bpfconf_engines::interp::Interp;
    use bpfconf_spec::Dialect;

    /// The first units of a 64-instruction campaign on which the injected bug shows.
    fn divergent(isa: Isa, n: usize) -> Vec<(Program, Input)> {
        let (a, b) = (Interp::new(), BuggyInterp::new());
        let v: Vec<_> = (0..3000)
            .map(|i| unit(isa, unit_seed(7, i), 64))
            .filter(|(p, i)| diff_unit(&a, &b, p, i).is_divergence())
            .take(n)
            .collect();
        assert_eq!(
            v.len(),
            n,
            "the injected bug shows {n} times within 3000 units"
        );
        v
    }

    #[test]
    fn injected_bug_shrinks_to_a_handful_of_instructions() {
        let (a, b) = (Interp::new(), BuggyInterp::new());
        for isa in [Isa::Classic(Dialect::Linux), Isa::Ebpf] {
            for (p, i) in divergent(isa, 8) {
                let m = minimize(&a, &b, &p, &i).expect("diverges");
                let n = crate::fuzz::program_len(&m.program);
                assert!(m.diff.is_divergence());
                assert!(has_signature(&a, &b, &m.program, &m.input, &m.signature));
                // The opcode the injected bug miscomputes is still there.
                let xor = if isa == Isa::Ebpf { 0xaf } else { 0xac };
                assert!(opcodes(&m.program).contains(&Some(xor)), "{}", m.signature);
                assert!(
                    n <= 5,
                    "{isa:?}: {} -> {n} instructions: {:?}",
                    crate::fuzz::program_len(&p),
                    m.program
                );
            }
        }
    }

    #[test]
    fn generated_programs_read_only_initialised_memory() {
        for seed in 0..200 {
            for isa in [
                Isa::Classic(Dialect::Bsd),
                Isa::Classic(Dialect::Linux),
                Isa::Ebpf,
            ] {
                let (p, i) = unit(isa, unit_seed(1, seed), 32);
                assert!(reads_initialized(&p, &i), "{isa:?} {seed}: {p:?}");
            }
        }
        use bpfconf_spec::ebpf::Insn;
        // mov r0, 0; r0 = atomic32 fetch-add [r10-16]; exit: reads an unwritten slot.
        let p = Program::Ebpf(bpfconf_engines::EbpfProgram::new(vec![
            Insn::new(0xb7, 0, 0, 0, 0),
            Insn::new(0xc3, 10, 0, -16, 1),
            Insn::new(0x95, 0, 0, 0, 0),
        ]));
        let i = Input::Ebpf(bpfconf_engines::EbpfInput::new(Vec::new()));
        assert!(!reads_initialized(&p, &i));
    }

    #[test]
    fn jumps_are_fixed_when_removing() {
        use bpfconf_spec::cbpf::Insn;
        // jeq #1, +2 (to ret #2) over two loads; remove the first load.
        let p = Program::Classic(bpfconf_engines::ClassicProgram {
            dialect: Dialect::Bsd,
            insns: vec![
                Insn::new(0x15, 2, 0, 1),
                Insn::stmt(0x00, 5),
                Insn::stmt(0x06, 1),
                Insn::stmt(0x06, 2),
            ],
            cop_funcs: 0,
            memwords: 16,
        });
        let Some(Program::Classic(c)) = remove_range(&p, 1, 2) else {
            panic!("removable")
        };
        assert_eq!(c.insns[0], Insn::new(0x15, 1, 0, 1));
        assert!(remove_range(&p, 3, 4).is_none());
    }
}
