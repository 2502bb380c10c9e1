//! The standard NetBSD coprocessor table used by spec cases (`BPF_MISC|BPF_COP` / `BPF_COPX`).
//!
//! NetBSD's `bpf_copfunc_t` receives the context, the arguments (packet, wire length, buffer
//! length, the memory store M[]) and A, and returns the new A. A case lists the functions of its
//! table by name; each name below has one fixed, documented behaviour so that every engine
//! (reference interpreter, JIT, plugins) implements the same table.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One coprocessor function of the standard table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopFn {
    /// Returns A unchanged (NetBSD t_cop.c `retA`).
    RetA,
    /// Returns the buffer (captured) length (t_cop.c `retBL`).
    RetBuflen,
    /// Returns the wire length (t_cop.c `retWL`).
    RetWirelen,
    /// Returns the number of functions in the table (t_cop.c `retNF`).
    RetNfuncs,
    /// Side effect: `M[0] = A`; returns `A + 1`.
    SetM0,
    /// Side effect: `M[15] += 1` (wrapping; on a smaller external memory, its last word);
    /// returns A.
    IncMLast,
    /// Reads the first packet byte: returns `pkt[0]`, or `0xffffffff` if the buffer is empty.
    PktByte0,
}

impl CopFn {
    /// Every function of the standard table.
    pub const ALL: [CopFn; 7] = [
        CopFn::RetA,
        CopFn::RetBuflen,
        CopFn::RetWirelen,
        CopFn::RetNfuncs,
        CopFn::SetM0,
        CopFn::IncMLast,
        CopFn::PktByte0,
    ];

    /// The snake_case name used in TOML.
    pub fn name(self) -> &'static str {
        match self {
            CopFn::RetA => "ret_a",
            CopFn::RetBuflen => "ret_buflen",
            CopFn::RetWirelen => "ret_wirelen",
            CopFn::RetNfuncs => "ret_nfuncs",
            CopFn::SetM0 => "set_m0",
            CopFn::IncMLast => "inc_m_last",
            CopFn::PktByte0 => "pkt_byte0",
        }
    }

    /// Calls the function: `a` is the accumulator, `mem` the memory store (M[] or the external
    /// memory), `nfuncs` the table length. Returns the new A.
    pub fn call(self, a: u32, pkt: &[u8], wirelen: u32, mem: &mut [u32], nfuncs: usize) -> u32 {
        match self {
            CopFn::RetA => a,
            CopFn::RetBuflen => pkt.len() as u32,
            CopFn::RetWirelen => wirelen,
            CopFn::RetNfuncs => nfuncs as u32,
            CopFn::SetM0 => {
                if let Some(m) = mem.first_mut() {
                    *m = a;
                }
                a.wrapping_add(1)
            }
            CopFn::IncMLast => {
                if let Some(m) = mem.last_mut() {
                    *m = m.wrapping_add(1);
                }
                a
            }
            CopFn::PktByte0 => pkt.first().map_or(0xffff_ffff, |&b| b as u32),
        }
    }
}

impl fmt::Display for CopFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CopFn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CopFn::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = CopFn::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown coprocessor function `{s}` (known: {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_behave_as_documented() {
        let mut mem = [0u32; 16];
        assert_eq!(CopFn::RetA.call(7, &[1, 2], 9, &mut mem, 3), 7);
        assert_eq!(CopFn::RetBuflen.call(7, &[1, 2], 9, &mut mem, 3), 2);
        assert_eq!(CopFn::RetWirelen.call(7, &[1, 2], 9, &mut mem, 3), 9);
        assert_eq!(CopFn::RetNfuncs.call(7, &[1, 2], 9, &mut mem, 3), 3);
        assert_eq!(CopFn::SetM0.call(7, &[], 0, &mut mem, 3), 8);
        assert_eq!(mem[0], 7);
        assert_eq!(CopFn::IncMLast.call(7, &[], 0, &mut mem, 3), 7);
        assert_eq!(mem[15], 1);
        assert_eq!(CopFn::PktByte0.call(0, &[0xab], 1, &mut mem, 1), 0xab);
        assert_eq!(CopFn::PktByte0.call(0, &[], 0, &mut mem, 1), 0xffff_ffff);
        assert_eq!("set_m0".parse::<CopFn>(), Ok(CopFn::SetM0));
        assert!("nope".parse::<CopFn>().is_err());
    }
}
