//! Fuzz target: the bpf_conformance `.data` parser never panics on any text.
#![no_main]

use bpfconf_spec::ebpf::data::parse_data;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_data(Path::new("fuzz.data"), text);
});
