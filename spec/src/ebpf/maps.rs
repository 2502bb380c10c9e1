//! eBPF maps and helpers as the spec describes them: map definitions, their contents (the
//! canonical snapshot engines compare), and the helper functions cases may call by id.
//!
//! Helper ids and map type numbers are the kernel's UAPI values (`include/uapi/linux/bpf.h`,
//! `enum bpf_func_id` and `enum bpf_map_type`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Map types the spec supports (deterministic ones only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapKind {
    /// `BPF_MAP_TYPE_HASH` (1).
    Hash,
    /// `BPF_MAP_TYPE_ARRAY` (2): keys are u32 indices, every entry exists, zero-initialised.
    Array,
    /// `BPF_MAP_TYPE_PROG_ARRAY` (3): tail-call targets, values are program indices.
    ProgArray,
    /// `BPF_MAP_TYPE_QUEUE` (22): FIFO, key size 0.
    Queue,
    /// `BPF_MAP_TYPE_STACK` (23): LIFO, key size 0.
    Stack,
}

impl MapKind {
    /// The kernel's `enum bpf_map_type` value.
    pub fn uapi(self) -> u32 {
        match self {
            MapKind::Hash => 1,
            MapKind::Array => 2,
            MapKind::ProgArray => 3,
            MapKind::Queue => 22,
            MapKind::Stack => 23,
        }
    }

    /// True for queue and stack maps (no keys; push/pop/peek).
    pub fn is_sequence(self) -> bool {
        matches!(self, MapKind::Queue | MapKind::Stack)
    }
}

/// One map a program uses. Programs refer to maps by their index in the program's map list
/// (`lddw` with src = 1: imm = index; src = 2: imm = index, second imm = value offset); engines
/// replace the index with whatever handle they use (the kernel: a map fd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDef {
    /// Name used in case files and reports.
    pub name: String,
    /// Type.
    pub kind: MapKind,
    /// Key size in bytes (0 for queue/stack, 4 for array and prog_array).
    pub key_size: u32,
    /// Value size in bytes (4 for prog_array).
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `map_flags` (e.g. BPF_F_NO_PREALLOC for hash maps).
    pub flags: u32,
}

impl MapDef {
    /// Checks the definition the way the kernel's map_alloc_check functions do for the
    /// supported types; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if self.max_entries == 0 {
            return Err(format!("map `{n}`: max_entries must be > 0"));
        }
        match self.kind {
            MapKind::Array | MapKind::ProgArray if self.key_size != 4 => {
                Err(format!("map `{n}`: {:?} maps have 4-byte keys", self.kind))
            }
            MapKind::ProgArray if self.value_size != 4 => Err(format!(
                "map `{n}`: prog_array values are 4-byte program indices"
            )),
            MapKind::Queue | MapKind::Stack if self.key_size != 0 => {
                Err(format!("map `{n}`: queue/stack maps have key_size 0"))
            }
            MapKind::Hash if self.key_size == 0 => Err(format!("map `{n}`: hash maps need a key")),
            _ if self.value_size == 0 => Err(format!("map `{n}`: value_size must be > 0")),
            _ => Ok(()),
        }
    }
}

/// The contents of one map: the canonical form engines report after a run and cases state
/// before and after it. Keyed maps are sorted by key bytes; queue/stack keep their order
/// (front of the queue / bottom of the stack first).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MapContents {
    /// Keyed contents (hash, array, prog_array), sorted by key.
    Keyed(BTreeMap<Vec<u8>, Vec<u8>>),
    /// Ordered values (queue: front first; stack: bottom first).
    Sequence(Vec<Vec<u8>>),
    /// Not observed.
    #[default]
    Unknown,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl fmt::Display for MapContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapContents::Keyed(m) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}: {}", hex(k), hex(v)))
                    .collect();
                write!(f, "{{{}}}", items.join(", "))
            }
            MapContents::Sequence(s) => {
                let items: Vec<String> = s.iter().map(|v| hex(v)).collect();
                write!(f, "[{}]", items.join(", "))
            }
            MapContents::Unknown => f.write_str("unobserved"),
        }
    }
}

/// The first difference between two map contents, as (key or position, expected, actual),
/// rendered in hex; `None` when equal.
pub fn first_difference(want: &MapContents, got: &MapContents) -> Option<(String, String, String)> {
    let show = |v: Option<&Vec<u8>>| v.map_or("absent".to_string(), |v| hex(v));
    match (want, got) {
        (MapContents::Keyed(a), MapContents::Keyed(b)) => {
            let keys: std::collections::BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                (a.get(k) != b.get(k))
                    .then(|| (format!("key {}", hex(k)), show(a.get(k)), show(b.get(k))))
            })
        }
        (MapContents::Sequence(a), MapContents::Sequence(b)) => (0..a.len().max(b.len()))
            .find(|&i| a.get(i) != b.get(i))
            .map(|i| (format!("position {i}"), show(a.get(i)), show(b.get(i)))),
        (a, b) if a == b => None,
        (a, b) => Some(("contents".into(), a.to_string(), b.to_string())),
    }
}

/// A helper function the spec knows, by the kernel's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Helper {
    /// `enum bpf_func_id` value.
    pub id: i32,
    /// Name without the `bpf_` prefix.
    pub name: &'static str,
    /// True when its result is not a function of the program's state (random numbers, time):
    /// runs compare everything except values derived from it.
    pub nondeterministic: bool,
}

/// The helpers the spec covers.
pub const HELPERS: &[Helper] = &[
    Helper {
        id: 1,
        name: "map_lookup_elem",
        nondeterministic: false,
    },
    Helper {
        id: 2,
        name: "map_update_elem",
        nondeterministic: false,
    },
    Helper {
        id: 3,
        name: "map_delete_elem",
        nondeterministic: false,
    },
    Helper {
        id: 5,
        name: "ktime_get_ns",
        nondeterministic: true,
    },
    Helper {
        id: 7,
        name: "get_prandom_u32",
        nondeterministic: true,
    },
    Helper {
        id: 8,
        name: "get_smp_processor_id",
        nondeterministic: false,
    },
    Helper {
        id: 12,
        name: "tail_call",
        nondeterministic: false,
    },
    Helper {
        id: 87,
        name: "map_push_elem",
        nondeterministic: false,
    },
    Helper {
        id: 88,
        name: "map_pop_elem",
        nondeterministic: false,
    },
    Helper {
        id: 89,
        name: "map_peek_elem",
        nondeterministic: false,
    },
];

/// Looks a helper up by id.
pub fn helper(id: i32) -> Option<&'static Helper> {
    HELPERS.iter().find(|h| h.id == id)
}

/// `map_update_elem` flags.
pub mod update_flags {
    /// Create or update.
    pub const ANY: u64 = 0;
    /// Create only (EEXIST if present).
    pub const NOEXIST: u64 = 1;
    /// Update only (ENOENT if absent).
    pub const EXIST: u64 = 2;
}

/// Maximum tail calls in one run (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALL_CNT: u32 = 33;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_validated() {
        let d = |kind, key_size, value_size| MapDef {
            name: "m".into(),
            kind,
            key_size,
            value_size,
            max_entries: 4,
            flags: 0,
        };
        assert!(d(MapKind::Array, 4, 8).validate().is_ok());
        assert!(d(MapKind::Array, 8, 8).validate().is_err());
        assert!(d(MapKind::Queue, 0, 8).validate().is_ok());
        assert!(d(MapKind::Stack, 4, 8).validate().is_err());
        assert!(d(MapKind::ProgArray, 4, 8).validate().is_err());
        assert!(d(MapKind::Hash, 0, 8).validate().is_err());
        assert_eq!(MapKind::Stack.uapi(), 23);
        assert_eq!(helper(12).unwrap().name, "tail_call");
    }

    #[test]
    fn first_difference_names_the_key() {
        let a = MapContents::Keyed([(vec![1], vec![2]), (vec![3], vec![4])].into());
        let b = MapContents::Keyed([(vec![1], vec![2]), (vec![3], vec![5])].into());
        assert_eq!(
            first_difference(&a, &b),
            Some(("key 03".into(), "04".into(), "05".into()))
        );
        assert_eq!(first_difference(&a, &a), None);
        let q1 = MapContents::Sequence(vec![vec![1]]);
        let q2 = MapContents::Sequence(vec![vec![1], vec![2]]);
        assert_eq!(
            first_difference(&q1, &q2),
            Some(("position 1".into(), "absent".into(), "02".into()))
        );
    }
}
