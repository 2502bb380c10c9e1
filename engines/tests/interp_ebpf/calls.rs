//! Local calls and their frames, helpers (`call`, `callx`, the bpf_conformance unwind helper) and
//! the legacy packet loads.

use super::{asm, fault, fault_of, r0, run_mem};
use bpfconf_engines::interp::ebpf::{self, HelperReturn, Helpers, Interpreter, STACK_STRIDE};

const FRAMES_OK: &str = "
stdw [%r10-8], 0xaa
mov %r6, 6
mov %r7, 7
mov %r8, 8
mov %r9, 9
mov %r1, %r10
call local f
jne %r6, 6, fail
jne %r7, 7, fail
jne %r8, 8, fail
jne %r9, 9, fail
ldxdw %r3, [%r10-8]
jne %r3, 0xaa, fail
ldxdw %r3, [%r10-16]
jne %r3, 0xcc, fail
mov %r1, %r10
call local f
mov %r2, %r10
sub %r0, %r2
exit
fail:
mov %r0, -1
exit
f:
ldxdw %r3, [%r1-8]
jne %r3, 0xaa, ffail
ldxdw %r3, [%r10-8]
jne %r3, 0, ffail
stdw [%r10-8], 0xbb
stdw [%r1-16], 0xcc
mov %r6, 0
mov %r7, 0
mov %r8, 0
mov %r9, 0
mov %r0, %r10
exit
ffail:
mov %r0, 0
exit
";

#[test]
fn local_calls_get_their_own_zeroed_frame_and_restore_callee_saved_registers() {
    // The callee reads and writes the caller's frame through a pointer, sees its own frame
    // zeroed (on both calls), cannot disturb R6–R9, and its R10 is one frame stride away.
    assert_eq!(r0(FRAMES_OK), STACK_STRIDE);
}

#[test]
fn arguments_and_results_pass_through_registers() {
    let text = "mov %r1, 40\nmov %r5, 2\ncall local f\nadd %r0, %r1\nexit\nf:\nmov %r0, %r1\nadd %r0, %r5\nmov %r1, 100\nexit";
    // R1–R5 are scratch: the callee's R1 stays visible after the return.
    assert_eq!(r0(text), 142);
}

#[test]
fn a_dead_frame_is_not_addressable() {
    let msg = fault(
        "call local f\nldxdw %r0, [%r0-8]\nexit\nf:\nmov %r0, %r10\nexit",
        &[],
    );
    let dead = ebpf::STACK_BASE + STACK_STRIDE + 512 - 8;
    assert_eq!(
        msg,
        format!("out-of-bounds load of 8 bytes at {dead:#x} (insn 1)")
    );
}

/// A chain of `depth` nested local calls (main program + `depth` frames).
fn nested(depth: usize) -> String {
    let mut s = String::new();
    for i in 1..=depth {
        s += &format!("call local f{i}\nexit\nf{i}:\n");
    }
    s + "mov %r0, 7\nexit"
}

#[test]
fn call_depth_is_limited_to_eight_frames() {
    assert_eq!(r0(&nested(7)), 7);
    let msg = fault(&nested(8), &[]);
    assert!(
        msg.starts_with("call depth exceeded: more than 8 frames"),
        "{msg}"
    );
    let msg = fault("call local f\nexit\nf:\ncall local f\nexit", &[]);
    assert!(msg.contains("call depth exceeded"), "{msg}");
}

#[test]
fn conformance_helper_5_unwinds_on_zero() {
    assert_eq!(r0("mov %r1, 3\ncall 5\nexit"), 3);
    assert_eq!(r0("mov %r1, 0\nmov %r0, 9\ncall 5\nmov %r0, 2\nexit"), 0);
    // The unwind ends the whole program, even from a subprogram.
    assert_eq!(
        r0("call local f\nmov %r0, 2\nexit\nf:\nmov %r1, 0\ncall 5\nmov %r0, 1\nexit"),
        0
    );
    // callx: the helper id is in the register named by dst.
    assert_eq!(r0("mov %r1, 4\nmov %r2, 5\ncall %r2\nexit"), 4);
}

#[test]
fn unknown_helpers_and_kfuncs_fault() {
    assert_eq!(fault("call 1\nexit", &[]), "unknown helper 1 (insn 0)");
    let far = "lddw %r2, 0x100000005\nmov %r1, 1\ncall %r2\nexit";
    assert_eq!(fault(far, &[]), "unknown helper 4294967301 (insn 3)");
    let bare = Interpreter::new(&asm("mov %r1, 1\ncall 5\nexit")).with_helpers(Helpers::empty());
    assert_eq!(fault_of(&bare, &[]), "unknown helper 5 (insn 1)");
    let msg = fault("call runtime 7\nexit", &[]);
    assert!(msg.contains("kfuncs are not supported"), "{msg}");
}

#[test]
fn helpers_can_be_registered_and_reach_memory() {
    let mut h = Helpers::empty();
    // A test helper summing the R2 bytes at R1.
    h.register(1, "sum", |ctx, a| {
        let len = usize::try_from(a[1]).map_err(|e| e.to_string())?;
        let bytes = ctx.memory.read(a[0], len)?;
        Ok(HelperReturn::Value(bytes.iter().map(|b| *b as u64).sum()))
    });
    let interp = Interpreter::new(&asm("call 1\nexit")).with_helpers(h);
    assert_eq!(interp.run(&[1, 2, 3, 4]).unwrap().ret, 10);
    let msg = fault_of(&interp.clone(), &[]);
    assert_eq!(
        msg,
        "helper 1 (sum): out-of-bounds load of 0 bytes at 0x0 (insn 0)"
    );
}

#[test]
fn packet_loads_read_the_buffer_big_endian() {
    let mem = [0x11, 0x22, 0x33, 0x44, 0x55];
    let r = |text: &str| run_mem(text, &mem).ret;
    assert_eq!(r("ldabsw 1\nexit"), 0x2233_4455);
    assert_eq!(r("ldabsh 3\nexit"), 0x4455);
    assert_eq!(r("ldabsb 4\nexit"), 0x55);
    assert_eq!(r("mov %r3, 2\nldindh %r3, 1\nexit"), 0x4455);
    // IND: src + imm wraps, then counts as a signed 32-bit offset.
    assert_eq!(r("mov %r3, -1\nldindb %r3, 1\nexit"), 0x11);
    assert_eq!(r("lddw %r3, 0x100000000\nldindb %r3, 2\nexit"), 0x33);
    // R1–R5 are clobbered (0); R6–R9 survive.
    assert_eq!(r("mov %r5, 5\nldabsb 0\nmov %r0, %r5\nexit"), 0);
    assert_eq!(r("ldabsb 0\nmov %r0, %r1\nexit"), 0);
    assert_eq!(r("mov %r6, 6\nldabsb 0\nmov %r0, %r6\nexit"), 6);
}

#[test]
fn packet_loads_outside_the_buffer_return_zero() {
    let mem = [0x11, 0x22, 0x33, 0x44, 0x55];
    let r = |text: &str| run_mem(text, &mem).ret;
    assert_eq!(r("mov %r0, 9\nldabsw 2\nmov %r0, 7\nexit"), 0);
    assert_eq!(r("mov %r0, 9\nldabsb 5\nmov %r0, 7\nexit"), 0);
    assert_eq!(r("mov %r0, 9\nldabsb -1\nmov %r0, 7\nexit"), 0);
    assert_eq!(r("mov %r3, -2\nldindb %r3, 1\nmov %r0, 7\nexit"), 0);
    assert_eq!(run_mem("ldabsb 0\nmov %r0, 7\nexit", &[]).ret, 0);
    // In a subprogram the failed load returns 0 from that function (`r0 = 0; exit`).
    let sub = "call local f\nadd %r0, 100\nexit\nf:\nmov %r0, 5\nldabsw 100\nmov %r0, 9\nexit";
    assert_eq!(r(sub), 100);
}
