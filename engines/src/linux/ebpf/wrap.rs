//! The XDP wrapper around a program under test: code that turns the XDP context into
//! bpf_conformance's calling convention (R1 = memory, R2 = its length), runs the program and
//! stores its full 64-bit R0 in a one-entry array map. Two styles ([`Style`]).
//!
//! # Call style (programs that do not tail-call)
//! The program is a bpf-to-bpf subprogram of the wrapper's main function. Layout for a memory
//! of `n > 0` bytes (slot: instruction):
//!
//! ```text
//!  0: r2 = *(u32 *)(r1 + 0)      xdp_md.data
//!  1: r3 = *(u32 *)(r1 + 4)      xdp_md.data_end
//!  2: r1 = r2
//!  3: r4 = r2
//!  4: r4 += n
//!  5: if r4 > r3 goto 13         the verifier's proof that [data, data + n) is readable
//!  6: r2 = n
//!  7: call pc+7                  the program under test, a subprogram at slot 15
//!  8: r1 = map_value(map, 0)     lddw, BPF_PSEUDO_MAP_VALUE (two slots)
//! 10: *(u64 *)(r1 + 0) = r0
//! 11: r0 = XDP_PASS              "completed"
//! 12: exit
//! 13: r0 = XDP_DROP              "the test run gave fewer than n bytes" (never, see ebpf.rs)
//! 14: exit
//! 15: the program
//! ```
//!
//! For an empty memory slots 0–6 are `r1 = 0; r2 = 0` and there is no failure exit: the
//! program starts at slot 8.
//!
//! # Inline style (programs that call `bpf_tail_call`)
//! `bpf_tail_call` takes the context (`ARG_PTR_TO_CTX`) in R1, which a program entered with
//! R1 = memory does not have, and a tail call replaces the *calling frame*, whose caller then
//! receives the target's return value. So a program that tail-calls is the XDP main function
//! itself, after a prologue that keeps the context in a callee-saved register the program's
//! main function never names (`rC`, the highest free of R9–R6) and sets R1/R2 as above:
//!
//! ```text
//!  0: rC = r1                    the context, for the tail calls
//!  1: r2 = *(u32 *)(r1 + 0)      (n = 0: r1 = 0; r2 = 0 instead of slots 1-7)
//!  2: r3 = *(u32 *)(r1 + 4)
//!  3: r1 = r2
//!  4: r4 = r2
//!  5: r4 += n
//!  6: if r4 > r3 goto DROP
//!  7: r2 = n
//!  8: goto START
//!  DROP: r0 = XDP_DROP; exit     (n > 0 only)
//!  EXIT: r1 = map_value(map, 0); *(u64 *)(r1 + 0) = r0; r0 = XDP_PASS; exit
//!  TC k: r1 = rC; call bpf_tail_call; goto (the slot after the k-th tail call)
//!  START: the program, with every `exit` of its main function replaced by `goto EXIT` and
//!         every `call bpf_tail_call` by `goto TC k`
//! ```
//!
//! The program's slots keep their relative positions, so nothing inside it needs relocating;
//! the `goto`s are `ja` (or `gotol`, `ja32`, when 16 bits do not reach). A successful tail
//! call never comes back: the target's own `EXIT` stores *its* R0 and returns from the run.
//! A failed one continues after the call with R0–R5 unreadable, as the original would.
//! Observable limits, checked by [`shape`] before loading: `bpf_tail_call` only in the main
//! function (a subprogram has no free register the context could arrive in) and one of R6–R9
//! unused there; the R1 a program passes to `bpf_tail_call` is ignored (replaced with the
//! context).
//!
//! # Relocation
//! The program is moved as one block, so everything in it that is relative to its own slots
//! stays valid: jump offsets (`off`, and `imm` of `ja32`), `call` to a local function
//! (`src` = `BPF_PSEUDO_CALL`, `imm` relative to the next slot) and `lddw` of a function
//! address (`src` = `BPF_PSEUDO_FUNC`, also relative). eBPF has no absolute instruction
//! references in the instruction stream itself; the absolute ones live outside it (BTF
//! `func_info`/`line_info`, and the instruction-array maps of indirect jumps), which this
//! engine never passes. A jump that left the original program (before its first or after its
//! last slot) now lands in the wrapper or past the end; the verifier rejects both (it checks
//! that jumps stay inside their subprogram), as it rejected the original.
//! The verifier log numbers slots of the wrapped program: subtract [`Wrapped::prologue`].
//!
//! # Map references
//! [`patch_maps`] replaces the map *index* of `lddw` with `src` 1 (`BPF_PSEUDO_MAP_FD`) or 2
//! (`BPF_PSEUDO_MAP_VALUE`) with the map's descriptor; `src` 5 and 6 (`_IDX`, `_IDX_VALUE`)
//! already index the load's `fd_array`, which holds the maps in order. An index past the
//! program's maps is a rejection (the kernel would refuse the descriptor).

use bpfconf_spec::ebpf::{alu, class, jmp, mode, pseudo, size, source, Insn};
use std::os::fd::RawFd;

/// XDP verdict the wrapper returns after storing R0.
pub const XDP_PASS: u32 = 2;
/// XDP verdict of the wrapper's failure exit (memory shorter than the program was built for).
pub const XDP_DROP: u32 = 1;
/// `BPF_FUNC_tail_call`.
pub const TAIL_CALL: i32 = 12;
/// `BPF_PSEUDO_FUNC`: `lddw` of a subprogram's address.
const PSEUDO_FUNC: u8 = 4;
/// `BPF_PSEUDO_MAP_IDX` and `BPF_PSEUDO_MAP_IDX_VALUE`: map by `fd_array` index.
const MAP_IDX: u8 = 5;
const MAP_IDX_VALUE: u8 = 6;

/// How the program sits in the XDP program (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Called as a subprogram of the wrapper.
    Call,
    /// The XDP main function itself; the context is kept in register `ctx`.
    Inline {
        /// The callee-saved register holding the context.
        ctx: u8,
    },
}

/// What the wrapper needs to know about a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The style.
    pub style: Style,
    /// Slots of the main function: those before the first subprogram.
    pub main_end: usize,
    /// Slots of the `call bpf_tail_call` instructions (all in the main function).
    pub tail_calls: Vec<usize>,
    /// Whether the program calls helper `id` anywhere.
    helpers: Vec<i32>,
}

impl Shape {
    /// Whether the program calls the helper with this id.
    pub fn calls(&self, id: i32) -> bool {
        self.helpers.contains(&id)
    }
}

fn is_helper_call(i: &Insn) -> bool {
    i.code == class::JMP | jmp::CALL && i.src == 0
}

/// The slots where instructions start (the second half of an `lddw` is skipped).
fn starts(insns: &[Insn]) -> impl Iterator<Item = usize> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let at = i;
        let insn = insns.get(at)?;
        i += if insn.is_lddw() { 2 } else { 1 };
        Some(at)
    })
}

/// Analyses a program; `Err` is why the kernel engine cannot run it.
pub fn shape(insns: &[Insn]) -> Result<Shape, String> {
    // Subprograms start where a local call or a function address points (as the verifier's
    // add_subprog_and_kfunc finds them); targets outside the program are the verifier's to
    // refuse.
    let mut main_end = insns.len();
    let mut helpers = Vec::new();
    for at in starts(insns) {
        let i = &insns[at];
        let local_call = i.code == class::JMP | jmp::CALL && i.src == pseudo::CALL;
        let func_addr = i.is_lddw() && i.src == PSEUDO_FUNC;
        if local_call || func_addr {
            let target = at as i64 + i64::from(i.imm) + 1;
            if (1..insns.len() as i64).contains(&target) {
                main_end = main_end.min(target as usize);
            }
        }
        if is_helper_call(i) && !helpers.contains(&i.imm) {
            helpers.push(i.imm);
        }
    }
    // Only a well-formed call is replaced; one with reserved fields set stays for the verifier
    // to refuse.
    let tail_calls: Vec<usize> = starts(insns)
        .filter(|&at| insns[at] == Insn::new(class::JMP | jmp::CALL, 0, 0, 0, TAIL_CALL))
        .collect();
    if let Some(&at) = tail_calls.iter().find(|&&at| at >= main_end) {
        return Err(format!(
            "bpf_tail_call in a subprogram (slot {at}): the kernel engine can pass the context \
             only in the main function"
        ));
    }
    let style = if tail_calls.is_empty() {
        Style::Call
    } else {
        let named = |r: u8| {
            starts(insns)
                .take_while(|&at| at < main_end)
                .any(|at| insns[at].dst == r || insns[at].src == r)
        };
        match (6..=9).rev().find(|&r| !named(r)) {
            Some(ctx) => Style::Inline { ctx },
            None => {
                return Err(
                    "the main function of a program that tail-calls names all of R6-R9: \
                     the kernel engine keeps the context in one of them"
                        .into(),
                )
            }
        }
    };
    Ok(Shape {
        style,
        main_end,
        tail_calls,
        helpers,
    })
}

/// Replaces map indices in `lddw` with descriptors (module documentation); `Err` names the
/// first reference to a map the program does not have.
pub fn patch_maps(insns: &mut [Insn], fds: &[RawFd]) -> Result<(), String> {
    for at in starts(insns).collect::<Vec<_>>() {
        let i = &mut insns[at];
        if !i.is_lddw() {
            continue;
        }
        if ![pseudo::MAP_FD, pseudo::MAP_VALUE, MAP_IDX, MAP_IDX_VALUE].contains(&i.src) {
            continue;
        }
        let fd = usize::try_from(i.imm).ok().and_then(|idx| fds.get(idx));
        match fd {
            Some(&fd) if i.src == pseudo::MAP_FD || i.src == pseudo::MAP_VALUE => i.imm = fd,
            Some(_) => {}
            None => {
                return Err(format!(
                    "slot {at}: lddw (src {}) refers to map {}, the program has {} map(s)",
                    i.src,
                    i.imm,
                    fds.len()
                ))
            }
        }
    }
    Ok(())
}

fn mov_k(dst: u8, imm: i32) -> Insn {
    Insn::new(class::ALU64 | alu::MOV | source::K, dst, 0, 0, imm)
}

fn mov_x(dst: u8, src: u8) -> Insn {
    Insn::new(class::ALU64 | alu::MOV | source::X, dst, src, 0, 0)
}

fn ldxw(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(class::LDX | mode::MEM | size::W, dst, src, off, 0)
}

fn exit() -> Insn {
    Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0)
}

/// An unconditional jump from slot `from` to slot `to`: `ja` when the offset fits 16 bits,
/// else `gotol`.
fn goto(from: usize, to: usize) -> Insn {
    let off = to as i64 - from as i64 - 1;
    match i16::try_from(off) {
        Ok(off) => Insn::new(class::JMP | jmp::JA, 0, 0, off, 0),
        Err(_) => Insn::new(class::JMP32 | jmp::JA, 0, 0, 0, off as i32),
    }
}

/// `r1 = map_value(map, 0)`: two slots.
fn result_value(map: RawFd) -> [Insn; 2] {
    [
        Insn::new(
            class::LD | mode::IMM | size::DW,
            1,
            pseudo::MAP_VALUE,
            0,
            map,
        ),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// A wrapped program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The slots to load.
    pub insns: Vec<Insn>,
    /// Wrapper slots before the program's first slot.
    pub prologue: usize,
}

/// The memory-setup slots shared by both styles: R1 = data, R2 = n, with the bounds check
/// jumping `drop_off` slots past itself.
fn setup(w: &mut Vec<Insn>, n: i32, drop_off: i16) {
    if n == 0 {
        w.push(mov_k(1, 0));
        w.push(mov_k(2, 0));
    } else {
        w.push(ldxw(2, 1, 0));
        w.push(ldxw(3, 1, 4));
        w.push(mov_x(1, 2));
        w.push(mov_x(4, 2));
        w.push(Insn::new(class::ALU64 | alu::ADD | source::K, 4, 0, 0, n));
        w.push(Insn::new(
            class::JMP | jmp::JGT | source::X,
            4,
            3,
            drop_off,
            0,
        ));
        w.push(mov_k(2, n));
    }
}

/// The wrapped program for a memory of `mem_len` bytes (at most `MAX_PACKET_OFF` = 0xffff),
/// storing R0 into the single value of array map `map`. `program` has its maps patched.
pub fn wrap(program: &[Insn], shape: &Shape, mem_len: usize, map: RawFd) -> Wrapped {
    let n = i32::try_from(mem_len).expect("memory length checked by the caller");
    match shape.style {
        Style::Call => wrap_call(program, n, map),
        Style::Inline { ctx } => wrap_inline(program, shape, n, map, ctx),
    }
}

fn wrap_call(program: &[Insn], n: i32, map: RawFd) -> Wrapped {
    let prologue = if n == 0 { 8 } else { 15 };
    let mut w = Vec::with_capacity(prologue + program.len());
    // The failure exit is 8 slots after the bounds check's successor.
    setup(&mut w, n, 7);
    let call_at = w.len();
    w.push(Insn::new(
        class::JMP | jmp::CALL,
        0,
        pseudo::CALL,
        0,
        prologue as i32 - call_at as i32 - 1,
    ));
    w.extend(result_value(map));
    w.push(Insn::new(class::STX | mode::MEM | size::DW, 1, 0, 0, 0));
    w.push(mov_k(0, XDP_PASS as i32));
    w.push(exit());
    if n != 0 {
        w.push(mov_k(0, XDP_DROP as i32));
        w.push(exit());
    }
    debug_assert_eq!(w.len(), prologue);
    w.extend_from_slice(program);
    Wrapped { insns: w, prologue }
}

fn wrap_inline(program: &[Insn], shape: &Shape, n: i32, map: RawFd, ctx: u8) -> Wrapped {
    // Slots: rC = r1, setup (2 or 7), goto START, [DROP: 2], EXIT: 5, 3 per tail call.
    let setup_len = if n == 0 { 2 } else { 7 };
    let goto_at = 1 + setup_len;
    let drop_at = goto_at + 1;
    let exit_at = drop_at + if n == 0 { 0 } else { 2 };
    let stubs_at = exit_at + 5;
    let prologue = stubs_at + 3 * shape.tail_calls.len();
    let mut w = Vec::with_capacity(prologue + program.len());
    w.push(mov_x(ctx, 1));
    // The bounds check sits just before `r2 = n` and `goto START`: DROP is 2 slots further.
    setup(&mut w, n, 2);
    w.push(goto(goto_at, prologue));
    if n != 0 {
        w.push(mov_k(0, XDP_DROP as i32));
        w.push(exit());
    }
    debug_assert_eq!(w.len(), exit_at);
    w.extend(result_value(map));
    w.push(Insn::new(class::STX | mode::MEM | size::DW, 1, 0, 0, 0));
    w.push(mov_k(0, XDP_PASS as i32));
    w.push(exit());
    for &site in &shape.tail_calls {
        w.push(mov_x(1, ctx));
        w.push(Insn::new(class::JMP | jmp::CALL, 0, 0, 0, TAIL_CALL));
        let at = w.len();
        w.push(goto(at, prologue + site + 1));
    }
    debug_assert_eq!(w.len(), prologue);
    w.extend_from_slice(program);
    for at in starts(program).take_while(|&at| at < shape.main_end) {
        let slot = prologue + at;
        if program[at] == exit() {
            w[slot] = goto(slot, exit_at);
        }
    }
    for (k, &site) in shape.tail_calls.iter().enumerate() {
        let slot = prologue + site;
        w[slot] = goto(slot, stubs_at + 3 * k);
    }
    Wrapped { insns: w, prologue }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: i32) -> Insn {
        Insn::new(class::JMP | jmp::CALL, 0, 0, 0, id)
    }

    fn target(w: &[Insn], at: usize) -> usize {
        let i = &w[at];
        let off = if i.code == class::JMP32 | jmp::JA {
            i.imm as i64
        } else {
            i.off as i64
        };
        (at as i64 + 1 + off) as usize
    }

    #[test]
    fn call_layout() {
        let prog = [mov_k(0, 7), exit()];
        let s = shape(&prog).unwrap();
        assert_eq!(s.style, Style::Call);
        for n in [0usize, 1, 64] {
            let Wrapped {
                insns: w,
                prologue: p,
            } = wrap(&prog, &s, n, 9);
            assert_eq!(p, if n == 0 { 8 } else { 15 });
            assert_eq!(w.len(), p + 2);
            assert_eq!(&w[p..], &prog);
            let call = w
                .iter()
                .position(|i| i.code == class::JMP | jmp::CALL)
                .unwrap();
            assert_eq!(call as i32 + 1 + w[call].imm, p as i32);
            let lddw = &w[call + 1];
            assert!(lddw.is_lddw() && lddw.src == pseudo::MAP_VALUE && lddw.imm == 9);
            if n > 0 {
                let jgt = &w[5];
                assert_eq!(6 + jgt.off as usize, 13);
                assert_eq!(w[13], mov_k(0, XDP_DROP as i32));
            }
        }
    }

    #[test]
    fn inline_layout() {
        // 0: r1 = 5 (ignored); 1: tail call; 2: if r0.. no: r0 = 1; 3: exit; 4: call local;
        // the subprogram at 6 has its own exit, which stays.
        let prog = [
            mov_k(1, 5),
            call(TAIL_CALL),
            Insn::new(class::JMP | jmp::CALL, 0, pseudo::CALL, 0, 2),
            mov_k(0, 1),
            exit(),
            mov_k(0, 2),
            exit(),
        ];
        let s = shape(&prog).unwrap();
        assert_eq!(s.main_end, 5);
        assert_eq!(s.tail_calls, vec![1]);
        assert_eq!(s.style, Style::Inline { ctx: 9 });
        for n in [0usize, 20] {
            let Wrapped {
                insns: w,
                prologue: p,
            } = wrap(&prog, &s, n, 9);
            assert_eq!(w[0], mov_x(9, 1));
            // goto START
            let goto_at = if n == 0 { 3 } else { 8 };
            assert_eq!(target(&w, goto_at), p);
            if n > 0 {
                assert_eq!(7 + w[6].off as usize, 9);
                assert_eq!(w[9], mov_k(0, XDP_DROP as i32));
            }
            // The tail call goes to its stub, which comes back after it.
            let stub = target(&w, p + 1);
            assert_eq!(w[stub], mov_x(1, 9));
            assert_eq!(w[stub + 1], call(TAIL_CALL));
            assert_eq!(target(&w, stub + 2), p + 2);
            // The main function's exit stores R0; the subprogram's stays an exit.
            let ex = target(&w, p + 4);
            assert!(w[ex].is_lddw() && w[ex].src == pseudo::MAP_VALUE);
            assert_eq!(
                w[ex + 2],
                Insn::new(class::STX | mode::MEM | size::DW, 1, 0, 0, 0)
            );
            assert_eq!(w[ex + 4], exit());
            assert_eq!(w[p + 6], exit());
            assert_eq!(&w[p + 2..p + 4], &prog[2..4]);
        }
    }

    #[test]
    fn far_jumps_use_gotol() {
        let mut prog = vec![call(TAIL_CALL)];
        prog.extend(std::iter::repeat_n(mov_k(0, 0), 40_000));
        prog.push(exit());
        let s = shape(&prog).unwrap();
        let Wrapped {
            insns: w,
            prologue: p,
        } = wrap(&prog, &s, 0, 3);
        let last = p + prog.len() - 1;
        assert_eq!(w[last].code, class::JMP32 | jmp::JA);
        assert!(w[target(&w, last)].is_lddw());
    }

    #[test]
    fn unsupported_tail_calls() {
        // In a subprogram.
        let prog = [
            Insn::new(class::JMP | jmp::CALL, 0, pseudo::CALL, 0, 1),
            exit(),
            call(TAIL_CALL),
            mov_k(0, 0),
            exit(),
        ];
        assert!(shape(&prog).unwrap_err().contains("subprogram (slot 2)"));
        // R6-R9 all named.
        let prog = [
            mov_k(6, 0),
            mov_k(7, 0),
            mov_x(0, 8),
            mov_x(9, 0),
            call(TAIL_CALL),
            mov_k(0, 0),
            exit(),
        ];
        assert!(shape(&prog).unwrap_err().contains("R6-R9"));
        let mut ok = prog;
        ok[0] = mov_k(5, 0);
        assert_eq!(shape(&ok).unwrap().style, Style::Inline { ctx: 6 });
    }

    #[test]
    fn maps_are_patched() {
        let lddw = |src, imm| Insn::new(class::LD | mode::IMM | size::DW, 1, src, 0, imm);
        let mut p = [
            lddw(1, 1),
            Insn::default(),
            lddw(2, 0),
            Insn::new(0, 0, 0, 0, 8),
            lddw(5, 1),
            Insn::default(),
            // A plain lddw whose high half looks like a map lddw is not a map reference.
            lddw(0, 0),
            lddw(1, 7),
            exit(),
        ];
        patch_maps(&mut p, &[30, 31]).unwrap();
        assert_eq!((p[0].imm, p[2].imm, p[3].imm, p[4].imm), (31, 30, 8, 1));
        assert_eq!(p[7].imm, 7);
        let mut bad = [lddw(1, 2), Insn::default(), exit()];
        assert!(patch_maps(&mut bad, &[30, 31])
            .unwrap_err()
            .contains("refers to map 2"));
        let mut bad = [lddw(6, -1), Insn::default(), exit()];
        assert!(patch_maps(&mut bad, &[]).is_err());
    }
}
