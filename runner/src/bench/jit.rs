//! The `jit` columns of `bpfconf bench`: our x86-64 JIT, called directly in this process.

use super::{ClassicBench, ClassicRun, EbpfBench, EbpfRun};
use bpfconf_engines::jit::{classic, ebpf as jit_ebpf, Inject};
use bpfconf_engines::{ClassicProgram, EbpfProgram};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::{Insn, MEMWORDS};
use bpfconf_spec::{ebpf, Dialect};

/// The JIT on classic programs: the dialect's checker, then compilation.
pub struct JitClassic;

impl ClassicBench for JitClassic {
    fn name(&self) -> &str {
        "jit"
    }

    fn prepare<'a>(&'a self, dialect: Dialect, insns: &[Insn]) -> Result<ClassicRun<'a>, String> {
        super::checked(dialect, insns)?;
        let p = ClassicProgram {
            dialect,
            insns: insns.to_vec(),
            cop_funcs: 0,
            memwords: MEMWORDS,
        };
        let code = classic::Compiled::new(&p, Inject::default()).map_err(|e| e.to_string())?;
        let ctx = Ctx::default();
        Ok(Box::new(move |pkt: &[u8]| Ok(code.filter(pkt, &ctx))))
    }
}

/// The JIT on eBPF programs: validation, compilation, and a reusable run environment.
pub struct JitEbpf;

struct JitEbpfRun {
    session: jit_ebpf::Session<'static>,
}

impl EbpfRun for JitEbpfRun {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        self.session.run(mem).map_err(|e| e.to_string())
    }
}

impl EbpfBench for JitEbpf {
    fn name(&self) -> &str {
        "jit"
    }

    fn prepare<'a>(
        &'a self,
        insns: &[ebpf::Insn],
        mem_len: usize,
    ) -> Result<Box<dyn EbpfRun + 'a>, String> {
        bpfconf_spec::ebpf::validate::validate(insns).map_err(|r| r.to_string())?;
        let p = EbpfProgram::new(insns.to_vec());
        let code = jit_ebpf::Compiled::new(&p, Inject::default()).map_err(|e| e.to_string())?;
        // The session borrows the code for as long as the benchmark runs it; leaking one
        // compiled program per row keeps the bench free of self-referential types.
        let code: &'static jit_ebpf::Compiled = Box::leak(Box::new(code));
        let session = code
            .session(&vec![0; mem_len], &[])
            .map_err(|e| e.to_string())?;
        Ok(Box::new(JitEbpfRun { session }))
    }
}
