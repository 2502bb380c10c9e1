//! External plugin engines: programs, in any language, that run BPF for us over a pipe.
//!
//! Two protocols, chosen by the engine spec's prefix:
//!
//! - `plugin:<command>` — the **bpf_conformance plugin protocol** ([`conformance`]): one process
//!   per run, the memory as a hex argument, the program as hex on stdin, `r0` in hex on stdout,
//!   a non-zero exit for errors. uBPF's `ubpf_plugin`, rbpf's `rbpf_plugin` and the other
//!   plugins written for bpf_conformance work unmodified. eBPF only.
//! - `jsonl:<command>` — the **bpfconf JSON-lines protocol** ([`jsonl`], specified in
//!   `docs/plugin-protocol.md`; `bpfconf serve` is its reference implementation): a persistent
//!   process, one request line → one reply line, classic BPF and eBPF, a version handshake.
//!
//! `<command>` is split into words like a shell would (whitespace separates words; single and
//! double quotes group; a backslash escapes the next character) but runs without a shell. For
//! `plugin:`, the words after a lone `--` are the plugin's options, passed after the memory
//! argument as bpf_conformance's `--plugin_options` are: `plugin:./ubpf_plugin -- --jit`.
//! A spec cannot contain a comma (`--engine` lists are comma-separated): wrap such a command in
//! a script.
//!
//! Every exchange has a deadline ([`DEFAULT_TIMEOUT`], or `BPFCONF_PLUGIN_TIMEOUT_MS`). A plugin
//! that hangs, dies or answers garbage yields, for that run, [`crate::RunError::Timeout`]
//! (`timed out after …`), [`crate::RunError::Crash`] (`crashed: …`) or an engine error
//! (`garbage reply: …`), and the run goes on (a persistent plugin is restarted for the next
//! request). During a load (which has no such variants) the same messages come as
//! [`crate::LoadError::Engine`]; the runner tells them apart by their prefix.

pub mod conformance;
pub mod jsonl;
pub mod process;
pub mod reply;
pub mod wire;

use crate::Engine;
use std::time::Duration;

/// Default deadline of one plugin exchange (one run, one request).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The deadline from `BPFCONF_PLUGIN_TIMEOUT_MS`, or [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Duration {
    std::env::var("BPFCONF_PLUGIN_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

/// The spec prefix of the bpf_conformance protocol.
pub const CONFORMANCE_PREFIX: &str = "plugin:";
/// The spec prefix of the JSON-lines protocol.
pub const JSONL_PREFIX: &str = "jsonl:";

/// True when `name` names a plugin engine (`plugin:…` or `jsonl:…`).
pub fn is_plugin_spec(name: &str) -> bool {
    name.starts_with(CONFORMANCE_PREFIX) || name.starts_with(JSONL_PREFIX)
}

/// Creates the plugin engine a spec names (see the module documentation).
pub fn from_spec(spec: &str) -> Result<Box<dyn Engine>, String> {
    if let Some(cmd) = spec.strip_prefix(CONFORMANCE_PREFIX) {
        let words = split_command(cmd)?;
        let (command, options) = match words.iter().position(|w| w == "--") {
            Some(i) => (words[..i].to_vec(), words[i + 1..].to_vec()),
            None => (words, Vec::new()),
        };
        if command.is_empty() {
            return Err(format!("`{spec}`: no command after `plugin:`"));
        }
        Ok(Box::new(conformance::ConformancePlugin::new(
            spec, command, options,
        )))
    } else if let Some(cmd) = spec.strip_prefix(JSONL_PREFIX) {
        let command = split_command(cmd)?;
        if command.is_empty() {
            return Err(format!("`{spec}`: no command after `jsonl:`"));
        }
        Ok(Box::new(jsonl::JsonlPlugin::new(spec, command)))
    } else {
        Err(format!(
            "`{spec}` is not a plugin spec (plugin:<command> or jsonl:<command>)"
        ))
    }
}

/// Splits a command line into words: whitespace separates, `'…'` and `"…"` group, `\` escapes
/// the next character (also inside double quotes).
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated ' in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err(format!("trailing \\ in `{s}`")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated \" in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(format!("trailing \\ in `{s}`")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words() {
        assert_eq!(
            split_command(r#" python3  'a b.py' "c\"d" e\ f "" "#).unwrap(),
            vec!["python3", "a b.py", "c\"d", "e f", ""]
        );
        assert!(split_command("'open").is_err());
        assert!(split_command("x\\").is_err());
        assert_eq!(split_command("   ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn specs() {
        assert!(is_plugin_spec("plugin:x"));
        assert!(is_plugin_spec("jsonl:x"));
        assert!(!is_plugin_spec("interp"));
        assert!(from_spec("plugin:").is_err());
        assert!(from_spec("jsonl:  ").is_err());
        let e = from_spec("plugin:./p -- --jit").unwrap();
        assert_eq!(e.name(), "plugin:./p -- --jit");
    }
}
