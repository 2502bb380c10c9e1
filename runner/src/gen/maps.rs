//! A generator of random map-operation programs: 1–3 maps of random types (hash, array, queue,
//! stack), sizes and initial contents, and a program that runs a random sequence of lookups,
//! updates and deletes (pushes, pops and peeks on queues and stacks) on them, keyed by bytes of
//! the memory buffer, folding every result into R0.
//!
//! # Shape
//!
//! The program is assembled from text (so failures print as readable assembly). It keeps the
//! memory pointer in R9 (R1 is clobbered by every helper call) and an accumulator in R6 that
//! every operation folds its results into with `r6 = r6 * 33 + x`, so the final R0 depends on
//! every result and on their order:
//!
//! - **lookup** (hash, array): the key is built at `[r10-8]` (8 bytes zeroed, then one byte set
//!   to a *key number* 0–3 or 0–7, read from the memory buffer and masked, or a constant) or, for hash
//!   maps, points straight into the memory buffer. A hit folds in a load from the value (any
//!   width and offset inside `value_size`) and may store the accumulator back into the value; a
//!   miss folds in a constant. The value pointer is used only before the next helper call, so
//!   what a stale pointer sees (unspecified in the kernel, see the interpreter's maps module) is
//!   never observed.
//! - **update** (hash, array): key as above, a 16-byte value at `[r10-32]` from memory bytes,
//!   constants and the accumulator; flags mostly BPF_ANY/NOEXIST/EXIST, sometimes invalid
//!   ones. The return code is folded in.
//! - **delete** (hash, array): the return code is folded in.
//! - **push** (queue, stack): value as for update; flags mostly 0 and BPF_EXIST, sometimes
//!   NOEXIST (invalid for push).
//! - **pop / peek** (queue, stack): into `[r10-48]`, prefilled with 0xff; the return code and
//!   an aligned load of the (possibly zeroed) value are folded in.
//! - **direct** (arrays with one element): `lddw_map_value` at a random offset, a load folded
//!   in and sometimes a store.
//!
//! # Verifier
//!
//! Everything the kernel verifier checks is satisfied by construction: the memory buffer is read
//! only at constant offsets below its (generated, fixed) length, which the kernel engine proves
//! for each length; keys and values are initialised stack bytes of at least `key_size` /
//! `value_size`; lookup results are NULL-checked before use and accessed inside `value_size`;
//! the pointer never escapes into a scalar; stack accesses are aligned (the verifier insists,
//! whatever the architecture). Keys come from the memory buffer as *data* (loaded
//! bytes), not as a helper's view of the packet, except for the hash-map key pointer into the
//! buffer, which map helpers allow (`pkt_access`). Pop and peek never write into the buffer:
//! the kernel refuses that (their prototypes lack `pkt_access`).

use arbitrary::{Result, Unstructured};
use bpfconf_engines::{EbpfInput, EbpfProgram};
use bpfconf_spec::ebpf::asm::assemble;
use bpfconf_spec::ebpf::maps::{MapContents, MapDef, MapKind};
use bpfconf_spec::ebpf::Insn;
use std::collections::BTreeMap;
use std::fmt::Write;

/// `BPF_F_NO_PREALLOC`.
const NO_PREALLOC: u32 = 1;
/// Value sizes the generator picks from (bytes).
const VALUE_SIZES: [u32; 7] = [1, 2, 3, 4, 8, 12, 16];
/// Hash key sizes the generator picks from (bytes; at most 8, the key buffer).
const KEY_SIZES: [u32; 5] = [1, 2, 3, 4, 8];
/// Key numbers stay below this (a map's own mask may make them smaller): a small space, so
/// lookups hit, inserts collide and maps fill up.
const KEYS: u8 = 8;

/// One generated differential case: a program, its maps, their initial contents and the memory
/// buffer.
#[derive(Debug, Clone)]
pub struct MapsCase {
    /// The program's slots.
    pub insns: Vec<Insn>,
    /// The assembly text the slots were assembled from, after one `#` comment line per map
    /// with its definition.
    pub asm: String,
    /// The maps, by index.
    pub maps: Vec<MapDef>,
    /// Initial contents of each map.
    pub init: Vec<MapContents>,
    /// The memory buffer (R1/R2).
    pub mem: Vec<u8>,
}

impl MapsCase {
    /// The engine program (no tail-call targets).
    pub fn program(&self) -> EbpfProgram {
        EbpfProgram {
            insns: self.insns.clone(),
            maps: self.maps.clone(),
            progs: Vec::new(),
        }
    }

    /// The engine input: memory and initial map contents.
    pub fn input(&self) -> EbpfInput {
        EbpfInput {
            mem: self.mem.clone(),
            maps: self.init.clone(),
        }
    }
}

/// What the generator knows about one map while writing operations.
struct Plan {
    def: MapDef,
    /// Byte of the key buffer that carries the key number (hash maps; 0 for arrays).
    key_pos: u32,
    /// Key numbers are `0..=mask` (3 or 7).
    mask: u8,
}

/// Key bytes for key number `n` of a map.
fn key_bytes(p: &Plan, n: u8) -> Vec<u8> {
    let mut k = vec![0u8; p.def.key_size as usize];
    k[p.key_pos as usize] = n;
    k
}

fn value(u: &mut Unstructured, size: u32) -> Result<Vec<u8>> {
    (0..size).map(|_| u.arbitrary()).collect()
}

fn map_def(u: &mut Unstructured, i: usize) -> Result<Plan> {
    let kind = *u.choose(&[
        MapKind::Hash,
        MapKind::Hash,
        MapKind::Array,
        MapKind::Array,
        MapKind::Queue,
        MapKind::Stack,
    ])?;
    let value_size = *u.choose(&VALUE_SIZES)?;
    let (key_size, max_entries, flags) = match kind {
        MapKind::Hash => (
            *u.choose(&KEY_SIZES)?,
            u.int_in_range(1..=6)?,
            if u.ratio(1, 3)? { NO_PREALLOC } else { 0 },
        ),
        MapKind::Array => (4, u.int_in_range(1..=8)?, 0),
        _ => (0, u.int_in_range(1..=4)?, 0),
    };
    let key_pos = match kind {
        MapKind::Hash => u.int_in_range(0..=key_size - 1)?,
        _ => 0,
    };
    // Arrays: mostly indices inside the map, some past its end.
    let mask = match kind {
        MapKind::Hash if u.ratio(2, 3)? => 3,
        MapKind::Array if max_entries <= 4 => 3,
        _ => KEYS - 1,
    };
    Ok(Plan {
        mask,
        def: MapDef {
            name: format!("m{i}"),
            kind,
            key_size,
            value_size,
            max_entries,
            flags,
        },
        key_pos,
    })
}

fn initial(u: &mut Unstructured, p: &Plan) -> Result<MapContents> {
    let d = &p.def;
    Ok(match d.kind {
        MapKind::Queue | MapKind::Stack => {
            let n = u.int_in_range(0..=d.max_entries)?;
            MapContents::Sequence(
                (0..n)
                    .map(|_| value(u, d.value_size))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let mut m = BTreeMap::new();
            let limit = match d.kind {
                MapKind::Array => d.max_entries.min(u32::from(p.mask) + 1),
                _ => u32::from(p.mask) + 1,
            };
            for n in 0..limit as u8 {
                if m.len() < d.max_entries as usize && u.ratio(2, 3)? {
                    m.insert(key_bytes(p, n), value(u, d.value_size)?);
                }
            }
            MapContents::Keyed(m)
        }
    })
}

/// A load or store width (1, 2, 4 or 8 bytes) and offset that fit in `size` bytes.
fn access(u: &mut Unstructured, size: u32) -> Result<(&'static str, u32)> {
    let widths: &[(&str, u32)] = &[("b", 1), ("h", 2), ("w", 4), ("dw", 8)];
    let fits: Vec<(&str, u32)> = widths.iter().copied().filter(|w| w.1 <= size).collect();
    let (sfx, w) = *u.choose(&fits)?;
    Ok((sfx, u.int_in_range(0..=size - w)?))
}

/// As [`access`], at an offset that is a multiple of the width: the verifier demands aligned
/// stack accesses.
fn aligned_access(u: &mut Unstructured, size: u32) -> Result<(&'static str, u32)> {
    let (sfx, off) = access(u, size)?;
    let w = match sfx {
        "b" => 1,
        "h" => 2,
        "w" => 4,
        _ => 8,
    };
    Ok((sfx, off - off % w))
}

/// Writes the program text; `labels` numbers the jump labels.
struct Writer {
    text: String,
    labels: usize,
    /// Length of the memory buffer.
    mem_len: u32,
}

impl Writer {
    fn line(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
    }

    fn label(&mut self) -> String {
        self.labels += 1;
        format!("l{}", self.labels)
    }

    /// `r6 = r6 * 33 + reg`.
    fn fold(&mut self, reg: &str) {
        self.line("mul %r6, 33");
        self.line(&format!("add %r6, {reg}"));
    }

    /// A memory offset where `width` bytes can be read.
    fn mem_off(&self, u: &mut Unstructured, width: u32) -> Result<u32> {
        u.int_in_range(0..=self.mem_len - width)
    }

    /// Sets R2 to a key for map `p` (see the module documentation).
    fn key(&mut self, u: &mut Unstructured, p: &Plan) -> Result<()> {
        let d = &p.def;
        if d.kind == MapKind::Hash && u.ratio(1, 8)? {
            let off = self.mem_off(u, d.key_size)?;
            self.line("mov %r2, %r9");
            self.line(&format!("add %r2, {off}"));
            return Ok(());
        }
        self.line("stdw [%r10-8], 0");
        let at = -8 + p.key_pos as i32;
        if u.ratio(2, 3)? {
            let off = self.mem_off(u, 1)?;
            self.line(&format!("ldxb %r7, [%r9+{off}]"));
            self.line(&format!("and %r7, {}", p.mask));
            self.line(&format!("stxb [%r10{at:+}], %r7"));
        } else {
            let n = u.int_in_range(0..=p.mask)?;
            self.line(&format!("stb [%r10{at:+}], {n}"));
        }
        self.line("mov %r2, %r10");
        self.line("add %r2, -8");
        Ok(())
    }

    /// Fills the 16-byte value buffer at `[r10-32]` and points `reg` at it.
    fn value(&mut self, u: &mut Unstructured, reg: &str) -> Result<()> {
        for slot in [-32, -24] {
            match u.int_in_range(0..=2)? {
                0 => {
                    let off = self.mem_off(u, 8)?;
                    self.line(&format!("ldxdw %r7, [%r9+{off}]"));
                    self.line(&format!("stxdw [%r10{slot}], %r7"));
                }
                1 => self.line(&format!("stxdw [%r10{slot}], %r6")),
                _ => {
                    let imm: i32 = u.arbitrary()?;
                    self.line(&format!("stdw [%r10{slot}], {imm}"));
                }
            }
        }
        self.line(&format!("mov {reg}, %r10"));
        self.line(&format!("add {reg}, -32"));
        Ok(())
    }

    fn lookup(&mut self, u: &mut Unstructured, m: usize, p: &Plan) -> Result<()> {
        self.key(u, p)?;
        self.line(&format!("lddw_map_fd %r1, {m}"));
        self.line("call 1");
        let (hit, done) = (self.label(), self.label());
        self.line(&format!("jne %r0, 0, {hit}"));
        self.line("mul %r6, 33");
        self.line(&format!("xor %r6, {}", 0x5a + m));
        self.line(&format!("ja {done}"));
        self.line(&format!("{hit}:"));
        let (sfx, off) = access(u, p.def.value_size)?;
        self.line(&format!("ldx{sfx} %r7, [%r0+{off}]"));
        self.fold("%r7");
        if u.ratio(1, 3)? {
            let (sfx, off) = access(u, p.def.value_size)?;
            self.line(&format!("stx{sfx} [%r0+{off}], %r6"));
        }
        self.line(&format!("{done}:"));
        Ok(())
    }

    fn update(&mut self, u: &mut Unstructured, m: usize, p: &Plan) -> Result<()> {
        self.value(u, "%r3")?;
        self.key(u, p)?;
        let flags = match u.int_in_range(0..=15)? {
            0..=5 => 0,
            6..=9 => 1,
            10..=13 => 2,
            14 => 3,
            _ => *u.choose(&[4, 5, 6, 8])?,
        };
        self.line(&format!("lddw_map_fd %r1, {m}"));
        self.line(&format!("mov %r4, {flags}"));
        self.line("call 2");
        self.fold("%r0");
        Ok(())
    }

    fn delete(&mut self, u: &mut Unstructured, m: usize, p: &Plan) -> Result<()> {
        self.key(u, p)?;
        self.line(&format!("lddw_map_fd %r1, {m}"));
        self.line("call 3");
        self.fold("%r0");
        Ok(())
    }

    fn push(&mut self, u: &mut Unstructured, m: usize) -> Result<()> {
        self.value(u, "%r2")?;
        let flags = match u.int_in_range(0..=7)? {
            0..=3 => 0,
            4..=6 => 2,
            _ => 1,
        };
        self.line(&format!("lddw_map_fd %r1, {m}"));
        self.line(&format!("mov %r3, {flags}"));
        self.line("call 87");
        self.fold("%r0");
        Ok(())
    }

    fn take(&mut self, u: &mut Unstructured, m: usize, p: &Plan, helper: u8) -> Result<()> {
        self.line("stdw [%r10-48], -1");
        self.line("stdw [%r10-40], -1");
        self.line(&format!("lddw_map_fd %r1, {m}"));
        self.line("mov %r2, %r10");
        self.line("add %r2, -48");
        self.line(&format!("call {helper}"));
        self.fold("%r0");
        let (sfx, off) = aligned_access(u, p.def.value_size)?;
        self.line(&format!("ldx{sfx} %r7, [%r10{:+}]", off as i32 - 48));
        self.fold("%r7");
        Ok(())
    }

    fn direct(&mut self, u: &mut Unstructured, m: usize, p: &Plan) -> Result<()> {
        let (sfx, off) = access(u, p.def.value_size)?;
        self.line(&format!("lddw_map_value %r7, {m}, {off}"));
        self.line(&format!("ldx{sfx} %r8, [%r7+0]"));
        self.fold("%r8");
        if u.ratio(1, 2)? {
            self.line(&format!("stx{sfx} [%r7+0], %r6"));
        }
        Ok(())
    }
}

/// Generates one case with `ops` map operations from the bytes in `u`.
pub fn case(u: &mut Unstructured, ops: usize) -> Result<MapsCase> {
    let n = u.int_in_range(1..=3)?;
    let plans: Vec<Plan> = (0..n).map(|i| map_def(u, i)).collect::<Result<_>>()?;
    let init: Vec<MapContents> = plans.iter().map(|p| initial(u, p)).collect::<Result<_>>()?;
    let mem_len = u.int_in_range(16..=48)?;
    let mem: Vec<u8> = (0..mem_len).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    let mut w = Writer {
        text: String::new(),
        labels: 0,
        mem_len,
    };
    w.line("mov %r9, %r1");
    w.line("mov %r6, 0");
    for _ in 0..ops {
        let m = u.choose_index(plans.len())?;
        let p = &plans[m];
        match p.def.kind {
            MapKind::Hash | MapKind::Array => {
                let direct = p.def.kind == MapKind::Array && p.def.max_entries == 1;
                let array = p.def.kind == MapKind::Array;
                match u.int_in_range(0..=9)? {
                    0..=3 => w.lookup(u, m, p)?,
                    4..=6 => w.update(u, m, p)?,
                    7 | 8 if direct => w.direct(u, m, p)?,
                    7 if array => w.lookup(u, m, p)?,
                    8 if array => w.update(u, m, p)?,
                    _ => w.delete(u, m, p)?,
                }
            }
            _ => match u.int_in_range(0..=5)? {
                0..=2 => w.push(u, m)?,
                3 | 4 => w.take(u, m, p, 88)?,
                _ => w.take(u, m, p, 89)?,
            },
        }
    }
    w.line("mov %r0, %r6");
    w.line("exit");
    let insns = assemble(&w.text)
        .unwrap_or_else(|e| panic!("the maps generator wrote bad assembly ({e}):\n{}", w.text));
    let mut text = String::new();
    for (i, p) in plans.iter().enumerate() {
        let _ = writeln!(text, "# map {i}: {:?}", p.def);
    }
    text.push_str(&w.text);
    Ok(MapsCase {
        insns,
        asm: text,
        maps: plans.into_iter().map(|p| p.def).collect(),
        init,
        mem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfconf_engines::{Input, Loaded, Observed, Program};
    use bpfconf_spec::ebpf::validate::validate;

    #[test]
    fn generated_cases_are_valid_and_run_on_the_interpreter() {
        let interp = bpfconf_engines::engine_by_name("interp").unwrap();
        let mut kinds = BTreeMap::new();
        for seed in 0..300u64 {
            let bytes = crate::gen::seeded_bytes(seed, 4096);
            let c = case(&mut Unstructured::new(&bytes), 12).expect("enough bytes");
            if let Err(e) = validate(&c.insns) {
                panic!("seed {seed}: {e:?}\n{}", c.asm);
            }
            for d in &c.maps {
                *kinds.entry(format!("{:?}", d.kind)).or_insert(0) += 1;
            }
            let mut l: Box<dyn Loaded> = interp
                .load(&Program::Ebpf(c.program()))
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", c.asm));
            let out = l
                .run(&Input::Ebpf(c.input()))
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", c.asm));
            assert!(matches!(out.ret, Observed::Exact(_)));
            assert_eq!(out.maps.map(|m| m.len()), Some(c.maps.len()));
        }
        // Every map type shows up.
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn same_bytes_same_case() {
        let bytes = crate::gen::seeded_bytes(42, 4096);
        let a = case(&mut Unstructured::new(&bytes), 10).unwrap();
        let b = case(&mut Unstructured::new(&bytes), 10).unwrap();
        assert_eq!(a.asm, b.asm);
        assert_eq!(a.init, b.init);
        assert_eq!(a.mem, b.mem);
    }
}
