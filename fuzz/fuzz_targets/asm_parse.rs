//! Fuzz target: the classic assembler and paste-format parsers never panic, and whatever
//! assembles survives a disassemble/assemble round trip unchanged.
#![no_main]

use bpfconf_spec::cbpf::{asm, disasm, formats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = formats::parse_any(text);
    if let Ok(prog) = asm::assemble(text) {
        let again = asm::assemble(&disasm::disassemble(&prog)).expect("disassembly reassembles");
        assert_eq!(again, prog, "round trip changed the program");
    }
});
