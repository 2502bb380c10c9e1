//! Tokenizer for bpf_asm text, following the lexical rules of the kernel's `tools/bpf/bpf_exp.l`.
//!
//! What it accepts:
//! - numbers: `0x`/`0X` hex, `0b`/`0B` binary, octal with a leading `0`, decimal; a sign is a
//!   separate token that the parser only allows on decimal numbers (as in bpf_exp.l, where only
//!   the decimal rule has `[-+]?`); magnitudes above `u32::MAX` are rejected;
//! - identifiers `[A-Za-z_][A-Za-z0-9_]*` (mnemonics, registers, extension names and labels; the
//!   parser decides which) and directives `.name`;
//! - punctuation `: , # % [ ] ( ) + - * &`;
//! - comments: `/* ... */` (may span lines), `;` and `//` to end of line, and a line whose first
//!   column is `#` (bpf_exp.l's `^#.*`). `//` is a bpfconf addition; bpf_asm has no such rule.

use super::AsmError;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// An identifier, case preserved.
    Ident(String),
    /// A directive such as `.insn`, stored lowercase without the dot.
    Dir(String),
    /// An unsigned number; `decimal` tells whether it was written in decimal.
    Num { value: u32, decimal: bool },
    /// One punctuation character.
    Punct(char),
}

/// A token with the 1-based line it starts on and its source text (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub text: String,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn err(line: usize, message: impl Into<String>) -> AsmError {
    AsmError {
        line,
        message: message.into(),
    }
}

/// Converts the digits of a number in `radix` to a u32, or explains why not.
fn digits_value(digits: &str, radix: u32, whole: &str, line: usize) -> Result<u32, AsmError> {
    let kind = match radix {
        16 => "hexadecimal",
        8 => "octal",
        2 => "binary",
        _ => "decimal",
    };
    if digits.is_empty() {
        return Err(err(
            line,
            format!("malformed number '{whole}': no {kind} digits"),
        ));
    }
    let mut v: u64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return Err(err(
                line,
                format!("malformed number '{whole}': '{c}' is not a {kind} digit"),
            ));
        };
        v = v * u64::from(radix) + u64::from(d);
        if v > u64::from(u32::MAX) {
            return Err(err(
                line,
                format!("number '{whole}' is out of range (it does not fit in 32 bits)"),
            ));
        }
    }
    // The loop bounds v by u32::MAX.
    Ok(v as u32)
}

/// Splits bpf_asm text into tokens.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, AsmError> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut col0 = true;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            col0 = true;
            i += 1;
            continue;
        }
        let at_col0 = col0;
        col0 = false;
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == ';' || (c == '/' && next == Some('/')) || (c == '#' && at_col0) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = line;
            i += 2;
            loop {
                match chars.get(i) {
                    None => return Err(err(start, "unterminated /* comment")),
                    Some('*') if chars.get(i + 1) == Some(&'/') => {
                        i += 2;
                        break;
                    }
                    Some('\n') => {
                        line += 1;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let whole: String = chars[start..i].iter().collect();
            let lower = whole.to_ascii_lowercase();
            let (value, decimal) = if let Some(h) = lower.strip_prefix("0x") {
                (digits_value(h, 16, &whole, line)?, false)
            } else if let Some(b) = lower.strip_prefix("0b") {
                (digits_value(b, 2, &whole, line)?, false)
            } else if lower.len() > 1 && lower.starts_with('0') {
                (digits_value(&lower[1..], 8, &whole, line)?, false)
            } else {
                (digits_value(&lower, 10, &whole, line)?, true)
            };
            toks.push(Token {
                tok: Tok::Num { value, decimal },
                line,
                text: whole,
            });
        } else if is_ident_start(c) || (c == '.' && next.is_some_and(is_ident_start)) {
            let start = i;
            i += 1;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let tok = match s.strip_prefix('.') {
                Some(d) => Tok::Dir(d.to_ascii_lowercase()),
                None => Tok::Ident(s.clone()),
            };
            toks.push(Token { tok, line, text: s });
        } else if ":,#%[]()+-*&".contains(c) {
            toks.push(Token {
                tok: Tok::Punct(c),
                line,
                text: c.to_string(),
            });
            i += 1;
        } else {
            return Err(err(line, format!("unexpected character {c:?}")));
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn num(value: u32, decimal: bool) -> Tok {
        Tok::Num { value, decimal }
    }

    #[test]
    fn numbers_in_every_base() {
        assert_eq!(toks("0x1F"), vec![num(0x1f, false)]);
        assert_eq!(toks("0X10"), vec![num(16, false)]);
        assert_eq!(toks("0b101"), vec![num(5, false)]);
        assert_eq!(toks("017"), vec![num(15, false)]);
        assert_eq!(toks("0"), vec![num(0, true)]);
        assert_eq!(toks("4294967295"), vec![num(u32::MAX, true)]);
        assert_eq!(toks("0xffffffff"), vec![num(u32::MAX, false)]);
    }

    #[test]
    fn bad_numbers_are_errors() {
        for s in ["09", "0x", "0b2", "4294967296", "0x100000000", "12ab", "0b"] {
            assert!(lex(s).is_err(), "{s}");
        }
    }

    #[test]
    fn comments_and_lines() {
        let t = lex("# hash comment\n  ld [1] ; semi\n/* multi\nline */ ret // slash\n#5").unwrap();
        let lines: Vec<(String, usize)> = t.into_iter().map(|t| (t.text, t.line)).collect();
        assert_eq!(
            lines,
            vec![
                ("ld".into(), 2),
                ("[".into(), 2),
                ("1".into(), 2),
                ("]".into(), 2),
                ("ret".into(), 4),
            ]
        );
        // `#` not in column 0 is a token.
        assert_eq!(toks(" #5"), vec![Tok::Punct('#'), num(5, true)]);
        assert_eq!(lex("ld /* never closed").unwrap_err().line, 1);
    }

    #[test]
    fn punctuation_identifiers_and_directives() {
        assert_eq!(
            toks("[%x+4] .INSN l_1:"),
            vec![
                Tok::Punct('['),
                Tok::Punct('%'),
                Tok::Ident("x".into()),
                Tok::Punct('+'),
                num(4, true),
                Tok::Punct(']'),
                Tok::Dir("insn".into()),
                Tok::Ident("l_1".into()),
                Tok::Punct(':'),
            ]
        );
        assert!(lex("ld @").is_err());
        assert!(lex("é").is_err());
    }
}
