//! `jit-dump`: generated code disassembled with iced-x86's Intel formatter, interleaved with
//! the BPF instruction (or stub) each block came from — what `bpf_jit_disasm -o` shows kernel
//! porters.

use super::emit::{Assembled, Origin};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use std::fmt::Write;

/// Renders `code` as a listing. `describe` names an origin (e.g. `insn 3: ldh [12]`). Offsets
/// are relative to the start of the code; branch targets are shown as offsets too.
pub fn listing(code: &Assembled, describe: &dyn Fn(Origin) -> String) -> String {
    let mut out = String::new();
    let mut decoder = Decoder::with_ip(64, &code.code, 0, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_first_operand_char_index(8);
    fmt.options_mut().set_branch_leading_zeros(false);
    fmt.options_mut().set_show_branch_size(false);
    let mut marks = code.marks.iter().peekable();
    let mut text = String::new();
    while decoder.can_decode() {
        let ip = decoder.ip() as usize;
        while let Some((origin, _)) = marks.next_if(|(_, off)| *off <= ip) {
            let _ = writeln!(out, "; {}", describe(*origin));
        }
        let ins = decoder.decode();
        text.clear();
        fmt.format(&ins, &mut text);
        let start = ip;
        let bytes = &code.code[start..start + ins.len()];
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "  {start:5x}:  {:<30} {text}", hex.join(" "));
    }
    for (origin, _) in marks {
        let _ = writeln!(out, "; {}", describe(*origin));
    }
    let _ = writeln!(
        out,
        "; {} bytes, {} layout passes, {} short and {} near branches",
        code.code.len(),
        code.passes,
        code.short_branches,
        code.near_branches
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::emit::Asm;
    use crate::jit::x86::*;

    #[test]
    fn listing_interleaves_origins_with_instructions() {
        let mut asm = Asm::new().unwrap();
        asm.mark(Origin::Insn { prog: 0, insn: 0 }).unwrap();
        asm.a.mov(eax, 42).unwrap();
        asm.mark(Origin::Stub("epilogue")).unwrap();
        asm.a.ret().unwrap();
        let code = asm.finish().unwrap();
        let l = listing(&code, &|o| format!("{o:?}"));
        let lines: Vec<&str> = l.lines().collect();
        assert_eq!(lines[0], "; Insn { prog: 0, insn: 0 }");
        assert!(
            lines[1].contains("b8 2a 00 00 00") && lines[1].contains("mov"),
            "{l}"
        );
        assert!(
            lines[1].contains("eax,0x2A") || lines[1].contains("eax,0x2a"),
            "{l}"
        );
        assert_eq!(lines[2], "; Stub(\"epilogue\")");
        assert!(
            lines[3].trim_start().starts_with("5:") && lines[3].ends_with("ret"),
            "{l}"
        );
        assert!(lines[4].contains("6 bytes"), "{l}");
    }
}
