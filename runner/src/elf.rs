//! eBPF programs from ELF objects, as `clang -O2 -target bpf -c` builds them (`bpfconf exec
//! --elf FILE --section NAME`).
//!
//! The named section's bytes are the program (entry at its first instruction), read with the
//! `object` crate. What is accepted:
//!
//! - a 64-bit little-endian ELF for `EM_BPF` (`clang -target bpf` or `bpfel`); big-endian
//!   objects (`bpfeb`) are refused;
//! - a section holding code (`SHT_PROGBITS`, executable), its size a multiple of 8;
//! - relocations of type `R_BPF_64_32` on a `call` (bpf-to-bpf calls, as clang emits them for
//!   functions that are not inlined): the callee's section (often `.text`) is appended after the
//!   program, once, and the call becomes a local call (`src` 1) with the right displacement.
//!
//! Refused with a message naming the instruction and the symbol: every other relocation, in
//! particular `R_BPF_64_64` on an `lddw` — a reference to a map or to global data. Maps via
//! relocations (libbpf's `.maps`/`maps` sections) are out of scope: load such programs with
//! libbpf, or write the case with `[[case.maps]]`.

use bpfconf_spec::ebpf::Insn;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};
use std::fmt;

/// `R_BPF_64_64`: 64-bit immediate of an `lddw` (maps, global data).
pub const R_BPF_64_64: u32 = 1;
/// `R_BPF_64_32`: 32-bit immediate of a `call` (bpf-to-bpf calls).
pub const R_BPF_64_32: u32 = 10;

/// Why a program could not be read from an ELF object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(
    /// The message.
    pub String,
);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ElfError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(msg.into()))
}

/// The names of the sections of `data` that hold code (candidates for `--section`).
pub fn code_sections(data: &[u8]) -> Result<Vec<String>, ElfError> {
    let file = parse(data)?;
    Ok(file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text && s.size() > 0)
        .filter_map(|s| s.name().ok().map(String::from))
        .collect())
}

fn parse(data: &[u8]) -> Result<object::File<'_>, ElfError> {
    let file =
        object::File::parse(data).map_err(|e| ElfError(format!("not an ELF object: {e}")))?;
    if file.format() != object::BinaryFormat::Elf {
        return err(format!("not an ELF object ({:?})", file.format()));
    }
    if file.architecture() != object::Architecture::Bpf {
        return err(format!(
            "not a BPF object (architecture {:?}; build with `clang -target bpf`)",
            file.architecture()
        ));
    }
    if !file.is_little_endian() {
        return err("big-endian BPF objects (bpfeb) are not supported; build with -target bpfel");
    }
    Ok(file)
}

/// Reads the program in section `name` of the ELF object `data`, applying the relocations it
/// can (see the module documentation).
pub fn load_section(data: &[u8], name: &str) -> Result<Vec<Insn>, ElfError> {
    let file = parse(data)?;
    let Some(section) = file.section_by_name(name) else {
        let have = code_sections(data)?;
        return err(format!(
            "no section `{name}` (code sections: {})",
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        ));
    };
    let mut insns = Vec::new();
    // Code sections laid out so far: (section, first slot). The named one comes first; the
    // sections its calls reach are appended, once each.
    let mut layout: Vec<(object::SectionIndex, usize)> = Vec::new();
    append_code(&section, &mut insns, &mut layout)?;
    let mut next = 0;
    while next < layout.len() {
        let (index, base) = layout[next];
        next += 1;
        let sec = file
            .section_by_index(index)
            .map_err(|e| ElfError(e.to_string()))?;
        let sec_name = sec.name().unwrap_or("?").to_string();
        for (offset, reloc) in sec.relocations() {
            let pc = base + (offset / 8) as usize;
            if offset % 8 != 0 || pc >= base + (sec.size() / 8) as usize {
                return err(format!(
                    "section `{sec_name}`: relocation at byte {offset} is not at an instruction"
                ));
            }
            let RelocationFlags::Elf { r_type } = reloc.flags() else {
                return err("unexpected non-ELF relocation");
            };
            let RelocationTarget::Symbol(sym_index) = reloc.target() else {
                return err(format!("insn {pc}: relocation without a symbol"));
            };
            let sym = file
                .symbol_by_index(sym_index)
                .map_err(|e| ElfError(format!("relocation at insn {pc}: {e}")))?;
            let sym_name = match sym.name() {
                Ok(n) if !n.is_empty() => n.to_string(),
                _ => sym
                    .section_index()
                    .and_then(|i| file.section_by_index(i).ok())
                    .and_then(|s| s.name().ok().map(String::from))
                    .unwrap_or_else(|| "?".into()),
            };
            let insn = insns[pc];
            match r_type {
                R_BPF_64_32 if insn.code == 0x85 => {
                    let Some(target_index) = sym.section_index() else {
                        return err(format!(
                            "insn {pc}: call to `{sym_name}`, which is not defined in this object"
                        ));
                    };
                    let target_base = match layout.iter().find(|(i, _)| *i == target_index) {
                        Some(&(_, b)) => b,
                        None => {
                            let target = file
                                .section_by_index(target_index)
                                .map_err(|e| ElfError(e.to_string()))?;
                            append_code(&target, &mut insns, &mut layout)?
                        }
                    };
                    // As libbpf reads it: the callee is (symbol offset / 8 + imm + 1) slots into
                    // its section (clang leaves imm = -1 for a call to the symbol itself).
                    let target =
                        target_base as i64 + sym.address() as i64 / 8 + insn.imm as i64 + 1;
                    let disp = target - (pc as i64 + 1);
                    insns[pc].src = 1;
                    insns[pc].imm = i32::try_from(disp)
                        .map_err(|_| ElfError(format!("insn {pc}: call displacement overflows")))?;
                }
                R_BPF_64_64 if insn.is_lddw() => {
                    return err(format!(
                        "insn {pc}: lddw relocated against `{sym_name}` (a map or global data): \
                         maps and global data via relocations are not supported"
                    ));
                }
                t => {
                    return err(format!(
                        "insn {pc}: unsupported relocation type {t} against `{sym_name}`"
                    ));
                }
            }
        }
    }
    Ok(insns)
}

/// Appends a code section's instructions; returns the slot it starts at.
fn append_code(
    sec: &object::Section<'_, '_>,
    insns: &mut Vec<Insn>,
    layout: &mut Vec<(object::SectionIndex, usize)>,
) -> Result<usize, ElfError> {
    let name = sec.name().unwrap_or("?");
    if sec.kind() != object::SectionKind::Text {
        return err(format!("section `{name}` holds no code ({:?})", sec.kind()));
    }
    let bytes = sec
        .data()
        .map_err(|e| ElfError(format!("section `{name}`: {e}")))?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return err(format!(
            "section `{name}`: {} bytes is not a whole number of 8-byte instructions",
            bytes.len()
        ));
    }
    let base = insns.len();
    insns.extend(
        bytes
            .chunks_exact(8)
            .map(|c| Insn::from_bytes(c.try_into().expect("8-byte chunk"))),
    );
    layout.push((sec.index(), base));
    Ok(base)
}
