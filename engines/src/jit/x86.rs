//! A lean x86-64 encoder for the instruction forms our code generators use, with the call
//! syntax of iced-x86's `code_asm` (`a.mov(rax, qword_ptr(r12 + 8))?`).
//!
//! Why not iced-x86's `CodeAssembler`, which the generators used first: a fuzzing campaign
//! compiles ~10^5 programs a second per core, and building an iced `Instruction` per x86
//! instruction, looking its encoding up in a memo and copying it out was ~40% of a whole
//! interpreter-vs-JIT fuzzing unit. This encoder writes the bytes straight into the code
//! buffer. It covers only the forms the generators need (general-purpose registers, base +
//! displacement memory operands, immediates); the compiler refuses anything else, and the rare
//! operand-size mistakes it cannot catch statically are [`EmitError::Encoder`] errors.
//!
//! iced-x86 stays the reference: the tests (`x86/tests.rs`) encode every form over every
//! register and a spread of displacements and immediates with both, decode both with iced's
//! decoder and require the same instruction (the encodings may differ where iced picks a longer
//! form, such as `add rax, imm32` for a small immediate). Listings (`jit-dump`) still come from
//! iced's decoder and formatter.

#![allow(non_upper_case_globals)]

use super::emit::EmitError;

/// The result of emitting one instruction.
pub type R = Result<(), EmitError>;

/// Operand size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Not given (`lea`'s operand).
    Any,
    /// 8 bits.
    B,
    /// 16 bits.
    W,
    /// 32 bits.
    D,
    /// 64 bits.
    Q,
}

/// A general-purpose register of some width.
pub trait Gpr: Copy {
    /// The register's width.
    const SIZE: Size;
    /// The register number (0–15).
    fn num(self) -> u8;
}

macro_rules! regs {
    ($ty:ident, $size:ident, $doc:literal, [$($name:ident),*]) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(u8);
        impl Gpr for $ty {
            const SIZE: Size = Size::$size;
            fn num(self) -> u8 {
                self.0
            }
        }
        regs!(@consts $ty, 0u8, $($name),*);
    };
    (@consts $ty:ident, $n:expr, $name:ident $(, $rest:ident)*) => {
        #[doc = concat!("`", stringify!($name), "`.")]
        pub const $name: $ty = $ty($n);
        regs!(@consts $ty, $n + 1, $($rest),*);
    };
    (@consts $ty:ident, $n:expr,) => {};
    (@consts $ty:ident, $n:expr) => {};
}

regs!(
    Reg64,
    Q,
    "A 64-bit register.",
    [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15]
);
regs!(
    Reg32,
    D,
    "A 32-bit register.",
    [eax, ecx, edx, ebx, esp, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d]
);
regs!(
    Reg16,
    W,
    "A 16-bit register.",
    [ax, cx, dx, bx, sp, bp, si, di, r8w, r9w, r10w, r11w, r12w, r13w, r14w, r15w]
);
regs!(
    Reg8,
    B,
    "An 8-bit register (`spl`…`dil` need a REX prefix; `ah`…`bh` are not offered).",
    [al, cl, dl, bl, spl, bpl, sil, dil, r8b, r9b, r10b, r11b, r12b, r13b, r14b, r15b]
);

/// A memory operand: `[base + index * scale + disp]` (base and index optional), with an
/// access size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mem {
    base: Option<u8>,
    /// Index register and log2 of its scale.
    index: Option<(u8, u8)>,
    disp: i32,
    size: Size,
}

/// A scaled index register (`rax * 4`), to be added to a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaled(u8, u8);

impl std::ops::Mul<i32> for Reg64 {
    type Output = Scaled;
    /// `self * scale`; a scale other than 1, 2, 4 or 8 counts as 1 and the encoder refuses it
    /// (see [`Mem`]).
    fn mul(self, scale: i32) -> Scaled {
        let log = match scale {
            1 => 0,
            2 => 1,
            4 => 2,
            8 => 3,
            _ => 0xff,
        };
        Scaled(self.0, log)
    }
}

impl std::ops::Add<Scaled> for Reg64 {
    type Output = Mem;
    fn add(self, i: Scaled) -> Mem {
        Mem {
            base: Some(self.0),
            index: Some((i.0, i.1)),
            disp: 0,
            size: Size::Any,
        }
    }
}

impl std::ops::Add<Reg64> for Reg64 {
    type Output = Mem;
    fn add(self, index: Reg64) -> Mem {
        self + index * 1
    }
}

impl std::ops::Add<i32> for Reg64 {
    type Output = Mem;
    fn add(self, disp: i32) -> Mem {
        Mem {
            base: Some(self.0),
            index: None,
            disp,
            size: Size::Any,
        }
    }
}

impl std::ops::Add<i32> for Mem {
    type Output = Mem;
    fn add(self, disp: i32) -> Mem {
        Mem {
            disp: self.disp.wrapping_add(disp),
            ..self
        }
    }
}

impl std::ops::Sub<i32> for Mem {
    type Output = Mem;
    fn sub(self, disp: i32) -> Mem {
        Mem {
            disp: self.disp.wrapping_sub(disp),
            ..self
        }
    }
}

impl std::ops::Sub<i32> for Reg64 {
    type Output = Mem;
    fn sub(self, disp: i32) -> Mem {
        Mem::from(self) - disp
    }
}

impl From<Reg64> for Mem {
    fn from(r: Reg64) -> Mem {
        r + 0
    }
}

impl From<i32> for Mem {
    fn from(disp: i32) -> Mem {
        Mem {
            base: None,
            index: None,
            disp,
            size: Size::Any,
        }
    }
}

macro_rules! ptr {
    ($name:ident, $size:ident, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(m: impl Into<Mem>) -> Mem {
            Mem {
                size: Size::$size,
                ..m.into()
            }
        }
    };
}
ptr!(byte_ptr, B, "A byte memory operand.");
ptr!(word_ptr, W, "A 16-bit memory operand.");
ptr!(dword_ptr, D, "A 32-bit memory operand.");
ptr!(qword_ptr, Q, "A 64-bit memory operand.");

/// The r/m operand of an instruction.
#[derive(Clone, Copy)]
enum Rm {
    /// A register number.
    Reg(u8),
    /// Memory.
    Mem(Mem),
}

/// Emits instructions into a byte buffer.
#[derive(Debug, Default)]
pub struct X86 {
    /// The code so far.
    pub(crate) buf: Vec<u8>,
    /// A `lock` prefix waits for the next instruction.
    lock: bool,
}

fn bad(what: &str) -> EmitError {
    EmitError::Encoder(format!("unsupported operands: {what}"))
}

/// True for an 8-bit register that only exists with a REX prefix (`spl`, `bpl`, `sil`, `dil`).
fn rex_byte_reg(size: Size, n: u8) -> bool {
    size == Size::B && (4..8).contains(&n)
}

impl X86 {
    /// An empty buffer with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> X86 {
        X86 {
            buf: Vec::with_capacity(bytes),
            lock: false,
        }
    }

    /// The code emitted so far.
    pub fn code(&self) -> &[u8] {
        &self.buf
    }

    /// Prefixes the next instruction with `lock`.
    pub fn lock(&mut self) -> &mut X86 {
        self.lock = true;
        self
    }

    /// Legacy prefixes and REX for operand size `size`, ModRM reg field `reg` and `rm`;
    /// `force_rex` for the REX-only byte registers.
    fn prefix(&mut self, size: Size, reg: u8, rm: Rm, force_rex: bool) {
        if std::mem::take(&mut self.lock) {
            self.buf.push(0xf0);
        }
        if size == Size::W {
            self.buf.push(0x66);
        }
        let (x, b) = match rm {
            Rm::Reg(r) => (0, r >> 3),
            Rm::Mem(m) => (
                m.index.map_or(0, |i| i.0 >> 3),
                m.base.map_or(0, |b| b >> 3),
            ),
        };
        let rex = (u8::from(size == Size::Q) << 3) | ((reg >> 3) << 2) | (x << 1) | b;
        if rex != 0 || force_rex {
            self.buf.push(0x40 | rex);
        }
    }

    /// ModRM (+ SIB + displacement) for reg field `reg` and `rm`.
    fn modrm(&mut self, reg: u8, rm: Rm) -> R {
        let reg = (reg & 7) << 3;
        let m = match rm {
            Rm::Reg(r) => {
                self.buf.push(0xc0 | reg | (r & 7));
                return Ok(());
            }
            Rm::Mem(m) => m,
        };
        let Some(base) = m.base else {
            if m.index.is_some() {
                return Err(bad("index without a base"));
            }
            // [disp32] needs a SIB with no base and no index (mod 00 rm 101 is rip-relative).
            self.buf.extend_from_slice(&[reg | 4, 0x25]);
            self.buf.extend_from_slice(&m.disp.to_le_bytes());
            return Ok(());
        };
        let low = base & 7;
        // rbp/r13 as a base have no displacement-less form.
        let md = if m.disp == 0 && low != 5 {
            0x00
        } else if i8::try_from(m.disp).is_ok() {
            0x40
        } else {
            0x80
        };
        match m.index {
            // rm 100 announces a SIB: rsp/r12 as a base always need one.
            None if low != 4 => self.buf.push(md | reg | low),
            None => self.buf.extend_from_slice(&[md | reg | 4, 0x24]),
            Some((index, scale)) => {
                if index == 4 || scale > 3 {
                    return Err(bad("rsp as an index, or a scale other than 1, 2, 4, 8"));
                }
                self.buf
                    .extend_from_slice(&[md | reg | 4, (scale << 6) | ((index & 7) << 3) | low]);
            }
        }
        match md {
            0x40 => self.buf.push(m.disp as i8 as u8),
            0x80 => self.buf.extend_from_slice(&m.disp.to_le_bytes()),
            _ => {}
        }
        Ok(())
    }

    /// A whole instruction: prefixes, `op`, ModRM for `reg`/`rm`.
    fn inst(&mut self, size: Size, op: &[u8], reg: u8, rm: Rm, force_rex: bool) -> R {
        self.prefix(size, reg, rm, force_rex);
        self.buf.extend_from_slice(op);
        self.modrm(reg, rm)
    }

    /// A register-to-register instruction: `reg` in ModRM.reg, `rm` in ModRM.rm.
    fn rr<G: Gpr>(&mut self, op: &[u8], reg: G, rm: G) -> R {
        let force = rex_byte_reg(G::SIZE, reg.num()) || rex_byte_reg(G::SIZE, rm.num());
        self.inst(G::SIZE, op, reg.num(), Rm::Reg(rm.num()), force)
    }

    /// A register/memory instruction.
    fn rm<G: Gpr>(&mut self, op: &[u8], reg: G, m: Mem) -> R {
        let force = rex_byte_reg(G::SIZE, reg.num());
        self.inst(G::SIZE, op, reg.num(), Rm::Mem(m), force)
    }

    /// Appends an immediate of `size` (an 8-bit one for `Size::B`).
    fn imm(&mut self, size: Size, v: i64) {
        match size {
            Size::B => self.buf.push(v as u8),
            Size::W => self.buf.extend_from_slice(&(v as u16).to_le_bytes()),
            _ => self.buf.extend_from_slice(&(v as u32).to_le_bytes()),
        }
    }

    /// `op r/m, imm` of the 0x80/0x81/0x83 group (`digit` in ModRM.reg), choosing the
    /// sign-extended imm8 form when the value fits.
    fn group1(&mut self, size: Size, digit: u8, rm: Rm, v: i64, force_rex: bool) -> R {
        check_imm(size, v)?;
        if size == Size::B {
            self.inst(size, &[0x80], digit, rm, force_rex)?;
            self.imm(Size::B, v);
        } else if let Ok(v8) = i8::try_from(narrow(size, v)) {
            self.inst(size, &[0x83], digit, rm, force_rex)?;
            self.buf.push(v8 as u8);
        } else {
            self.inst(size, &[0x81], digit, rm, force_rex)?;
            self.imm(size, v);
        }
        Ok(())
    }

    /// `op r/m` of the 0xf7 group (`digit` in ModRM.reg).
    fn unary<G: Gpr>(&mut self, digit: u8, r: G) -> R {
        if G::SIZE == Size::B {
            return Err(bad("8-bit operand of a 0xf7-group instruction"));
        }
        self.inst(G::SIZE, &[0xf7], digit, Rm::Reg(r.num()), false)
    }

    /// `neg r`.
    pub fn neg<G: Gpr>(&mut self, r: G) -> R {
        self.unary(3, r)
    }

    /// `div r` (unsigned rdx:rax / r).
    pub fn div<G: Gpr>(&mut self, r: G) -> R {
        self.unary(6, r)
    }

    /// `idiv r` (signed rdx:rax / r).
    pub fn idiv<G: Gpr>(&mut self, r: G) -> R {
        self.unary(7, r)
    }

    /// `imul d, s`.
    pub fn imul_2<G: Gpr>(&mut self, d: G, s: G) -> R {
        self.rr(&[0x0f, 0xaf], d, s)
    }

    /// `imul d, s, k`.
    pub fn imul_3<G: Gpr>(&mut self, d: G, s: G, k: i32) -> R {
        if let Ok(k8) = i8::try_from(k) {
            self.rr(&[0x6b], d, s)?;
            self.buf.push(k8 as u8);
        } else {
            self.rr(&[0x69], d, s)?;
            self.imm(G::SIZE, k as i64);
        }
        Ok(())
    }

    /// `bswap r` (32 or 64 bits).
    pub fn bswap<G: Gpr>(&mut self, r: G) -> R {
        if !matches!(G::SIZE, Size::D | Size::Q) {
            return Err(bad("bswap of a 8/16-bit register"));
        }
        self.prefix(G::SIZE, 0, Rm::Reg(r.num()), false);
        self.buf.extend_from_slice(&[0x0f, 0xc8 | (r.num() & 7)]);
        Ok(())
    }

    /// A one-byte opcode with the register in its low bits, 64-bit default size.
    fn op_reg64(&mut self, op: u8, r: Reg64) {
        if r.0 >= 8 {
            self.buf.push(0x41);
        }
        self.buf.push(op | (r.0 & 7));
    }

    /// `push r`.
    pub fn push(&mut self, r: Reg64) -> R {
        self.op_reg64(0x50, r);
        Ok(())
    }

    /// `pop r`.
    pub fn pop(&mut self, r: Reg64) -> R {
        self.op_reg64(0x58, r);
        Ok(())
    }

    /// `call r` (indirect).
    pub fn call(&mut self, r: Reg64) -> R {
        // Default operand size is 64 bits: no REX.W.
        self.inst(Size::D, &[0xff], 2, Rm::Reg(r.0), false)
    }

    /// `ret`.
    pub fn ret(&mut self) -> R {
        self.buf.push(0xc3);
        Ok(())
    }

    /// `cqo` (sign-extend rax into rdx).
    pub fn cqo(&mut self) -> R {
        self.buf.extend_from_slice(&[0x48, 0x99]);
        Ok(())
    }

    /// `cdq` (sign-extend eax into edx).
    pub fn cdq(&mut self) -> R {
        self.buf.push(0x99);
        Ok(())
    }

    /// `cmovae d, s`.
    pub fn cmovae<G: Gpr>(&mut self, d: G, s: G) -> R {
        self.rr(&[0x0f, 0x43], d, s)
    }

    /// `lea d, [m]`.
    pub fn lea(&mut self, d: Reg64, m: Mem) -> R {
        self.rm(&[0x8d], d, m)
    }
}

/// `v` as the signed value of an operand of `size` (so `0xffff_ffff` in 32 bits is -1).
fn narrow(size: Size, v: i64) -> i64 {
    match size {
        Size::B => v as i8 as i64,
        Size::W => v as i16 as i64,
        Size::D => v as i32 as i64,
        _ => v,
    }
}

/// Refuses an immediate that does not fit an operand of `size` (signed or unsigned).
fn check_imm(size: Size, v: i64) -> R {
    let fits = match size {
        Size::B => (-128..=255).contains(&v),
        Size::W => (-32768..=65535).contains(&v),
        Size::D => (i32::MIN as i64..=u32::MAX as i64).contains(&v),
        _ => i32::try_from(v).is_ok(),
    };
    if fits {
        Ok(())
    } else {
        Err(EmitError::Encoder(format!(
            "immediate {v:#x} does not fit a {size:?} operand"
        )))
    }
}

/// The size of a memory operand, which must be given.
fn mem_size(m: Mem) -> Result<Size, EmitError> {
    match m.size {
        Size::Any => Err(bad("memory operand without a size")),
        s => Ok(s),
    }
}

/// A 32-bit immediate: `i32` values are taken as they are, `u32` by their bits.
pub trait Imm32: Copy {
    /// The value, sign-extended from 32 bits for `i32`, zero-extended for `u32`.
    fn value(self) -> i64;
}
impl Imm32 for i32 {
    fn value(self) -> i64 {
        self as i64
    }
}
impl Imm32 for u32 {
    fn value(self) -> i64 {
        self as i64
    }
}

mod forms;
pub use forms::*;

#[cfg(test)]
mod tests;
