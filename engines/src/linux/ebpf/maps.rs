//! The maps of a program loaded into the kernel: created once per load (programs carry their
//! descriptors from verification on), set to a run's initial contents before every run, and
//! dumped after it into the canonical snapshot ([`MapContents`]).
//!
//! # Reset instead of re-creation
//! A map's descriptor is bound into the programs when they are verified, so fresh maps per
//! run would mean verifying every program again per run. Instead each map is brought to the
//! run's initial contents before the run, and the set tracks what each map holds: when
//! created, empty (arrays: zeros); after a dump, exactly the dumped contents (queue and stack:
//! nothing, the dump drained them); after anything that failed half-way, "unknown". Resetting
//! a known map writes only the difference; an unknown one is cleared completely first (hash:
//! every key deleted; array: every index written; queue/stack: drained; prog_array: every
//! occupied slot deleted). What a map holds is then exactly the initial contents. State a
//! reset does not restore is not observable through the helpers: a hash map's bucket order
//! (the snapshot is sorted by key) and which preallocated element backs a key, a queue's ring
//! position.
//!
//! # prog_arrays, one per verified variant
//! Tail-call targets are verified per memory length (module `wrap`), so a prog_array holds
//! the descriptors of one length's targets. Each variant therefore gets its own copy of every
//! prog_array ([`ProgArrays`]), filled once; programs cannot change a prog_array, so the copies
//! are indistinguishable. This matters for speed: on x86-64 a program whose tail-call index is
//! a verifier-known constant is patched in place ("poke") whenever the slot changes, and
//! emptying a slot waits for an RCU grace period (`bpf_arch_poke_desc_update` →
//! `synchronize_rcu`), about 10-30 ms here. Refilling one shared prog_array whenever the
//! length changed made a run cost that much; now slots are deleted only when a run's initial
//! contents empty them, and never when already empty.
//!
//! # Dump
//! Hash maps: `BPF_MAP_GET_NEXT_KEY` from no key, then `BPF_MAP_LOOKUP_ELEM` per key, sorted.
//! Arrays: every index. Queues and stacks: popped with `BPF_MAP_LOOKUP_AND_DELETE_ELEM` until
//! `ENOENT` (a queue pops front first, as the snapshot lists it; a stack pops its top first,
//! so the pops are reversed into bottom-first order). prog_array: a slot read from user space
//! gives the program's *id*, mapped back to its index in [`EbpfProgram::progs`]
//! (value: u32 little-endian), as the interpreter reports it.
//!
//! [`EbpfProgram::progs`]: crate::EbpfProgram::progs

use super::syscall::{self, MapSpec};
use crate::{LoadError, RunError};
use bpfconf_spec::ebpf::maps::{MapContents, MapDef, MapKind};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `BPF_ANY`.
const ANY: u64 = 0;

fn errno(e: &io::Error) -> String {
    super::super::sys::errno_name(e)
}

fn engine(what: &str, def: &MapDef, e: &io::Error) -> RunError {
    RunError::Engine(format!("{what} on map `{}`: {}", def.name, errno(e)))
}

fn is_enoent(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Checks a run's initial contents against the maps and the number of tail-call targets;
/// `Err` says what cannot be realised.
pub fn check_input(defs: &[MapDef], init: &[MapContents], progs: usize) -> Result<(), String> {
    if init.len() > defs.len() {
        return Err(format!(
            "initial contents for {} maps, the program has {}",
            init.len(),
            defs.len()
        ));
    }
    for (def, c) in defs.iter().zip(init) {
        let n = &def.name;
        match (def.kind.is_sequence(), c) {
            (_, MapContents::Unknown) => {}
            (false, MapContents::Keyed(m)) => {
                if def.kind == MapKind::Hash && m.len() > def.max_entries as usize {
                    return Err(format!(
                        "map `{n}`: {} initial entries, max_entries {}",
                        m.len(),
                        def.max_entries
                    ));
                }
                for (k, v) in m {
                    if k.len() != def.key_size as usize || v.len() != def.value_size as usize {
                        return Err(format!(
                            "map `{n}`: an initial entry has a {}-byte key and a {}-byte value, \
                             the map {} and {}",
                            k.len(),
                            v.len(),
                            def.key_size,
                            def.value_size
                        ));
                    }
                    if matches!(def.kind, MapKind::Array | MapKind::ProgArray) {
                        let idx = u32::from_le_bytes([k[0], k[1], k[2], k[3]]);
                        if idx >= def.max_entries {
                            return Err(format!(
                                "map `{n}`: initial index {idx}, max_entries {}",
                                def.max_entries
                            ));
                        }
                    }
                    if def.kind == MapKind::ProgArray {
                        let p = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                        if p as usize >= progs {
                            return Err(format!(
                                "map `{n}`: program index {p}, the program has {progs} tail-call targets"
                            ));
                        }
                    }
                }
            }
            (true, MapContents::Sequence(s)) => {
                if s.len() > def.max_entries as usize {
                    return Err(format!(
                        "map `{n}`: {} initial values, max_entries {}",
                        s.len(),
                        def.max_entries
                    ));
                }
                if let Some(v) = s.iter().find(|v| v.len() != def.value_size as usize) {
                    return Err(format!(
                        "map `{n}`: a {}-byte initial value, value_size {}",
                        v.len(),
                        def.value_size
                    ));
                }
            }
            (_, c) => {
                return Err(format!(
                    "map `{n}` ({:?}): initial contents of the wrong form: {c}",
                    def.kind
                ))
            }
        }
    }
    Ok(())
}

/// The tail-call targets of one variant: their descriptors and ids.
pub struct Targets<'a> {
    /// Descriptors, by index in `progs`.
    pub fds: &'a [OwnedFd],
    /// Kernel ids, by index in `progs` (empty when no map is a prog_array).
    pub ids: &'a [u32],
}

/// One map in the kernel and what it is known to hold.
struct Live {
    def: MapDef,
    fd: OwnedFd,
    /// The contents now (prog_array: program indices), `None` when unknown.
    now: Option<MapContents>,
}

/// The maps of one loaded program, except prog_arrays (`None` in their places).
pub struct Maps {
    maps: Vec<Option<Live>>,
}

/// The prog_arrays of one verified variant (`None` in the other maps' places).
pub struct ProgArrays {
    maps: Vec<Option<Live>>,
}

/// Creates the maps of `defs` for which `select` holds.
fn create(
    defs: &[MapDef],
    select: impl Fn(&MapDef) -> bool,
) -> Result<Vec<Option<Live>>, LoadError> {
    defs.iter()
        .map(|d| select(d).then(|| Live::create(d)).transpose())
        .collect()
}

fn is_prog_array(d: &MapDef) -> bool {
    d.kind == MapKind::ProgArray
}

/// Both halves, by map index.
fn each<'a>(
    shared: &'a mut [Option<Live>],
    own: &'a mut [Option<Live>],
) -> impl Iterator<Item = &'a mut Live> {
    shared
        .iter_mut()
        .zip(own.iter_mut())
        .filter_map(|(a, b)| a.as_mut().or(b.as_mut()))
}

impl ProgArrays {
    /// Creates the prog_arrays of `defs`, empty.
    pub fn create(defs: &[MapDef]) -> Result<ProgArrays, LoadError> {
        Ok(ProgArrays {
            maps: create(defs, is_prog_array)?,
        })
    }
}

impl Maps {
    /// Creates every map but the prog_arrays, empty (arrays: zeros). `EPERM`, `ENOMEM` and
    /// `EOPNOTSUPP`/`ENOTSUPP` (type not built in) make the load unsupported; other refusals
    /// are rejections of the definition.
    pub fn create(defs: &[MapDef]) -> Result<Maps, LoadError> {
        Ok(Maps {
            maps: create(defs, |d| !is_prog_array(d))?,
        })
    }

    /// The descriptors by map index, prog_arrays from `pa`.
    pub fn fds(&self, pa: &ProgArrays) -> Vec<RawFd> {
        self.maps
            .iter()
            .zip(&pa.maps)
            .map(|(a, b)| a.as_ref().or(b.as_ref()).map_or(-1, |m| m.fd.as_raw_fd()))
            .collect()
    }

    /// Forgets what the maps hold (after a failure half-way through a run or reset).
    pub fn forget(&mut self, pa: &mut ProgArrays) {
        for m in each(&mut self.maps, &mut pa.maps) {
            m.now = None;
        }
    }

    /// Brings every map to `init` (checked with [`check_input`]), prog_arrays (those of `pa`)
    /// referring to `targets`. On failure the maps are forgotten.
    pub fn reset(
        &mut self,
        pa: &mut ProgArrays,
        init: &[MapContents],
        targets: &Targets<'_>,
    ) -> Result<(), RunError> {
        let result = each(&mut self.maps, &mut pa.maps)
            .enumerate()
            .try_for_each(|(i, m)| m.reset(init.get(i).unwrap_or(&MapContents::Unknown), targets));
        if result.is_err() {
            self.forget(pa);
        }
        result
    }

    /// Every map's contents, by index. Queues and stacks are empty afterwards. On failure the
    /// maps are forgotten.
    pub fn dump(
        &mut self,
        pa: &mut ProgArrays,
        targets: &Targets<'_>,
    ) -> Result<Vec<MapContents>, RunError> {
        let result: Result<Vec<_>, _> = each(&mut self.maps, &mut pa.maps)
            .map(|m| m.dump(targets))
            .collect();
        if result.is_err() {
            self.forget(pa);
        }
        result
    }
}

/// The keyed contents `c` stands for (`Unknown` = empty).
fn keyed(c: &MapContents) -> BTreeMap<Vec<u8>, Vec<u8>> {
    match c {
        MapContents::Keyed(m) => m.clone(),
        _ => BTreeMap::new(),
    }
}

impl Live {
    /// Creates the map; it is empty (an array: zeros).
    fn create(def: &MapDef) -> Result<Live, LoadError> {
        let spec = MapSpec {
            map_type: def.kind.uapi(),
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            flags: def.flags,
        };
        let fd = syscall::map_create(spec, &def.name).map_err(|e| {
            let what = format!(
                "bpf(BPF_MAP_CREATE) refused map `{}` ({:?}, key {}, value {}, max_entries {}, flags {:#x}): {}",
                def.name,
                def.kind,
                def.key_size,
                def.value_size,
                def.max_entries,
                def.flags,
                errno(&e)
            );
            match e.raw_os_error() {
                Some(libc::EPERM | libc::ENOMEM | libc::EOPNOTSUPP | super::ENOTSUPP) => {
                    LoadError::Unsupported(what)
                }
                _ => LoadError::Rejected {
                    rule: None,
                    reason: what,
                },
            }
        })?;
        let mut live = Live {
            def: def.clone(),
            fd,
            now: None,
        };
        live.now = Some(match def.kind {
            MapKind::Array => MapContents::Keyed(live.full_array(&BTreeMap::new())),
            MapKind::Queue | MapKind::Stack => MapContents::Sequence(Vec::new()),
            MapKind::Hash | MapKind::ProgArray => MapContents::Keyed(BTreeMap::new()),
        });
        Ok(live)
    }

    fn reset(&mut self, init: &MapContents, targets: &Targets<'_>) -> Result<(), RunError> {
        let want = match self.def.kind {
            MapKind::Hash => {
                let want = keyed(init);
                self.reset_hash(&want)?;
                MapContents::Keyed(want)
            }
            MapKind::Array => {
                let want = self.full_array(&keyed(init));
                self.reset_array(&want)?;
                MapContents::Keyed(want)
            }
            MapKind::ProgArray => {
                let want = keyed(init);
                self.reset_prog_array(&want, targets)?;
                MapContents::Keyed(want)
            }
            MapKind::Queue | MapKind::Stack => {
                let want = match init {
                    MapContents::Sequence(s) => s.clone(),
                    _ => Vec::new(),
                };
                self.reset_sequence(&want)?;
                MapContents::Sequence(want)
            }
        };
        self.now = Some(want);
        Ok(())
    }

    /// Every index of an array, zero where `init` has nothing.
    fn full_array(&self, init: &BTreeMap<Vec<u8>, Vec<u8>>) -> BTreeMap<Vec<u8>, Vec<u8>> {
        (0..self.def.max_entries)
            .map(|i| {
                let k = i.to_le_bytes().to_vec();
                let v = init
                    .get(&k)
                    .cloned()
                    .unwrap_or_else(|| vec![0; self.def.value_size as usize]);
                (k, v)
            })
            .collect()
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8]) -> Result<(), RunError> {
        syscall::map_update(&self.fd, key, value, ANY).map_err(|e| {
            let what = match key {
                Some(k) => format!("initial entry {}", hex(k)),
                None => format!("initial value {}", hex(value)),
            };
            RunError::Unsupported(format!(
                "map `{}`: bpf(BPF_MAP_UPDATE_ELEM) refused the {what}: {}",
                self.def.name,
                errno(&e)
            ))
        })
    }

    fn delete(&self, key: &[u8]) -> Result<(), RunError> {
        match syscall::map_delete(&self.fd, key) {
            Err(e) if !is_enoent(&e) => Err(engine("BPF_MAP_DELETE_ELEM", &self.def, &e)),
            _ => Ok(()),
        }
    }

    /// Every key, in the kernel's iteration order.
    fn keys(&self) -> Result<Vec<Vec<u8>>, RunError> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut next = vec![0u8; self.def.key_size as usize];
            match syscall::map_next_key(&self.fd, keys.last().map(Vec::as_slice), &mut next) {
                Ok(()) => keys.push(next),
                Err(e) if is_enoent(&e) => return Ok(keys),
                Err(e) => return Err(engine("BPF_MAP_GET_NEXT_KEY", &self.def, &e)),
            }
        }
    }

    fn reset_hash(&mut self, want: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), RunError> {
        let now = match &self.now {
            Some(MapContents::Keyed(m)) => m.clone(),
            _ => self.keys()?.into_iter().map(|k| (k, Vec::new())).collect(),
        };
        for k in now.keys().filter(|k| !want.contains_key(*k)) {
            self.delete(k)?;
        }
        for (k, v) in want {
            if now.get(k) != Some(v) {
                self.update(Some(k), v)?;
            }
        }
        Ok(())
    }

    fn reset_array(&mut self, want: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), RunError> {
        let now = match &self.now {
            Some(MapContents::Keyed(m)) => m.clone(),
            _ => BTreeMap::new(),
        };
        for (k, v) in want {
            if now.get(k) != Some(v) {
                self.update(Some(k), v)?;
            }
        }
        Ok(())
    }

    fn reset_prog_array(
        &mut self,
        want: &BTreeMap<Vec<u8>, Vec<u8>>,
        targets: &Targets<'_>,
    ) -> Result<(), RunError> {
        // Emptying a slot costs an RCU grace period (module documentation): delete only
        // occupied slots that `want` empties; others are replaced in place.
        let now: BTreeMap<Vec<u8>, Vec<u8>> = match &self.now {
            Some(MapContents::Keyed(m)) => m.clone(),
            _ => {
                let mut m = BTreeMap::new();
                for i in 0..self.def.max_entries {
                    let k = i.to_le_bytes().to_vec();
                    if let Some(v) = self.lookup(&k, 4)? {
                        m.insert(k, v);
                    }
                }
                m
            }
        };
        for k in now.keys().filter(|k| !want.contains_key(*k)) {
            self.delete(k)?;
        }
        for (k, v) in want {
            if now.get(k) == Some(v) && self.now.is_some() {
                continue;
            }
            let idx = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
            let fd = targets.fds.get(idx).ok_or_else(|| {
                RunError::Unsupported(format!(
                    "map `{}`: program index {idx}, the program has {} tail-call targets",
                    self.def.name,
                    targets.fds.len()
                ))
            })?;
            self.update(Some(k), &fd.as_raw_fd().to_ne_bytes())?;
        }
        Ok(())
    }

    /// Pops until empty; the values in pop order.
    fn drain(&self) -> Result<Vec<Vec<u8>>, RunError> {
        let mut out = Vec::new();
        loop {
            let mut v = vec![0u8; self.def.value_size as usize];
            match syscall::map_pop(&self.fd, &mut v) {
                Ok(()) => out.push(v),
                Err(e) if is_enoent(&e) => return Ok(out),
                Err(e) => return Err(engine("BPF_MAP_LOOKUP_AND_DELETE_ELEM", &self.def, &e)),
            }
        }
    }

    fn reset_sequence(&mut self, want: &[Vec<u8>]) -> Result<(), RunError> {
        if !matches!(&self.now, Some(MapContents::Sequence(s)) if s.is_empty()) {
            self.drain()?;
        }
        // Pushing in order leaves the first value at the front of a queue and the bottom of a
        // stack, as the snapshot lists them.
        for v in want {
            self.update(None, v)?;
        }
        Ok(())
    }

    fn lookup(&self, key: &[u8], size: u32) -> Result<Option<Vec<u8>>, RunError> {
        let mut v = vec![0u8; size as usize];
        match syscall::map_lookup(&self.fd, key, &mut v) {
            Ok(()) => Ok(Some(v)),
            Err(e) if is_enoent(&e) => Ok(None),
            Err(e) => Err(engine("BPF_MAP_LOOKUP_ELEM", &self.def, &e)),
        }
    }

    fn dump(&mut self, targets: &Targets<'_>) -> Result<MapContents, RunError> {
        let (snapshot, now) = match self.def.kind {
            MapKind::Hash => {
                let mut m = BTreeMap::new();
                for k in self.keys()? {
                    if let Some(v) = self.lookup(&k, self.def.value_size)? {
                        m.insert(k, v);
                    }
                }
                (MapContents::Keyed(m.clone()), MapContents::Keyed(m))
            }
            MapKind::Array => {
                let mut m = BTreeMap::new();
                for i in 0..self.def.max_entries {
                    let k = i.to_le_bytes().to_vec();
                    let v = self.lookup(&k, self.def.value_size)?.ok_or_else(|| {
                        RunError::Engine(format!("array map `{}` has no index {i}", self.def.name))
                    })?;
                    m.insert(k, v);
                }
                (MapContents::Keyed(m.clone()), MapContents::Keyed(m))
            }
            MapKind::ProgArray => {
                let mut m = BTreeMap::new();
                for i in 0..self.def.max_entries {
                    let k = i.to_le_bytes().to_vec();
                    let Some(id) = self.lookup(&k, 4)? else {
                        continue;
                    };
                    let id = u32::from_ne_bytes([id[0], id[1], id[2], id[3]]);
                    let idx = targets.ids.iter().position(|&x| x == id).ok_or_else(|| {
                        RunError::Engine(format!(
                            "prog_array `{}` slot {i} holds program id {id}, not a target of this run",
                            self.def.name
                        ))
                    })?;
                    m.insert(k, (idx as u32).to_le_bytes().to_vec());
                }
                (MapContents::Keyed(m.clone()), MapContents::Keyed(m))
            }
            MapKind::Queue => (
                MapContents::Sequence(self.drain()?),
                MapContents::Sequence(Vec::new()),
            ),
            MapKind::Stack => {
                let mut s = self.drain()?;
                s.reverse();
                (MapContents::Sequence(s), MapContents::Sequence(Vec::new()))
            }
        };
        self.now = Some(now);
        Ok(snapshot)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
