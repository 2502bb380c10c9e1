//! Seeded random tests: update/delete/lookup sequences checked against a model of the kernel's
//! hash and array semantics, and random helper calls with random (often bad) arguments, which
//! must end in a result or a fault, never a panic, and the same one on every run.

use super::support::XorShift64Star as Rng;
use super::*;
use std::collections::BTreeMap;

#[test]
fn hash_and_array_sequences_match_a_model() {
    let mut rng = Rng(0x5eed_0001);
    for round in 0..200 {
        let max = 1 + rng.below(4) as u32;
        let is_hash = round % 2 == 0;
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        if !is_hash {
            model = (0..max).map(|i| (i, 0)).collect();
        }
        let mut text = String::from(START);
        let mut want = Vec::new();
        for slot in 0..24 {
            let k = rng.below(6) as u32;
            let v = rng.below(1000);
            let flags = rng.below(4);
            match rng.below(3) {
                0 => {
                    text += &update(0, k as i32, v as i32, flags as i32, slot);
                    let present = model.contains_key(&k);
                    let r = if flags > 2 {
                        EINVAL
                    } else if is_hash {
                        match (present, flags) {
                            (true, 1) => EEXIST,
                            (false, 2) => ENOENT,
                            (false, _) if model.len() >= max as usize => E2BIG,
                            _ => {
                                model.insert(k, v);
                                0
                            }
                        }
                    } else if k >= max {
                        E2BIG
                    } else if flags == 1 {
                        EEXIST
                    } else {
                        model.insert(k, v);
                        0
                    };
                    want.push(r);
                }
                1 => {
                    text += &delete(0, k as i32, slot);
                    want.push(match (is_hash, model.remove(&k)) {
                        (false, removed) => {
                            if let Some(old) = removed {
                                model.insert(k, old);
                            }
                            EINVAL
                        }
                        (true, Some(_)) => 0,
                        (true, None) => ENOENT,
                    });
                }
                _ => {
                    // lookup: store the value, or u64::MAX for NULL.
                    text += &lookup(0, k as i32, slot);
                    text += &format!(
                        "mov %r1, -1\njeq %r0, 0, +1\nldxdw %r1, [%r0]\nstxdw [%r6+{}], %r1\n",
                        slot * 8
                    );
                    want.push(model.get(&k).copied().unwrap_or(u64::MAX));
                }
            }
        }
        text += END;
        let m = if is_hash { hash(max) } else { array(max) };
        let r = run(&program(&text, vec![m]), &[]);
        assert_eq!(slots(&r)[..24], want[..], "round {round}\n{text}");
        let pairs: Vec<(u32, u64)> = model.into_iter().collect();
        assert_eq!(r.maps, vec![keyed(&pairs)], "round {round}");
    }
}

/// A random register operand for a pointer argument: mostly a roomy stack slot, sometimes a bad
/// place (NULL, the frame's last bytes, anywhere in or past the buffer, the last lookup result).
fn pointer(rng: &mut Rng, reg: u8) -> String {
    match rng.below(40) {
        0 => format!("mov %r{reg}, 0\n"),
        1 => format!("mov %r{reg}, %r10\nadd %r{reg}, -{}\n", rng.below(6)),
        2 => format!("mov %r{reg}, %r6\nadd %r{reg}, {}\n", rng.below(80)),
        3 => format!("mov %r{reg}, %r7\n"),
        _ => format!(
            "mov %r{reg}, %r10\nadd %r{reg}, -{}\n",
            32 + 8 * rng.below(4)
        ),
    }
}

#[test]
fn random_helper_calls_never_panic() {
    let mut rng = Rng(0x5eed_0002);
    let kinds = [
        MapKind::Hash,
        MapKind::Array,
        MapKind::ProgArray,
        MapKind::Queue,
        MapKind::Stack,
    ];
    let (mut ran, mut faulted) = (0, 0);
    for round in 0..300 {
        let maps: Vec<MapDef> = (0..1 + rng.below(3))
            .map(|_| {
                let kind = kinds[rng.below(5) as usize];
                let (key, value) = match kind {
                    MapKind::Hash => (1 + rng.below(8) as u32, 1 + rng.below(16) as u32),
                    MapKind::Array => (4, 1 + rng.below(16) as u32),
                    MapKind::ProgArray => (4, 4),
                    _ => (0, 1 + rng.below(16) as u32),
                };
                def(kind, key, value, 1 + rng.below(4) as u32)
            })
            .collect();
        let mut text = String::from("mov %r6, %r1\nmov %r7, 0\n");
        for _ in 0..8 {
            // Now and then a handle that is not one, or a helper the map type does not allow.
            let map = match rng.below(25) {
                0 => maps.len() as u64,
                _ => rng.below(maps.len() as u64),
            };
            let allowed: &[u32] = match maps.get(map as usize).map(|m| m.kind) {
                _ if rng.below(25) == 0 => &[1, 2, 3, 5, 7, 8, 12, 87, 88, 89],
                Some(MapKind::Hash | MapKind::Array) => &[1, 1, 2, 2, 3, 5, 7, 8],
                Some(MapKind::ProgArray) => &[12],
                _ => &[87, 87, 88, 89],
            };
            let helper = allowed[rng.below(allowed.len() as u64) as usize];
            text += &format!("stdw [%r10-32], {}\n", rng.below(5));
            text += &format!("lddw_map_fd %r1, {}\n", map.min(maps.len() as u64 - 1));
            if map == maps.len() as u64 {
                text += "add %r1, 8\n";
            }
            text += &pointer(&mut rng, 2);
            text += &pointer(&mut rng, 3);
            text += &format!("mov %r4, {}\n", rng.below(6));
            if helper == 12 {
                text += &format!("mov %r2, %r1\nmov %r1, %r6\nmov %r3, {}\n", rng.below(5));
            }
            text += &format!("call {helper}\n");
            if helper == 1 {
                text += "mov %r7, %r0\n";
            }
        }
        text += "mov %r0, 0\nexit\n";
        let p = EbpfProgram {
            insns: asm(&text),
            maps,
            progs: vec![asm("mov %r0, 1\nexit"), asm(&text)],
        };
        // prog_array slot 0 names the second target, this same text: chains up to the limit.
        let init: Vec<MapContents> = p
            .maps
            .iter()
            .map(|m| match m.kind {
                MapKind::ProgArray => {
                    MapContents::Keyed([(vec![0; 4], 1u32.to_le_bytes().to_vec())].into())
                }
                _ => MapContents::Unknown,
            })
            .collect();
        let i = Interpreter::for_program(&p).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let a = i.run_with_maps(&[0; 64], &init);
        let b = i.run_with_maps(&[0; 64], &init);
        assert_eq!(a, b, "round {round}: runs differ");
        match a {
            Ok(_) => ran += 1,
            Err(RunError::Fault(_)) => faulted += 1,
            Err(e) => panic!("round {round}: {e}\n{text}"),
        }
    }
    assert!(ran > 20 && faulted > 20, "ran {ran}, faulted {faulted}");
}
