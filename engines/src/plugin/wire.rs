//! JSON forms of the eBPF program parts the JSON-lines protocol carries besides instructions —
//! map definitions, map contents and tail-call targets — shared by the client (`jsonl:`) and
//! the reference server (`bpfconf serve`). They follow the TOML case format
//! (`spec/README.md`): a map is `{"name", "type", "key_size", "value_size", "max_entries",
//! "flags"}`; keyed contents are `[["key hex", "value hex"], …]` sorted by key, queue and stack
//! contents `["value hex", …]` front (queue) or bottom (stack) first, unobserved contents
//! `null`; a program is a list of `[opcode, dst, src, off, imm]` slots.

use bpfconf_spec::case::{ebpf_rows, parse_hex, to_hex};
use bpfconf_spec::ebpf::maps::{MapContents, MapDef, MapKind};
use bpfconf_spec::ebpf::Insn;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The optional protocol features a server announces in its handshake reply (`"features"`):
/// `maps` (requests may carry `maps` and `map_init`, replies carry `maps`) and `progs`
/// (requests may carry tail-call targets). A client sends those fields only to a server that
/// announced them.
pub const FEATURES: &[&str] = &["maps", "progs"];

/// A program's slots as `[opcode, dst, src, off, imm]` rows (an `lddw` takes two).
pub fn rows(insns: &[Insn]) -> Value {
    let rows: Vec<[i64; 5]> = insns
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
    json!(rows)
}

/// Parses `[opcode, dst, src, off, imm]` rows.
pub fn parse_rows(v: &Value) -> Result<Vec<Insn>, String> {
    let rows: Vec<Vec<i64>> =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a list of rows: {e}"))?;
    ebpf_rows(&rows)
}

/// The JSON form of a map definition.
pub fn map_def(d: &MapDef) -> Value {
    json!({
        "name": d.name,
        "type": d.kind,
        "key_size": d.key_size,
        "value_size": d.value_size,
        "max_entries": d.max_entries,
        "flags": d.flags,
    })
}

/// Parses and validates a map definition (`key_size` defaults as in case files: 0 for queue
/// and stack, else 4; `flags` to 0).
pub fn parse_map_def(v: &Value) -> Result<MapDef, String> {
    let o = v.as_object().ok_or("a map is a JSON object")?;
    for k in o.keys() {
        if ![
            "name",
            "type",
            "key_size",
            "value_size",
            "max_entries",
            "flags",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("unknown map field `{k}`"));
        }
    }
    let u32_field = |k: &str| -> Result<Option<u32>, String> {
        match o.get(k) {
            None => Ok(None),
            Some(x) => x
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("map `{k}` is not a u32")),
        }
    };
    let kind: MapKind = serde_json::from_value(o.get("type").cloned().unwrap_or(Value::Null))
        .map_err(|_| "map `type`: hash, array, prog_array, queue or stack".to_string())?;
    let d = MapDef {
        name: o
            .get("name")
            .and_then(Value::as_str)
            .ok_or("map `name` is missing")?
            .to_string(),
        kind,
        key_size: u32_field("key_size")?.unwrap_or(if kind.is_sequence() { 0 } else { 4 }),
        value_size: u32_field("value_size")?.ok_or("map `value_size` is missing")?,
        max_entries: u32_field("max_entries")?.ok_or("map `max_entries` is missing")?,
        flags: u32_field("flags")?.unwrap_or(0),
    };
    d.validate()?;
    Ok(d)
}

/// The JSON form of map contents.
pub fn contents(c: &MapContents) -> Value {
    match c {
        MapContents::Keyed(m) => json!(m
            .iter()
            .map(|(k, v)| [to_hex(k), to_hex(v)])
            .collect::<Vec<_>>()),
        MapContents::Sequence(s) => json!(s.iter().map(|v| to_hex(v)).collect::<Vec<_>>()),
        MapContents::Unknown => Value::Null,
    }
}

/// Parses the contents of a map of `def` (sizes checked; an empty list is empty contents of
/// the map's kind; `null` is unobserved).
pub fn parse_contents(def: &MapDef, v: &Value) -> Result<MapContents, String> {
    let n = &def.name;
    let hex = |x: &Value, what: &str, size: u32| -> Result<Vec<u8>, String> {
        let s = x
            .as_str()
            .ok_or_else(|| format!("map `{n}`: {what} is not a hex string"))?;
        let b = parse_hex(s).map_err(|e| format!("map `{n}`: {what} `{s}`: {e}"))?;
        if b.len() != size as usize {
            return Err(format!(
                "map `{n}`: {what} `{s}` has {} bytes, expected {size}",
                b.len()
            ));
        }
        Ok(b)
    };
    let items = match v {
        Value::Null => return Ok(MapContents::Unknown),
        Value::Array(a) => a,
        _ => return Err(format!("map `{n}`: contents are a list or null")),
    };
    if def.kind.is_sequence() {
        return Ok(MapContents::Sequence(
            items
                .iter()
                .map(|x| hex(x, "value", def.value_size))
                .collect::<Result<_, _>>()?,
        ));
    }
    let mut m = BTreeMap::new();
    for item in items {
        let pair = item
            .as_array()
            .filter(|p| p.len() == 2)
            .ok_or_else(|| format!("map `{n}`: entries are [\"key hex\", \"value hex\"]"))?;
        let k = hex(&pair[0], "key", def.key_size)?;
        if m.insert(k, hex(&pair[1], "value", def.value_size)?)
            .is_some()
        {
            return Err(format!("map `{n}`: a key is given twice"));
        }
    }
    Ok(MapContents::Keyed(m))
}

/// Parses a list of map contents, one per map of `defs` (a shorter list leaves the rest
/// unobserved).
pub fn parse_contents_list(defs: &[MapDef], v: &Value) -> Result<Vec<MapContents>, String> {
    let a = v.as_array().ok_or("map contents are a list, one per map")?;
    if a.len() > defs.len() {
        return Err(format!("{} map contents for {} maps", a.len(), defs.len()));
    }
    defs.iter()
        .zip(a)
        .map(|(d, c)| parse_contents(d, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: MapKind, key_size: u32) -> MapDef {
        MapDef {
            name: "m".into(),
            kind,
            key_size,
            value_size: 2,
            max_entries: 4,
            flags: 0,
        }
    }

    #[test]
    fn round_trips() {
        let h = def(MapKind::Hash, 1);
        assert_eq!(parse_map_def(&map_def(&h)).unwrap(), h);
        let q = def(MapKind::Queue, 0);
        assert_eq!(
            parse_map_def(
                &json!({"name": "m", "type": "queue", "value_size": 2, "max_entries": 4})
            )
            .unwrap(),
            q
        );
        let keyed = MapContents::Keyed([(vec![1], vec![2, 3])].into_iter().collect());
        assert_eq!(contents(&keyed), json!([["01", "0203"]]));
        assert_eq!(parse_contents(&h, &contents(&keyed)).unwrap(), keyed);
        let seq = MapContents::Sequence(vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(parse_contents(&q, &contents(&seq)).unwrap(), seq);
        assert_eq!(
            parse_contents(&q, &json!([])).unwrap(),
            MapContents::Sequence(vec![])
        );
        assert_eq!(
            parse_contents(&h, &Value::Null).unwrap(),
            MapContents::Unknown
        );
        let insns = ebpf_rows(&[vec![183, 0, 0, 0, -1], vec![149, 0, 0, 0, 0]]).unwrap();
        assert_eq!(parse_rows(&rows(&insns)).unwrap(), insns);
    }

    #[test]
    fn errors_name_the_problem() {
        let h = def(MapKind::Hash, 1);
        assert!(parse_contents(&h, &json!([["0102", "0203"]]))
            .unwrap_err()
            .contains("key"));
        assert!(parse_contents(&h, &json!([["01", "02"], ["01", "02"]])).is_err());
        assert!(parse_map_def(&json!({"name": "m", "type": "tree"})).is_err());
        assert!(
            parse_map_def(&json!({"name": "m", "type": "hash", "value_size": 1,
            "max_entries": 1, "colour": 1}))
            .unwrap_err()
            .contains("colour")
        );
        assert!(parse_contents_list(&[h], &json!([null, null])).is_err());
    }
}
