//! Replies of the bpfconf JSON-lines protocol, client side: the handshake reply ([`Hello`]) and
//! run replies ([`outcome_from_reply`]), including the optional version-1 qualifiers (`maps`
//! snapshots, `"refused": true` on a run-time rejection, `"kind": "crash" | "timeout"` on an
//! error). See `docs/plugin-protocol.md`.

use super::jsonl::{PROTOCOL_NAME, PROTOCOL_VERSIONS};
use super::process::truncate;
use super::wire;
use crate::{Observed, Outcome, RunError};
use bpfconf_spec::ebpf::maps::MapDef;
use serde_json::{json, Map, Value};

/// What the plugin said about itself in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version agreed on.
    pub version: u64,
    /// The plugin's engine name, if it gave one.
    pub engine: Option<String>,
    /// The optional features it announced (`maps`, `progs`; see [`wire::FEATURES`]).
    pub features: Vec<String>,
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
        features: h
            .get("features")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The text of a reply field (a string as is, anything else as JSON).
pub(super) fn text(v: &Value) -> String {
    v.as_str().map_or(v.to_string(), String::from)
}

/// An `error` reply's `kind` when it says the server's own engine crashed or timed out.
pub(super) fn error_kind(reply: &Map<String, Value>) -> Option<&str> {
    reply
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| ["crash", "timeout"].contains(k))
}

/// The message of an `error` reply of `kind` crash or timeout, starting as such messages do
/// (`crashed: …`, `timed out …`).
pub(super) fn kind_message(kind: &str, e: &Value) -> String {
    let (prefix, m) = match kind {
        "crash" => (crate::CRASH_PREFIX, text(e)),
        _ => (crate::TIMEOUT_PREFIX, text(e)),
    };
    if m.starts_with(prefix) {
        m
    } else {
        format!("{prefix} {m}")
    }
}

/// Interprets a run reply (see [`outcome_from_reply_with`] for replies carrying maps).
pub fn outcome_from_reply(reply: &Map<String, Value>) -> Result<Outcome, RunError> {
    outcome_from_reply_with(reply, &[])
}

/// Interprets a run reply of a program with maps `defs` (the reply's `maps` snapshots are
/// read against them).
pub fn outcome_from_reply_with(
    reply: &Map<String, Value>,
    defs: &[MapDef],
) -> Result<Outcome, RunError> {
    let garbage = |why: &str| {
        RunError::Engine(format!(
            "garbage reply ({why}): {}",
            truncate(&Value::Object(reply.clone()).to_string(), 200)
        ))
    };
    if let Some(e) = reply.get("error") {
        return Err(match error_kind(reply) {
            Some("crash") => RunError::Crash(kind_message("crash", e)),
            Some(k) => RunError::Timeout(kind_message(k, e)),
            None => RunError::Engine(format!("plugin error: {}", text(e))),
        });
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
        if reply.get("refused") == Some(&json!(true)) {
            return Err(RunError::Refused(text(r)));
        }
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
        let maps = match reply.get("maps") {
            None | Some(Value::Null) => None,
            Some(m) => Some(
                wire::parse_contents_list(defs, m).map_err(|e| garbage(&format!("`maps`: {e}")))?,
            ),
        };
        return Ok(Outcome {
            ret: Observed::Exact(r0),
            mem: None,
            memory,
            maps,
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
                engine: Some("x".into()),
                features: vec![],
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
        assert_eq!(
            outcome_from_reply(&m(
                json!({"id": 1, "error": "killed by SIGSEGV", "kind": "crash"})
            )),
            Err(RunError::Crash("crashed: killed by SIGSEGV".into()))
        );
        assert_eq!(
            outcome_from_reply(&m(
                json!({"id": 1, "error": "timed out after 1s", "kind": "timeout"})
            )),
            Err(RunError::Timeout("timed out after 1s".into()))
        );
        assert!(matches!(
            outcome_from_reply(&m(json!({"id": 1, "error": "x", "kind": "other"}))),
            Err(RunError::Engine(_))
        ));
        assert_eq!(
            outcome_from_reply(&m(
                json!({"id": 1, "rejected": "too short", "refused": true})
            )),
            Err(RunError::Refused("too short".into()))
        );
        let defs = [MapDef {
            name: "a".into(),
            kind: bpfconf_spec::ebpf::maps::MapKind::Array,
            key_size: 4,
            value_size: 1,
            max_entries: 1,
            flags: 0,
        }];
        let o = outcome_from_reply_with(
            &m(json!({"id": 1, "r0": 0, "maps": [[["00000000", "2a"]]]})),
            &defs,
        )
        .unwrap();
        assert_eq!(o.maps.unwrap()[0].to_string(), "{00000000: 2a}");
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
