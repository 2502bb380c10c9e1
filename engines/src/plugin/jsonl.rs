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
//! or answers anything but a well-formed reply with the right `id` is killed and the next
//! request starts a fresh process. The exchange becomes [`RunError::Timeout`] (`timed out after
//! …`), [`RunError::Crash`] (`crashed: …`) or an engine error (`garbage reply: …`); during a
//! load, [`LoadError::Engine`] with the same messages (see [`LoadError::is_crash`]).
//!
//! Optional version-1 extensions, used only with a server that announces them in its handshake
//! reply (`"features"`, see [`super::wire::FEATURES`]): eBPF maps, their initial contents and
//! snapshots (`maps`), and tail-call targets (`progs`). A server may also qualify an `error`
//! reply with `"kind": "crash"` or `"timeout"` (its own engine's child died or hung), and a
//! `rejected` reply to a run with `"refused": true` (a verifier refusing the program for this
//! input, [`RunError::Refused`]).

use super::process::{resolve_program, truncate, LineProcess, ProcError};
use super::reply::{error_kind, kind_message, text};
pub use super::reply::{outcome_from_reply, outcome_from_reply_with, parse_hello, Hello};
use super::wire;
use crate::{
    ClassicProgram, Engine, EngineInfo, Input, LoadError, Loaded, Outcome, Program, RunError,
};
use bpfconf_spec::case::{to_hex, Ctx, CtxSpec};
use bpfconf_spec::cop::CopFn;
use bpfconf_spec::ebpf::maps::MapDef;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The protocol's name, as sent and expected in the handshake.
pub const PROTOCOL_NAME: &str = "bpfconf-jsonl";
/// The protocol versions this build speaks.
pub const PROTOCOL_VERSIONS: &[u64] = &[1];

struct Session {
    proc: LineProcess,
    next_id: u64,
}

/// A JSON-lines plugin engine.
pub struct JsonlPlugin {
    spec: String,
    command: Vec<String>,
    timeout: Duration,
    /// What the process is called in messages (`plugin`, `isolation child`).
    role: String,
    pool: Mutex<Vec<Session>>,
    hello: Mutex<Option<Result<Hello, String>>>,
    starts: AtomicUsize,
}

/// Why an exchange failed.
enum Failure {
    /// The plugin misbehaved (garbage, I/O) or could not be started: an engine error.
    Engine(String),
    /// The plugin died before answering (`crashed: …`).
    Crash(String),
    /// The plugin did not answer by the deadline (`timed out after …`).
    Timeout(String),
}

impl Failure {
    fn into_run_error(self) -> RunError {
        match self {
            Failure::Engine(m) => RunError::Engine(m),
            Failure::Crash(m) => RunError::Crash(m),
            Failure::Timeout(m) => RunError::Timeout(m),
        }
    }

    /// A load has no crash or timeout variant: the message (`crashed: …`, `timed out …`)
    /// says which ([`LoadError::is_crash`], [`LoadError::is_timeout`]).
    fn into_load_error(self) -> LoadError {
        match self {
            Failure::Engine(m) | Failure::Crash(m) | Failure::Timeout(m) => LoadError::Engine(m),
        }
    }
}

impl JsonlPlugin {
    /// A plugin engine named `spec` running `command`; the deadline comes from
    /// `BPFCONF_PLUGIN_TIMEOUT_MS` (default 10 s).
    pub fn new(spec: &str, command: Vec<String>) -> Self {
        JsonlPlugin {
            spec: spec.to_string(),
            command,
            timeout: super::timeout_from_env(),
            role: "plugin".into(),
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

    /// The same engine, calling its process `role` in messages (e.g. `isolation child`).
    pub fn with_role(mut self, role: &str) -> Self {
        self.role = role.to_string();
        self
    }

    /// The handshake's result if one was made, without starting anything.
    pub fn cached_hello(&self) -> Option<Hello> {
        self.hello
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .and_then(Result::ok)
    }

    /// True when the server announced an optional feature (`maps`, `progs`) in the handshake
    /// made so far.
    fn has_feature(&self, f: &str) -> bool {
        self.cached_hello()
            .is_some_and(|h| h.features.iter().any(|x| x == f))
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
                return Err(Failure::Timeout(format!(
                    "timed out after {:.1}s (the {} will be restarted)",
                    t.as_secs_f64(),
                    self.role
                )))
            }
            Err(e @ ProcError::Ended(_)) => {
                return Err(Failure::Crash(format!(
                    "{e} (the {} will be restarted)",
                    self.role
                )))
            }
            Err(e) => {
                return Err(Failure::Engine(format!(
                    "{e} (the {} will be restarted)",
                    self.role
                )))
            }
        };
        let garbage = |why: &str| {
            Failure::Engine(format!(
                "garbage reply ({why}): {:?} (the {} will be restarted)",
                truncate(&line, 200),
                self.role
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

/// The program part of a request (maps and tail-call targets are sent only to a server that
/// announced them; [`Engine::supports`] skips such programs otherwise).
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
            m.insert("ebpf".into(), wire::rows(&p.insns));
            if !p.maps.is_empty() {
                let defs: Vec<Value> = p.maps.iter().map(wire::map_def).collect();
                m.insert("maps".into(), json!(defs));
            }
            if !p.progs.is_empty() {
                let progs: Vec<Value> = p.progs.iter().map(|q| wire::rows(q)).collect();
                m.insert("progs".into(), json!(progs));
            }
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

struct LoadedJsonl<'a> {
    engine: &'a JsonlPlugin,
    program: Map<String, Value>,
    maps: Vec<MapDef>,
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
                if !self.maps.is_empty() && !i.maps.is_empty() {
                    let init: Vec<Value> = i.maps.iter().map(wire::contents).collect();
                    req.insert("map_init".into(), json!(init));
                }
            }
        }
        let reply = self.engine.exchange(req).map_err(Failure::into_run_error)?;
        outcome_from_reply_with(&reply, &self.maps)
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
            if !h.features.is_empty() {
                facts.push(("features".into(), h.features.join(",")));
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
            (Program::Ebpf(p), Input::Ebpf(_))
                if !p.maps.is_empty() && !self.has_feature("maps") =>
            {
                Err("the plugin did not announce the `maps` feature of protocol version 1".into())
            }
            (Program::Ebpf(p), Input::Ebpf(_))
                if !p.progs.is_empty() && !self.has_feature("progs") =>
            {
                Err(
                    "the plugin did not announce the `progs` feature (tail-call targets) of \
                     protocol version 1"
                        .into(),
                )
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
        let reply = self.exchange(req).map_err(Failure::into_load_error)?;
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
            // A crash or timeout of the server's own engine keeps its message (`crashed: …`,
            // `timed out …`), which is how a load error says so.
            return Err(LoadError::Engine(match error_kind(&reply) {
                Some(k) => kind_message(k, e),
                None => format!("plugin error: {}", text(e)),
            }));
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
            maps: match program {
                Program::Ebpf(p) => p.maps.clone(),
                Program::Classic(_) => Vec::new(),
            },
        }))
    }
}
