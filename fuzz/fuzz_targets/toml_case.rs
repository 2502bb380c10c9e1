//! Fuzz target: loading a TOML case file never panics; errors name the file.
#![no_main]

use bpfconf_spec::case::load_str;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let r = load_str(Path::new("fuzz.toml"), text);
    for e in &r.errors {
        assert!(e.to_string().starts_with("fuzz.toml"));
    }
});
