//! Other textual program formats users paste: `tcpdump -dd`, `tcpdump -ddd`, bpf_asm comma form,
//! plus format detection ([`parse_any`]) and writers for each.
//!
//! - `tcpdump -ddd`: a line with the instruction count, then one `code jt jf k` line (decimal) per
//!   instruction.
//! - `tcpdump -dd` / `bpf_asm -c` / bpf_dbg `dump`: C initializers `{ 0x28, 0, 0, 0x0000000c },`,
//!   possibly inside a `struct sock_filter code[] = { ... };` declaration, with C comments.
//! - comma form (`bpf_asm` default output, bpf_dbg `load bpf`, iptables `--bytecode`):
//!   `4,40 0 0 12,21 0 1 2054,6 0 0 4294967295,6 0 0 0,` — the count first, trailing comma
//!   optional; line breaks may stand anywhere a comma or a space may.

#[cfg(test)]
mod tests;

use super::asm::{self, AsmError};
use super::Insn;
use std::fmt::Write;

/// A format parse error with the 1-based line (or comma-separated item) it refers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FormatError {
    /// 1-based line (or item number for the comma form).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl From<AsmError> for FormatError {
    fn from(e: AsmError) -> Self {
        FormatError {
            line: e.line,
            message: e.message,
        }
    }
}

fn err(line: usize, message: impl Into<String>) -> FormatError {
    FormatError {
        line,
        message: message.into(),
    }
}

/// A textual program format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `tcpdump -ddd`: count line, then `code jt jf k` decimal lines.
    Ddd,
    /// `tcpdump -dd`: C array of `{ code, jt, jf, k }`.
    Dd,
    /// bpf_asm comma form: `count,code jt jf k,...`.
    Comma,
    /// bpf_asm assembly text.
    Asm,
}

impl Format {
    /// A short lowercase name (`ddd`, `dd`, `comma`, `asm`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Ddd => "ddd",
            Format::Dd => "dd",
            Format::Comma => "comma",
            Format::Asm => "asm",
        }
    }
}

/// Parses a decimal field that must not exceed `max`.
fn decimal(s: &str, max: u64, what: &str, line: usize) -> Result<u64, FormatError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(line, format!("{what} '{s}' is not a decimal number")));
    }
    match s.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(err(line, format!("{what} {s} is out of range (max {max})"))),
    }
}

/// Parses `code jt jf k` (whitespace-separated decimals).
fn quad(s: &str, line: usize, place: &str) -> Result<Insn, FormatError> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 4 {
        return Err(err(
            line,
            format!(
                "{place}: expected 4 numbers 'code jt jf k', found {} in '{}'",
                f.len(),
                s.trim()
            ),
        ));
    }
    let code = decimal(f[0], 0xffff, "code", line)?;
    let jt = decimal(f[1], 0xff, "jt", line)?;
    let jf = decimal(f[2], 0xff, "jf", line)?;
    let k = decimal(f[3], u64::from(u32::MAX), "k", line)?;
    Ok(Insn::new(code as u16, jt as u8, jf as u8, k as u32))
}

fn check_count(count: u64, got: usize, line: usize) -> Result<(), FormatError> {
    if count != got as u64 {
        return Err(err(
            line,
            format!("the count says {count} instructions but {got} follow"),
        ));
    }
    Ok(())
}

/// Parses `tcpdump -ddd` output: a count line, then `code jt jf k` decimal lines.
pub fn parse_ddd(text: &str) -> Result<Vec<Insn>, FormatError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((count_line, c)) = lines.next() else {
        return Err(err(1, "empty input: expected the instruction count"));
    };
    let count = decimal(c, u64::from(u32::MAX), "instruction count", count_line)?;
    let mut out = Vec::new();
    for (n, l) in lines {
        out.push(quad(l, n, &format!("instruction {}", out.len()))?);
    }
    check_count(count, out.len(), count_line)?;
    Ok(out)
}

/// Parses the bpf_asm comma form `count,code jt jf k,...` (trailing comma optional, line breaks
/// count as separators). Error positions are 1-based item numbers (the count is item 1).
pub fn parse_comma(text: &str) -> Result<Vec<Insn>, FormatError> {
    let mut items = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(n, s)| (n + 1, s));
    let Some((_, c)) = items.next() else {
        return Err(err(1, "empty input: expected the instruction count"));
    };
    let count = decimal(c, u64::from(u32::MAX), "item 1: instruction count", 1)?;
    let mut out = Vec::new();
    for (n, s) in items {
        let insn = quad(s, n, &format!("item {n}")).map_err(|e| {
            if e.message.starts_with("item") {
                e
            } else {
                err(n, format!("item {n}: {}", e.message))
            }
        })?;
        out.push(insn);
    }
    check_count(count, out.len(), 1)?;
    Ok(out)
}

/// Replaces C comments with spaces, keeping line breaks so positions stay right.
fn strip_c_comments(text: &str) -> Result<String, FormatError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('/', Some('*')) => {
                let start = line;
                chars.next();
                out.push_str("  ");
                let mut prev = ' ';
                loop {
                    let Some(c) = chars.next() else {
                        return Err(err(start, "unterminated /* comment"));
                    };
                    if c == '\n' {
                        line += 1;
                        out.push('\n');
                    } else {
                        out.push(' ');
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            ('/', Some('/')) => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                    out.push(' ');
                }
                out.push(' ');
            }
            _ => {
                if c == '\n' {
                    line += 1;
                }
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// A C integer literal: decimal, `0x` hex or leading-`0` octal, optional `u`/`l` suffixes, and
/// for k an optional minus sign (wrapping to 32 bits).
fn c_int(s: &str, max: u64, signed: bool, what: &str, line: usize) -> Result<u64, FormatError> {
    let bad = || err(line, format!("{what} '{s}' is not an integer literal"));
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) if signed => (true, b.trim_start()),
        _ => (false, s),
    };
    let body = body.trim_end_matches(['u', 'U', 'l', 'L']);
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    let v = u64::from_str_radix(digits, radix).ok();
    match (v, neg) {
        (Some(v), false) if v <= max => Ok(v),
        (Some(v), true) if v <= 1 << 31 => Ok(u64::from((v as u32).wrapping_neg())),
        _ => Err(err(line, format!("{what} {s} is out of range"))),
    }
}

/// Parses `tcpdump -dd` output (or `bpf_asm -c`, bpf_dbg `dump`, or a pasted C array): every
/// innermost `{ code, jt, jf, k }` group is one instruction. C comments are ignored, as are brace
/// groups that are clearly not instructions (designated initializers such as
/// `{ .len = 4, .filter = code }`).
pub fn parse_dd(text: &str) -> Result<Vec<Insn>, FormatError> {
    let clean = strip_c_comments(text)?;
    // Open braces: (byte offset after '{', line, has nested group).
    let mut stack: Vec<(usize, usize, bool)> = Vec::new();
    let mut out = Vec::new();
    let mut line = 1;
    for (pos, c) in clean.char_indices() {
        match c {
            '\n' => line += 1,
            '{' => stack.push((pos + 1, line, false)),
            '}' => {
                let Some((start, open_line, nested)) = stack.pop() else {
                    return Err(err(line, "'}' without a matching '{'"));
                };
                if let Some(parent) = stack.last_mut() {
                    parent.2 = true;
                }
                if !nested {
                    if let Some(insn) = dd_group(&clean[start..pos], open_line)? {
                        out.push(insn);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(&(_, open_line, nested)) = stack.last() {
        if !nested {
            return Err(err(open_line, "'{' is never closed"));
        }
    }
    if out.is_empty() {
        return Err(err(1, "no '{ code, jt, jf, k }' instructions found"));
    }
    Ok(out)
}

/// One brace group of a `-dd` listing: an instruction, or `None` for groups to skip.
fn dd_group(body: &str, line: usize) -> Result<Option<Insn>, FormatError> {
    let mut items: Vec<&str> = body.split(',').map(str::trim).collect();
    if items.last() == Some(&"") {
        items.pop();
    }
    let first = items.first().copied().unwrap_or("");
    if first.starts_with('.')
        || (items.len() != 4 && !first.starts_with(|c: char| c.is_ascii_digit()))
    {
        return Ok(None);
    }
    if items.len() != 4 {
        return Err(err(
            line,
            format!(
                "expected '{{ code, jt, jf, k }}', found {} fields in '{{{}}}'",
                items.len(),
                body.trim()
            ),
        ));
    }
    let code = c_int(items[0], 0xffff, false, "code", line)?;
    let jt = c_int(items[1], 0xff, false, "jt", line)?;
    let jf = c_int(items[2], 0xff, false, "jf", line)?;
    let k = c_int(items[3], u64::from(u32::MAX), true, "k", line)?;
    Ok(Some(Insn::new(code as u16, jt as u8, jf as u8, k as u32)))
}

/// Guesses the format of pasted text: a C brace group starting with a number (or a
/// `sock_filter` declaration) means `-dd`; a leading number followed by a comma means the comma
/// form; a leading number otherwise means `-ddd`; anything else is assembly.
pub fn detect(text: &str) -> Format {
    let clean = strip_c_comments(text).unwrap_or_default();
    let t = clean.trim_start();
    let brace_number = clean
        .split('{')
        .skip(1)
        .any(|rest| rest.trim_start().starts_with(|c: char| c.is_ascii_digit()));
    if brace_number || t.starts_with('{') || clean.contains("sock_filter") {
        return Format::Dd;
    }
    let t = text.trim_start();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Format::Asm;
    }
    if t[digits..].trim_start().starts_with(',') {
        Format::Comma
    } else {
        Format::Ddd
    }
}

/// Parses text in the given format.
pub fn parse(text: &str, format: Format) -> Result<Vec<Insn>, FormatError> {
    match format {
        Format::Ddd => parse_ddd(text),
        Format::Dd => parse_dd(text),
        Format::Comma => parse_comma(text),
        Format::Asm => Ok(asm::assemble(text)?),
    }
}

/// Detects the format ([`detect`]) and parses the text.
pub fn parse_any(text: &str) -> Result<Vec<Insn>, FormatError> {
    parse(text, detect(text))
}

/// Writes `tcpdump -ddd` format: the count, then `code jt jf k` per line.
pub fn to_ddd(prog: &[Insn]) -> String {
    let mut s = format!("{}\n", prog.len());
    for i in prog {
        let _ = writeln!(s, "{} {} {} {}", i.code, i.jt, i.jf, i.k);
    }
    s
}

/// Writes `tcpdump -dd` format, as libpcap's `bpf_dump` prints it: `{ 0x28, 0, 0, 0x0000000c },`.
pub fn to_dd(prog: &[Insn]) -> String {
    let mut s = String::new();
    for i in prog {
        let _ = writeln!(s, "{{ {:#x}, {}, {}, {:#010x} }},", i.code, i.jt, i.jf, i.k);
    }
    s
}

/// Writes the comma form exactly as bpf_asm prints it, without the final newline:
/// `4,40 0 0 12,21 0 1 2054,6 0 0 4294967295,6 0 0 0,`.
pub fn to_comma(prog: &[Insn]) -> String {
    let mut s = format!("{},", prog.len());
    for i in prog {
        let _ = write!(s, "{} {} {} {},", i.code, i.jt, i.jf, i.k);
    }
    s
}
