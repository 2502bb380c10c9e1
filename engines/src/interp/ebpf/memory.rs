//! The address space of one eBPF run: a table of byte regions at fixed, fake base addresses.
//!
//! Pointers are plain 64-bit register values. Nothing real is ever dereferenced: every access
//! names an address and a size, and must lie wholly inside one region of the table, or the run
//! faults. The layout (all bases are far apart, so an overflow from one region can never land in
//! another):
//!
//! | region | base | size |
//! |---|---|---|
//! | the memory buffer (`mem`) | [`MEM_BASE`] = `0x1_0000_0000` | `mem.len()` |
//! | stack frame *n* (0 = the main program, *n* = call depth) | [`STACK_BASE`] + *n* × [`STACK_STRIDE`] = `0x2_0000_0000 + n*0x1000` | [`STACK_SIZE`] = 512 |
//! | map values: map *i*'s window | [`MAP_BASE`] + *i* × [`MAP_WINDOW`] = `0x3_0000_0000 + i*2^44` | one region per value, see [`super::maps`] |
//!
//! A frame's region exists while the frame is live: it is added, zero-filled, when a function is
//! entered and removed when it returns, so a pointer into a dead frame faults until a new call at
//! the same depth reuses the addresses (as a real stack would). Map values are regions of kind
//! [`RegionKind::MapValue`], added by the map code when a value first becomes addressable; they
//! stay for the whole run (see [`super::maps`] for values that leave their map).
//!
//! Values are stored little-endian (RFC 9669 leaves byte order to the platform; bpf_conformance
//! expects little-endian, as on x86-64). Address arithmetic wraps modulo 2^64. Accesses need no
//! alignment (RFC 9669 states no alignment rule; the kernel's rules are verifier policy).
//! Regions are kept ordered by base address, so finding the region of an address takes
//! logarithmic time however many map values a run creates.

use bpfconf_spec::ebpf::STACK_SIZE as SPEC_STACK_SIZE;
use std::collections::BTreeMap;

/// Base address of the memory buffer (R1 points here when the buffer is not empty).
pub const MEM_BASE: u64 = 0x1_0000_0000;
/// Base address of the main program's stack frame.
pub const STACK_BASE: u64 = 0x2_0000_0000;
/// Distance between the bases of consecutive stack frames.
pub const STACK_STRIDE: u64 = 0x1000;
/// Size of one stack frame in bytes.
pub const STACK_SIZE: usize = SPEC_STACK_SIZE;
/// First address of the map value windows (map 0's window starts here).
pub const MAP_BASE: u64 = 0x3_0000_0000;
/// Size of each map's window of value addresses (2^44 bytes).
pub const MAP_WINDOW: u64 = 1 << 44;
/// Most bytes the regions added to one run's address space (stack frames, map values) may hold
/// together: [`Memory::add`] fails beyond it, so no program can exhaust the host's memory.
pub const REGION_BYTES_LIMIT: u64 = 1 << 28;

/// What a region holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// The memory buffer handed to the program (`EbpfInput::mem`).
    Mem,
    /// The stack frame of the function at this call depth (0 = the main program).
    Stack(usize),
    /// A value of map `map` (an index into the program's map list), in the map or detached
    /// from it.
    MapValue {
        /// The map's index.
        map: usize,
    },
}

/// A contiguous range of addressable bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// What the region holds.
    pub kind: RegionKind,
    /// Address of the first byte.
    pub base: u64,
    /// False for read-only regions (stores fault).
    pub writable: bool,
    /// The contents.
    pub bytes: Vec<u8>,
}

/// The base address of the stack frame at call depth `depth`.
pub const fn frame_base(depth: usize) -> u64 {
    STACK_BASE + depth as u64 * STACK_STRIDE
}

/// The frame pointer (R10) of the function at call depth `depth`: one past its frame's end.
pub const fn frame_pointer(depth: usize) -> u64 {
    frame_base(depth) + STACK_SIZE as u64
}

/// What kind of access failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A load.
    Load,
    /// A store.
    Store,
    /// An atomic read-modify-write.
    Atomic,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Load => "load",
            Access::Store => "store",
            Access::Atomic => "atomic access",
        }
    }
}

/// The fault message for a bad access of `size` bytes at `addr`.
fn out_of_bounds(access: Access, size: usize, addr: u64) -> String {
    format!(
        "out-of-bounds {} of {size} bytes at {addr:#x}",
        access.name()
    )
}

/// The regions of one run, by base address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    regions: BTreeMap<u64, Region>,
    /// Bytes in regions added with [`Memory::add`] and not removed.
    added: u64,
}

impl Memory {
    /// An address space holding a writable copy of `mem` at [`MEM_BASE`] (and nothing else).
    pub fn with_mem(mem: &[u8]) -> Self {
        let mut m = Memory::default();
        m.regions.insert(
            MEM_BASE,
            Region {
                kind: RegionKind::Mem,
                base: MEM_BASE,
                writable: true,
                bytes: mem.to_vec(),
            },
        );
        m
    }

    /// Adds a region; fails if it would overlap one already present (or share its base), wrap
    /// around the address space, or take the added regions past [`REGION_BYTES_LIMIT`].
    pub fn add(&mut self, region: Region) -> Result<(), String> {
        let len = region.bytes.len() as u64;
        if self.added.saturating_add(len) > REGION_BYTES_LIMIT {
            return Err(format!(
                "a region of {len} bytes would take the run past the interpreter's limit of \
                 {REGION_BYTES_LIMIT} bytes of stack frames and map values"
            ));
        }
        let end = region
            .base
            .checked_add(region.bytes.len() as u64)
            .ok_or_else(|| format!("region at {:#x} wraps around", region.base))?;
        let below = self.regions.range(..=region.base).next_back();
        let clash_below =
            below.is_some_and(|(&b, r)| b == region.base || b + r.bytes.len() as u64 > region.base);
        let clash_above = self
            .regions
            .range(region.base..)
            .next()
            .is_some_and(|(&b, _)| b < end);
        if clash_below || clash_above {
            return Err(format!("region at {:#x} overlaps another", region.base));
        }
        self.regions.insert(region.base, region);
        self.added += len;
        Ok(())
    }

    /// Takes a removed region out of the byte count.
    fn removed(&mut self, r: Option<Region>) -> Option<Region> {
        if let Some(r) = &r {
            if r.kind != RegionKind::Mem {
                self.added = self.added.saturating_sub(r.bytes.len() as u64);
            }
        }
        r
    }

    /// Removes the region of this kind, returning it.
    pub fn remove(&mut self, kind: RegionKind) -> Option<Region> {
        let base = self.region(kind)?.base;
        self.remove_at(base)
    }

    /// Removes the region starting at `base`, returning it.
    pub fn remove_at(&mut self, base: u64) -> Option<Region> {
        let r = self.regions.remove(&base);
        self.removed(r)
    }

    /// The region of this kind, if present (the first by address if there are several).
    pub fn region(&self, kind: RegionKind) -> Option<&Region> {
        let at = match kind {
            RegionKind::Mem => Some(MEM_BASE),
            RegionKind::Stack(depth) => Some(frame_base(depth)),
            RegionKind::MapValue { .. } => None,
        };
        match at.and_then(|base| self.regions.get(&base)) {
            Some(r) if r.kind == kind => Some(r),
            _ => self.regions.values().find(|r| r.kind == kind),
        }
    }

    /// The region starting at `base`, if any.
    pub fn region_at(&self, base: u64) -> Option<&Region> {
        self.regions.get(&base)
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// True when there are no regions.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Adds a zero-filled stack frame for call depth `depth`.
    pub fn push_frame(&mut self, depth: usize) -> Result<(), String> {
        self.add(Region {
            kind: RegionKind::Stack(depth),
            base: frame_base(depth),
            writable: true,
            bytes: vec![0; STACK_SIZE],
        })
    }

    /// Removes the stack frame of call depth `depth`.
    pub fn pop_frame(&mut self, depth: usize) {
        let base = frame_base(depth);
        if self
            .regions
            .get(&base)
            .is_some_and(|r| r.kind == RegionKind::Stack(depth))
        {
            self.remove_at(base);
        }
    }

    /// The base address and offset of `size` bytes at `addr`, if they lie inside one region.
    fn locate(&self, addr: u64, size: usize) -> Option<(u64, usize)> {
        let (&base, r) = self.regions.range(..=addr).next_back()?;
        let off = addr - base;
        let end = off.checked_add(size as u64)?;
        (end <= r.bytes.len() as u64).then_some((base, off as usize))
    }

    /// The `len` bytes at `addr`, or the fault message.
    pub fn read(&self, addr: u64, len: usize) -> Result<&[u8], String> {
        let (base, off) = self
            .locate(addr, len)
            .ok_or_else(|| out_of_bounds(Access::Load, len, addr))?;
        Ok(&self.regions[&base].bytes[off..off + len])
    }

    /// The `len` writable bytes at `addr`, or the fault message naming `access`.
    fn writable(&mut self, addr: u64, len: usize, access: Access) -> Result<&mut [u8], String> {
        let (base, off) = self
            .locate(addr, len)
            .ok_or_else(|| out_of_bounds(access, len, addr))?;
        let r = self
            .regions
            .get_mut(&base)
            .ok_or_else(|| out_of_bounds(access, len, addr))?;
        if !r.writable {
            return Err(format!(
                "{} of {len} bytes at {addr:#x}: the region is read-only",
                access.name()
            ));
        }
        Ok(&mut r.bytes[off..off + len])
    }

    /// A raw pointer to the `size` bytes at `addr`, checked exactly as [`Memory::load`] (for
    /// [`Access::Load`]) or [`Memory::store`] / [`Memory::update`] (the other kinds) check
    /// them, or their fault message. For JIT-generated code: the pointer stays valid until the
    /// region is removed (region contents never move), and it must not be used while a Rust
    /// reference into the same region is alive.
    pub fn host_ptr(&mut self, addr: u64, size: usize, access: Access) -> Result<*mut u8, String> {
        match access {
            Access::Load => {
                let (base, off) = self
                    .locate(addr, size)
                    .ok_or_else(|| out_of_bounds(access, size, addr))?;
                let r = self
                    .regions
                    .get_mut(&base)
                    .ok_or_else(|| out_of_bounds(access, size, addr))?;
                // SAFETY: off + size <= r.bytes.len() (checked by locate).
                Ok(unsafe { r.bytes.as_mut_ptr().add(off) })
            }
            _ => Ok(self.writable(addr, size, access)?.as_mut_ptr()),
        }
    }

    /// The start and length of the region of this kind (the memory buffer, a stack frame), as
    /// a raw pointer for JIT fast paths; see [`Memory::host_ptr`] for its validity.
    pub fn region_ptr(&mut self, kind: RegionKind) -> Option<(*mut u8, usize)> {
        let base = self.region(kind)?.base;
        let r = self.regions.get_mut(&base)?;
        Some((r.bytes.as_mut_ptr(), r.bytes.len()))
    }

    /// Overwrites the bytes at `addr` with `bytes`.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), String> {
        self.writable(addr, bytes.len(), Access::Store)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Loads a little-endian value of `size` (1, 2, 4 or 8) bytes, zero-extended.
    pub fn load(&self, addr: u64, size: usize) -> Result<u64, String> {
        Ok(le_value(self.read(addr, size)?))
    }

    /// Stores the low `size` (1, 2, 4 or 8) bytes of `value`, little-endian.
    pub fn store(&mut self, addr: u64, size: usize, value: u64) -> Result<(), String> {
        let bytes = value.to_le_bytes();
        self.writable(addr, size, Access::Store)?
            .copy_from_slice(&bytes[..size]);
        Ok(())
    }

    /// Atomically (there is one thread) replaces the `size`-byte value at `addr` by `f(old)`
    /// truncated to `size` bytes, returning `old`.
    pub fn update(
        &mut self,
        addr: u64,
        size: usize,
        f: impl FnOnce(u64) -> u64,
    ) -> Result<u64, String> {
        let slot = self.writable(addr, size, Access::Atomic)?;
        let old = le_value(slot);
        slot.copy_from_slice(&f(old).to_le_bytes()[..size]);
        Ok(old)
    }

    /// The contents of the memory buffer (empty if it was removed).
    pub fn into_mem(mut self) -> Vec<u8> {
        self.remove(RegionKind::Mem)
            .map(|r| r.bytes)
            .unwrap_or_default()
    }
}

/// The little-endian value of up to 8 bytes.
fn le_value(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | *b as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_must_lie_inside_one_region() {
        let mut m = Memory::with_mem(&[1, 2, 3, 4]);
        m.push_frame(0).unwrap();
        assert_eq!(m.load(MEM_BASE, 4).unwrap(), 0x0403_0201);
        assert_eq!(m.load(MEM_BASE + 3, 1).unwrap(), 4);
        assert!(m.load(MEM_BASE + 3, 2).is_err());
        assert!(m.load(MEM_BASE - 1, 1).is_err());
        assert!(m.load(u64::MAX, 8).is_err());
        let fp = frame_pointer(0);
        m.store(fp - 8, 8, u64::MAX).unwrap();
        assert_eq!(m.load(fp - 8, 8).unwrap(), u64::MAX);
        assert!(m.store(fp - 4, 8, 0).is_err());
        assert_eq!(
            m.load(fp, 1).unwrap_err(),
            format!("out-of-bounds load of 1 bytes at {fp:#x}")
        );
        assert_eq!(m.update(MEM_BASE, 2, |v| v + 1).unwrap(), 0x0201);
        assert_eq!(m.clone().into_mem(), vec![2, 2, 3, 4]);
        m.pop_frame(0);
        assert!(m.load(fp - 8, 8).is_err());
    }

    #[test]
    fn regions_do_not_overlap_and_read_only_regions_refuse_stores() {
        let mut m = Memory::with_mem(&[0; 16]);
        let clash = Region {
            kind: RegionKind::Stack(7),
            base: MEM_BASE + 8,
            writable: true,
            bytes: vec![0; 4],
        };
        assert!(m.add(clash).is_err());
        let ro = Region {
            kind: RegionKind::Stack(1),
            base: MAP_BASE,
            writable: false,
            bytes: vec![9; 4],
        };
        m.add(ro).unwrap();
        assert_eq!(m.load(MAP_BASE, 1).unwrap(), 9);
        assert!(m.store(MAP_BASE, 1, 0).unwrap_err().contains("read-only"));
        assert!(m.update(MAP_BASE, 4, |v| v).is_err());
        let wraps = Region {
            kind: RegionKind::Stack(2),
            base: u64::MAX,
            writable: true,
            bytes: vec![0; 2],
        };
        assert!(m.add(wraps).is_err());
    }

    #[test]
    fn regions_are_found_by_address_and_counted() {
        let mut m = Memory::with_mem(&[]);
        let region = |base, len| Region {
            kind: RegionKind::MapValue { map: 0 },
            base,
            writable: true,
            bytes: vec![7; len],
        };
        // Touching regions are fine; an access spanning both is not.
        m.add(region(MAP_BASE, 8)).unwrap();
        m.add(region(MAP_BASE + 8, 8)).unwrap();
        assert_eq!(m.load(MAP_BASE + 4, 4).unwrap(), 0x0707_0707);
        assert!(m.load(MAP_BASE + 4, 8).is_err());
        // Sharing a base is refused, even with an empty region.
        assert!(m.add(region(MAP_BASE, 0)).is_err());
        assert!(m.add(region(MEM_BASE, 4)).is_err());
        assert!(m.add(region(MAP_BASE - 4, 8)).is_err());
        assert_eq!(m.len(), 3);
        assert_eq!(m.added, 16);
        assert_eq!(m.remove_at(MAP_BASE).map(|r| r.bytes.len()), Some(8));
        assert_eq!(m.added, 8);
        assert!(m.load(MAP_BASE, 1).is_err());
        // The budget: the added regions may not exceed REGION_BYTES_LIMIT together.
        m.added = REGION_BYTES_LIMIT - 4;
        assert!(m
            .add(region(MAP_BASE + 64, 8))
            .unwrap_err()
            .contains("limit"));
        m.add(region(MAP_BASE + 64, 4)).unwrap();
        m.push_frame(0).unwrap_err();
        m.pop_frame(3);
        assert_eq!(m.added, REGION_BYTES_LIMIT);
        assert!(!m.is_empty());
    }
}
