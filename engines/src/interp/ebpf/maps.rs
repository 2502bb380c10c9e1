//! eBPF maps in the reference interpreter: hash, array, prog_array, queue and stack maps with
//! the kernel's semantics, their values as memory regions, and the canonical snapshot.
//!
//! Sources: kernel/bpf/hashtab.c, arraymap.c, queue_stack_maps.c and the helper descriptions in
//! include/uapi/linux/bpf.h. Error returns are the kernel's negative errnos, sign-extended to
//! 64 bits in R0 ([`neg_errno`]).
//!
//! # Handles and value addresses
//!
//! `lddw_map_fd` (`lddw` with `src` 1, `imm` = map index) loads [`handle`]`(index)`: an opaque
//! number in a range no region ever occupies ([`MAP_HANDLE_BASE`] + index × 0x1000), so
//! dereferencing it faults. Map helpers accept exactly these values as their map argument (the
//! kernel verifier demands a `CONST_PTR_TO_MAP` with no offset); anything else faults.
//!
//! Every value a program can point to is a writable region of kind
//! [`RegionKind::MapValue`] in map *i*'s window, [`MAP_BASE`] + *i* × [`MAP_WINDOW`]. Values are
//! spaced by twice their size rounded up to a power of two (at least 64 bytes), so a pointer
//! moved past its value faults instead of reaching a neighbour (the kernel verifier bounds every
//! access to `value_size`).
//!
//! # Semantics by map type
//!
//! - **array**: every index below `max_entries` exists, zero-filled at the start. Element *n*
//!   lives at a fixed address for the whole run (window + *n* × spacing), so lookups of the same
//!   index return the same pointer and updates copy into it (`array_map_update_elem`). Lookup of
//!   an index ≥ `max_entries` returns NULL. Update: flags other than ANY/NOEXIST/EXIST (ignoring
//!   `BPF_F_LOCK`) → `-EINVAL`; index ≥ `max_entries` → `-E2BIG`; the NOEXIST bit → `-EEXIST`
//!   (every element exists); `BPF_F_LOCK` → `-EINVAL` (no value has a spin lock: maps here have no
//!   BTF); in that order, as arraymap.c checks them. Delete → `-EINVAL`.
//! - **hash**: update flags above EXIST (ignoring `BPF_F_LOCK`) → `-EINVAL`, then `BPF_F_LOCK`
//!   → `-EINVAL`; NOEXIST on a present key → `-EEXIST`; EXIST on a missing key → `-ENOENT`
//!   (`check_flags`); a new key when `max_entries` keys are present → `-E2BIG`
//!   (`alloc_htab_elem`: the preallocated free list is empty, or `is_map_full` without
//!   preallocation). Delete: 0, or `-ENOENT` for a missing key. Lookup: the value's address, or
//!   NULL.
//!
//!   **Value lifetime.** The kernel replaces a hash element on update (`htab_map_update_elem`
//!   links a new element and unlinks the old one) and frees a deleted one; the old memory is
//!   recycled (preallocated maps keep it as the CPU's spare element or put it on the free list;
//!   others free it to the BPF memory allocator, which reuses it at once), so what a stale
//!   pointer later sees is unspecified. The interpreter chooses the closest deterministic model:
//!   a pointer returned by `map_lookup_elem` stays valid and writable for the whole run, and an
//!   update or delete of its key *detaches* it — the region keeps the old bytes, writes to it no
//!   longer reach the map, and the key's next lookup returns a new pointer. (While no lookup has
//!   handed out a key's pointer, updates are made in place: nobody can tell.) Differential tests
//!   must not write through or read from detached pointers.
//! - **prog_array**: values are indices into `EbpfProgram::progs`; programs can only use them
//!   through `tail_call` (the verifier refuses other helpers on them, so they fault here). An
//!   index ≥ `max_entries` or an empty slot makes the tail call fall through.
//! - **queue / stack**: values are kept oldest first (the snapshot order). Push: flags with the
//!   NOEXIST bit or above EXIST → `-EINVAL`; when full, `-E2BIG` unless the EXIST bit is set, which
//!   drops the oldest value (for a stack too: the bottom one) to make room. Pop/peek copy the
//!   front of the queue / top of the stack to the value pointer (pop removes it), or, when empty,
//!   *zero* the `value_size` bytes there and return `-ENOENT` (`__queue_map_get`,
//!   `__stack_map_get`).
//!
//! Helpers the kernel verifier would refuse for a map type (lookup/update/delete on queues,
//! stacks and prog_arrays, push/pop/peek on hash and array maps, tail calls through anything but a
//! prog_array) fault, as do key and value pointers that do not reach `key_size`/`value_size`
//! readable bytes (writable for pop/peek).
//!
//! # Definitions
//!
//! [`check_program`] is the load-time part: [`MapDef::validate`], the map flags the interpreter
//! models (0 everywhere, and `BPF_F_NO_PREALLOC` on hash maps, where it changes nothing
//! observable), the interpreter's size limits ([`MAX_VALUE_SIZE`], [`MAX_FIXED_BYTES`]), and the
//! `lddw` references (see there). At run time all value regions together are bounded by
//! [`REGION_BYTES_LIMIT`](super::memory::REGION_BYTES_LIMIT): a run that would exceed it faults.
//! Initial contents ([`Maps::new`]) must have the map's form (keys and values for hash, array
//! and prog_array maps, a sequence for queues and stacks; `Unknown` = empty), sizes and bounds.

use super::memory::{Memory, Region, RegionKind, MAP_BASE, MAP_WINDOW};
use crate::{EbpfProgram, LoadError};
use bpfconf_spec::ebpf::isa::slot_starts;
use bpfconf_spec::ebpf::maps::{update_flags, MapContents, MapDef, MapKind};
use bpfconf_spec::ebpf::{pseudo, Insn};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Kernel errno values the map helpers return (negated).
pub mod errno {
    /// No such entry.
    pub const ENOENT: u64 = 2;
    /// Argument list too long: map full, index out of range.
    pub const E2BIG: u64 = 7;
    /// Entry exists.
    pub const EEXIST: u64 = 17;
    /// Invalid argument: bad flags, unsupported operation.
    pub const EINVAL: u64 = 22;
}

/// `-errno` as R0 holds it: the negative number sign-extended to 64 bits.
pub const fn neg_errno(errno: u64) -> u64 {
    errno.wrapping_neg()
}

/// First map handle: `lddw_map_fd` with index *i* loads `MAP_HANDLE_BASE + i * 0x1000`. No
/// region is ever placed in this range.
pub const MAP_HANDLE_BASE: u64 = 0xffff_8880_0000_0000;
/// Distance between consecutive map handles.
const HANDLE_STRIDE: u64 = 0x1000;

/// Most maps one program may declare here.
pub const MAX_MAPS: usize = 1024;
/// Largest `value_size` the interpreter accepts (an interpreter limit, not the kernel's).
pub const MAX_VALUE_SIZE: u32 = 1 << 20;
/// Largest `key_size` of a hash map (the kernel's `MAX_BPF_STACK`: `htab_map_alloc_check`
/// refuses bigger keys with E2BIG).
pub const MAX_KEY_SIZE: u32 = 512;
/// Most bytes the arrays, queues and stacks of one program may hold together (`max_entries ×
/// value_size` summed): every array snapshot lists every element, and queue contents live
/// outside the region budget ([`super::memory::REGION_BYTES_LIMIT`], which bounds hash and array
/// values).
pub const MAX_FIXED_BYTES: u64 = 1 << 26;

/// `BPF_F_NO_PREALLOC`, the one map flag modelled (hash maps only).
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_F_LOCK`, an update flag asking for the value's spin lock.
pub const BPF_F_LOCK: u64 = 4;

/// The handle `lddw_map_fd` loads for map `index`.
pub const fn handle(index: usize) -> u64 {
    MAP_HANDLE_BASE + index as u64 * HANDLE_STRIDE
}

/// Spacing of value addresses in a map's window for values of `value_size` bytes.
fn spacing(value_size: u32) -> u64 {
    (value_size as u64).next_power_of_two().max(32) * 2
}

/// The kernel's name of a map type, for messages.
fn kind_name(kind: MapKind) -> &'static str {
    match kind {
        MapKind::Hash => "hash",
        MapKind::Array => "array",
        MapKind::ProgArray => "prog_array",
        MapKind::Queue => "queue",
        MapKind::Stack => "stack",
    }
}

/// A refusal naming the interpreter's rule.
fn rejected(rule: &str, reason: String) -> LoadError {
    LoadError::Rejected {
        rule: Some(rule.into()),
        reason,
    }
}

/// Checks one map definition: `Rejected` (rule `map_definition`) for what the kernel refuses at
/// map creation, `Unsupported` for what the interpreter does not model.
fn check_def(i: usize, d: &MapDef) -> Result<(), LoadError> {
    let invalid = |why: String| rejected("map_definition", format!("map {i}: {why}"));
    d.validate().map_err(invalid)?;
    let n = &d.name;
    if d.kind == MapKind::Hash && d.key_size > MAX_KEY_SIZE {
        return Err(invalid(format!(
            "map `{n}`: hash keys are at most {MAX_KEY_SIZE} bytes (the kernel: E2BIG)"
        )));
    }
    let modelled = if d.kind == MapKind::Hash {
        BPF_F_NO_PREALLOC
    } else {
        0
    };
    if d.flags & !modelled != 0 {
        if d.flags == BPF_F_NO_PREALLOC {
            return Err(invalid(format!(
                "map `{n}`: BPF_F_NO_PREALLOC is for hash maps (the kernel: EINVAL)"
            )));
        }
        return Err(LoadError::Unsupported(format!(
            "map {i} (`{n}`): map flags {:#x} are not modelled by the interpreter (it models 0, \
             and BPF_F_NO_PREALLOC on hash maps)",
            d.flags
        )));
    }
    if d.value_size > MAX_VALUE_SIZE {
        return Err(LoadError::Unsupported(format!(
            "map {i} (`{n}`): value_size {} is above the interpreter's limit of {MAX_VALUE_SIZE}",
            d.value_size
        )));
    }
    Ok(())
}

/// Checks the `lddw` map references of one program (`which` names it in messages).
fn check_refs(which: &str, insns: &[Insn], maps: &[MapDef]) -> Result<(), LoadError> {
    let starts = slot_starts(insns);
    for (pc, insn) in insns.iter().enumerate() {
        if !starts[pc] || !insn.is_lddw() || insn.src == pseudo::IMM64 {
            continue;
        }
        let next = insns.get(pc + 1).map_or(0, |i| i.imm);
        let bad = |why: String| rejected("map_reference", format!("{which}insn {pc}: {why}"));
        if insn.src > 6 {
            // Not an `lddw` variant at all: the validator's business.
            continue;
        }
        if !matches!(insn.src, pseudo::MAP_FD | pseudo::MAP_VALUE) {
            return Err(LoadError::Unsupported(format!(
                "{which}insn {pc}: `lddw` with src {} (variable, code or fd_array-index \
                 reference) is not supported by the interpreter",
                insn.src
            )));
        }
        let idx = insn.imm as u32 as usize;
        let Some(d) = maps.get(idx) else {
            return Err(bad(format!(
                "`lddw` names map {idx}, but the program has {} maps (the kernel: EBADF)",
                maps.len()
            )));
        };
        if insn.src == pseudo::MAP_FD {
            if next != 0 {
                return Err(bad(format!(
                    "`lddw_map_fd` with second imm {next}: must be 0 (the kernel: \
                     unrecognized bpf_ld_imm64 insn)"
                )));
            }
            continue;
        }
        let off = next as u32;
        if d.kind != MapKind::Array {
            return Err(bad(format!(
                "`lddw_map_value` on {} map `{}`: direct value access needs an array map",
                kind_name(d.kind),
                d.name
            )));
        }
        if d.max_entries != 1 {
            return Err(bad(format!(
                "`lddw_map_value` on array `{}` with max_entries {}: direct value access needs \
                 max_entries = 1 (array_map_direct_value_addr: EOPNOTSUPP)",
                d.name, d.max_entries
            )));
        }
        if off >= d.value_size {
            return Err(bad(format!(
                "`lddw_map_value` offset {off} is not below value_size {} of `{}` (the kernel: \
                 EINVAL)",
                d.value_size, d.name
            )));
        }
    }
    Ok(())
}

/// The load-time checks of a program's maps: every definition ([`MapDef::validate`], the modelled
/// flags, the interpreter's limits) and every `lddw` map reference in the main program and the
/// tail-call targets, as the kernel resolves them (`resolve_pseudo_ldimm64`):
///
/// - `lddw_map_fd` (`src` 1): `imm` must name a map, the second slot's `imm` must be 0;
/// - `lddw_map_value` (`src` 2): `imm` must name an array map with `max_entries` = 1 and the
///   offset (second `imm`) must be below its `value_size` (`array_map_direct_value_addr`);
/// - `src` 3–6 (variables, code, fd_array indices) are not supported.
///
/// Refusals the kernel would make are [`LoadError::Rejected`] with rule `map_definition` or
/// `map_reference`; what the interpreter does not model is [`LoadError::Unsupported`].
pub fn check_program(p: &EbpfProgram) -> Result<(), LoadError> {
    if p.maps.len() > MAX_MAPS {
        return Err(LoadError::Unsupported(format!(
            "{} maps: the interpreter supports at most {MAX_MAPS}",
            p.maps.len()
        )));
    }
    for (i, d) in p.maps.iter().enumerate() {
        check_def(i, d)?;
    }
    let fixed: u64 = p
        .maps
        .iter()
        .filter(|d| !matches!(d.kind, MapKind::Hash | MapKind::ProgArray))
        .map(|d| d.max_entries as u64 * d.value_size as u64)
        .sum();
    if fixed > MAX_FIXED_BYTES {
        return Err(LoadError::Unsupported(format!(
            "the arrays, queues and stacks hold {fixed} bytes together, above the interpreter's \
             limit of {MAX_FIXED_BYTES}"
        )));
    }
    check_refs("", &p.insns, &p.maps)?;
    for (i, prog) in p.progs.iter().enumerate() {
        check_refs(&format!("progs[{i}] "), prog, &p.maps)?;
    }
    Ok(())
}

/// A hash map element: where its value lives and whether a pointer to it was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Elem {
    addr: u64,
    exposed: bool,
}

/// A map's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Store {
    /// Present keys and their elements; `next` is the next free value slot.
    Hash {
        elems: BTreeMap<Vec<u8>, Elem>,
        next: u64,
    },
    /// The indices whose value region exists (the others are still all zero).
    Array { present: BTreeSet<u32> },
    /// Occupied slots: index → program index.
    ProgArray { slots: BTreeMap<u32, u32> },
    /// Queue or stack values, oldest first.
    Sequence { values: VecDeque<Vec<u8>> },
}

/// One map of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MapState {
    def: MapDef,
    /// First address of the map's window.
    window: u64,
    /// Spacing of value addresses.
    spacing: u64,
    store: Store,
}

/// The maps of one run, by index in the program's map list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maps {
    maps: Vec<MapState>,
}

/// Reads a little-endian u32.
fn le_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

impl MapState {
    fn name(&self) -> String {
        format!("{} map `{}`", kind_name(self.def.kind), self.def.name)
    }

    fn value_size(&self) -> usize {
        self.def.value_size as usize
    }

    /// The address of value slot `slot`, if inside the window.
    fn slot_addr(&self, slot: u64) -> Result<u64, String> {
        slot.checked_mul(self.spacing)
            .filter(|off| off.saturating_add(self.spacing) <= MAP_WINDOW)
            .map(|off| self.window + off)
            .ok_or_else(|| format!("{}: value address window exhausted", self.name()))
    }

    /// The address of array element `index` (below `max_entries`), creating its zero-filled
    /// region the first time.
    fn array_elem(&mut self, mem: &mut Memory, index: u32, map: usize) -> Result<u64, String> {
        let addr = self.slot_addr(index as u64)?;
        let value_size = self.value_size();
        let Store::Array { present } = &mut self.store else {
            return Err(format!("{} is not an array", self.name()));
        };
        if !present.contains(&index) {
            mem.add(Region {
                kind: RegionKind::MapValue { map },
                base: addr,
                writable: true,
                bytes: vec![0; value_size],
            })?;
            present.insert(index);
        }
        Ok(addr)
    }

    /// A new hash value region holding `value`, returning its address.
    fn new_hash_value(
        &mut self,
        mem: &mut Memory,
        value: Vec<u8>,
        map: usize,
    ) -> Result<u64, String> {
        let Store::Hash { next, .. } = &self.store else {
            return Err(format!("{} is not a hash map", self.name()));
        };
        let slot = *next;
        let addr = self.slot_addr(slot)?;
        mem.add(Region {
            kind: RegionKind::MapValue { map },
            base: addr,
            writable: true,
            bytes: value,
        })?;
        if let Store::Hash { next, .. } = &mut self.store {
            *next = slot + 1;
        }
        Ok(addr)
    }

    /// Fills the map with its initial contents.
    fn fill(
        &mut self,
        mem: &mut Memory,
        init: &MapContents,
        progs: usize,
        map: usize,
    ) -> Result<(), String> {
        let (ks, vs) = (self.def.key_size as usize, self.value_size());
        let max = self.def.max_entries;
        let check_value = |v: &[u8], what: &str| {
            if v.len() == vs {
                Ok(())
            } else {
                Err(format!(
                    "{what}: {} value bytes, value_size is {vs}",
                    v.len()
                ))
            }
        };
        let keyed: Vec<(&Vec<u8>, &Vec<u8>)> = match init {
            MapContents::Unknown => return Ok(()),
            MapContents::Keyed(m) if !self.def.kind.is_sequence() => m.iter().collect(),
            MapContents::Sequence(s) if self.def.kind.is_sequence() => {
                if s.len() > max as usize {
                    return Err(format!("{} values, max_entries is {max}", s.len()));
                }
                for (i, v) in s.iter().enumerate() {
                    check_value(v, &format!("position {i}"))?;
                }
                self.store = Store::Sequence {
                    values: s.iter().cloned().collect(),
                };
                return Ok(());
            }
            MapContents::Keyed(_) => return Err("a queue or stack takes a sequence".into()),
            MapContents::Sequence(_) => return Err("a keyed map takes keys and values".into()),
        };
        if self.def.kind == MapKind::Hash && keyed.len() > max as usize {
            return Err(format!("{} keys, max_entries is {max}", keyed.len()));
        }
        for (k, v) in keyed {
            let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
            let what = format!("key {hex}");
            if k.len() != ks {
                return Err(format!("{what}: {} key bytes, key_size is {ks}", k.len()));
            }
            check_value(v, &what)?;
            match self.def.kind {
                MapKind::Hash => {
                    let addr = self.new_hash_value(mem, v.clone(), map)?;
                    if let Store::Hash { elems, .. } = &mut self.store {
                        elems.insert(
                            k.clone(),
                            Elem {
                                addr,
                                exposed: false,
                            },
                        );
                    }
                }
                MapKind::Array | MapKind::ProgArray => {
                    let index = le_u32(k);
                    if index >= max {
                        return Err(format!("{what}: index {index} ≥ max_entries {max}"));
                    }
                    if self.def.kind == MapKind::Array {
                        let addr = self.array_elem(mem, index, map)?;
                        mem.write(addr, v)?;
                    } else {
                        let prog = le_u32(v);
                        if prog as usize >= progs {
                            return Err(format!(
                                "{what}: program {prog}, but there are {progs} tail-call targets"
                            ));
                        }
                        if let Store::ProgArray { slots } = &mut self.store {
                            slots.insert(index, prog);
                        }
                    }
                }
                MapKind::Queue | MapKind::Stack => {}
            }
        }
        Ok(())
    }

    /// The canonical contents.
    fn snapshot(&self, mem: &Memory) -> MapContents {
        let bytes_at = |addr: u64| {
            mem.region_at(addr)
                .map_or_else(|| vec![0; self.value_size()], |r| r.bytes.clone())
        };
        match &self.store {
            Store::Hash { elems, .. } => MapContents::Keyed(
                elems
                    .iter()
                    .map(|(k, e)| (k.clone(), bytes_at(e.addr)))
                    .collect(),
            ),
            Store::Array { present } => MapContents::Keyed(
                (0..self.def.max_entries)
                    .map(|i| {
                        let v = if present.contains(&i) {
                            self.slot_addr(i as u64)
                                .map_or_else(|_| vec![0; self.value_size()], bytes_at)
                        } else {
                            vec![0; self.value_size()]
                        };
                        (i.to_le_bytes().to_vec(), v)
                    })
                    .collect(),
            ),
            Store::ProgArray { slots } => MapContents::Keyed(
                slots
                    .iter()
                    .map(|(i, p)| (i.to_le_bytes().to_vec(), p.to_le_bytes().to_vec()))
                    .collect(),
            ),
            Store::Sequence { values } => MapContents::Sequence(values.iter().cloned().collect()),
        }
    }
}

impl Maps {
    /// Creates the maps of `defs` for one run, filled with `init` (by index; missing or
    /// [`MapContents::Unknown`] = empty, arrays zero-filled). `progs` is the number of tail-call
    /// targets (prog_array values must be below it). Value regions are added to `mem`. The
    /// error names the map and the offending key or position.
    pub fn new(
        defs: &[MapDef],
        progs: usize,
        init: &[MapContents],
        mem: &mut Memory,
    ) -> Result<Maps, String> {
        let mut maps = Vec::with_capacity(defs.len());
        for (i, def) in defs.iter().enumerate() {
            let window = (i as u64)
                .checked_mul(MAP_WINDOW)
                .and_then(|off| MAP_BASE.checked_add(off))
                .filter(|_| i < MAX_MAPS)
                .ok_or_else(|| format!("map {i}: more than {MAX_MAPS} maps"))?;
            let store = match def.kind {
                MapKind::Hash => Store::Hash {
                    elems: BTreeMap::new(),
                    next: 0,
                },
                MapKind::Array => Store::Array {
                    present: BTreeSet::new(),
                },
                MapKind::ProgArray => Store::ProgArray {
                    slots: BTreeMap::new(),
                },
                MapKind::Queue | MapKind::Stack => Store::Sequence {
                    values: VecDeque::new(),
                },
            };
            let mut m = MapState {
                def: def.clone(),
                window,
                spacing: spacing(def.value_size),
                store,
            };
            if let Some(contents) = init.get(i) {
                m.fill(mem, contents, progs, i)
                    .map_err(|e| format!("initial contents of map {i} (`{}`): {e}", def.name))?;
            }
            maps.push(m);
        }
        if init.len() > defs.len() {
            return Err(format!(
                "initial contents for {} maps, but the program has {}",
                init.len(),
                defs.len()
            ));
        }
        Ok(Maps { maps })
    }

    /// Number of maps.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// True when there are no maps.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The handle of map `index` for `lddw_map_fd`, or the fault message.
    pub fn handle_of(&self, index: u32) -> Result<u64, String> {
        if (index as usize) < self.maps.len() {
            Ok(handle(index as usize))
        } else {
            Err(format!(
                "`lddw_map_fd` names map {index}, but the program has {} maps",
                self.maps.len()
            ))
        }
    }

    /// The map index a handle names, or the fault message (`arg` names the register).
    pub fn resolve(&self, arg: &str, value: u64) -> Result<usize, String> {
        let not_a_map = || format!("{arg} = {value:#x} is not a map (`lddw_map_fd` loads one)");
        let off = value.checked_sub(MAP_HANDLE_BASE).ok_or_else(not_a_map)?;
        if !off.is_multiple_of(HANDLE_STRIDE) {
            return Err(not_a_map());
        }
        usize::try_from(off / HANDLE_STRIDE)
            .ok()
            .filter(|&i| i < self.maps.len())
            .ok_or_else(not_a_map)
    }

    /// A map by index (from [`Maps::resolve`]).
    fn map(&mut self, index: usize) -> Result<&mut MapState, String> {
        self.maps
            .get_mut(index)
            .ok_or_else(|| format!("no map {index}"))
    }

    /// The fault for a helper the verifier does not allow on this map type.
    fn refused(m: &MapState, helper: &str) -> String {
        format!(
            "{helper} on {}: the kernel verifier refuses this helper for {} maps",
            m.name(),
            kind_name(m.def.kind)
        )
    }

    /// `lddw_map_value`: the address `off` bytes into element 0 of array map `index`.
    pub fn value_pointer(&mut self, mem: &mut Memory, index: u32, off: u32) -> Result<u64, String> {
        let n = self.maps.len();
        let map = index as usize;
        let m = self.maps.get_mut(map).ok_or_else(|| {
            format!("`lddw_map_value` names map {index}, but the program has {n} maps")
        })?;
        if m.def.kind != MapKind::Array || m.def.max_entries != 1 || off >= m.def.value_size {
            return Err(format!(
                "`lddw_map_value` with offset {off} on {}: needs an array with max_entries = 1 \
                 and an offset below value_size",
                m.name()
            ));
        }
        Ok(m.array_elem(mem, 0, map)? + off as u64)
    }

    /// `map_lookup_elem(map, key)`: the value's address, or 0 (NULL).
    pub fn lookup(&mut self, mem: &mut Memory, map: usize, key: u64) -> Result<u64, String> {
        let m = self.map(map)?;
        match m.def.kind {
            MapKind::Hash => {
                let k = read_arg(mem, "key", key, m.def.key_size)?;
                let Store::Hash { elems, .. } = &mut m.store else {
                    return Ok(0);
                };
                Ok(elems.get_mut(&k).map_or(0, |e| {
                    e.exposed = true;
                    e.addr
                }))
            }
            MapKind::Array => {
                let index = le_u32(&read_arg(mem, "key", key, 4)?);
                if index >= m.def.max_entries {
                    return Ok(0);
                }
                m.array_elem(mem, index, map)
            }
            _ => Err(Self::refused(m, "map_lookup_elem")),
        }
    }

    /// `map_update_elem(map, key, value, flags)`: 0 or a negative errno.
    pub fn update(
        &mut self,
        mem: &mut Memory,
        map: usize,
        key: u64,
        value: u64,
        flags: u64,
    ) -> Result<u64, String> {
        let m = self.map(map)?;
        if !matches!(m.def.kind, MapKind::Hash | MapKind::Array) {
            return Err(Self::refused(m, "map_update_elem"));
        }
        let k = read_arg(mem, "key", key, m.def.key_size)?;
        let v = read_arg(mem, "value", value, m.def.value_size)?;
        let plain = flags & !BPF_F_LOCK;
        if plain > update_flags::EXIST {
            return Ok(neg_errno(errno::EINVAL));
        }
        if m.def.kind == MapKind::Array {
            let index = le_u32(&k);
            if index >= m.def.max_entries {
                return Ok(neg_errno(errno::E2BIG));
            }
            if flags & update_flags::NOEXIST != 0 {
                return Ok(neg_errno(errno::EEXIST));
            }
            if flags & BPF_F_LOCK != 0 {
                return Ok(neg_errno(errno::EINVAL));
            }
            let addr = m.array_elem(mem, index, map)?;
            mem.write(addr, &v)?;
            return Ok(0);
        }
        if flags & BPF_F_LOCK != 0 {
            return Ok(neg_errno(errno::EINVAL));
        }
        let max = m.def.max_entries as usize;
        let Store::Hash { elems, .. } = &m.store else {
            return Err(format!("{} has no hash table", m.name()));
        };
        let old = elems.get(&k).copied();
        match (old, plain) {
            (Some(_), update_flags::NOEXIST) => return Ok(neg_errno(errno::EEXIST)),
            (None, update_flags::EXIST) => return Ok(neg_errno(errno::ENOENT)),
            (None, _) if elems.len() >= max => return Ok(neg_errno(errno::E2BIG)),
            _ => {}
        }
        match old {
            // Nobody holds a pointer to the current value: update it in place.
            Some(e) if !e.exposed => mem.write(e.addr, &v)?,
            // A new element; an exposed old one stays behind, detached.
            _ => {
                let addr = m.new_hash_value(mem, v, map)?;
                if let Store::Hash { elems, .. } = &mut m.store {
                    elems.insert(
                        k,
                        Elem {
                            addr,
                            exposed: false,
                        },
                    );
                }
            }
        }
        Ok(0)
    }

    /// `map_delete_elem(map, key)`: 0 or a negative errno.
    pub fn delete(&mut self, mem: &mut Memory, map: usize, key: u64) -> Result<u64, String> {
        let m = self.map(map)?;
        if !matches!(m.def.kind, MapKind::Hash | MapKind::Array) {
            return Err(Self::refused(m, "map_delete_elem"));
        }
        let k = read_arg(mem, "key", key, m.def.key_size)?;
        let Store::Hash { elems, .. } = &mut m.store else {
            // Array elements cannot be deleted (array_map_delete_elem).
            return Ok(neg_errno(errno::EINVAL));
        };
        match elems.remove(&k) {
            None => Ok(neg_errno(errno::ENOENT)),
            Some(e) => {
                if !e.exposed {
                    mem.remove_at(e.addr);
                }
                Ok(0)
            }
        }
    }

    /// `map_push_elem(map, value, flags)`: 0 or a negative errno.
    pub fn push(
        &mut self,
        mem: &mut Memory,
        map: usize,
        value: u64,
        flags: u64,
    ) -> Result<u64, String> {
        let m = self.map(map)?;
        if !m.def.kind.is_sequence() {
            return Err(Self::refused(m, "map_push_elem"));
        }
        let max = m.def.max_entries as usize;
        let v = read_arg(mem, "value", value, m.def.value_size)?;
        let Store::Sequence { values } = &mut m.store else {
            return Err(Self::refused(m, "map_push_elem"));
        };
        if flags & update_flags::NOEXIST != 0 || flags > update_flags::EXIST {
            return Ok(neg_errno(errno::EINVAL));
        }
        if values.len() >= max {
            if flags & update_flags::EXIST == 0 {
                return Ok(neg_errno(errno::E2BIG));
            }
            values.pop_front();
        }
        values.push_back(v);
        Ok(0)
    }

    /// `map_pop_elem(map, value)` (`remove`) or `map_peek_elem(map, value)`: copies the next value
    /// (queue: oldest; stack: newest) to `value`, or zeroes it and returns `-ENOENT` when empty.
    pub fn pop(
        &mut self,
        mem: &mut Memory,
        map: usize,
        value: u64,
        remove: bool,
    ) -> Result<u64, String> {
        let m = self.map(map)?;
        let stack = m.def.kind == MapKind::Stack;
        let size = m.value_size();
        let Store::Sequence { values } = &mut m.store else {
            let helper = if remove {
                "map_pop_elem"
            } else {
                "map_peek_elem"
            };
            return Err(Self::refused(m, helper));
        };
        let next = if stack { values.back() } else { values.front() };
        let Some(v) = next else {
            write_arg(mem, value, &vec![0; size])?;
            return Ok(neg_errno(errno::ENOENT));
        };
        write_arg(mem, value, v)?;
        if remove {
            if stack {
                values.pop_back();
            } else {
                values.pop_front();
            }
        }
        Ok(0)
    }

    /// The tail-call target in slot `index` of prog_array map `map`: `None` when the index is
    /// out of range or the slot is empty.
    pub fn prog_at(&mut self, map: usize, index: u32) -> Result<Option<u32>, String> {
        let m = self.map(map)?;
        let Store::ProgArray { slots } = &m.store else {
            return Err(Self::refused(m, "tail_call"));
        };
        if index >= m.def.max_entries {
            return Ok(None);
        }
        Ok(slots.get(&index).copied())
    }

    /// Every map's canonical contents: keyed maps sorted by key (arrays list every index,
    /// prog_arrays their occupied slots with the program index as a u32 value), queues and
    /// stacks oldest first.
    pub fn snapshot(&self, mem: &Memory) -> Vec<MapContents> {
        self.maps.iter().map(|m| m.snapshot(mem)).collect()
    }
}

/// The `size` bytes a helper argument points to (a copy), or the fault.
fn read_arg(mem: &Memory, what: &str, addr: u64, size: u32) -> Result<Vec<u8>, String> {
    mem.read(addr, size as usize)
        .map(<[u8]>::to_vec)
        .map_err(|e| format!("the {what} pointer must reach {size} readable bytes: {e}"))
}

/// Writes a helper's output `bytes` at `addr`, or the fault.
fn write_arg(mem: &mut Memory, addr: u64, bytes: &[u8]) -> Result<(), String> {
    mem.write(addr, bytes).map_err(|e| {
        format!(
            "the value pointer must reach {} writable bytes: {e}",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::ebpf::memory::frame_pointer;

    fn def(kind: MapKind, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
        MapDef {
            name: "m".into(),
            kind,
            key_size,
            value_size,
            max_entries,
            flags: 0,
        }
    }

    #[test]
    fn handles_resolve_exactly_and_values_are_spaced() {
        let mut mem = Memory::default();
        let defs = [def(MapKind::Array, 4, 8, 2), def(MapKind::Hash, 4, 8, 2)];
        let maps = Maps::new(&defs, 0, &[], &mut mem).unwrap();
        assert_eq!(maps.resolve("R1", handle(1)), Ok(1));
        assert_eq!(maps.handle_of(1), Ok(handle(1)));
        assert!(maps.handle_of(2).is_err());
        for bad in [
            0,
            handle(0) + 8,
            handle(2),
            handle(0) - HANDLE_STRIDE,
            u64::MAX,
        ] {
            assert!(maps.resolve("R1", bad).is_err(), "{bad:#x}");
        }
        assert_eq!(
            [spacing(1), spacing(8), spacing(33), spacing(100)],
            [64, 64, 128, 256]
        );
        assert_eq!(neg_errno(errno::EEXIST), -17i64 as u64);
    }

    #[test]
    fn hash_values_detach_only_once_handed_out() {
        let mut mem = Memory::default();
        mem.push_frame(0).unwrap();
        let (key, value) = (frame_pointer(0) - 4, frame_pointer(0) - 16);
        let mut maps = Maps::new(&[def(MapKind::Hash, 4, 8, 4)], 0, &[], &mut mem).unwrap();
        mem.store(key, 4, 1).unwrap();
        mem.store(value, 8, 10).unwrap();
        assert_eq!(maps.update(&mut mem, 0, key, value, 0), Ok(0));
        assert_eq!(mem.len(), 2);
        // Not handed out: updated in place.
        assert_eq!(maps.update(&mut mem, 0, key, value, 0), Ok(0));
        assert_eq!(mem.len(), 2);
        let a = maps.lookup(&mut mem, 0, key).unwrap();
        // Handed out: the update makes a new value and leaves the old one.
        mem.store(value, 8, 20).unwrap();
        assert_eq!(maps.update(&mut mem, 0, key, value, 0), Ok(0));
        assert_eq!(mem.len(), 3);
        assert_eq!(mem.load(a, 8), Ok(10));
        let b = maps.lookup(&mut mem, 0, key).unwrap();
        assert_ne!(a, b);
        assert_eq!(maps.delete(&mut mem, 0, key), Ok(0));
        assert_eq!(mem.len(), 3, "b stays, detached");
        // A key never looked up leaves nothing behind.
        mem.store(key, 4, 2).unwrap();
        assert_eq!(maps.update(&mut mem, 0, key, value, 0), Ok(0));
        assert_eq!(maps.delete(&mut mem, 0, key), Ok(0));
        assert_eq!(mem.len(), 3);
        assert_eq!(
            maps.snapshot(&mem),
            vec![MapContents::Keyed(BTreeMap::new())]
        );
    }

    #[test]
    fn program_checks_sum_fixed_sizes() {
        let mut p = EbpfProgram::new(vec![]);
        p.maps = vec![def(MapKind::Array, 4, 1 << 16, 1 << 8); 3];
        assert!(check_program(&p).is_ok());
        p.maps.push(def(MapKind::Queue, 0, 1 << 16, 1 << 9));
        assert!(matches!(
            check_program(&p),
            Err(LoadError::Unsupported(m)) if m.contains("together")
        ));
        p.maps = vec![def(MapKind::Hash, 4, 8, u32::MAX)];
        assert!(check_program(&p).is_ok(), "hash maps grow on demand");
    }
}
