//! The eBPF ISA table: one [`IsaRow`] per distinct instruction form of RFC 9669, plus the
//! `callx` form bpf_conformance tests, with its conformance group, CPU version and mnemonic.
//!
//! A *form* is an opcode plus whatever other field selects the operation: `src` for the 64-bit
//! immediate loads (RFC 9669 §5.4, kinds 0–6) and for the three call kinds (§4.3.1), `off` for
//! signed division/modulo (`off = 1`) and for `MOVSX` (`off = 8/16/32`), `imm` for byte swaps
//! (width 16/32/64) and atomics (operation code, §5.3). Every other field of a row is either a
//! register, a free value, or unused — and unused fields must be zero (RFC 9669 §3.1:
//! "Unused fields shall be cleared to zero"); [`Uses`] says which.
//!
//! # Conformance groups (RFC 9669 §2.4)
//!
//! `base32` unless noted; `ALU64` rows, `JMP` conditional jumps and every `DW`-sized load or store
//! (including all `lddw` kinds) are `base64`; `MUL`/`DIV`/`SDIV`/`MOD`/`SMOD` are `divmul32`
//! (`ALU`) or `divmul64` (`ALU64`); byte swaps of width 64 are `base64`, narrower ones `base32`
//! (even the `ALU64`-class `bswap16/32`); `JA`, `CALL` and `EXIT` are `base32` in both jump
//! classes; `{ATOMIC, W, STX}` is `atomic32`, `{ATOMIC, DW, STX}` `atomic64`; the legacy
//! `ABS`/`IND` loads are `packet`. `callx` (`JMP|CALL|X`, register in `dst`) is not in RFC 9669;
//! bpf_conformance puts it in its own `callx` group, and so do we. The sign-extending loads
//! (`MEMSX`, sizes B/H/W) fall under the general rule (`base32`).
//!
//! # CPU versions
//!
//! As LLVM's `-mcpu` levels (BPFSubtarget.cpp): v1 is the original set; v2 adds the 64-bit
//! `JLT/JLE/JSLT/JSLE` ("jmp-ext"); v3 adds the `JMP32` class; v4 adds `MEMSX` loads, `MOVSX`,
//! `SDIV/SMOD`, `bswap` and `ja32` ("gotol"). Where LLVM has no opinion we follow bpf_conformance's
//! own labels (`src/opcode_names.h`): all atomics, `call local` and the BTF-id call are v3;
//! `callx`, the `lddw` kinds and the packet loads are v1.
//!
//! # Mnemonics
//!
//! [`IsaRow::mnemonic`] is bpf_conformance's assembler syntax (`add32`, `lock fetch add`,
//! `call local`, `call runtime`, `movsx832`, `bswap16`, …). bpf_conformance has no syntax for the
//! legacy packet loads nor for `lddw` with `src != 0`; for those rows the mnemonic is a bpfconf
//! extension (`ldabsw`, `ldindb`, `lddw_map_fd`, …) documented in [`super::asm`].

#[cfg(test)]
mod tests;

use super::Insn;
use std::fmt;
use std::sync::OnceLock;

/// A conformance group (RFC 9669 §2.4, IANA "BPF Instruction Conformance Groups"), plus
/// bpf_conformance's `callx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// 32-bit base instructions (mandatory).
    Base32,
    /// 64-bit base instructions; includes `base32`.
    Base64,
    /// 32-bit atomics.
    Atomic32,
    /// 64-bit atomics; includes `atomic32`.
    Atomic64,
    /// 32-bit multiplication, division and modulo.
    Divmul32,
    /// 64-bit multiplication, division and modulo; includes `divmul32`.
    Divmul64,
    /// Legacy packet access (historical).
    Packet,
    /// Call by register (`JMP|CALL|X`): bpf_conformance's group, not in RFC 9669.
    Callx,
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 8] = [
        Group::Base32,
        Group::Base64,
        Group::Atomic32,
        Group::Atomic64,
        Group::Divmul32,
        Group::Divmul64,
        Group::Packet,
        Group::Callx,
    ];

    /// The group's label, as RFC 9669 and bpf_conformance spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Group::Base32 => "base32",
            Group::Base64 => "base64",
            Group::Atomic32 => "atomic32",
            Group::Atomic64 => "atomic64",
            Group::Divmul32 => "divmul32",
            Group::Divmul64 => "divmul64",
            Group::Packet => "packet",
            Group::Callx => "callx",
        }
    }

    /// Looks a group up by its label.
    pub fn from_name(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == name)
    }

    /// True when supporting `self` means supporting every instruction of `other`
    /// (a group includes itself; `base64` includes `base32`, and so on).
    pub const fn includes(self, other: Group) -> bool {
        matches!(
            (self, other),
            (Group::Base32, Group::Base32)
                | (Group::Base64, Group::Base32 | Group::Base64)
                | (Group::Atomic32, Group::Atomic32)
                | (Group::Atomic64, Group::Atomic32 | Group::Atomic64)
                | (Group::Divmul32, Group::Divmul32)
                | (Group::Divmul64, Group::Divmul32 | Group::Divmul64)
                | (Group::Packet, Group::Packet)
                | (Group::Callx, Group::Callx)
        )
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The field, besides the opcode, whose value selects a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sel {
    /// The opcode alone selects the row.
    None,
    /// `src` must hold this value (`lddw` kinds, call kinds).
    Src(u8),
    /// `off` must hold this value (`DIV`/`MOD` 0, `SDIV`/`SMOD` 1, `MOV` 0, `MOVSX` 8/16/32).
    Off(i16),
    /// `imm` must hold this value (byte-swap width, atomic operation).
    Imm(i32),
}

/// The operand shape of a row: which fields carry what, and how the row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// `op dst, imm`.
    AluK,
    /// `op dst, src`.
    AluX,
    /// `neg dst`.
    Neg,
    /// `le16 dst` and friends; the width is in `imm`.
    End,
    /// `ldx dst, [src+off]`.
    Ldx,
    /// `st [dst+off], imm`.
    St,
    /// `stx [dst+off], src`.
    Stx,
    /// `lock op [dst+off], src`; the operation is in `imm`.
    Atomic,
    /// Wide `lddw dst, imm64` (two slots); the kind is in `src`.
    Lddw,
    /// `jop dst, imm, target` (target in `off`).
    JmpK,
    /// `jop dst, src, target` (target in `off`).
    JmpX,
    /// `ja target` (target in `off`).
    Ja,
    /// `ja32 target` (target in `imm`).
    Ja32,
    /// `call imm` (helper id or BTF id; kind in `src`).
    Call,
    /// `call local target` (target in `imm`).
    CallLocal,
    /// `call %rN` (register in `dst`).
    Callx,
    /// `exit`.
    Exit,
    /// Legacy `ldabs imm` (implicit R6 context, result in R0).
    LdAbs,
    /// Legacy `ldind src, imm`.
    LdInd,
}

/// How an instruction field is used by a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// Unused: must be zero.
    Zero,
    /// A register number (0–10).
    Reg,
    /// Any value (an immediate, an offset or a jump displacement).
    Any,
    /// Must equal the row's selector ([`Sel`]).
    Sel,
}

/// How each field of an instruction is used by a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uses {
    /// `dst`.
    pub dst: Use,
    /// `src`.
    pub src: Use,
    /// `off`.
    pub off: Use,
    /// `imm`.
    pub imm: Use,
}

/// One instruction form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IsaRow {
    /// Stable name (`alu64_add_k`, `alu_sdiv_x`, `atomic64_cmpxchg`, `lddw`, `call_local`, …).
    pub name: &'static str,
    /// Mnemonic in bpf_conformance's syntax (bpfconf extension where it has none).
    pub mnemonic: &'static str,
    /// Opcode byte.
    pub code: u8,
    /// Field that, with the opcode, selects this row.
    pub sel: Sel,
    /// Operand shape.
    pub form: Form,
    /// Conformance group.
    pub group: Group,
    /// CPU version (1–4) that introduced the form.
    pub version: u8,
}

impl IsaRow {
    /// How each field is used.
    pub const fn uses(&self) -> Uses {
        use Use::{Any, Reg, Zero};
        let (dst, src, off, imm) = match self.form {
            Form::AluK | Form::Lddw => (Reg, Zero, Zero, Any),
            Form::AluX => (Reg, Reg, Zero, Zero),
            Form::Ldx | Form::Stx | Form::Atomic => (Reg, Reg, Any, Zero),
            Form::Neg | Form::End => (Reg, Zero, Zero, Zero),
            Form::St | Form::JmpK => (Reg, Zero, Any, Any),
            Form::JmpX => (Reg, Reg, Any, Zero),
            Form::Ja => (Zero, Zero, Any, Zero),
            Form::Ja32 | Form::Call | Form::CallLocal | Form::LdAbs => (Zero, Zero, Zero, Any),
            Form::Callx => (Reg, Zero, Zero, Zero),
            Form::Exit => (Zero, Zero, Zero, Zero),
            Form::LdInd => (Zero, Reg, Zero, Any),
        };
        let mut u = Uses { dst, src, off, imm };
        match self.sel {
            Sel::None => {}
            Sel::Src(_) => u.src = Use::Sel,
            Sel::Off(_) => u.off = Use::Sel,
            Sel::Imm(_) => u.imm = Use::Sel,
        }
        u
    }

    /// True when the opcode and the selecting field match this row (other fields unchecked).
    pub const fn selects(&self, insn: &Insn) -> bool {
        insn.code == self.code
            && match self.sel {
                Sel::None => true,
                Sel::Src(s) => insn.src == s,
                Sel::Off(o) => insn.off == o,
                Sel::Imm(i) => insn.imm == i,
            }
    }

    /// True when the row selects `insn` and every unused field of `insn` is zero
    /// (registers are not range-checked: any 4-bit value is accepted here).
    pub const fn fits(&self, insn: &Insn) -> bool {
        let u = self.uses();
        self.selects(insn)
            && (!matches!(u.dst, Use::Zero) || insn.dst == 0)
            && (!matches!(u.src, Use::Zero) || insn.src == 0)
            && (!matches!(u.off, Use::Zero) || insn.off == 0)
            && (!matches!(u.imm, Use::Zero) || insn.imm == 0)
    }

    /// True for the wide (two-slot) `lddw` forms.
    pub const fn is_wide(&self) -> bool {
        matches!(self.form, Form::Lddw)
    }

    /// True when the instruction writes its `dst` register.
    pub const fn writes_dst(&self) -> bool {
        matches!(
            self.form,
            Form::AluK | Form::AluX | Form::Neg | Form::End | Form::Ldx | Form::Lddw
        )
    }

    /// True for atomics that write the old value back into `src` (`FETCH` variants and `XCHG`).
    pub const fn writes_src(&self) -> bool {
        matches!(self.form, Form::Atomic)
            && matches!(self.sel, Sel::Imm(i) if i & super::atomic::FETCH != 0 && i != super::atomic::CMPXCHG)
    }

    /// The slot a jump or local call at `pc` transfers to (`pc + 1 + displacement`), for the
    /// rows that jump; `None` for the others. May lie outside the program.
    pub const fn jump_target(&self, insn: &Insn, pc: usize) -> Option<i64> {
        let disp = match self.form {
            Form::JmpK | Form::JmpX | Form::Ja => insn.off as i64,
            Form::Ja32 | Form::CallLocal => insn.imm as i64,
            _ => return None,
        };
        Some(pc as i64 + 1 + disp)
    }

    /// True for the rows after which control never falls through (`exit`, `ja`, `ja32`).
    pub const fn is_terminator(&self) -> bool {
        matches!(self.form, Form::Exit | Form::Ja | Form::Ja32)
    }
}

/// Looks a row up by its stable name.
pub fn row_by_name(name: &str) -> Option<&'static IsaRow> {
    ISA.iter().find(|r| r.name == name)
}

/// The rows sharing an opcode, indexed once.
fn by_code() -> &'static [Vec<&'static IsaRow>] {
    static INDEX: OnceLock<Vec<Vec<&'static IsaRow>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut v = vec![Vec::new(); 256];
        for r in ISA {
            v[r.code as usize].push(r);
        }
        v
    })
}

/// True when some row uses this opcode (whatever the other fields hold).
pub fn opcode_known(code: u8) -> bool {
    !by_code()[code as usize].is_empty()
}

/// The row a single slot belongs to, judged by its opcode and selecting field only (unused
/// fields and register numbers are [`super::validate`]'s business). The caller must know the
/// slot is not the second half of an `lddw`; see [`classify`].
pub fn classify_insn(insn: &Insn) -> Option<&'static IsaRow> {
    by_code()[insn.code as usize]
        .iter()
        .copied()
        .find(|r| r.selects(insn))
}

/// Marks which slots start an instruction: every slot except the one after an `lddw` opcode
/// (that slot belongs to the `lddw`, whatever it holds).
pub fn slot_starts(prog: &[Insn]) -> Vec<bool> {
    let mut starts = vec![false; prog.len()];
    let mut pc = 0;
    while pc < prog.len() {
        starts[pc] = true;
        pc += if prog[pc].is_lddw() { 2 } else { 1 };
    }
    starts
}

/// The row of the instruction starting at `pc`, or `None` when `pc` is out of range, is the
/// second slot of an `lddw`, or holds no known form.
pub fn classify(prog: &[Insn], pc: usize) -> Option<&'static IsaRow> {
    if pc >= prog.len() {
        return None;
    }
    let mut i = 0;
    while i < pc {
        i += if prog[i].is_lddw() { 2 } else { 1 };
    }
    if i != pc {
        return None;
    }
    classify_insn(&prog[pc])
}

const fn row(
    name: &'static str,
    mnemonic: &'static str,
    code: u8,
    sel: Sel,
    form: Form,
    group: Group,
    version: u8,
) -> IsaRow {
    IsaRow {
        name,
        mnemonic,
        code,
        sel,
        form,
        group,
        version,
    }
}

use Group::{Atomic32, Atomic64, Base32, Base64, Callx, Divmul32, Divmul64, Packet};

/// Every instruction form: 170 from RFC 9669 plus bpf_conformance's `callx`. Columns: name,
/// mnemonic, opcode, selector, form, group, CPU version.
#[rustfmt::skip]
pub const ISA: &[IsaRow] = &[
    row("alu_add_k", "add32", 0x04, Sel::None, Form::AluK, Base32, 1),
    row("alu_add_x", "add32", 0x0c, Sel::None, Form::AluX, Base32, 1),
    row("alu_sub_k", "sub32", 0x14, Sel::None, Form::AluK, Base32, 1),
    row("alu_sub_x", "sub32", 0x1c, Sel::None, Form::AluX, Base32, 1),
    row("alu_mul_k", "mul32", 0x24, Sel::None, Form::AluK, Divmul32, 1),
    row("alu_mul_x", "mul32", 0x2c, Sel::None, Form::AluX, Divmul32, 1),
    row("alu_div_k", "div32", 0x34, Sel::Off(0), Form::AluK, Divmul32, 1),
    row("alu_div_x", "div32", 0x3c, Sel::Off(0), Form::AluX, Divmul32, 1),
    row("alu_sdiv_k", "sdiv32", 0x34, Sel::Off(1), Form::AluK, Divmul32, 4),
    row("alu_sdiv_x", "sdiv32", 0x3c, Sel::Off(1), Form::AluX, Divmul32, 4),
    row("alu_or_k", "or32", 0x44, Sel::None, Form::AluK, Base32, 1),
    row("alu_or_x", "or32", 0x4c, Sel::None, Form::AluX, Base32, 1),
    row("alu_and_k", "and32", 0x54, Sel::None, Form::AluK, Base32, 1),
    row("alu_and_x", "and32", 0x5c, Sel::None, Form::AluX, Base32, 1),
    row("alu_lsh_k", "lsh32", 0x64, Sel::None, Form::AluK, Base32, 1),
    row("alu_lsh_x", "lsh32", 0x6c, Sel::None, Form::AluX, Base32, 1),
    row("alu_rsh_k", "rsh32", 0x74, Sel::None, Form::AluK, Base32, 1),
    row("alu_rsh_x", "rsh32", 0x7c, Sel::None, Form::AluX, Base32, 1),
    row("alu_neg", "neg32", 0x84, Sel::None, Form::Neg, Base32, 1),
    row("alu_mod_k", "mod32", 0x94, Sel::Off(0), Form::AluK, Divmul32, 1),
    row("alu_mod_x", "mod32", 0x9c, Sel::Off(0), Form::AluX, Divmul32, 1),
    row("alu_smod_k", "smod32", 0x94, Sel::Off(1), Form::AluK, Divmul32, 4),
    row("alu_smod_x", "smod32", 0x9c, Sel::Off(1), Form::AluX, Divmul32, 4),
    row("alu_xor_k", "xor32", 0xa4, Sel::None, Form::AluK, Base32, 1),
    row("alu_xor_x", "xor32", 0xac, Sel::None, Form::AluX, Base32, 1),
    row("alu_mov_k", "mov32", 0xb4, Sel::None, Form::AluK, Base32, 1),
    row("alu_mov_x", "mov32", 0xbc, Sel::Off(0), Form::AluX, Base32, 1),
    row("alu_movsx8_x", "movsx832", 0xbc, Sel::Off(8), Form::AluX, Base32, 4),
    row("alu_movsx16_x", "movsx1632", 0xbc, Sel::Off(16), Form::AluX, Base32, 4),
    row("alu_arsh_k", "arsh32", 0xc4, Sel::None, Form::AluK, Base32, 1),
    row("alu_arsh_x", "arsh32", 0xcc, Sel::None, Form::AluX, Base32, 1),
    row("alu64_add_k", "add", 0x07, Sel::None, Form::AluK, Base64, 1),
    row("alu64_add_x", "add", 0x0f, Sel::None, Form::AluX, Base64, 1),
    row("alu64_sub_k", "sub", 0x17, Sel::None, Form::AluK, Base64, 1),
    row("alu64_sub_x", "sub", 0x1f, Sel::None, Form::AluX, Base64, 1),
    row("alu64_mul_k", "mul", 0x27, Sel::None, Form::AluK, Divmul64, 1),
    row("alu64_mul_x", "mul", 0x2f, Sel::None, Form::AluX, Divmul64, 1),
    row("alu64_div_k", "div", 0x37, Sel::Off(0), Form::AluK, Divmul64, 1),
    row("alu64_div_x", "div", 0x3f, Sel::Off(0), Form::AluX, Divmul64, 1),
    row("alu64_sdiv_k", "sdiv", 0x37, Sel::Off(1), Form::AluK, Divmul64, 4),
    row("alu64_sdiv_x", "sdiv", 0x3f, Sel::Off(1), Form::AluX, Divmul64, 4),
    row("alu64_or_k", "or", 0x47, Sel::None, Form::AluK, Base64, 1),
    row("alu64_or_x", "or", 0x4f, Sel::None, Form::AluX, Base64, 1),
    row("alu64_and_k", "and", 0x57, Sel::None, Form::AluK, Base64, 1),
    row("alu64_and_x", "and", 0x5f, Sel::None, Form::AluX, Base64, 1),
    row("alu64_lsh_k", "lsh", 0x67, Sel::None, Form::AluK, Base64, 1),
    row("alu64_lsh_x", "lsh", 0x6f, Sel::None, Form::AluX, Base64, 1),
    row("alu64_rsh_k", "rsh", 0x77, Sel::None, Form::AluK, Base64, 1),
    row("alu64_rsh_x", "rsh", 0x7f, Sel::None, Form::AluX, Base64, 1),
    row("alu64_neg", "neg", 0x87, Sel::None, Form::Neg, Base64, 1),
    row("alu64_mod_k", "mod", 0x97, Sel::Off(0), Form::AluK, Divmul64, 1),
    row("alu64_mod_x", "mod", 0x9f, Sel::Off(0), Form::AluX, Divmul64, 1),
    row("alu64_smod_k", "smod", 0x97, Sel::Off(1), Form::AluK, Divmul64, 4),
    row("alu64_smod_x", "smod", 0x9f, Sel::Off(1), Form::AluX, Divmul64, 4),
    row("alu64_xor_k", "xor", 0xa7, Sel::None, Form::AluK, Base64, 1),
    row("alu64_xor_x", "xor", 0xaf, Sel::None, Form::AluX, Base64, 1),
    row("alu64_mov_k", "mov", 0xb7, Sel::None, Form::AluK, Base64, 1),
    row("alu64_mov_x", "mov", 0xbf, Sel::Off(0), Form::AluX, Base64, 1),
    row("alu64_movsx8_x", "movsx864", 0xbf, Sel::Off(8), Form::AluX, Base64, 4),
    row("alu64_movsx16_x", "movsx1664", 0xbf, Sel::Off(16), Form::AluX, Base64, 4),
    row("alu64_movsx32_x", "movsx3264", 0xbf, Sel::Off(32), Form::AluX, Base64, 4),
    row("alu64_arsh_k", "arsh", 0xc7, Sel::None, Form::AluK, Base64, 1),
    row("alu64_arsh_x", "arsh", 0xcf, Sel::None, Form::AluX, Base64, 1),
    row("le16", "le16", 0xd4, Sel::Imm(16), Form::End, Base32, 1),
    row("le32", "le32", 0xd4, Sel::Imm(32), Form::End, Base32, 1),
    row("le64", "le64", 0xd4, Sel::Imm(64), Form::End, Base64, 1),
    row("be16", "be16", 0xdc, Sel::Imm(16), Form::End, Base32, 1),
    row("be32", "be32", 0xdc, Sel::Imm(32), Form::End, Base32, 1),
    row("be64", "be64", 0xdc, Sel::Imm(64), Form::End, Base64, 1),
    row("bswap16", "bswap16", 0xd7, Sel::Imm(16), Form::End, Base32, 4),
    row("bswap32", "bswap32", 0xd7, Sel::Imm(32), Form::End, Base32, 4),
    row("bswap64", "bswap64", 0xd7, Sel::Imm(64), Form::End, Base64, 4),
    row("jmp_ja", "ja", 0x05, Sel::None, Form::Ja, Base32, 1),
    row("jmp_jeq_k", "jeq", 0x15, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jeq_x", "jeq", 0x1d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jgt_k", "jgt", 0x25, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jgt_x", "jgt", 0x2d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jge_k", "jge", 0x35, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jge_x", "jge", 0x3d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jset_k", "jset", 0x45, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jset_x", "jset", 0x4d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jne_k", "jne", 0x55, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jne_x", "jne", 0x5d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jsgt_k", "jsgt", 0x65, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jsgt_x", "jsgt", 0x6d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jsge_k", "jsge", 0x75, Sel::None, Form::JmpK, Base64, 1),
    row("jmp_jsge_x", "jsge", 0x7d, Sel::None, Form::JmpX, Base64, 1),
    row("jmp_jlt_k", "jlt", 0xa5, Sel::None, Form::JmpK, Base64, 2),
    row("jmp_jlt_x", "jlt", 0xad, Sel::None, Form::JmpX, Base64, 2),
    row("jmp_jle_k", "jle", 0xb5, Sel::None, Form::JmpK, Base64, 2),
    row("jmp_jle_x", "jle", 0xbd, Sel::None, Form::JmpX, Base64, 2),
    row("jmp_jslt_k", "jslt", 0xc5, Sel::None, Form::JmpK, Base64, 2),
    row("jmp_jslt_x", "jslt", 0xcd, Sel::None, Form::JmpX, Base64, 2),
    row("jmp_jsle_k", "jsle", 0xd5, Sel::None, Form::JmpK, Base64, 2),
    row("jmp_jsle_x", "jsle", 0xdd, Sel::None, Form::JmpX, Base64, 2),
    row("call_helper", "call", 0x85, Sel::Src(0), Form::Call, Base32, 1),
    row("call_local", "call local", 0x85, Sel::Src(1), Form::CallLocal, Base32, 3),
    row("call_kfunc", "call runtime", 0x85, Sel::Src(2), Form::Call, Base32, 3),
    row("callx", "call", 0x8d, Sel::None, Form::Callx, Callx, 1),
    row("exit", "exit", 0x95, Sel::None, Form::Exit, Base32, 1),
    row("jmp32_ja", "ja32", 0x06, Sel::None, Form::Ja32, Base32, 4),
    row("jmp32_jeq_k", "jeq32", 0x16, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jeq_x", "jeq32", 0x1e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jgt_k", "jgt32", 0x26, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jgt_x", "jgt32", 0x2e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jge_k", "jge32", 0x36, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jge_x", "jge32", 0x3e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jset_k", "jset32", 0x46, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jset_x", "jset32", 0x4e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jne_k", "jne32", 0x56, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jne_x", "jne32", 0x5e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jsgt_k", "jsgt32", 0x66, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jsgt_x", "jsgt32", 0x6e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jsge_k", "jsge32", 0x76, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jsge_x", "jsge32", 0x7e, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jlt_k", "jlt32", 0xa6, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jlt_x", "jlt32", 0xae, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jle_k", "jle32", 0xb6, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jle_x", "jle32", 0xbe, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jslt_k", "jslt32", 0xc6, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jslt_x", "jslt32", 0xce, Sel::None, Form::JmpX, Base32, 3),
    row("jmp32_jsle_k", "jsle32", 0xd6, Sel::None, Form::JmpK, Base32, 3),
    row("jmp32_jsle_x", "jsle32", 0xde, Sel::None, Form::JmpX, Base32, 3),
    row("lddw", "lddw", 0x18, Sel::Src(0), Form::Lddw, Base64, 1),
    row("lddw_map_fd", "lddw_map_fd", 0x18, Sel::Src(1), Form::Lddw, Base64, 1),
    row("lddw_map_value", "lddw_map_value", 0x18, Sel::Src(2), Form::Lddw, Base64, 1),
    row("lddw_var_addr", "lddw_var_addr", 0x18, Sel::Src(3), Form::Lddw, Base64, 1),
    row("lddw_code_addr", "lddw_code_addr", 0x18, Sel::Src(4), Form::Lddw, Base64, 1),
    row("lddw_map_idx", "lddw_map_idx", 0x18, Sel::Src(5), Form::Lddw, Base64, 1),
    row("lddw_map_idx_value", "lddw_map_idx_value", 0x18, Sel::Src(6), Form::Lddw, Base64, 1),
    row("ldabsw", "ldabsw", 0x20, Sel::None, Form::LdAbs, Packet, 1),
    row("ldabsh", "ldabsh", 0x28, Sel::None, Form::LdAbs, Packet, 1),
    row("ldabsb", "ldabsb", 0x30, Sel::None, Form::LdAbs, Packet, 1),
    row("ldindw", "ldindw", 0x40, Sel::None, Form::LdInd, Packet, 1),
    row("ldindh", "ldindh", 0x48, Sel::None, Form::LdInd, Packet, 1),
    row("ldindb", "ldindb", 0x50, Sel::None, Form::LdInd, Packet, 1),
    row("ldxw", "ldxw", 0x61, Sel::None, Form::Ldx, Base32, 1),
    row("ldxh", "ldxh", 0x69, Sel::None, Form::Ldx, Base32, 1),
    row("ldxb", "ldxb", 0x71, Sel::None, Form::Ldx, Base32, 1),
    row("ldxdw", "ldxdw", 0x79, Sel::None, Form::Ldx, Base64, 1),
    row("ldxsw", "ldxsw", 0x81, Sel::None, Form::Ldx, Base32, 4),
    row("ldxsh", "ldxsh", 0x89, Sel::None, Form::Ldx, Base32, 4),
    row("ldxsb", "ldxsb", 0x91, Sel::None, Form::Ldx, Base32, 4),
    row("stw", "stw", 0x62, Sel::None, Form::St, Base32, 1),
    row("sth", "sth", 0x6a, Sel::None, Form::St, Base32, 1),
    row("stb", "stb", 0x72, Sel::None, Form::St, Base32, 1),
    row("stdw", "stdw", 0x7a, Sel::None, Form::St, Base64, 1),
    row("stxw", "stxw", 0x63, Sel::None, Form::Stx, Base32, 1),
    row("stxh", "stxh", 0x6b, Sel::None, Form::Stx, Base32, 1),
    row("stxb", "stxb", 0x73, Sel::None, Form::Stx, Base32, 1),
    row("stxdw", "stxdw", 0x7b, Sel::None, Form::Stx, Base64, 1),
    row("atomic32_add", "lock add32", 0xc3, Sel::Imm(0x00), Form::Atomic, Atomic32, 3),
    row("atomic32_fetch_add", "lock fetch add32", 0xc3, Sel::Imm(0x01), Form::Atomic, Atomic32, 3),
    row("atomic32_or", "lock or32", 0xc3, Sel::Imm(0x40), Form::Atomic, Atomic32, 3),
    row("atomic32_fetch_or", "lock fetch or32", 0xc3, Sel::Imm(0x41), Form::Atomic, Atomic32, 3),
    row("atomic32_and", "lock and32", 0xc3, Sel::Imm(0x50), Form::Atomic, Atomic32, 3),
    row("atomic32_fetch_and", "lock fetch and32", 0xc3, Sel::Imm(0x51), Form::Atomic, Atomic32, 3),
    row("atomic32_xor", "lock xor32", 0xc3, Sel::Imm(0xa0), Form::Atomic, Atomic32, 3),
    row("atomic32_fetch_xor", "lock fetch xor32", 0xc3, Sel::Imm(0xa1), Form::Atomic, Atomic32, 3),
    row("atomic32_xchg", "lock xchg32", 0xc3, Sel::Imm(0xe1), Form::Atomic, Atomic32, 3),
    row("atomic32_cmpxchg", "lock cmpxchg32", 0xc3, Sel::Imm(0xf1), Form::Atomic, Atomic32, 3),
    row("atomic64_add", "lock add", 0xdb, Sel::Imm(0x00), Form::Atomic, Atomic64, 3),
    row("atomic64_fetch_add", "lock fetch add", 0xdb, Sel::Imm(0x01), Form::Atomic, Atomic64, 3),
    row("atomic64_or", "lock or", 0xdb, Sel::Imm(0x40), Form::Atomic, Atomic64, 3),
    row("atomic64_fetch_or", "lock fetch or", 0xdb, Sel::Imm(0x41), Form::Atomic, Atomic64, 3),
    row("atomic64_and", "lock and", 0xdb, Sel::Imm(0x50), Form::Atomic, Atomic64, 3),
    row("atomic64_fetch_and", "lock fetch and", 0xdb, Sel::Imm(0x51), Form::Atomic, Atomic64, 3),
    row("atomic64_xor", "lock xor", 0xdb, Sel::Imm(0xa0), Form::Atomic, Atomic64, 3),
    row("atomic64_fetch_xor", "lock fetch xor", 0xdb, Sel::Imm(0xa1), Form::Atomic, Atomic64, 3),
    row("atomic64_xchg", "lock xchg", 0xdb, Sel::Imm(0xe1), Form::Atomic, Atomic64, 3),
    row("atomic64_cmpxchg", "lock cmpxchg", 0xdb, Sel::Imm(0xf1), Form::Atomic, Atomic64, 3),
];
