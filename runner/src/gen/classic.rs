//! A generator of checker-friendly random classic BPF programs, packets and contexts.
//!
//! Shape: a prologue sets A and X and stores a random non-empty set of M[] slots (the only
//! slots the body ever loads, so every load follows a store on every path); a body of loads
//! (packet `[k]`, `[x + k]`, `msh`, `len`, immediates, M[]), stores, ALU operations (K and X),
//! `tax`/`txa`, forward jumps that land inside the program, Linux ancillary loads the kernel's
//! AF_UNIX path realises and NetBSD `cop`/`copx` with a table; then `ret a` (or `ret #k`/`ret x`).
//! Constant divisors are non-zero and constant shifts are below 32. Constants are edge-biased.

use arbitrary::{Result, Unstructured};
use bpfconf_engines::{ClassicInput, ClassicProgram};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::ext::Ext;
use bpfconf_spec::cbpf::{class, misc, mode, op, rval, size, src, Insn, MEMWORDS};
use bpfconf_spec::cop::CopFn;
use bpfconf_spec::Dialect;

/// Largest packet the generator makes.
pub const MAX_PACKET: usize = 64;

/// Ancillary loads whose value the kernel's AF_UNIX path fixes for the default context (no
/// device, protocol 0, no VLAN…). `cpu`, `rand`, `poff`, `nla` and `nlan` are left out: their
/// values depend on scheduling, randomness or the flow dissector, not on the case.
const ANCILLARY: [Ext; 11] = [
    Ext::Proto,
    Ext::Type,
    Ext::Ifidx,
    Ext::Mark,
    Ext::Queue,
    Ext::Hatype,
    Ext::Rxhash,
    Ext::XorX,
    Ext::VlanTci,
    Ext::VlanPr,
    Ext::VlanTpid,
];

/// An edge-biased 32-bit constant (0, ±1, INT_MIN, INT_MAX, 31/32/33, byte/half maxima…).
pub fn edge_k(u: &mut Unstructured) -> Result<u32> {
    const EDGES: [u32; 14] = [
        0,
        1,
        u32::MAX,
        2,
        0x8000_0000,
        0x7fff_ffff,
        31,
        32,
        33,
        0xff,
        0xffff,
        0x8000,
        0x1_0000,
        16,
    ];
    Ok(if u.ratio(1, 2)? {
        *u.choose(&EDGES)?
    } else {
        u.arbitrary()?
    })
}

/// A packet offset: mostly inside a packet of `len` bytes, sometimes just past it or huge.
fn pkt_off(u: &mut Unstructured, len: usize) -> Result<u32> {
    Ok(match u.int_in_range(0..=7)? {
        0 => edge_k(u)?,
        1 => (len as u32).saturating_add(u.int_in_range(0..=4)?),
        _ => u.int_in_range(0..=(len as u32 + 2))?,
    })
}

/// Generates a program of `body` body instructions for `dialect`, for a packet of up to
/// `len` bytes, with `cop_funcs` coprocessor functions installed (NetBSD; 0 = no table).
pub fn program(
    u: &mut Unstructured,
    dialect: Dialect,
    body: usize,
    len: usize,
    cop_funcs: usize,
) -> Result<Vec<Insn>> {
    let mut out = vec![
        Insn::stmt(class::LD | mode::IMM, edge_k(u)?),
        Insn::stmt(class::LDX | mode::IMM, edge_k(u)?),
    ];
    // The M[] slots the body may load: stored in the prologue.
    let mut slots: Vec<u32> = (0..MEMWORDS as u32)
        .filter(|_| u.ratio(1, 3).unwrap_or(false))
        .collect();
    if slots.is_empty() {
        slots.push(u.int_in_range(0..=MEMWORDS as u32 - 1)?);
    }
    for &s in &slots {
        out.push(Insn::stmt(class::LD | mode::IMM, edge_k(u)?));
        out.push(Insn::stmt(class::ST, s));
    }
    out.push(Insn::stmt(class::LD | mode::IMM, edge_k(u)?));
    let start = out.len();
    for _ in 0..body {
        out.push(straight(u, dialect, len, cop_funcs, &slots)?);
    }
    // Forward jumps, placed over body positions; targets stay inside the program (the final
    // `ret` is at index `end`).
    let end = start + body;
    for (i, slot) in out.iter_mut().enumerate().take(end).skip(start) {
        if u.ratio(1, 5)? {
            let room = (end - i - 1).min(255) as u32;
            let jt = u.int_in_range(0..=room)? as u8;
            let jf = u.int_in_range(0..=room)? as u8;
            let jop = *u.choose(&[op::JA, op::JEQ, op::JGT, op::JGE, op::JSET])?;
            *slot = if jop == op::JA {
                Insn::stmt(class::JMP | op::JA, u32::from(jt))
            } else if u.arbitrary()? {
                Insn::new(class::JMP | jop | src::X, jt, jf, 0)
            } else {
                Insn::new(class::JMP | jop | src::K, jt, jf, edge_k(u)?)
            };
        }
    }
    let last = match u.int_in_range(0..=5)? {
        0 => Insn::stmt(class::RET | rval::K, edge_k(u)?),
        1 if dialect == Dialect::Bsd => Insn::stmt(class::RET | rval::X, 0),
        _ => Insn::stmt(class::RET | rval::A, 0),
    };
    out.push(last);
    Ok(out)
}

/// One body instruction, never a jump or a return.
fn straight(
    u: &mut Unstructured,
    dialect: Dialect,
    len: usize,
    cop_funcs: usize,
    slots: &[u32],
) -> Result<Insn> {
    let sz = *u.choose(&[size::W, size::H, size::B])?;
    Ok(match u.int_in_range(0..=15)? {
        0 => Insn::stmt(class::LD | mode::ABS | sz, pkt_off(u, len)?),
        1 => Insn::stmt(class::LD | mode::IND | sz, pkt_off(u, len)?),
        2 => match u.int_in_range(0..=4)? {
            0 => Insn::stmt(class::LD | mode::LEN | size::W, 0),
            1 => Insn::stmt(class::LDX | mode::LEN | size::W, 0),
            2 => Insn::stmt(class::LDX | mode::MSH | size::B, pkt_off(u, len)?),
            3 => Insn::stmt(class::LD | mode::IMM, edge_k(u)?),
            _ => Insn::stmt(class::LDX | mode::IMM, edge_k(u)?),
        },
        3 => Insn::stmt(
            *u.choose(&[class::LD | mode::MEM, class::LDX | mode::MEM])?,
            *u.choose(slots)?,
        ),
        4 => Insn::stmt(
            *u.choose(&[class::ST, class::STX])?,
            u.int_in_range(0..=MEMWORDS as u32 - 1)?,
        ),
        5 => Insn::stmt(class::MISC | *u.choose(&[misc::TAX, misc::TXA])?, 0),
        6 if dialect == Dialect::Linux => {
            let e = *u.choose(&ANCILLARY)?;
            Insn::stmt(class::LD | mode::ABS | size::W, e.k().unwrap_or(0))
        }
        6 | 7 if dialect == Dialect::Netbsd && cop_funcs > 0 => {
            if u.arbitrary()? {
                Insn::stmt(
                    class::MISC | misc::COP,
                    u.int_in_range(0..=cop_funcs as u32 - 1)?,
                )
            } else {
                Insn::stmt(class::MISC | misc::COPX, 0)
            }
        }
        _ => {
            let ops = [
                op::ADD,
                op::SUB,
                op::MUL,
                op::DIV,
                op::OR,
                op::AND,
                op::LSH,
                op::RSH,
                op::NEG,
                op::MOD,
                op::XOR,
            ];
            let o = *u.choose(&ops)?;
            if o == op::NEG {
                Insn::stmt(class::ALU | op::NEG, 0)
            } else if u.ratio(1, 3)? {
                Insn::stmt(class::ALU | o | src::X, 0)
            } else {
                let mut k = edge_k(u)?;
                if matches!(o, op::LSH | op::RSH) {
                    // Checkers refuse constant shifts of 32 or more.
                    k %= 32;
                }
                if matches!(o, op::DIV | op::MOD) && k == 0 {
                    // Checkers refuse division by the constant 0.
                    k = 7;
                }
                Insn::stmt(class::ALU | o | src::K, k)
            }
        }
    })
}

/// A packet of 0..=[`MAX_PACKET`] bytes, edge-biased (all zero, all 0xff, or random).
pub fn packet(u: &mut Unstructured) -> Result<Vec<u8>> {
    let len = if u.ratio(1, 16)? {
        0
    } else {
        u.int_in_range(1..=MAX_PACKET)?
    };
    let fill = u.int_in_range(0..=3)?;
    (0..len)
        .map(|_| match fill {
            0 => Ok(0),
            1 => Ok(0xff),
            _ => u.arbitrary(),
        })
        .collect()
}

/// A coprocessor table of 1..=7 functions of the standard table (NetBSD).
pub fn cop_table(u: &mut Unstructured) -> Result<Vec<CopFn>> {
    let n = u.int_in_range(1..=CopFn::ALL.len())?;
    (0..n).map(|_| u.choose(&CopFn::ALL).copied()).collect()
}

/// A context for `dialect`: the default (an AF_UNIX datagram, which the kernel realises) on
/// Linux; on BSD sometimes a wire length beyond the buffer; on NetBSD a coprocessor table
/// (mostly) and sometimes 16 words of external memory.
pub fn ctx(u: &mut Unstructured, dialect: Dialect, buflen: usize) -> Result<Ctx> {
    let mut c = Ctx::default();
    match dialect {
        Dialect::Linux => {}
        Dialect::Bsd => {
            if u.ratio(1, 4)? {
                c.wirelen = Some(buflen as u32 + u.int_in_range(0..=1500)?);
            }
        }
        Dialect::Netbsd => {
            if u.ratio(3, 4)? {
                c.cop = cop_table(u)?;
            }
            if u.ratio(1, 4)? {
                c.extmem = Some(
                    (0..MEMWORDS)
                        .map(|_| edge_k(u))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
        }
    }
    Ok(c)
}

/// One whole unit: a program of `body` body instructions for `dialect` and its input.
pub fn unit(
    u: &mut Unstructured,
    dialect: Dialect,
    body: usize,
) -> Result<(ClassicProgram, ClassicInput)> {
    let packet = packet(u)?;
    let ctx = ctx(u, dialect, packet.len())?;
    let insns = program(u, dialect, body, packet.len(), ctx.cop.len())?;
    Ok((
        ClassicProgram {
            dialect,
            insns,
            cop_funcs: ctx.cop.len(),
            memwords: ctx.memwords(),
        },
        ClassicInput { packet, ctx },
    ))
}

/// A unit from a seed: the same seed always gives the same unit.
pub fn seeded_unit(seed: u64, dialect: Dialect, body: usize) -> (ClassicProgram, ClassicInput) {
    let bytes = super::unit_bytes(seed, body);
    let mut u = Unstructured::new(&bytes);
    // Running out of bytes only makes `arbitrary` return zeros, never an error, for the
    // operations used here; a failure still yields a valid (trivial) unit.
    unit(&mut u, dialect, body).unwrap_or_else(|_| {
        (
            ClassicProgram {
                dialect,
                insns: vec![Insn::stmt(class::RET | rval::K, 0)],
                cop_funcs: 0,
                memwords: MEMWORDS,
            },
            ClassicInput {
                packet: Vec::new(),
                ctx: Ctx::default(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfconf_engines::{Engine, Program};
    use bpfconf_spec::cbpf::check::{check, CheckConfig};

    const N: u64 = 400;

    fn accepted_by_checker(dialect: Dialect) -> f64 {
        let mut ok = 0;
        for seed in 0..N {
            let (p, _) = seeded_unit(seed, dialect, 24);
            let cfg = CheckConfig {
                dialect,
                cop_funcs: p.cop_funcs,
                memwords: p.memwords,
            };
            match check(&p.insns, &cfg) {
                Ok(()) => ok += 1,
                Err(e) => eprintln!("{dialect} seed {seed}: {e}"),
            }
        }
        ok as f64 / N as f64
    }

    #[test]
    fn checkers_accept_at_least_90_percent() {
        for d in Dialect::ALL {
            let frac = accepted_by_checker(d);
            eprintln!("{d}: checker accepts {:.1}%", frac * 100.0);
            assert!(frac >= 0.9, "{d}: only {:.1}% accepted", frac * 100.0);
        }
    }

    #[test]
    fn kernel_accepts_at_least_90_percent() {
        let linux = bpfconf_engines::linux::Linux::new();
        if let Err(why) = linux.availability() {
            eprintln!("skipped: linux engine unavailable: {why}");
            return;
        }
        let n = 200;
        let mut ok = 0;
        for seed in 0..n {
            let (p, _) = seeded_unit(seed, Dialect::Linux, 24);
            match linux.load(&Program::Classic(p)) {
                Ok(_) => ok += 1,
                Err(e) => eprintln!("seed {seed}: {e}"),
            }
        }
        let frac = f64::from(ok) / f64::from(n as u32);
        eprintln!("linux: kernel accepts {:.1}%", frac * 100.0);
        assert!(frac >= 0.9, "kernel accepts only {:.1}%", frac * 100.0);
    }

    #[test]
    fn units_are_reproducible() {
        assert_eq!(
            seeded_unit(5, Dialect::Netbsd, 16),
            seeded_unit(5, Dialect::Netbsd, 16)
        );
    }
}
