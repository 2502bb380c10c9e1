//! Timing an eBPF program in the kernel: `BPF_PROG_TEST_RUN` with `repeat`, for benchmarks.
//!
//! The program is loaded exactly as the engine loads it (the XDP wrapper of module `wrap`,
//! verified for the memory length of the run) and run `repeat` times in a row on the same data
//! by one test run; the time per run is the kernel's own `duration` (the loop around the
//! program calls divided by `repeat`, in whole nanoseconds), so it includes the wrapper's few
//! instructions (bounds check, call, storing R0 into the result map) and the test-run loop, not
//! the system call. The data is not reset between the runs: a program that changes its input
//! sees its own writes in the next run. R0 (full 64 bits) and the memory are those of the last
//! run.
//!
//! Only programs without maps or tail calls, and not calling `bpf_get_smp_processor_id` (the
//! engine pins such runs; a timed loop is not pinned), are accepted.

use super::{availability, load_program, syscall, wrap, LoadedEbpf, MAX_MEM, MIN_DATA};
use crate::{EbpfProgram, LoadError, RunError};
use std::time::{Duration, Instant};

/// A program loaded for timed runs.
pub struct Timed {
    l: LoadedEbpf,
}

/// What a timed test run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedRun {
    /// R0 after the last run.
    pub r0: u64,
    /// The memory after the last run.
    pub memory: Vec<u8>,
    /// The kernel's mean time per run, in nanoseconds.
    pub ns_per_run: u32,
}

impl Timed {
    /// Loads (verifies and JIT-compiles) `p` for runs on memories of up to [`MAX_MEM`] bytes;
    /// other lengths are verified on first use, as in the engine.
    pub fn load(p: &EbpfProgram) -> Result<Timed, LoadError> {
        if !p.maps.is_empty() || !p.progs.is_empty() {
            return Err(LoadError::Unsupported(
                "timed runs take programs without maps or tail calls".into(),
            ));
        }
        availability().map_err(LoadError::Unsupported)?;
        let l = load_program(p)?;
        if l.pin {
            return Err(LoadError::Unsupported(
                "timed runs are not pinned: bpf_get_smp_processor_id would vary".into(),
            ));
        }
        Ok(Timed { l })
    }

    /// Loads `p` for runs on memories of `mem_len` bytes only, and says how long that one
    /// `BPF_PROG_LOAD` (wrapping, verification, JIT) took. (The program is first loaded as by
    /// [`Timed::load`], which also checks it.)
    pub fn load_for(p: &EbpfProgram, mem_len: usize) -> Result<(Timed, Duration), LoadError> {
        let mut t = Timed::load(p)?;
        if mem_len > MAX_MEM {
            return Err(LoadError::Unsupported(super::too_long(mem_len)));
        }
        t.l.variants.clear();
        let start = Instant::now();
        let v = t.l.load_variant(mem_len)?;
        let took = start.elapsed();
        t.l.variants.insert(mem_len, v);
        Ok((t, took))
    }

    /// Runs the program `repeat` times (at least once) on `mem` in one `BPF_PROG_TEST_RUN`.
    pub fn run(&mut self, mem: &[u8], repeat: u32) -> Result<TimedRun, RunError> {
        let n = mem.len();
        if n > MAX_MEM {
            return Err(RunError::Unsupported(super::too_long(n)));
        }
        self.l.ensure_variant(n)?;
        let v = self
            .l
            .variants
            .get(&n)
            .ok_or_else(|| RunError::Engine("program variant missing".into()))?;
        let mut data_in = mem.to_vec();
        data_in.resize(n.max(MIN_DATA), 0);
        let mut data_out = vec![0; data_in.len()];
        let errno = |what: &str, e: std::io::Error| {
            RunError::Engine(format!(
                "bpf({what}) failed: {}",
                super::super::sys::errno_name(&e)
            ))
        };
        let run = syscall::prog_test_run_repeat(&v.entry, &data_in, &mut data_out, repeat)
            .map_err(|e| errno("BPF_PROG_TEST_RUN", e))?;
        if run.retval != wrap::XDP_PASS {
            return Err(RunError::Engine(format!(
                "the wrapper returned {}, not XDP_PASS",
                run.retval
            )));
        }
        let mut value = [0u8; 8];
        syscall::map_lookup(&self.l.result, &0u32.to_ne_bytes(), &mut value)
            .map_err(|e| errno("BPF_MAP_LOOKUP_ELEM", e))?;
        data_out.truncate(n);
        Ok(TimedRun {
            r0: u64::from_ne_bytes(value),
            memory: data_out,
            ns_per_run: run.duration,
        })
    }
}
