//! Checker tests: one rejection per rule per dialect, acceptance cases, the Linux/NetBSD
//! uninitialised-memory over-approximation, the eBPF conversion limit, and a no-panic fuzz.
//!
//! Expected verdicts for Linux and libpcap 1.10.3 were confirmed against a 6.18 x86-64 kernel
//! (`SO_ATTACH_FILTER`) and Debian 12's `libpcap.so.0.8` (`bpf_validate`).

use super::*;
use crate::cbpf::ext::{Ext, SKF_AD_OFF, SKF_NET_OFF};
use crate::cbpf::{AluOp, JmpOp, Size, Src, ALL_OPS};
use rstest::rstest;

fn s(op: Op, k: u32) -> Insn {
    Insn::stmt(op.code(), k)
}
fn j(op: JmpOp, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::new(Op::Jmp(op, Src::K).code(), jt, jf, k)
}
fn raw(code: u16, k: u32) -> Insn {
    Insn::stmt(code, k)
}
fn ret() -> Insn {
    s(Op::RetK, 0)
}
fn ret_a() -> Insn {
    s(Op::RetA, 0)
}
fn alu(o: AluOp, k: u32) -> Insn {
    s(Op::Alu(o, Src::K), k)
}
fn cfg(dialect: Dialect) -> CheckConfig {
    CheckConfig {
        dialect,
        cop_funcs: 0,
        memwords: 16,
    }
}
fn with(dialect: Dialect, cop_funcs: usize, memwords: usize) -> CheckConfig {
    CheckConfig {
        dialect,
        cop_funcs,
        memwords,
    }
}
/// The rule and pc a program is rejected with, or `None` when accepted.
fn verdict(prog: &[Insn], c: CheckConfig) -> Option<(&'static str, Option<usize>)> {
    check(prog, &c).err().map(|r| (r.rule, r.pc))
}
fn rets(n: usize) -> Vec<Insn> {
    vec![ret(); n]
}

const L: Dialect = Dialect::Linux;
const B: Dialect = Dialect::Bsd;
const N: Dialect = Dialect::Netbsd;

// ---------------------------------------------------------------------------------------------
// Rejections, one or more per rule per dialect.

#[rstest]
// length
#[case::linux_empty(L, vec![], rule::LENGTH, None)]
#[case::linux_4097(L, rets(4097), rule::LENGTH, None)]
#[case::bsd_empty(B, vec![], rule::LENGTH, None)]
#[case::netbsd_empty(N, vec![], rule::LENGTH, None)]
#[case::netbsd_513(N, rets(513), rule::LENGTH, None)]
// unknown_opcode
#[case::linux_ret_x(L, vec![s(Op::RetX, 0)], rule::UNKNOWN_OPCODE, Some(0))]
#[case::linux_cop(L, vec![s(Op::Cop, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::linux_copx(L, vec![s(Op::Copx, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::linux_ld_h_imm(L, vec![raw(0x08, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::linux_high_bits(L, vec![ret(), raw(0x0106, 0)], rule::UNKNOWN_OPCODE, Some(1))]
#[case::bsd_ld_mode_c0(B, vec![raw(0xc0, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::bsd_alu_b0(B, vec![raw(0xb4, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::bsd_jmp_50(B, vec![raw(0x55, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::netbsd_ldx_mode_e0(N, vec![raw(0xe1, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::netbsd_alu_f0(N, vec![raw(0xf4, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
#[case::netbsd_jmp_60(N, vec![raw(0x65, 0), ret()], rule::UNKNOWN_OPCODE, Some(0))]
// div_by_zero
#[case::linux_div0(L, vec![alu(AluOp::Div, 0), ret()], rule::DIV_BY_ZERO, Some(0))]
#[case::linux_mod0(L, vec![alu(AluOp::Mod, 0), ret()], rule::DIV_BY_ZERO, Some(0))]
#[case::bsd_div0(B, vec![alu(AluOp::Div, 0), ret()], rule::DIV_BY_ZERO, Some(0))]
#[case::bsd_mod0(B, vec![alu(AluOp::Mod, 0), ret()], rule::DIV_BY_ZERO, Some(0))]
#[case::netbsd_div0(N, vec![alu(AluOp::Div, 0), ret()], rule::DIV_BY_ZERO, Some(0))]
#[case::netbsd_mod0(N, vec![alu(AluOp::Mod, 0), ret()], rule::DIV_BY_ZERO, Some(0))]
// shift_too_large (Linux only; libpcap 1.10.3 and NetBSD have no such rule)
#[case::linux_lsh32(L, vec![alu(AluOp::Lsh, 32), ret()], rule::SHIFT_TOO_LARGE, Some(0))]
#[case::linux_rsh_max(L, vec![alu(AluOp::Rsh, u32::MAX), ret()], rule::SHIFT_TOO_LARGE, Some(0))]
// mem_index
#[case::linux_ld_m16(L, vec![s(Op::LdMem, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::linux_ldx_m16(L, vec![s(Op::LdxMem, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::linux_st16(L, vec![s(Op::St, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::linux_stx16(L, vec![s(Op::Stx, u32::MAX), ret()], rule::MEM_INDEX, Some(0))]
#[case::bsd_ld_m16(B, vec![s(Op::LdMem, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::bsd_stx16(B, vec![s(Op::Stx, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::bsd_st_odd_bits(B, vec![raw(0x0a, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::netbsd_ld_m16(N, vec![s(Op::LdMem, 16), ret()], rule::MEM_INDEX, Some(0))]
#[case::netbsd_st16(N, vec![s(Op::St, 16), ret()], rule::MEM_INDEX, Some(0))]
// jump_out_of_range
#[case::linux_ja_past(L, vec![s(Op::Ja, 1), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::linux_ja_huge(L, vec![s(Op::Ja, u32::MAX), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::linux_jt_past(L, vec![j(JmpOp::Jeq, 1, 0, 0), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::linux_jf_past(L, vec![j(JmpOp::Jset, 0, 255, 0), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::bsd_ja_past(B, vec![s(Op::Ja, 1), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::bsd_jf_past(B, vec![j(JmpOp::Jgt, 0, 1, 0), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::netbsd_ja_past(N, vec![s(Op::Ja, 1), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
#[case::netbsd_ja_backward(N, vec![ret(), s(Op::Ja, u32::MAX - 1), ret()], rule::JUMP_OUT_OF_RANGE, Some(1))]
#[case::netbsd_jt_past(N, vec![j(JmpOp::Jge, 1, 0, 0), ret()], rule::JUMP_OUT_OF_RANGE, Some(0))]
// last_not_ret
#[case::linux_no_ret(L, vec![s(Op::LdImm, 0)], rule::LAST_NOT_RET, Some(0))]
#[case::linux_ret_then_tax(L, vec![ret(), s(Op::Tax, 0)], rule::LAST_NOT_RET, Some(1))]
#[case::bsd_no_ret(B, vec![ret(), s(Op::LdImm, 0)], rule::LAST_NOT_RET, Some(1))]
#[case::netbsd_no_ret(N, vec![s(Op::LdImm, 0)], rule::LAST_NOT_RET, Some(0))]
#[case::netbsd_ret_x_last(N, vec![s(Op::RetX, 0)], rule::LAST_NOT_RET, Some(0))]
#[case::netbsd_ret_odd_bits_last(N, vec![raw(0x1e, 0)], rule::LAST_NOT_RET, Some(0))]
// NetBSD checks the last instruction before anything else.
#[case::netbsd_last_first(N, vec![s(Op::LdMem, 99), s(Op::Tax, 0)], rule::LAST_NOT_RET, Some(1))]
// unknown_ancillary (Linux)
#[case::linux_anc_max(L, vec![s(Op::LdAbs(Size::W), SKF_AD_OFF + 64), ret()], rule::UNKNOWN_ANCILLARY, Some(0))]
#[case::linux_anc_unaligned(L, vec![s(Op::LdAbs(Size::B), SKF_AD_OFF + 2), ret()], rule::UNKNOWN_ANCILLARY, Some(0))]
#[case::linux_anc_top(L, vec![s(Op::LdAbs(Size::H), u32::MAX), ret()], rule::UNKNOWN_ANCILLARY, Some(0))]
// uninit_mem
#[case::linux_uninit(L, vec![s(Op::LdMem, 0), ret_a()], rule::UNINIT_MEM, Some(0))]
#[case::linux_uninit_ldx(L, vec![s(Op::St, 1), s(Op::LdxMem, 2), ret_a()], rule::UNINIT_MEM, Some(1))]
#[case::linux_uninit_one_path(L, vec![j(JmpOp::Jeq, 0, 1, 0), s(Op::St, 3), s(Op::LdMem, 3), ret_a()], rule::UNINIT_MEM, Some(2))]
#[case::netbsd_uninit(N, vec![s(Op::LdMem, 0), ret_a()], rule::UNINIT_MEM, Some(0))]
#[case::netbsd_uninit_one_path(N, vec![j(JmpOp::Jeq, 0, 1, 0), s(Op::St, 3), s(Op::LdMem, 3), ret_a()], rule::UNINIT_MEM, Some(2))]
// cop_no_table / cop_out_of_range (NetBSD)
#[case::netbsd_cop_no_table(N, vec![s(Op::Cop, 0), ret()], rule::COP_NO_TABLE, Some(0))]
#[case::netbsd_copx_no_table(N, vec![s(Op::Copx, 0), ret()], rule::COP_NO_TABLE, Some(0))]
// BPF_MISCOP looks at the low byte only: 0x127 is a COP to the validator.
#[case::netbsd_cop_high_bits(N, vec![raw(0x0127, 0), ret()], rule::COP_NO_TABLE, Some(0))]
fn rejects(
    #[case] dialect: Dialect,
    #[case] prog: Vec<Insn>,
    #[case] rule: &str,
    #[case] pc: Option<usize>,
) {
    assert_eq!(verdict(&prog, cfg(dialect)), Some((rule, pc)), "{prog:?}");
}

#[rstest]
#[case::cop_past_table(vec![s(Op::Cop, 3), ret()], 3, 16, rule::COP_OUT_OF_RANGE, Some(0))]
#[case::cop_huge(vec![s(Op::Cop, u32::MAX), ret()], 7, 16, rule::COP_OUT_OF_RANGE, Some(0))]
#[case::extmem_load_past(vec![s(Op::LdMem, 4), ret_a()], 0, 4, rule::MEM_INDEX, Some(0))]
#[case::extmem_store_past(vec![s(Op::St, 4), ret_a()], 0, 4, rule::MEM_INDEX, Some(0))]
#[case::extmem_30(vec![s(Op::Stx, 30), ret_a()], 0, 30, rule::MEM_INDEX, Some(0))]
#[case::extmem_too_big(vec![ret()], 0, 31, rule::EXTMEM_CONFIG, None)]
fn netbsd_rejects_with_context(
    #[case] prog: Vec<Insn>,
    #[case] cop_funcs: usize,
    #[case] memwords: usize,
    #[case] rule: &str,
    #[case] pc: Option<usize>,
) {
    assert_eq!(
        verdict(&prog, with(N, cop_funcs, memwords)),
        Some((rule, pc))
    );
}

// ---------------------------------------------------------------------------------------------
// Acceptance.

#[rstest]
#[case::linux_4096(L, rets(4096))]
#[case::netbsd_512(N, rets(512))]
#[case::bsd_5000(B, rets(5000))]
#[case::ja_to_last(L, vec![s(Op::Ja, 1), s(Op::Tax, 0), ret()])]
#[case::lsh31(L, vec![alu(AluOp::Lsh, 31), alu(AluOp::Div, 1), alu(AluOp::Mod, 7), ret_a()])]
#[case::negative_offsets(L, vec![s(Op::LdAbs(Size::W), SKF_AD_OFF - 1), s(Op::LdAbs(Size::B), SKF_NET_OFF), ret_a()])]
#[case::xor_mod_all(L, vec![alu(AluOp::Xor, 1), s(Op::Alu(AluOp::Mod, Src::X), 0), ret_a()])]
// M[3] read only on the path where it was stored.
#[case::linux_stored_path(L, stored_path())]
#[case::netbsd_stored_path(N, stored_path())]
#[case::bsd_stored_path(B, stored_path())]
// Dead code after `ja` may read anything (memvalid is reset to all ones).
#[case::linux_dead_after_ja(L, vec![s(Op::Ja, 1), s(Op::LdMem, 5), ret_a()])]
#[case::netbsd_dead_after_ja(N, vec![s(Op::Ja, 1), s(Op::LdMem, 5), ret_a()])]
// libpcap 1.10.3 accepts by fields: ret x, sized immediates, COP, high bits, backward ja,
// big shifts, uninitialised reads (all confirmed with the real bpf_validate).
#[case::bsd_ret_x(B, vec![s(Op::RetX, 0)])]
#[case::bsd_ld_h_imm(B, vec![raw(0x08, 0), ret()])]
#[case::bsd_cop(B, vec![s(Op::Cop, 0), s(Op::Copx, 0), ret()])]
#[case::bsd_high_bits(B, vec![raw(0x0106, 0)])]
#[case::bsd_ja_self(B, vec![s(Op::Ja, u32::MAX), ret()])]
#[case::bsd_ja_back(B, vec![ret(), s(Op::Ja, u32::MAX - 1), ret()])]
#[case::bsd_lsh33(B, vec![alu(AluOp::Lsh, 33), ret()])]
#[case::bsd_uninit(B, vec![s(Op::LdMem, 0), ret_a()])]
// NetBSD: ret x in the middle, misc ops by BPF_MISCOP, big shifts, xor/mod.
#[case::netbsd_ret_x_middle(N, vec![s(Op::RetX, 0), ret()])]
#[case::netbsd_misc_other(N, vec![raw(0x2f, 0), raw(0x0107, 0), raw(0xff, 0), ret()])]
#[case::netbsd_lsh40(N, vec![alu(AluOp::Lsh, 40), alu(AluOp::Xor, 1), alu(AluOp::Mod, 3), ret_a()])]
fn accepts(#[case] dialect: Dialect, #[case] prog: Vec<Insn>) {
    assert_eq!(verdict(&prog, cfg(dialect)), None, "{prog:?}");
}

/// `jeq #0, L1, L2; L1: st M[3]; ld M[3]; ret a; L2: ret #0`.
fn stored_path() -> Vec<Insn> {
    vec![
        j(JmpOp::Jeq, 0, 3, 0),
        s(Op::St, 3),
        s(Op::LdMem, 3),
        ret_a(),
        ret(),
    ]
}

#[test]
fn every_ancillary_accepted_in_every_size() {
    for ext in Ext::ALL {
        let Some(k) = ext.k() else { continue };
        for size in [Size::W, Size::H, Size::B] {
            let prog = [s(Op::LdAbs(size), k), ret_a()];
            assert_eq!(verdict(&prog, cfg(L)), None, "{ext:?} {size:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The uninitialised-memory over-approximation (Linux check_load_and_stores, NetBSD invalid).

/// Only pc 2 jumps to pc 4 and it has stored M[0], but pc 3 is a `ret` reached without the
/// store, and `ret` does not reset the running mask: pc 4 inherits it and the load is refused,
/// although a precise dataflow analysis accepts the program. Confirmed on Linux 6.18.
fn quirk_after_ret() -> Vec<Insn> {
    vec![
        j(JmpOp::Jeq, 0, 2, 0), // 0: -> 1 / 3
        s(Op::St, 0),           // 1: M[0] = A
        s(Op::Ja, 1),           // 2: -> 4
        ret(),                  // 3: reached without the store
        s(Op::LdMem, 0),        // 4: only reached from 2
        ret_a(),
    ]
}

#[rstest]
#[case::linux(L)]
#[case::netbsd(N)]
fn over_approximation_after_ret(#[case] d: Dialect) {
    assert_eq!(
        verdict(&quirk_after_ret(), cfg(d)),
        Some((rule::UNINIT_MEM, Some(4)))
    );
    // Unreachable code right after a `ret` is checked too (Linux 6.18 refuses it).
    let dead = [ret(), s(Op::LdMem, 0), ret_a()];
    assert_eq!(verdict(&dead, cfg(d)), Some((rule::UNINIT_MEM, Some(1))));
}

// ---------------------------------------------------------------------------------------------
// NetBSD contexts: external memory and the coprocessor table.

#[test]
fn netbsd_extmem_words_are_preinitialised_in_bpfconf() {
    let prog = [s(Op::LdMem, 3), s(Op::LdxMem, 0), ret_a()];
    assert_eq!(verdict(&prog, with(N, 0, 4)), None);
    assert_eq!(verdict(&prog, with(N, 0, 30)), None);
    // 16 words is the internal store: uninitialised.
    assert_eq!(
        verdict(&prog, with(N, 0, 16)),
        Some((rule::UNINIT_MEM, Some(0)))
    );
}

#[test]
fn netbsd_partial_preinit_like_t_extmem() {
    // tests/net/bpfjit/t_extmem.c: extwords 4, preinited M[0] and M[3].
    let ctx = NetbsdCtx {
        cop_funcs: Some(1),
        extwords: 4,
        preinited: 0b1001,
    };
    assert!(check_netbsd(&[s(Op::LdMem, 3), ret_a()], &ctx).is_ok());
    assert_eq!(
        check_netbsd(&[s(Op::LdMem, 1), ret_a()], &ctx).map_err(|r| r.rule),
        Err(rule::UNINIT_MEM)
    );
    assert_eq!(
        check_netbsd(&[s(Op::LdMem, 4), ret_a()], &ctx).map_err(|r| r.rule),
        Err(rule::MEM_INDEX)
    );
    let bad = NetbsdCtx {
        preinited: 0b1_0000,
        ..ctx
    };
    assert_eq!(
        check_netbsd(&[ret()], &bad).map_err(|r| r.rule),
        Err(rule::EXTMEM_CONFIG)
    );
}

#[test]
fn netbsd_cop_table() {
    let prog = [s(Op::Cop, 2), s(Op::Copx, 0), ret_a()];
    assert_eq!(verdict(&prog, with(N, 3, 16)), None);
    // COPX is only checked at run time, whatever the table size.
    assert_eq!(verdict(&[s(Op::Copx, 99), ret()], with(N, 1, 16)), None);
    // A table that exists but is empty (not expressible in CheckConfig).
    let empty = NetbsdCtx {
        cop_funcs: Some(0),
        extwords: 0,
        preinited: 0,
    };
    assert!(check_netbsd(&[s(Op::Copx, 0), ret()], &empty).is_ok());
    assert_eq!(
        check_netbsd(&[s(Op::Cop, 0), ret()], &empty).map_err(|r| r.rule),
        Err(rule::COP_OUT_OF_RANGE)
    );
}

#[test]
fn linux_and_bsd_ignore_cop_and_memwords() {
    let prog = [s(Op::LdMem, 20), ret()];
    assert_eq!(
        verdict(&prog, with(L, 5, 30)),
        Some((rule::MEM_INDEX, Some(0)))
    );
    assert_eq!(
        verdict(&prog, with(B, 5, 30)),
        Some((rule::MEM_INDEX, Some(0)))
    );
}

// ---------------------------------------------------------------------------------------------
// libpcap master.

#[rstest]
#[case::ret_x(vec![s(Op::RetX, 0)], Some(rule::UNKNOWN_OPCODE))]
#[case::ld_h_imm(vec![raw(0x08, 0), ret()], Some(rule::UNKNOWN_OPCODE))]
#[case::lsh32(vec![alu(AluOp::Lsh, 32), ret()], Some(rule::SHIFT_TOO_LARGE))]
#[case::div0(vec![alu(AluOp::Div, 0), ret()], Some(rule::DIV_BY_ZERO))]
#[case::mem(vec![s(Op::St, 16), ret()], Some(rule::MEM_INDEX))]
#[case::ja_self(vec![s(Op::Ja, u32::MAX), ret()], Some(rule::JUMP_SELF_LOOP))]
#[case::ja_back(vec![ret(), s(Op::Ja, u32::MAX - 1), ret()], None)]
#[case::empty(vec![], Some(rule::LENGTH))]
#[case::fine(stored_path(), None)]
fn libpcap_master(#[case] prog: Vec<Insn>, #[case] rule: Option<&str>) {
    assert_eq!(check_libpcap_master(&prog).err().map(|r| r.rule), rule);
}

// ---------------------------------------------------------------------------------------------
// Linux bpf_convert_filter jump limits. `ld [0]` becomes 13 eBPF instructions, the prologue
// 7; thresholds below were measured on Linux 6.18 x86-64.

fn loads(n: usize) -> Vec<Insn> {
    vec![s(Op::LdAbs(Size::W), 0); n]
}

#[rstest]
#[case::distance_ok(2520, true)]
#[case::distance_too_far(2521, false)]
fn ebpf_jump_distance(#[case] n: usize, #[case] ok: bool) {
    let mut prog = vec![s(Op::Ja, n as u32)];
    prog.extend(loads(n));
    prog.push(ret());
    let expect = (!ok).then_some((rule::EBPF_JUMP_RANGE, Some(0)));
    assert_eq!(verdict(&prog, cfg(L)), expect);
}

#[rstest]
// jeq jt 0 jf 1 is one inverted jump: fails once 7 + 13n + 1 > 32768.
#[case::single_ok(2520, j(JmpOp::Jeq, 0, 1, 0), true)]
#[case::single_late(2521, j(JmpOp::Jeq, 0, 1, 0), false)]
#[case::ja_late(2521, s(Op::Ja, 1), false)]
// jt 1 jf 1 becomes a jump and a ja: the ja (index 1) fails one load earlier.
#[case::pair_ok(2519, j(JmpOp::Jeq, 1, 1, 0), true)]
#[case::pair_late(2520, j(JmpOp::Jeq, 1, 1, 0), false)]
// A negative k adds a mov before the jump.
#[case::negk_late(2520, j(JmpOp::Jeq, 0, 1, 0x8000_0000), false)]
fn ebpf_jump_position(#[case] n: usize, #[case] jump: Insn, #[case] ok: bool) {
    let mut prog = loads(n);
    prog.extend([jump, ret(), s(Op::RetK, 1)]);
    let expect = (!ok).then_some((rule::EBPF_JUMP_RANGE, Some(n)));
    assert_eq!(verdict(&prog, cfg(L)), expect);
}

#[test]
fn ebpf_len_matches_measurements() {
    assert_eq!(linux_ebpf_len(&[ret()]), 5);
    // 1022 x `ld [0x8000]` (16 each) + `ret a` + prologue 7: the largest such program that
    // fits optmem_max = 131072 on Linux 6.18.
    let mut prog = vec![s(Op::LdAbs(Size::W), 0x8000); 1022];
    prog.push(ret_a());
    assert_eq!(linux_ebpf_len(&prog), 16360);
    let x = [
        s(Op::Alu(AluOp::Div, Src::X), 0),
        s(Op::LdxMsh, 14),
        s(Op::LdInd(Size::B), 1),
        s(Op::LdAbs(Size::B), Ext::VlanPr.k().unwrap_or(0)),
        ret_a(),
    ];
    assert_eq!(linux_ebpf_len(&x), 7 + 5 + 19 + 9 + 3 + 1);
}

// ---------------------------------------------------------------------------------------------
// Rule catalogue and robustness.

#[test]
fn rules_are_unique_and_described() {
    let mut names: Vec<_> = RULES.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), RULES.len());
    assert!(RULES.iter().all(|(_, d)| !d.is_empty()));
}

#[test]
fn rejection_display_and_message_name_the_instruction() {
    let r = check(&[s(Op::LdMem, 17), ret()], &cfg(L)).unwrap_err();
    assert!(r
        .to_string()
        .starts_with("mem_index: insn 0 (ld_mem code=0x0060"));
    assert!(r.message.contains("M[17]"), "{}", r.message);
}

use crate::testrng::Rng;

fn random_insn(r: &mut Rng, len: usize) -> Insn {
    let code = match r.below(4) {
        0 => r.next() as u16,
        1 => r.next() as u8 as u16,
        _ => ALL_OPS[r.below(ALL_OPS.len() as u64) as usize].code(),
    };
    let k = match r.below(5) {
        0 => r.next() as u32,
        1 => r.below(40) as u32,
        2 => SKF_AD_OFF.wrapping_add(r.below(80) as u32),
        3 => (r.below(len as u64 + 2) as u32).wrapping_sub(1),
        _ => u32::MAX - r.below(4) as u32,
    };
    let small = |r: &mut Rng| (r.below(len as u64 + 2)).min(255) as u8;
    let (jt, jf) = if r.below(3) == 0 {
        (r.next() as u8, r.next() as u8)
    } else {
        (small(r), small(r))
    };
    Insn::new(code, jt, jf, k)
}

#[test]
fn random_programs_never_panic() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = [0usize; 3];
    for round in 0..6000 {
        let len = match round % 10 {
            0 => r.below(4200) as usize,
            1 => 0,
            _ => 1 + r.below(24) as usize,
        };
        let mut prog: Vec<Insn> = (0..len).map(|_| random_insn(&mut r, len)).collect();
        if r.below(2) == 0 {
            if let Some(last) = prog.last_mut() {
                *last = ret();
            }
        }
        let cop_funcs = r.below(4) as usize;
        let memwords = [16, 0, 1, 4, 30, 31, 64][r.below(7) as usize];
        for (i, d) in Dialect::ALL.into_iter().enumerate() {
            let c = with(d, cop_funcs, memwords);
            if check(&prog, &c).is_ok() {
                accepted[i] += 1;
            }
        }
        let _ = check_libpcap_master(&prog);
        let _ = linux_ebpf_len(&prog);
        let ctx = NetbsdCtx {
            cop_funcs: (r.below(2) == 0).then_some(cop_funcs),
            extwords: r.below(34) as usize,
            preinited: r.next() as u32,
        };
        let _ = check_netbsd(&prog, &ctx);
    }
    // The sweep must exercise acceptance too, not only early rejections.
    assert!(accepted.iter().all(|&n| n > 10), "{accepted:?}");
}
