//! Execution of one decoded instruction: dispatch on the ISA row's form, `lddw` (immediates and
//! map references), memory accesses, atomics and the legacy packet loads.

use super::alu::{self, Swap};
use super::memory::RegionKind;
use super::{Flow, Machine};
use bpfconf_spec::ebpf::isa::{Form, IsaRow, Sel};
use bpfconf_spec::ebpf::{atomic, class, mode, pseudo, size, source, Insn};

/// The size in bytes of a load, store or atomic (`code & 0x18`).
pub(crate) fn access_size(code: u8) -> usize {
    match code & 0x18 {
        size::B => 1,
        size::H => 2,
        size::W => 4,
        _ => 8,
    }
}

/// Sign-extends the low `size` bytes of `v`.
fn sign_extend(v: u64, size: usize) -> u64 {
    match size {
        1 => v as i8 as i64 as u64,
        2 => v as i16 as i64 as u64,
        4 => v as i32 as i64 as u64,
        _ => v,
    }
}

/// `reg + off` with 64-bit wrap-around.
fn address(reg: u64, off: i16) -> u64 {
    reg.wrapping_add(off as i64 as u64)
}

/// A row that reached an arm it does not belong to: only possible if the ISA table and this
/// dispatcher disagree; a fault, never a panic.
fn unsupported(row: &IsaRow) -> String {
    format!("`{}` is not implemented by the interpreter", row.name)
}

impl Machine<'_> {
    /// Executes `insn` (slot `pc`), whose row is `row`.
    pub(super) fn execute(&mut self, row: &IsaRow, insn: Insn, pc: usize) -> Result<Flow, String> {
        let (d, s) = (insn.dst as usize, insn.src as usize);
        let next = Flow::Next(pc + 1);
        let sel_off = match row.sel {
            Sel::Off(o) => o,
            _ => 0,
        };
        match row.form {
            Form::AluK | Form::AluX | Form::Neg => {
                let op = insn.code & 0xf0;
                // The operand: sign-extended imm (AluK), src register (AluX), none (Neg).
                let src = match row.form {
                    Form::AluK => insn.imm as i64 as u64,
                    Form::AluX => self.regs[s],
                    _ => 0,
                };
                if insn.class() == class::ALU64 {
                    let v = alu::alu64(op, sel_off, self.regs[d], src);
                    self.regs[d] = v.ok_or_else(|| unsupported(row))?;
                } else {
                    let v = alu::alu32(op, sel_off, self.regs[d] as u32, src as u32);
                    self.regs[d] = v.ok_or_else(|| unsupported(row))? as u64;
                }
                Ok(next)
            }
            Form::End => {
                let swap = if insn.class() == class::ALU && insn.code & source::X == 0 {
                    Swap::ToLe
                } else {
                    Swap::Reverse
                };
                let Sel::Imm(width) = row.sel else {
                    return Err(unsupported(row));
                };
                self.regs[d] =
                    alu::end(swap, width, self.regs[d]).ok_or_else(|| unsupported(row))?;
                Ok(next)
            }
            Form::Lddw => {
                let next = self
                    .code()
                    .insns
                    .get(pc + 1)
                    .ok_or_else(|| unsupported(row))?
                    .imm;
                self.regs[d] = match insn.src {
                    pseudo::IMM64 => (insn.imm as u32 as u64) | ((next as u32 as u64) << 32),
                    pseudo::MAP_FD => self.maps.handle_of(insn.imm as u32)?,
                    pseudo::MAP_VALUE => {
                        self.maps
                            .value_pointer(&mut self.memory, insn.imm as u32, next as u32)?
                    }
                    src => {
                        return Err(format!(
                            "`lddw` with src {src} (a variable, code or fd_array-index \
                             reference) is not supported"
                        ))
                    }
                };
                Ok(Flow::Next(pc + 2))
            }
            Form::Ldx => {
                let size = access_size(insn.code);
                let v = self.memory.load(address(self.regs[s], insn.off), size)?;
                self.regs[d] = if insn.code & 0xe0 == mode::MEMSX {
                    sign_extend(v, size)
                } else {
                    v
                };
                Ok(next)
            }
            Form::St | Form::Stx => {
                let size = access_size(insn.code);
                let v = if row.form == Form::St {
                    insn.imm as i64 as u64
                } else {
                    self.regs[s]
                };
                self.memory
                    .store(address(self.regs[d], insn.off), size, v)?;
                Ok(next)
            }
            Form::Atomic => {
                self.atomic(row, insn)?;
                Ok(next)
            }
            Form::JmpK | Form::JmpX => {
                let op = insn.code & 0xf0;
                let b = if row.form == Form::JmpK {
                    insn.imm as i64 as u64
                } else {
                    self.regs[s]
                };
                let a = self.regs[d];
                let taken = if insn.class() == class::JMP32 {
                    alu::jump32(op, a, b)
                } else {
                    alu::jump64(op, a, b)
                };
                if taken.ok_or_else(|| unsupported(row))? {
                    Ok(Flow::Next(self.target(pc, insn.off as i64)?))
                } else {
                    Ok(next)
                }
            }
            Form::Ja => Ok(Flow::Next(self.target(pc, insn.off as i64)?)),
            Form::Ja32 => Ok(Flow::Next(self.target(pc, insn.imm as i64)?)),
            Form::Call => match insn.src {
                0 => self.call_helper(pc, insn.imm as u32 as u64),
                src => Err(format!(
                    "call with src {src} (kfunc {}): kfuncs are not supported",
                    insn.imm
                )),
            },
            Form::Callx => self.call_helper(pc, self.regs[d]),
            Form::CallLocal => {
                let target = self.target(pc, insn.imm as i64)?;
                self.call_local(pc, target)
            }
            Form::Exit => Ok(self.exit()),
            Form::LdAbs | Form::LdInd => match self.packet_load(row, insn) {
                Some(()) => Ok(next),
                // Outside the packet: `r0 = 0; exit`.
                None => {
                    self.regs[0] = 0;
                    Ok(self.exit())
                }
            },
        }
    }

    /// An atomic read-modify-write (`STX|ATOMIC`, W or DW).
    fn atomic(&mut self, row: &IsaRow, insn: Insn) -> Result<(), String> {
        let Sel::Imm(op) = row.sel else {
            return Err(unsupported(row));
        };
        let size = access_size(insn.code);
        let narrow = |v: u64| if size == 4 { v as u32 as u64 } else { v };
        let src = narrow(self.regs[insn.src as usize]);
        let r0 = narrow(self.regs[0]);
        let addr = address(self.regs[insn.dst as usize], insn.off);
        let m = &mut self.memory;
        let old = match op & !atomic::FETCH {
            atomic::ADD => m.update(addr, size, |old| old.wrapping_add(src)),
            atomic::OR => m.update(addr, size, |old| old | src),
            atomic::AND => m.update(addr, size, |old| old & src),
            atomic::XOR => m.update(addr, size, |old| old ^ src),
            _ if op == atomic::XCHG => m.update(addr, size, |_| src),
            // CMPXCHG: replace only when the old value equals R0 (its low half for W).
            _ if op == atomic::CMPXCHG => {
                m.update(addr, size, |old| if old == r0 { src } else { old })
            }
            _ => return Err(unsupported(row)),
        }?;
        if op == atomic::CMPXCHG {
            self.regs[0] = old;
        } else if op & atomic::FETCH != 0 {
            self.regs[insn.src as usize] = old;
        }
        Ok(())
    }

    /// A legacy packet load into R0 (clobbering R1–R5); `None` when the bytes are outside the
    /// packet (the memory buffer).
    fn packet_load(&mut self, row: &IsaRow, insn: Insn) -> Option<()> {
        let size = access_size(insn.code);
        let off = if row.form == Form::LdAbs {
            insn.imm
        } else {
            self.regs[insn.src as usize].wrapping_add(insn.imm as i64 as u64) as u32 as i32
        };
        let pkt = &self.memory.region(RegionKind::Mem)?.bytes;
        let start = usize::try_from(off).ok()?;
        let bytes = pkt.get(start..start.checked_add(size)?)?;
        let v = bytes.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        self.regs[0] = v;
        self.regs[1..6].fill(0);
        Some(())
    }
}
