//! Helper functions: a registry from helper id to implementation, consulted by `call imm`
//! (`src` = 0) and by `callx` (the id in a register).
//!
//! A helper receives R1–R5 and a [`HelperCtx`] through which it reaches the run's memory (and,
//! later, maps); it returns R0, or ends the whole program ([`HelperReturn::Exit`]). Calling an id
//! with no entry is a fault `unknown helper N`. R1–R5 keep their values across a helper call
//! (they are caller-saved scratch registers whose contents after a call no program may rely on;
//! the kernel's interpreter leaves them untouched too).
//!
//! [`Helpers::bpf_conformance`] is the environment bpf_conformance's test files assume: its
//! plugins (e.g. uBPF's `ubpf_plugin`) register uBPF's test helpers and make id 5 the *unwind*
//! helper (`ubpf_set_unwind_function_index(vm, 5)`), which returns its first argument; when
//! that value is 0 the VM stops the program with R0 = 0. The only conformance files that call a
//! helper, `call_unwind_fail.data` (`call 5`) and `callx.data` (`call %r2` with R2 = 5), rely
//! on exactly that, so that is the one helper provided.

use super::memory::Memory;
use std::collections::BTreeMap;

/// What a helper call does to the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperReturn {
    /// Continue after the call with this value in R0.
    Value(u64),
    /// End the whole program, returning this value.
    Exit(u64),
}

/// What a helper can reach besides its arguments.
#[derive(Debug)]
pub struct HelperCtx<'a> {
    /// The run's address space (memory buffer, live stack frames, later map values).
    pub memory: &'a mut Memory,
}

/// A helper implementation: arguments R1–R5 in order; an `Err` is a fault with that message.
pub type HelperFn = fn(&mut HelperCtx<'_>, [u64; 5]) -> Result<HelperReturn, String>;

/// One registered helper.
#[derive(Debug, Clone, Copy)]
pub struct Helper {
    /// A name for messages.
    pub name: &'static str,
    /// The implementation.
    pub func: HelperFn,
}

/// A helper table, keyed by helper id.
#[derive(Debug, Clone, Default)]
pub struct Helpers {
    table: BTreeMap<u32, Helper>,
}

/// The id of bpf_conformance's (uBPF's) unwind helper.
pub const UNWIND: u32 = 5;

/// uBPF's test helper 5: returns R1; a zero result ends the program with R0 = 0.
fn unwind(_: &mut HelperCtx<'_>, args: [u64; 5]) -> Result<HelperReturn, String> {
    Ok(match args[0] {
        0 => HelperReturn::Exit(0),
        v => HelperReturn::Value(v),
    })
}

impl Helpers {
    /// No helpers at all: every call faults.
    pub fn empty() -> Self {
        Helpers::default()
    }

    /// The helpers bpf_conformance's test files assume (see the module documentation).
    pub fn bpf_conformance() -> Self {
        let mut h = Helpers::empty();
        h.register(UNWIND, "unwind", unwind);
        h
    }

    /// Registers (or replaces) helper `id`, returning the previous entry.
    pub fn register(&mut self, id: u32, name: &'static str, func: HelperFn) -> Option<Helper> {
        self.table.insert(id, Helper { name, func })
    }

    /// The helper registered under `id`.
    pub fn get(&self, id: u32) -> Option<&Helper> {
        self.table.get(&id)
    }

    /// The registered ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.keys().copied()
    }

    /// Calls helper `id` (a register value for `callx`, so any 64-bit number).
    pub fn call(
        &self,
        id: u64,
        ctx: &mut HelperCtx<'_>,
        args: [u64; 5],
    ) -> Result<HelperReturn, String> {
        let helper = u32::try_from(id)
            .ok()
            .and_then(|id| self.get(id))
            .ok_or_else(|| format!("unknown helper {id}"))?;
        (helper.func)(ctx, args).map_err(|e| format!("helper {id} ({}): {e}", helper.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lookup_and_unwind() {
        let h = Helpers::bpf_conformance();
        assert_eq!(h.ids().collect::<Vec<_>>(), vec![UNWIND]);
        let mut mem = Memory::default();
        let mut ctx = HelperCtx { memory: &mut mem };
        let args = |a| [a, 0, 0, 0, 0];
        assert_eq!(h.call(5, &mut ctx, args(7)), Ok(HelperReturn::Value(7)));
        assert_eq!(h.call(5, &mut ctx, args(0)), Ok(HelperReturn::Exit(0)));
        assert_eq!(
            h.call(1 << 32 | 5, &mut ctx, args(1)),
            Err(format!("unknown helper {}", 1u64 << 32 | 5))
        );
        assert_eq!(
            Helpers::empty().call(5, &mut ctx, args(1)),
            Err("unknown helper 5".into())
        );
        let mut custom = Helpers::empty();
        custom.register(9, "fails", |_, _| Err("boom".into()));
        assert_eq!(
            custom.call(9, &mut ctx, args(0)),
            Err("helper 9 (fails): boom".into())
        );
    }
}
