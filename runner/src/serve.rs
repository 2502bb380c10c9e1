//! `bpfconf serve`: a JSON-lines protocol over stdin/stdout, one request → one reply.
//!
//! Request (one JSON object per line):
//! `{"id": any, "dialect": "linux"|"bsd"|"netbsd", "insns": [[code,jt,jf,k],…] | "asm": "…",
//!   "packet": "hex", "ctx": {protocol, ifindex, cop: ["ret_a"], …}}` (`dialect` defaults to
//! linux, `packet` to empty, `ctx` to the AF_UNIX defaults; `ctx` uses the TOML case field names).
//!
//! eBPF requests: `{"id": any, "ebpf": [[opcode,dst,src,off,imm],…] | "asm": "…", "mem": "hex"}`
//! (a request is eBPF when it has `ebpf`, `mem`, or `"isa": "ebpf"`; an `lddw` is two entries,
//! the second carrying the high 32 bits in imm). Reply `{"id", "r0": N, "mem": "hex"}` (`mem` is
//! the buffer after the run, when observable) or `rejected` / `fault` / `skipped` / `error`.
//!
//! Replies: `{"id", "ret": N, "mem": [..]}` when the engine observes the exact return value,
//! `{"id", "delivered": N|null}` when it observes only what a socket delivers (null = dropped),
//! `{"id", "rejected": "reason", "rule"?: "name"}`, `{"id", "skipped": "reason"}`, or
//! `{"id", "error": "…"}` for malformed requests and engine failures. The server never stops on
//! a bad line.
//!
//! This is version 1 of the bpfconf JSON-lines plugin protocol (docs/plugin-protocol.md), whose
//! client is `--engine jsonl:<command>`: a request `{"id", "hello": {"protocol":
//! "bpfconf-jsonl", "versions": [1]}}` is answered `{"id", "hello": {"protocol", "version": 1,
//! "engine", "implementation", "features": ["maps", "progs"]}}`, and a request with
//! `"load_only": true` only loads the program (reply `{"id", "accepted": true}` or a rejection).
//!
//! The optional features: eBPF requests may carry `maps` (definitions, as in case files),
//! `map_init` (initial contents, one per map) and `progs` (tail-call targets, as `ebpf` rows);
//! replies then carry `maps` (the snapshots after the run). An engine failure that is a crash or
//! a timeout of the engine's own child is an `error` reply with `"kind": "crash"` / `"timeout"`,
//! and a verifier refusing the program for this input (after accepting it at load) is a
//! `rejected` reply with `"refused": true`. The server always runs the engine in its own
//! process: it is what `bpfconf run` starts to isolate an engine
//! ([`bpfconf_engines::Engine::needs_isolation`]).

use crate::compare::Actual;
use crate::suite::{execute_staged, Verdict};
use bpfconf_engines::plugin::wire;
use bpfconf_engines::{
    ClassicInput, ClassicProgram, EbpfInput, EbpfProgram, Engine, Input, Observed, Program,
};
use bpfconf_spec::case::{parse_hex, CtxSpec};
use bpfconf_spec::cbpf::{asm, Insn};
use bpfconf_spec::Dialect;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{self, BufRead, Write};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    #[allow(dead_code)]
    id: Value,
    /// Only load (check/verify) the program; reply `accepted` or `rejected` (read by
    /// [`handle_line`] before parsing; declared so it is not an unknown field).
    #[serde(default)]
    #[allow(dead_code)]
    load_only: bool,
    #[serde(default)]
    isa: Option<String>,
    #[serde(default)]
    ebpf: Option<Vec<Vec<i64>>>,
    #[serde(default)]
    mem: Option<String>,
    #[serde(default)]
    dialect: Option<Dialect>,
    #[serde(default)]
    insns: Option<Vec<[u64; 4]>>,
    #[serde(default)]
    asm: Option<String>,
    #[serde(default)]
    packet: Option<String>,
    #[serde(default)]
    ctx: Option<CtxSpec>,
    #[serde(default)]
    maps: Option<Vec<Value>>,
    #[serde(default)]
    map_init: Option<Value>,
    #[serde(default)]
    progs: Option<Vec<Value>>,
}

fn parse_ebpf(req: Request) -> Result<(Program, Input), String> {
    if req.insns.is_some() || req.packet.is_some() || req.ctx.is_some() || req.dialect.is_some() {
        return Err(
            "eBPF requests take `ebpf` or `asm`, `mem`, `maps`, `map_init` and `progs` (not \
             insns/packet/ctx/dialect)"
                .into(),
        );
    }
    let insns = match (req.ebpf, req.asm) {
        (Some(rows), None) => {
            bpfconf_spec::case::ebpf_rows(&rows).map_err(|e| format!("ebpf: {e}"))?
        }
        (None, Some(a)) => {
            bpfconf_spec::ebpf::asm::assemble(&a).map_err(|e| format!("asm: {e}"))?
        }
        _ => return Err("exactly one of `ebpf` or `asm` is required".into()),
    };
    let mem = match req.mem {
        Some(m) => parse_hex(&m).map_err(|e| format!("mem: {e}"))?,
        None => vec![],
    };
    let maps = req
        .maps
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| wire::parse_map_def(m).map_err(|e| format!("maps[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let map_init = match &req.map_init {
        Some(v) => wire::parse_contents_list(&maps, v).map_err(|e| format!("map_init: {e}"))?,
        None => vec![],
    };
    let progs = req
        .progs
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, p)| wire::parse_rows(p).map_err(|e| format!("progs[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        Program::Ebpf(EbpfProgram { insns, maps, progs }),
        Input::Ebpf(EbpfInput {
            mem,
            maps: map_init,
        }),
    ))
}

fn parse_request(v: Value) -> Result<(Program, Input), String> {
    let req: Request = serde_json::from_value(v).map_err(|e| format!("bad request: {e}"))?;
    let is_ebpf = match req.isa.as_deref() {
        Some("ebpf") => true,
        Some("classic") | None => req.ebpf.is_some() || req.mem.is_some(),
        Some(other) => return Err(format!("unknown isa `{other}` (classic or ebpf)")),
    };
    if is_ebpf {
        return parse_ebpf(req);
    }
    if req.maps.is_some() || req.map_init.is_some() || req.progs.is_some() {
        return Err("`maps`, `map_init` and `progs` are for eBPF requests".into());
    }
    let insns: Vec<Insn> = match (req.insns, req.asm) {
        (Some(q), None) => q
            .into_iter()
            .enumerate()
            .map(|(i, [c, jt, jf, k])| {
                match (
                    u16::try_from(c),
                    u8::try_from(jt),
                    u8::try_from(jf),
                    u32::try_from(k),
                ) {
                    (Ok(c), Ok(jt), Ok(jf), Ok(k)) => Ok(Insn::new(c, jt, jf, k)),
                    _ => Err(format!("insns[{i}]: field out of range")),
                }
            })
            .collect::<Result<_, _>>()?,
        (None, Some(a)) => asm::assemble(&a).map_err(|e| format!("asm: {e}"))?,
        _ => return Err("exactly one of `insns` or `asm` is required".into()),
    };
    let packet = match req.packet {
        Some(p) => parse_hex(&p).map_err(|e| format!("packet: {e}"))?,
        None => vec![],
    };
    let ctx = req
        .ctx
        .unwrap_or_default()
        .into_ctx()
        .map_err(|e| format!("ctx: {e}"))?;
    let program = Program::Classic(ClassicProgram {
        dialect: req.dialect.unwrap_or(Dialect::Linux),
        insns,
        cop_funcs: ctx.cop.len(),
        memwords: ctx.memwords(),
    });
    Ok((program, Input::Classic(ClassicInput { packet, ctx })))
}

/// The reply to a handshake request `{"id", "hello": {"protocol", "versions": [..]}}`: the
/// highest version both sides speak, or an error.
fn hello_reply(engine: &dyn Engine, id: Value, hello: &Value) -> Value {
    use bpfconf_engines::plugin::jsonl::{PROTOCOL_NAME, PROTOCOL_VERSIONS};
    if hello.get("protocol").and_then(Value::as_str) != Some(PROTOCOL_NAME) {
        return json!({"id": id, "error": format!("hello: protocol must be {PROTOCOL_NAME:?}")});
    }
    let theirs: Vec<u64> = hello
        .get("versions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    match PROTOCOL_VERSIONS.iter().rev().find(|v| theirs.contains(v)) {
        Some(v) => json!({"id": id, "hello": {
            "protocol": PROTOCOL_NAME,
            "version": v,
            "engine": engine.name(),
            "implementation": concat!("bpfconf serve ", env!("CARGO_PKG_VERSION")),
            "features": wire::FEATURES,
        }}),
        None => json!({"id": id, "error": format!(
            "hello: no common version (client {theirs:?}, server {PROTOCOL_VERSIONS:?})"
        )}),
    }
}

/// Handles one request line and returns the reply object.
pub fn handle_line(engine: &dyn Engine, line: &str) -> Value {
    handle_line_with(engine, &engine.availability(), line)
}

/// Handles one request line given the engine's availability, checked once per server rather
/// than per request (for the kernel it costs a socket pair and a filter attach).
pub fn handle_line_with(
    engine: &dyn Engine,
    availability: &Result<(), String>,
    line: &str,
) -> Value {
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"id": null, "error": format!("malformed JSON: {e}")}),
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    if !v.is_object() {
        return json!({"id": id, "error": "a request must be a JSON object"});
    }
    if let Some(h) = v.get("hello") {
        return hello_reply(engine, id, h);
    }
    let load_only = v.get("load_only").and_then(Value::as_bool) == Some(true);
    let (program, input) = match parse_request(v) {
        Ok(x) => x,
        Err(e) => return json!({"id": id, "error": e}),
    };
    if let Err(reason) = availability {
        return json!({"id": id, "skipped": format!("engine unavailable: {reason}")});
    }
    // A load-only request has no input to check (its packet and context are placeholders):
    // the engine's loader refuses, as `skipped`, a program it cannot load at all. Checking
    // the placeholders would skip programs whose real input the engine can realise.
    if !load_only {
        if let Err(reason) = engine.supports(&program, &input) {
            return json!({"id": id, "skipped": reason});
        }
    }
    match execute_staged(engine, &program, &input, load_only) {
        Ok((Actual::Ran(o), _)) => {
            let ebpf = matches!(program, Program::Ebpf(_));
            let mut r = json!({ "id": id });
            match o.ret {
                Observed::Exact(v) => r[if ebpf { "r0" } else { "ret" }] = json!(v),
                Observed::Delivered(d) => r["delivered"] = json!(d),
            }
            if ebpf {
                if let Some(m) = o.memory {
                    r["mem"] = json!(bpfconf_spec::case::to_hex(&m));
                }
                if let Some(maps) = o.maps {
                    r["maps"] = json!(maps.iter().map(wire::contents).collect::<Vec<_>>());
                }
            } else if let Some(m) = o.mem {
                r["mem"] = json!(m);
            }
            r
        }
        Ok((Actual::Rejected { reason, rule }, at_run)) => {
            let mut r = json!({"id": id, "rejected": reason});
            if let Some(rule) = rule {
                r["rule"] = json!(rule);
            }
            if at_run {
                // Loaded, then refused for this input (a verifier checking the memory size).
                r["refused"] = json!(true);
            }
            r
        }
        Ok((Actual::Fault(f), _)) => json!({"id": id, "fault": f}),
        Ok((Actual::Accepted, _)) => json!({"id": id, "accepted": true}),
        Err(Verdict::Skip(r)) => json!({"id": id, "skipped": r}),
        Err(Verdict::Error(e)) | Err(Verdict::Fail(e)) => json!({"id": id, "error": e}),
        Err(Verdict::Crash(e)) => json!({"id": id, "error": e, "kind": "crash"}),
        Err(Verdict::Timeout(e)) => json!({"id": id, "error": e, "kind": "timeout"}),
        Err(Verdict::Pass) => json!({"id": id, "error": "internal: no outcome"}),
    }
}

/// Serves requests from `input` until EOF, writing one reply line per non-empty request line.
/// Returns the number of requests handled.
pub fn serve(
    engine: &dyn Engine,
    input: impl BufRead,
    mut output: impl Write,
) -> io::Result<usize> {
    let availability = engine.availability();
    let mut n = 0;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = handle_line_with(engine, &availability, &line);
        writeln!(output, "{reply}")?;
        output.flush()?;
        n += 1;
    }
    Ok(n)
}
