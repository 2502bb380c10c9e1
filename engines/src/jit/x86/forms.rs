//! The two-operand instructions of [`X86`], one trait per mnemonic with an impl per operand
//! combination (as iced-x86's `code_asm` does), so that `a.mov(eax, 5)` and
//! `a.mov(rax, qword_ptr(r12 + 8))` pick their encodings at compile time.

use super::{
    bad, check_imm, mem_size, rex_byte_reg, Gpr, Imm32, Mem, Reg16, Reg32, Reg64, Reg8, Rm, Size,
    R, X86,
};

/// The 8-bit variant of an opcode whose wider variant is `op` (the byte form is `op - 1`).
fn byte_op(size: Size, op: u8) -> u8 {
    if size == Size::B {
        op - 1
    } else {
        op
    }
}

/// Refuses a memory operand whose given size differs from the register's.
fn same_size(size: Size, m: Mem) -> R {
    if m.size == Size::Any || m.size == size {
        Ok(())
    } else {
        Err(bad("register and memory operand of different sizes"))
    }
}

impl X86 {
    /// `op` with the register `reg` in ModRM.reg and memory `m`, after a size check.
    fn reg_mem<G: Gpr>(&mut self, op: &[u8], reg: G, m: Mem) -> R {
        same_size(G::SIZE, m)?;
        self.rm(op, reg, m)
    }

    /// `op r/m, imm` of the 0x80/0x81/0x83 group on a register.
    fn group1_reg<G: Gpr>(&mut self, digit: u8, d: G, k: i64) -> R {
        let force = rex_byte_reg(G::SIZE, d.num());
        self.group1(G::SIZE, digit, Rm::Reg(d.num()), k, force)
    }

    /// `op r/m, imm` (0xf6/0xf7 `test` or 0xc6/0xc7 `mov`, `op` being the wide form) with a
    /// full-size immediate (8 bits for a byte operand, else up to 32).
    fn op_imm(&mut self, size: Size, op: u8, rm: Rm, k: i64, force_rex: bool) -> R {
        check_imm(size, k)?;
        self.inst(size, &[byte_op(size, op)], 0, rm, force_rex)?;
        self.imm(size, k);
        Ok(())
    }

    /// `xchg [m], s` (implicitly locked).
    pub fn xchg<G: Gpr>(&mut self, m: Mem, s: G) -> R {
        self.reg_mem(&[byte_op(G::SIZE, 0x87)], s, m)
    }

    /// `cmpxchg [m], s` (compares with rax/eax).
    pub fn cmpxchg<G: Gpr>(&mut self, m: Mem, s: G) -> R {
        self.reg_mem(&[0x0f, byte_op(G::SIZE, 0xb1)], s, m)
    }

    /// `xadd [m], s`.
    pub fn xadd<G: Gpr>(&mut self, m: Mem, s: G) -> R {
        self.reg_mem(&[0x0f, byte_op(G::SIZE, 0xc1)], s, m)
    }
}

/// Declares a two-operand trait `$tr` with method `$m`.
macro_rules! two {
    ($tr:ident, $m:ident, $doc:expr) => {
        #[doc = $doc]
        pub trait $tr<D, S> {
            #[doc = $doc]
            fn $m(&mut self, d: D, s: S) -> R;
        }
    };
}

/// The ALU group (`add`, `or`, `and`, `sub`, `xor`, `cmp`): opcodes `8 × digit + 0..3` and the
/// 0x80/0x81/0x83 immediate group with `digit` in ModRM.reg.
macro_rules! alu {
    ($tr:ident, $m:ident, $digit:literal, [$($reg:ty),*]) => {
        two!($tr, $m, concat!("`", stringify!($m), " d, s`."));
        $(
            impl $tr<$reg, $reg> for X86 {
                fn $m(&mut self, d: $reg, s: $reg) -> R {
                    self.rr(&[byte_op(<$reg>::SIZE, $digit * 8 + 1)], s, d)
                }
            }
            impl $tr<$reg, Mem> for X86 {
                fn $m(&mut self, d: $reg, s: Mem) -> R {
                    self.reg_mem(&[byte_op(<$reg>::SIZE, $digit * 8 + 3)], d, s)
                }
            }
            impl $tr<Mem, $reg> for X86 {
                fn $m(&mut self, d: Mem, s: $reg) -> R {
                    self.reg_mem(&[byte_op(<$reg>::SIZE, $digit * 8 + 1)], s, d)
                }
            }
            impl $tr<$reg, i32> for X86 {
                fn $m(&mut self, d: $reg, k: i32) -> R {
                    self.group1_reg($digit, d, k.value())
                }
            }
        )*
        /// 32-bit immediates given by their bits (`0xffff_ffff` is -1 in 32 bits).
        impl $tr<Reg32, u32> for X86 {
            fn $m(&mut self, d: Reg32, k: u32) -> R {
                self.group1_reg($digit, d, k.value())
            }
        }
        impl<I: Imm32> $tr<Mem, I> for X86 {
            fn $m(&mut self, d: Mem, k: I) -> R {
                self.group1(mem_size(d)?, $digit, Rm::Mem(d), k.value(), false)
            }
        }
    };
}
alu!(Add, add, 0, [Reg64, Reg32, Reg16, Reg8]);
alu!(Or, or, 1, [Reg64, Reg32, Reg16, Reg8]);
alu!(And, and, 4, [Reg64, Reg32, Reg16, Reg8]);
alu!(Sub, sub, 5, [Reg64, Reg32, Reg16, Reg8]);
alu!(Xor, xor, 6, [Reg64, Reg32, Reg16, Reg8]);
alu!(Cmp, cmp, 7, [Reg64, Reg32, Reg16, Reg8]);

two!(Test, test, "`test d, s`.");
macro_rules! test {
    ($($reg:ty),*) => {$(
        impl Test<$reg, $reg> for X86 {
            fn test(&mut self, d: $reg, s: $reg) -> R {
                self.rr(&[byte_op(<$reg>::SIZE, 0x85)], s, d)
            }
        }
        impl Test<$reg, i32> for X86 {
            fn test(&mut self, d: $reg, k: i32) -> R {
                let force = rex_byte_reg(<$reg>::SIZE, d.num());
                self.op_imm(<$reg>::SIZE, 0xf7, Rm::Reg(d.num()), k.value(), force)
            }
        }
    )*};
}
test!(Reg64, Reg32, Reg16, Reg8);
impl Test<Reg32, u32> for X86 {
    fn test(&mut self, d: Reg32, k: u32) -> R {
        self.op_imm(Size::D, 0xf7, Rm::Reg(d.num()), k.value(), false)
    }
}
impl<I: Imm32> Test<Mem, I> for X86 {
    fn test(&mut self, d: Mem, k: I) -> R {
        self.op_imm(mem_size(d)?, 0xf7, Rm::Mem(d), k.value(), false)
    }
}

two!(Mov, mov, "`mov d, s`.");
macro_rules! mov {
    ($($reg:ty),*) => {$(
        impl Mov<$reg, $reg> for X86 {
            fn mov(&mut self, d: $reg, s: $reg) -> R {
                self.rr(&[byte_op(<$reg>::SIZE, 0x89)], s, d)
            }
        }
        impl Mov<$reg, Mem> for X86 {
            fn mov(&mut self, d: $reg, s: Mem) -> R {
                self.reg_mem(&[byte_op(<$reg>::SIZE, 0x8b)], d, s)
            }
        }
        impl Mov<Mem, $reg> for X86 {
            fn mov(&mut self, d: Mem, s: $reg) -> R {
                self.reg_mem(&[byte_op(<$reg>::SIZE, 0x89)], s, d)
            }
        }
    )*};
}
mov!(Reg64, Reg32, Reg16, Reg8);
/// `mov r32, imm32` (zero-extends into the 64-bit register).
impl<I: Imm32> Mov<Reg32, I> for X86 {
    fn mov(&mut self, d: Reg32, k: I) -> R {
        check_imm(Size::D, k.value())?;
        self.prefix(Size::D, 0, Rm::Reg(d.num()), false);
        self.buf.push(0xb8 | (d.num() & 7));
        self.imm(Size::D, k.value());
        Ok(())
    }
}
/// `mov r64, imm64` (`movabs`).
impl Mov<Reg64, u64> for X86 {
    fn mov(&mut self, d: Reg64, k: u64) -> R {
        self.prefix(Size::Q, 0, Rm::Reg(d.num()), false);
        self.buf.push(0xb8 | (d.num() & 7));
        self.buf.extend_from_slice(&k.to_le_bytes());
        Ok(())
    }
}
/// `mov r64, imm64` (`movabs`) of a signed value.
impl Mov<Reg64, i64> for X86 {
    fn mov(&mut self, d: Reg64, k: i64) -> R {
        self.mov(d, k as u64)
    }
}
/// `mov r/m64, imm32`, sign-extended (7 bytes instead of `movabs`'s 10).
impl Mov<Reg64, i32> for X86 {
    fn mov(&mut self, d: Reg64, k: i32) -> R {
        self.op_imm(Size::Q, 0xc7, Rm::Reg(d.num()), k.value(), false)
    }
}
impl<I: Imm32> Mov<Mem, I> for X86 {
    fn mov(&mut self, d: Mem, k: I) -> R {
        self.op_imm(mem_size(d)?, 0xc7, Rm::Mem(d), k.value(), false)
    }
}

two!(
    Movzx,
    movzx,
    "`movzx d, s` (zero-extending a byte or a word)."
);
two!(
    Movsx,
    movsx,
    "`movsx d, s` (sign-extending a byte or a word)."
);
/// Impls of an extending move (`0f op` for a byte source, `0f op+1` for a word source).
macro_rules! extend {
    ($tr:ident, $m:ident, $op:literal, [$($dst:ty),*]) => {$(
        impl $tr<$dst, Reg8> for X86 {
            fn $m(&mut self, d: $dst, s: Reg8) -> R {
                let force = rex_byte_reg(Size::B, s.num());
                self.inst(<$dst>::SIZE, &[0x0f, $op], d.num(), Rm::Reg(s.num()), force)
            }
        }
        impl $tr<$dst, Reg16> for X86 {
            fn $m(&mut self, d: $dst, s: Reg16) -> R {
                self.inst(<$dst>::SIZE, &[0x0f, $op + 1], d.num(), Rm::Reg(s.num()), false)
            }
        }
        impl $tr<$dst, Mem> for X86 {
            fn $m(&mut self, d: $dst, s: Mem) -> R {
                let op = match s.size {
                    Size::B => $op,
                    Size::W => $op + 1,
                    _ => return Err(bad("extending load of neither a byte nor a word")),
                };
                self.inst(<$dst>::SIZE, &[0x0f, op], d.num(), Rm::Mem(s), false)
            }
        }
    )*};
}
extend!(Movzx, movzx, 0xb6, [Reg32, Reg64]);
extend!(Movsx, movsx, 0xbe, [Reg32, Reg64]);

/// `movsxd d, s` (sign-extending a dword to a qword).
pub trait Movsxd<S> {
    /// `movsxd d, s`.
    fn movsxd(&mut self, d: Reg64, s: S) -> R;
}
impl Movsxd<Reg32> for X86 {
    fn movsxd(&mut self, d: Reg64, s: Reg32) -> R {
        self.inst(Size::Q, &[0x63], d.num(), Rm::Reg(s.num()), false)
    }
}
impl Movsxd<Mem> for X86 {
    fn movsxd(&mut self, d: Reg64, s: Mem) -> R {
        if !matches!(s.size, Size::D | Size::Any) {
            return Err(bad("movsxd of a non-dword memory operand"));
        }
        self.inst(Size::Q, &[0x63], d.num(), Rm::Mem(s), false)
    }
}

/// Shifts and rotates: `0xc1 /digit ib` by an immediate, `0xd3 /digit` by `cl`.
macro_rules! shift {
    ($tr:ident, $m:ident, $digit:literal, [$($reg:ty),*]) => {
        two!($tr, $m, concat!("`", stringify!($m), " d, count` (an immediate or `cl`)."));
        $(
            impl<I: Imm32> $tr<$reg, I> for X86 {
                fn $m(&mut self, d: $reg, n: I) -> R {
                    let n = n.value();
                    if !(0..=255).contains(&n) {
                        return Err(bad("shift count outside 0..=255"));
                    }
                    let (size, force) = (<$reg>::SIZE, rex_byte_reg(<$reg>::SIZE, d.num()));
                    self.inst(size, &[byte_op(size, 0xc1)], $digit, Rm::Reg(d.num()), force)?;
                    self.buf.push(n as u8);
                    Ok(())
                }
            }
            impl $tr<$reg, Reg8> for X86 {
                fn $m(&mut self, d: $reg, c: Reg8) -> R {
                    if c != super::cl {
                        return Err(bad("shift count in a register other than cl"));
                    }
                    let (size, force) = (<$reg>::SIZE, rex_byte_reg(<$reg>::SIZE, d.num()));
                    self.inst(size, &[byte_op(size, 0xd3)], $digit, Rm::Reg(d.num()), force)
                }
            }
        )*
    };
}
shift!(Rol, rol, 0, [Reg64, Reg32, Reg16, Reg8]);
shift!(Ror, ror, 1, [Reg64, Reg32, Reg16, Reg8]);
shift!(Shl, shl, 4, [Reg64, Reg32, Reg16, Reg8]);
shift!(Shr, shr, 5, [Reg64, Reg32, Reg16, Reg8]);
shift!(Sar, sar, 7, [Reg64, Reg32, Reg16, Reg8]);
