//! The reference classic BPF interpreter for the Linux, BSD (libpcap) and NetBSD dialects.
//!
//! Semantics, per dialect, and where they come from:
//! - **Linux** (`net/core/filter.c`, classic programs converted to eBPF): packet loads are
//!   big-endian; a failed load ends the program with 0. `LD ABS` with k in the ancillary range
//!   reads skb fields (size ignored). `LD IND` computes `X + k` with 32-bit wrap-around and treats
//!   the result as a signed offset. Negative offsets in `[SKF_NET_OFF, 0)` read relative to the
//!   network header, `[SKF_LL_OFF, SKF_NET_OFF)` relative to the MAC header (which must be set).
//!   `ldx msh` uses the same load path. DIV/MOD by X = 0 returns 0; shifts by X use the low
//!   5 bits (32-bit eBPF ALU on x86). `ifidx`/`hatype` without a device end the program
//!   returning the current A (the converted code exits with R0 = A; measured on 6.18).
//! - **BSD** (libpcap 1.10 `bpf_filter`): unsigned offsets with overflow-checked `X + k`;
//!   `ld len` reads the wire length; shifts by X ≥ 32 give 0; shifts by a constant k ≥ 32 (which
//!   the 1.10 validator accepts) are C undefined behaviour that x86 executes as `k & 31`, and we
//!   model that. Opcodes the validator accepts but the interpreter has no case for (RET X,
//!   non-canonical codes) return 0 as libpcap master does (1.10.3 calls abort()).
//! - **NetBSD** (`bpf_filter_ext`, rev 1.70): like BSD for loads; shifts are plain C shifts
//!   (x86: count & 31); RET X has no case and returns 0; BPF_COP/BPF_COPX call the coprocessor
//!   table (index out of range returns 0; X is preserved), and an optional external memory
//!   replaces M[].

use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::ext::{Ext, NegBase, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{AluOp, Insn, Op, Size, Src};
use bpfconf_spec::Dialect;

/// Maximum instructions executed before the run is declared runaway (forward-only jumps make
/// this unreachable for checked programs; it protects against unchecked input).
pub const STEP_LIMIT: usize = 1 << 20;

/// Result of one interpreter run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicResult {
    /// The 32-bit return value.
    pub ret: u32,
    /// The memory store after the run.
    pub mem: Vec<u32>,
}

/// Why the interpreter stopped without a return value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Trap {
    /// The program counter left the program (only possible for unchecked programs).
    #[error("pc {0} is outside the program")]
    PcOutOfRange(usize),
    /// More than [`STEP_LIMIT`] instructions executed.
    #[error("step limit exceeded")]
    StepLimit,
}

/// The pseudo-random state every run starts from (see [`pseudo_random`]).
pub(crate) const RAND_SEED: u32 = 0x1234_5678;

/// A deterministic stand-in for `prandom_u32()` when the case does not fix a value
/// (a SplitMix32-style step over a per-run counter).
fn pseudo_random(seed: &mut u32) -> u32 {
    *seed = seed.wrapping_add(0x9e37_79b9);
    let mut z = *seed;
    z = (z ^ (z >> 16)).wrapping_mul(0x85eb_ca6b);
    z = (z ^ (z >> 13)).wrapping_mul(0xc2b2_ae35);
    z ^ (z >> 16)
}

/// `SKF_AD_RANDOM`: the case's fixed value, or the next [`pseudo_random`] number of the run.
pub(crate) fn rand_value(ctx: &Ctx, state: &mut u32) -> u32 {
    match ctx.rand {
        Some(v) => v,
        None => pseudo_random(state),
    }
}

/// What `ld len` / `ldx len` load: the packet length on Linux, the wire length on BSD and NetBSD.
pub(crate) fn len_value(dialect: Dialect, pkt_len: usize, ctx: &Ctx) -> u32 {
    match dialect {
        Dialect::Linux => pkt_len as u32,
        Dialect::Bsd | Dialect::Netbsd => ctx.wirelen_for(pkt_len),
    }
}

/// A Linux ancillary load that reads only the skb and the packet length (every extension but
/// `xor_x`, `rand`, `nla` and `nlan`, which depend on A, X, the run or the packet bytes and
/// give 0 here). `None` means the program ends, returning the current A (`ifidx` and
/// `hatype` without a device).
pub(crate) fn skb_field(ext: Ext, pkt_len: usize, c: &Ctx) -> Option<u32> {
    Some(match ext {
        Ext::Len => pkt_len as u32,
        Ext::Proto => c.protocol as u32,
        Ext::Type => c.pkt_type as u32,
        Ext::Ifidx => c.dev?.ifindex,
        Ext::Hatype => c.dev?.hatype as u32,
        Ext::Mark => c.mark,
        Ext::Queue => c.queue_mapping as u32,
        Ext::Rxhash => c.rxhash,
        Ext::Cpu => c.cpu,
        Ext::VlanTci => {
            if c.vlan_present {
                c.vlan_tci as u32
            } else {
                0
            }
        }
        Ext::VlanPr => c.vlan_present as u32,
        Ext::VlanTpid => {
            if c.vlan_present {
                c.vlan_tpid as u32
            } else {
                0
            }
        }
        Ext::Poff => c.poff,
        Ext::XorX | Ext::Rand | Ext::Nla | Ext::Nlan => 0,
    })
}

struct Machine<'a> {
    dialect: Dialect,
    pkt: &'a [u8],
    ctx: &'a Ctx,
    a: u32,
    x: u32,
    mem: Vec<u32>,
    rand_state: u32,
}

/// Outcome of a single step.
enum Flow {
    Next(usize),
    Return(u32),
}

fn be(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32)
}

/// Linux packet load through `bpf_skb_load_helper_*`: non-negative offsets index the packet,
/// negative ones go through the network/MAC header bases.
pub(crate) fn load_linux(pkt: &[u8], ctx: &Ctx, off: i32, size: u32) -> Option<u32> {
    let start: u64 = if off >= 0 {
        off as u64
    } else {
        let (base, rel) = NegBase::classify(off)?;
        let hdr = match base {
            NegBase::Net => ctx.network_header?,
            NegBase::Ll => ctx.mac_header?,
        };
        hdr as u64 + rel as u64
    };
    let end = start + size as u64;
    if end > pkt.len() as u64 {
        return None;
    }
    Some(be(&pkt[start as usize..end as usize]))
}

/// NetBSD `BPF_COP`/`BPF_COPX`: calls coprocessor function `idx` of the context's table on A,
/// the packet and the memory store; `None` (the program returns 0) when `idx` is out of range.
pub(crate) fn cop_call(ctx: &Ctx, idx: u32, a: u32, pkt: &[u8], mem: &mut [u32]) -> Option<u32> {
    let f = ctx.cop.get(idx as usize)?;
    let wirelen = ctx.wirelen_for(pkt.len());
    Some(f.call(a, pkt, wirelen, mem, ctx.cop.len()))
}

/// The memory store a run starts with: NetBSD's external memory when the context has one,
/// otherwise 16 zero words.
pub(crate) fn initial_mem(dialect: Dialect, ctx: &Ctx) -> &[u32] {
    const ZEROS: [u32; bpfconf_spec::cbpf::MEMWORDS] = [0; bpfconf_spec::cbpf::MEMWORDS];
    match (&ctx.extmem, dialect) {
        (Some(words), Dialect::Netbsd) => words,
        _ => &ZEROS,
    }
}

impl Machine<'_> {
    /// BSD/NetBSD packet load: unsigned offset, must fit in the buffer.
    fn load_bsd(&self, off: u32, size: u32) -> Option<u32> {
        let end = off.checked_add(size)?;
        if end as usize > self.pkt.len() {
            return None;
        }
        Some(be(&self.pkt[off as usize..end as usize]))
    }

    /// Linux packet load (see [`load_linux`]).
    fn load_linux(&self, off: i32, size: u32) -> Option<u32> {
        load_linux(self.pkt, self.ctx, off, size)
    }

    fn load(&self, off: u32, size: u32) -> Option<u32> {
        match self.dialect {
            Dialect::Linux => self.load_linux(off as i32, size),
            Dialect::Bsd | Dialect::Netbsd => self.load_bsd(off, size),
        }
    }

    /// Linux ancillary load. `None` means the program ends, returning the current A.
    fn ancillary(&mut self, ext: Ext) -> Option<u32> {
        Some(match ext {
            Ext::XorX => self.a ^ self.x,
            Ext::Rand => rand_value(self.ctx, &mut self.rand_state),
            Ext::Nla => nla_find_at(self.pkt, self.a, self.x),
            Ext::Nlan => nla_find_nested_at(self.pkt, self.a, self.x),
            _ => return skb_field(ext, self.pkt.len(), self.ctx),
        })
    }

    fn shift(&self, left: bool, a: u32, amount: u32, src: Src) -> u32 {
        match (self.dialect, src) {
            // Linux: 32-bit eBPF ALU shift; NetBSD and libpcap's constant shifts: C shifts that
            // x86 executes modulo 32.
            (Dialect::Linux | Dialect::Netbsd, _) | (Dialect::Bsd, Src::K) => {
                if left {
                    a.wrapping_shl(amount)
                } else {
                    a.wrapping_shr(amount)
                }
            }
            (Dialect::Bsd, Src::X) => {
                if amount >= 32 {
                    0
                } else if left {
                    a << amount
                } else {
                    a >> amount
                }
            }
        }
    }

    fn step(&mut self, prog: &[Insn], pc: usize) -> Flow {
        let insn = prog[pc];
        let next = pc + 1;
        let Some(op) = insn.op() else {
            // Unknown opcodes never pass a checker; interpreters that meet one return 0.
            return Flow::Return(0);
        };
        let k = insn.k;
        let fail = Flow::Return(0);
        match op {
            Op::LdAbs(size) => {
                if self.dialect == Dialect::Linux
                    && (SKF_AD_OFF..SKF_AD_OFF + SKF_AD_MAX).contains(&k)
                {
                    // The checker rejects unknown ancillary offsets; treat them as failed loads.
                    let Some(ext) = Ext::from_k(k) else {
                        return fail;
                    };
                    match self.ancillary(ext) {
                        Some(v) => self.a = v,
                        None => return Flow::Return(self.a),
                    }
                } else {
                    match self.load(k, size.bytes()) {
                        Some(v) => self.a = v,
                        None => return fail,
                    }
                }
            }
            Op::LdInd(size) => {
                let v = match self.dialect {
                    Dialect::Linux => self.load_linux(self.x.wrapping_add(k) as i32, size.bytes()),
                    _ => self
                        .x
                        .checked_add(k)
                        .and_then(|off| self.load_bsd(off, size.bytes())),
                };
                match v {
                    Some(v) => self.a = v,
                    None => return fail,
                }
            }
            Op::LdxMsh => match self.load(k, Size::B.bytes()) {
                Some(v) => self.x = (v & 0xf) << 2,
                None => return fail,
            },
            Op::LdLen | Op::LdxLen => {
                let len = len_value(self.dialect, self.pkt.len(), self.ctx);
                if op == Op::LdLen {
                    self.a = len
                } else {
                    self.x = len
                }
            }
            Op::LdImm => self.a = k,
            Op::LdxImm => self.x = k,
            Op::LdMem | Op::LdxMem | Op::St | Op::Stx => {
                let Some(slot) = self.mem.get_mut(k as usize) else {
                    return fail;
                };
                match op {
                    Op::LdMem => self.a = *slot,
                    Op::LdxMem => self.x = *slot,
                    Op::St => *slot = self.a,
                    _ => *slot = self.x,
                }
            }
            Op::Alu(o, s) => {
                let v = match s {
                    Src::K => k,
                    Src::X => self.x,
                };
                let a = self.a;
                self.a = match o {
                    AluOp::Add => a.wrapping_add(v),
                    AluOp::Sub => a.wrapping_sub(v),
                    AluOp::Mul => a.wrapping_mul(v),
                    AluOp::Div | AluOp::Mod if v == 0 => return fail,
                    AluOp::Div => a / v,
                    AluOp::Mod => a % v,
                    AluOp::And => a & v,
                    AluOp::Or => a | v,
                    AluOp::Xor => a ^ v,
                    AluOp::Lsh => self.shift(true, a, v, s),
                    AluOp::Rsh => self.shift(false, a, v, s),
                };
            }
            Op::Neg => self.a = self.a.wrapping_neg(),
            Op::Ja => {
                if self.dialect != Dialect::Bsd {
                    return Flow::Next(next.wrapping_add(k as usize));
                }
                // libpcap: k is sign-extended (backward jumps implement `protochain`). libpcap
                // 1.10 has no bound on backward jumps (master stops after 64): a loop runs until
                // it exits, and one that never exits hits our step limit (a trap, not a value).
                // A target outside the program ends it with 0 (master's check; 1.10's
                // validator already refuses such programs).
                let target = (pc as u32).wrapping_add(1).wrapping_add(k);
                if target as usize >= prog.len() {
                    return fail;
                }
                return Flow::Next(target as usize);
            }
            Op::Jmp(o, s) => {
                let v = match s {
                    Src::K => k,
                    Src::X => self.x,
                };
                let off = if o.eval(self.a, v) { insn.jt } else { insn.jf };
                return Flow::Next(next + off as usize);
            }
            Op::RetK => return Flow::Return(k),
            Op::RetA => return Flow::Return(self.a),
            // No interpreter implements RET X: only BSD-family validators accept it, and their
            // interpreters fall into the default case, which returns 0.
            Op::RetX => return Flow::Return(0),
            Op::Tax => self.x = self.a,
            Op::Txa => self.a = self.x,
            Op::Cop | Op::Copx => {
                if self.dialect != Dialect::Netbsd {
                    return fail;
                }
                let idx = if op == Op::Cop { k } else { self.x };
                match cop_call(self.ctx, idx, self.a, self.pkt, &mut self.mem) {
                    Some(v) => self.a = v,
                    None => return fail,
                }
            }
        }
        Flow::Next(next)
    }
}

/// Runs a classic program under a dialect's semantics. The program should already have passed
/// the dialect's checker; unchecked programs are still run safely (bad jumps trap).
pub fn run(dialect: Dialect, prog: &[Insn], pkt: &[u8], ctx: &Ctx) -> Result<ClassicResult, Trap> {
    let mem = initial_mem(dialect, ctx).to_vec();
    let mut m = Machine {
        dialect,
        pkt,
        ctx,
        a: 0,
        x: 0,
        mem,
        rand_state: RAND_SEED,
    };
    let mut pc = 0usize;
    for _ in 0..STEP_LIMIT {
        if pc >= prog.len() {
            return Err(Trap::PcOutOfRange(pc));
        }
        match m.step(prog, pc) {
            Flow::Next(n) => pc = n,
            Flow::Return(r) => {
                return Ok(ClassicResult { ret: r, mem: m.mem });
            }
        }
    }
    Err(Trap::StepLimit)
}

/// Size of `struct nlattr`.
const NLA_HDRLEN: usize = 4;

fn nla_at(pkt: &[u8], off: usize) -> Option<(usize, u16)> {
    let b = pkt.get(off..off + NLA_HDRLEN)?;
    // nla_len and nla_type are host-endian (little-endian on the machines we model).
    Some((
        u16::from_le_bytes([b[0], b[1]]) as usize,
        u16::from_le_bytes([b[2], b[3]]),
    ))
}

/// `nla_find(head, len, type)` over `pkt[start..start+len]`; returns the offset of the match.
fn nla_find(pkt: &[u8], start: usize, len: i64, attr: u32) -> Option<usize> {
    let mut pos = start;
    let mut rem = len;
    loop {
        // nla_ok(): remaining >= header, header length sane and within remaining.
        if rem < NLA_HDRLEN as i64 {
            return None;
        }
        let (nla_len, nla_type) = nla_at(pkt, pos)?;
        if nla_len < NLA_HDRLEN || nla_len as i64 > rem {
            return None;
        }
        // nla_type() masks out NLA_F_NESTED and NLA_F_NET_BYTEORDER.
        if (nla_type & 0x3fff) as u32 == attr {
            return Some(pos);
        }
        let tot = (nla_len + 3) & !3;
        rem -= tot as i64;
        pos += tot;
    }
}

/// `SKF_AD_NLATTR`: find attribute type `x` in the attribute stream starting at offset `a`.
pub(crate) fn nla_find_at(pkt: &[u8], a: u32, x: u32) -> u32 {
    let len = pkt.len();
    if len < NLA_HDRLEN || a as usize > len - NLA_HDRLEN {
        return 0;
    }
    nla_find(pkt, a as usize, (len - a as usize) as i64, x).map_or(0, |o| o as u32)
}

/// `SKF_AD_NLATTR_NEST`: find attribute type `x` nested inside the attribute at offset `a`.
pub(crate) fn nla_find_nested_at(pkt: &[u8], a: u32, x: u32) -> u32 {
    let len = pkt.len();
    if len < NLA_HDRLEN || a as usize > len - NLA_HDRLEN {
        return 0;
    }
    let a = a as usize;
    let Some((nla_len, _)) = nla_at(pkt, a) else {
        return 0;
    };
    if nla_len > len - a {
        return 0;
    }
    nla_find(pkt, a + NLA_HDRLEN, nla_len as i64 - NLA_HDRLEN as i64, x).map_or(0, |o| o as u32)
}
