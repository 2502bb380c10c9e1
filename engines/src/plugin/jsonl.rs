//! The bpfconf JSON-lines plugin protocol, client side (`jsonl:<command>`). The protocol is
//! specified in `docs/plugin-protocol.md`; `bpfconf serve` is its reference implementation.
//!
//! A plugin is a persistent process: bpfconf writes one JSON request per line to its stdin and
//! reads one JSON reply per line from its stdout, carrying the request's `id`. The first exchange
//! is the handshake: `{"id":0,"hello":{"protocol":"bpfconf-jsonl","versions":[1]}}`, answered by
//! `{"id":0,"hello":{"protocol":"bpfconf-jsonl","version":1,"engine":NAME}}`. Loading is a
//! request with `"load_only": true` (reply `accepted` or `rejected`); running sends the program
//! again with its input.
//!
//! Runs may be parallel: each thread takes a process from a pool (starting and greeting a new one
//! when none is idle) and puts it back after a clean exchange. A process that times out, dies,
//! or answers anything but a well-formed reply with the right `id` is killed; the exchange
//! becomes an engine error (`timed out after …`, `crashed: …`, `garbage reply: …`) and the next
//! request starts a fresh process.

use super::process::{resolve_program, truncate, LineProcess, ProcError};
use crate::{
    ClassicProgram, Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome, Program,
    RunError,
};
use bpfconf_spec::case::{to_hex, Ctx, CtxSpec};
use bpfconf_spec::cop::CopFn;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The protocol's name, as sent and expected in the handshake.
pub const PROTOCOL_NAME: &str = "bpfconf-jsonl";
/// The protocol versions this build speaks.
pub const PROTOCOL_VERSIONS: &[u64] = &[1];

/// What the plugin said about itself in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version agreed on.
    pub version: u64,
    /// The plugin's engine name, if it gave one.
    pub engine: Option<String>,
}

/// Checks a handshake reply and returns what it says.
pub fn parse_hello(reply: &Value) -> Result<Hello, String> {
    let h = reply
        .get("hello")
        .ok_or_else(|| format!("no `hello` in the handshake reply: {reply}"))?;
    let proto = h.get("protocol").and_then(Value::as_str);
    if proto != Some(PROTOCOL_NAME) {
        return Err(format!(
            "handshake: protocol {proto:?}, expected {PROTOCOL_NAME:?}"
        ));
    }
    let version = h
        .get("version")
        .and_then(Value::as_u64)
        .ok_or("handshake: the reply chose no `version`")?;
    if !PROTOCOL_VERSIONS.contains(&version) {
        return Err(format!(
            "handshake: plugin speaks version {version}, bpfconf speaks {PROTOCOL_VERSIONS:?}"
        ));
    }
    Ok(Hello {
        version,
        engine: h.get("engine").and_then(Value::as_str).map(String::from),
    })
}

struct Session {
    proc: LineProcess,
    next_id: u64,
}

/// A JSON-lines plugin engine.
pub struct JsonlPlugin {
    spec: String,
    command: Vec<String>,
    timeout: Duration,
    pool: Mutex<Vec<Session>>,
    hello: Mutex<Option<Result<Hello, String>>>,
    starts: AtomicUsize,
}

/// Why an exchange failed.
enum Failure {
    /// The plugin misbehaved (timeout, crash, garbage): an engine error.
    Engine(String),
}

impl JsonlPlugin {
    /// A plugin engine named `spec` running `command`; the deadline comes from
    /// `BPFCONF_PLUGIN_TIMEOUT_MS` (default 10 s).
    pub fn new(spec: &str, command: Vec<String>) -> Self {
        JsonlPlugin {
            spec: spec.to_string(),
            command,
            timeout: super::timeout_from_env(),
            pool: Mutex::new(Vec::new()),
            hello: Mutex::new(None),
            starts: AtomicUsize::new(0),
        }
    }

    /// The same engine with another per-request deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many plugin processes were started so far (restarts included).
    pub fn processes_started(&self) -> usize {
        self.starts.load(Ordering::Relaxed)
    }

    fn start(&self) -> Result<Session, String> {
        self.starts.fetch_add(1, Ordering::Relaxed);
        let proc = LineProcess::start(&self.command).map_err(|e| e.to_string())?;
        let mut s = Session { proc, next_id: 1 };
        let req =
            json!({"id": 0, "hello": {"protocol": PROTOCOL_NAME, "versions": PROTOCOL_VERSIONS}});
        let line = s
            .proc
            .request(&req.to_string(), self.timeout)
            .map_err(|e| format!("handshake: {e}"))?;
        let reply: Value = serde_json::from_str(&line)
            .map_err(|_| format!("handshake: garbage reply: {:?}", truncate(&line, 200)))?;
        if reply.get("id") != Some(&json!(0)) {
            return Err(format!("handshake: reply without `id` 0: {reply}"));
        }
        let hello = parse_hello(&reply)?;
        *self.hello.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ok(hello));
        Ok(s)
    }

    fn session(&self) -> Result<Session, String> {
        let idle = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(s) => Ok(s),
            None => self.start(),
        }
    }

    /// The handshake's result: the first one's, cached (a process is started for it if none
    /// has been yet, and kept for later requests).
    fn hello(&self) -> Result<Hello, String> {
        if let Some(h) = self.hello.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return h;
        }
        match self.start() {
            Ok(s) => {
                self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                self.hello
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_else(|| Err("no handshake".into()))
            }
            Err(e) => {
                *self.hello.lock().unwrap_or_else(|e| e.into_inner()) = Some(Err(e.clone()));
                Err(e)
            }
        }
    }

    /// Sends one request (its `id` is set here) and returns the reply object.
    fn exchange(&self, mut req: Map<String, Value>) -> Result<Map<String, Value>, Failure> {
        let mut s = self.session().map_err(Failure::Engine)?;
        let id = s.next_id;
        s.next_id += 1;
        req.insert("id".into(), json!(id));
        let line = match s
            .proc
            .request(&Value::Object(req).to_string(), self.timeout)
        {
            Ok(l) => l,
            Err(ProcError::TimedOut(t)) => {
                return Err(Failure::Engine(format!(
                    "timed out after {:.1}s (the plugin will be restarted)",
                    t.as_secs_f64()
                )))
            }
            Err(e) => {
                return Err(Failure::Engine(format!(
                    "{e} (the plugin will be restarted)"
                )))
            }
        };
        let garbage = |why: &str| {
            Failure::Engine(format!(
                "garbage reply ({why}): {:?} (the plugin will be restarted)",
                truncate(&line, 200)
            ))
        };
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(garbage("not a JSON object")),
            Err(_) => return Err(garbage("not JSON")),
        };
        if reply.get("id") != Some(&json!(id)) {
            return Err(garbage(&format!("expected id {id}")));
        }
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        Ok(reply)
    }
}

/// The program part of a request.
fn program_fields(program: &Program) -> Map<String, Value> {
    let mut m = Map::new();
    match program {
        Program::Classic(p) => {
            m.insert("dialect".into(), json!(p.dialect.to_string()));
            let insns: Vec<[u64; 4]> = p
                .insns
                .iter()
                .map(|i| [i.code as u64, i.jt as u64, i.jf as u64, i.k as u64])
                .collect();
            m.insert("insns".into(), json!(insns));
        }
        Program::Ebpf(p) => {
            m.insert("isa".into(), json!("ebpf"));
            let rows: Vec<[i64; 5]> = p
                .insns
                .iter()
                .map(|i| {
                    [
                        i.code as i64,
                        i.dst as i64,
                        i.src as i64,
                        i.off as i64,
                        i.imm as i64,
                    ]
                })
                .collect();
            m.insert("ebpf".into(), json!(rows));
        }
    }
    m
}

/// A context that makes the plugin's loader see `p`'s coprocessor table size and memory-store
/// size (the request carries them only through `ctx`).
fn loader_ctx(p: &ClassicProgram) -> Ctx {
    Ctx {
        cop: vec![CopFn::RetA; p.cop_funcs],
        extmem: (p.memwords != bpfconf_spec::cbpf::MEMWORDS).then(|| vec![0; p.memwords]),
        ..Ctx::default()
    }
}

fn ctx_value(ctx: &Ctx) -> Option<Value> {
    if *ctx == Ctx::default() {
        return None;
    }
    serde_json::to_value(CtxSpec::from(ctx)).ok()
}

/// Interprets a run reply.
pub fn outcome_from_reply(reply: &Map<String, Value>) -> Result<Outcome, RunError> {
    let garbage = |why: &str| {
        RunError::Engine(format!(
            "garbage reply ({why}): {}",
            truncate(&Value::Object(reply.clone()).to_string(), 200)
        ))
    };
    if let Some(e) = reply.get("error") {
        return Err(RunError::Engine(format!(
            "plugin error: {}",
            e.as_str().map_or(e.to_string(), String::from)
        )));
    }
    if let Some(s) = reply.get("skipped") {
        return Err(RunError::Unsupported(
            s.as_str().map_or(s.to_string(), String::from),
        ));
    }
    if let Some(f) = reply.get("fault") {
        return Err(RunError::Fault(
            f.as_str().map_or(f.to_string(), String::from),
        ));
    }
    if let Some(r) = reply.get("rejected") {
        return Err(RunError::Engine(format!(
            "the plugin rejected at run time a program it accepted at load: {r}"
        )));
    }
    if let Some(r0) = reply.get("r0") {
        let r0 = r0.as_u64().ok_or_else(|| garbage("`r0` is not a u64"))?;
        let memory = match reply.get("mem") {
            None | Some(Value::Null) => None,
            Some(Value::String(h)) => {
                Some(bpfconf_spec::case::parse_hex(h).map_err(|_| garbage("`mem` is not hex"))?)
            }
            Some(_) => return Err(garbage("`mem` is not a hex string")),
        };
        return Ok(Outcome {
            ret: Observed::Exact(r0),
            mem: None,
            memory,
            maps: None,
        });
    }
    if let Some(ret) = reply.get("ret") {
        let ret = ret.as_u64().ok_or_else(|| garbage("`ret` is not a u64"))?;
        let mem = match reply.get("mem") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|w| w.as_u64().and_then(|w| u32::try_from(w).ok()))
                    .collect::<Option<Vec<u32>>>()
                    .ok_or_else(|| garbage("`mem` is not a list of u32"))?,
            ),
            Some(_) => return Err(garbage("`mem` is not a list")),
        };
        return Ok(Outcome::classic(Observed::Exact(ret), mem));
    }
    if let Some(d) = reply.get("delivered") {
        let d = match d {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| garbage("`delivered` is not a u32 or null"))?,
            ),
        };
        return Ok(Outcome::classic(Observed::Delivered(d), None));
    }
    Err(garbage(
        "no r0, ret, delivered, fault, rejected, skipped or error",
    ))
}

struct LoadedJsonl<'a> {
    engine: &'a JsonlPlugin,
    program: Map<String, Value>,
}

impl Loaded for LoadedJsonl<'_> {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let mut req = self.program.clone();
        match input {
            Input::Classic(i) => {
                req.insert("packet".into(), json!(to_hex(&i.packet)));
                if let Some(c) = ctx_value(&i.ctx) {
                    req.insert("ctx".into(), c);
                }
            }
            Input::Ebpf(i) => {
                req.insert("mem".into(), json!(to_hex(&i.mem)));
            }
        }
        let reply = self
            .engine
            .exchange(req)
            .map_err(|Failure::Engine(e)| RunError::Engine(e))?;
        outcome_from_reply(&reply)
    }
}

impl Engine for JsonlPlugin {
    fn name(&self) -> &str {
        &self.spec
    }

    fn info(&self) -> EngineInfo {
        let mut facts = vec![
            (
                "protocol".into(),
                format!("{PROTOCOL_NAME} {PROTOCOL_VERSIONS:?}"),
            ),
            ("command".into(), self.command.join(" ")),
            ("timeout".into(), format!("{:?}", self.timeout)),
        ];
        if let Some(Ok(h)) = self.hello.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            facts.push(("version".into(), h.version.to_string()));
            if let Some(e) = &h.engine {
                facts.push(("engine".into(), e.clone()));
            }
        }
        EngineInfo {
            name: self.spec.clone(),
            arch: "external".into(),
            facts,
        }
    }

    fn availability(&self) -> Result<(), String> {
        resolve_program(&self.command[0])?;
        self.hello().map(drop)
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        match (program, input) {
            (Program::Ebpf(p), Input::Ebpf(_)) if !p.maps.is_empty() || !p.progs.is_empty() => {
                Err("protocol version 1 carries no maps or tail-call targets".into())
            }
            (Program::Ebpf(_), Input::Ebpf(_)) | (Program::Classic(_), Input::Classic(_)) => Ok(()),
            _ => Err("program and input families differ".into()),
        }
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        let fields = program_fields(program);
        let mut req = fields.clone();
        req.insert("load_only".into(), json!(true));
        if let Program::Classic(p) = program {
            if let Some(c) = ctx_value(&loader_ctx(p)) {
                req.insert("ctx".into(), c);
            }
        }
        let reply = self
            .exchange(req)
            .map_err(|Failure::Engine(e)| LoadError::Engine(e))?;
        if let Some(r) = reply.get("rejected") {
            return Err(LoadError::Rejected {
                rule: reply.get("rule").and_then(Value::as_str).map(String::from),
                reason: r.as_str().map_or(r.to_string(), String::from),
            });
        }
        if let Some(s) = reply.get("skipped") {
            return Err(LoadError::Unsupported(
                s.as_str().map_or(s.to_string(), String::from),
            ));
        }
        if let Some(e) = reply.get("error") {
            return Err(LoadError::Engine(format!(
                "plugin error: {}",
                e.as_str().map_or(e.to_string(), String::from)
            )));
        }
        if reply.get("accepted") != Some(&json!(true)) {
            return Err(LoadError::Engine(format!(
                "garbage reply (expected accepted or rejected): {}",
                truncate(&Value::Object(reply).to_string(), 200)
            )));
        }
        Ok(Box::new(LoadedJsonl {
            engine: self,
            program: fields,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_checks() {
        let ok =
            json!({"id": 0, "hello": {"protocol": PROTOCOL_NAME, "version": 1, "engine": "x"}});
        assert_eq!(
            parse_hello(&ok),
            Ok(Hello {
                version: 1,
                engine: Some("x".into())
            })
        );
        assert!(
            parse_hello(&json!({"id": 0, "hello": {"protocol": "other", "version": 1}})).is_err()
        );
        assert!(
            parse_hello(&json!({"id": 0, "hello": {"protocol": PROTOCOL_NAME, "version": 9}}))
                .is_err()
        );
        assert!(parse_hello(&json!({"id": 0, "error": "unknown field hello"})).is_err());
    }

    #[test]
    fn replies() {
        let m = |v: Value| v.as_object().unwrap().clone();
        let o = outcome_from_reply(&m(json!({"id": 1, "r0": 5, "mem": "0a0b"}))).unwrap();
        assert_eq!(o.ret, Observed::Exact(5));
        assert_eq!(o.memory, Some(vec![10, 11]));
        let o = outcome_from_reply(&m(json!({"id": 1, "ret": 7, "mem": [1, 2]}))).unwrap();
        assert_eq!(o.mem, Some(vec![1, 2]));
        let o = outcome_from_reply(&m(json!({"id": 1, "delivered": null}))).unwrap();
        assert_eq!(o.ret, Observed::Delivered(None));
        assert!(matches!(
            outcome_from_reply(&m(json!({"id": 1, "fault": "oob"}))),
            Err(RunError::Fault(_))
        ));
        assert!(matches!(
            outcome_from_reply(&m(json!({"id": 1, "skipped": "no"}))),
            Err(RunError::Unsupported(_))
        ));
        for bad in [
            json!({"id": 1}),
            json!({"id": 1, "r0": -1}),
            json!({"id": 1, "r0": 1, "mem": "zz"}),
        ] {
            match outcome_from_reply(&m(bad)) {
                Err(RunError::Engine(e)) => assert!(e.starts_with("garbage reply"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
