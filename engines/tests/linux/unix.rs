//! The AF_UNIX path: returns, lengths, loads, ALU, the kernel checker and the skb context.

use super::*;
#[test]
fn unix_return_values_and_lengths() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let c = Ctx::default();
    let pkt = [1u8, 2, 3, 4, 5];
    assert_eq!(
        run(&e, &[st(Op::LdLen, 0), ret_a()], &pkt, &c),
        (Path::Unix, Some(5))
    );
    assert_eq!(run(&e, &[ret_k(2)], &pkt, &c).1, Some(2));
    assert_eq!(
        run(&e, &[ret_k(7)], &pkt, &c).1,
        Some(5),
        "ret > len delivers len"
    );
    assert_eq!(run(&e, &[ret_k(u32::MAX)], &pkt, &c).1, Some(5));
    assert_eq!(run(&e, &[ret_k(0)], &pkt, &c).1, None, "ret 0 drops");
    assert_eq!(
        run(&e, &[ret_k(1)], &[], &c).1,
        Some(0),
        "empty datagram delivered"
    );
    assert_eq!(run(&e, &[ret_k(0)], &[], &c).1, None);
    assert_eq!(
        run(&e, &[st(Op::LdLen, 0), ret_a()], &[], &c).1,
        None,
        "len 0 returned drops"
    );
}

#[test]
fn unix_packet_loads() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let c = Ctx::default();
    let mut pkt = vec![0u8; 300];
    pkt[1] = 3;
    pkt[10..12].copy_from_slice(&[0x00, 0x2a]);
    pkt[20..24].copy_from_slice(&[0, 0, 0, 0x63]);
    pkt[40] = 0x47; // ldx msh: 4 * 7 = 28
    assert_eq!(
        run(&e, &[st(Op::LdAbs(Size::B), 1), ret_a()], &pkt, &c).1,
        Some(3)
    );
    assert_eq!(
        run(&e, &[st(Op::LdAbs(Size::H), 10), ret_a()], &pkt, &c).1,
        Some(42)
    );
    assert_eq!(
        run(&e, &[st(Op::LdAbs(Size::W), 20), ret_a()], &pkt, &c).1,
        Some(0x63)
    );
    let ind = [st(Op::LdxImm, 8), st(Op::LdInd(Size::H), 2), ret_a()];
    assert_eq!(run(&e, &ind, &pkt, &c).1, Some(42));
    assert_eq!(
        run(&e, &[st(Op::LdxMsh, 40), st(Op::Txa, 0), ret_a()], &pkt, &c).1,
        Some(28)
    );
    // Out of bounds: the program returns 0.
    assert_eq!(
        run(&e, &[st(Op::LdAbs(Size::W), 298), ret_k(1)], &pkt, &c).1,
        None
    );
    assert_eq!(
        run(&e, &[st(Op::LdAbs(Size::B), 299), ret_k(1)], &pkt, &c).1,
        Some(1)
    );
    // ld [x + k] with x + k wrapping to -1: no header there, dropped.
    let wrap = [
        st(Op::LdxImm, u32::MAX),
        st(Op::LdInd(Size::B), 0),
        ret_k(1),
    ];
    assert_eq!(run(&e, &wrap, &pkt, &c).1, None);
}

#[test]
fn unix_alu_and_division() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let c = Ctx::default();
    let pkt = vec![0u8; 300];
    let div_x0 = [
        st(Op::LdImm, 10),
        st(Op::LdxImm, 0),
        st(Op::Alu(AluOp::Div, Src::X), 0),
        ret_k(1),
    ];
    assert_eq!(run(&e, &div_x0, &pkt, &c).1, None, "DIV by X = 0 drops");
    let mod_x0 = [
        st(Op::LdImm, 10),
        st(Op::LdxImm, 0),
        st(Op::Alu(AluOp::Mod, Src::X), 0),
        ret_k(1),
    ];
    assert_eq!(run(&e, &mod_x0, &pkt, &c).1, None, "MOD by X = 0 drops");
    let div = [st(Op::LdImm, 200), alu_k(AluOp::Div, 7), ret_a()];
    assert_eq!(run(&e, &div, &pkt, &c).1, Some(28));
    // Shift by X >= 32 on the 32-bit ALU: the count is masked (x86 JIT), 1 << 33 = 2.
    let shl = [
        st(Op::LdImm, 1),
        st(Op::LdxImm, 33),
        st(Op::Alu(AluOp::Lsh, Src::X), 0),
        ret_a(),
    ];
    assert_eq!(run(&e, &shl, &pkt, &c).1, Some(2));
    let neg = [st(Op::LdImm, 0xffff_ff00), st(Op::Neg, 0), ret_a()];
    assert_eq!(run(&e, &neg, &pkt, &c).1, Some(256));
    let jmp = [
        st(Op::LdImm, 5),
        Insn::new(Op::Jmp(JmpOp::Jgt, Src::K).code(), 1, 0, 4),
        ret_k(9),
        ret_k(17),
    ];
    assert_eq!(run(&e, &jmp, &pkt, &c).1, Some(17));
    let mem = [
        st(Op::LdImm, 33),
        st(Op::St, 3),
        st(Op::LdImm, 0),
        st(Op::LdMem, 3),
        ret_a(),
    ];
    assert_eq!(run(&e, &mem, &pkt, &c).1, Some(33));
}

#[test]
fn kernel_checker_rejections() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let rejected = |insns: &[Insn]| match e.load(&program(insns)) {
        Err(LoadError::Rejected { rule: None, reason }) => reason,
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(_) => panic!("expected a rejection of {insns:?}"),
    };
    assert_eq!(
        rejected(&[st(Op::LdImm, 1), alu_k(AluOp::Div, 0), ret_a()]),
        "kernel rejected the filter (EINVAL)"
    );
    assert!(rejected(&[]).contains("0 instructions"));
    assert!(rejected(&vec![ret_k(1); 4097]).contains("4097 instructions"));
    rejected(&[st(Op::LdImm, 1)]); // no return at the end
    rejected(&[Insn::new(0xffff, 0, 0, 0), ret_k(1)]); // unknown opcode
    rejected(&[Insn::new(Op::Ja.code(), 0, 0, 5), ret_k(1)]); // jump out of range
    rejected(&[st(Op::LdMem, 16), ret_a()]); // M[16]
    rejected(&[st(Op::RetX, 0)]); // BSD's ret x
    assert!(e.load(&program(&vec![ret_k(1); 4096])).is_ok());
}

#[test]
fn other_dialects_are_not_supported() {
    let _g = serial();
    let e = Linux::new();
    for d in [Dialect::Bsd, Dialect::Netbsd] {
        let p = Program::Classic(ClassicProgram {
            dialect: d,
            insns: vec![ret_k(1)],
            cop_funcs: 0,
            memwords: 16,
        });
        let why = e.supports(&p, &input(&[1], &Ctx::default())).unwrap_err();
        assert_eq!(why, "the kernel implements only the Linux dialect");
        assert!(matches!(e.load(&p), Err(LoadError::Unsupported(_))));
    }
}

// ---------------------------------------------------------------------------------------
// AF_UNIX path: the skb context.

#[test]
fn unix_context_is_all_zero() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let c = Ctx::default();
    let pkt = vec![7u8; 300];
    for ext in [
        Ext::Proto,
        Ext::Type,
        Ext::Mark,
        Ext::Queue,
        Ext::Rxhash,
        Ext::VlanTci,
        Ext::VlanPr,
        Ext::VlanTpid,
    ] {
        assert_eq!(
            anc_value(&e, ext, &pkt, &c),
            (Path::Unix, Some(0)),
            "{}",
            ext.name()
        );
    }
    // poff is computed from the protocol and the network header, which an AF_UNIX skb has at
    // offset 0: the case must declare it to be realised on this path.
    let with_nh = Ctx {
        network_header: Some(0),
        ..Ctx::default()
    };
    assert_eq!(
        anc_value(&e, Ext::Poff, &pkt, &with_nh),
        (Path::Unix, Some(0)),
        "poff"
    );
    // No device: ifidx and hatype make the program return 0.
    for ext in [Ext::Ifidx, Ext::Hatype] {
        assert_eq!(
            anc_value(&e, ext, &pkt, &c),
            (Path::Unix, None),
            "{}",
            ext.name()
        );
    }
}

#[test]
fn unix_headers() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let pkt: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    // The network header is at offset 0: SKF_NET_OFF + k reads byte k.
    let c = Ctx {
        network_header: Some(0),
        ..Ctx::default()
    };
    let net = |k: u32| {
        [
            st(Op::LdAbs(Size::B), SKF_NET_OFF + k),
            alu_k(AluOp::Add, 1),
            ret_a(),
        ]
    };
    assert_eq!(
        run(&e, &net(0), &pkt, &c),
        (Path::Unix, Some(pkt[0] as u32 + 1))
    );
    assert_eq!(run(&e, &net(17), &pkt, &c).1, Some(pkt[17] as u32 + 1));
    // No MAC header: SKF_LL_OFF loads make the program return 0.
    let ll = [st(Op::LdAbs(Size::B), SKF_LL_OFF), ret_k(1)];
    assert_eq!(run(&e, &ll, &pkt, &c).1, None);
    // A case declaring no network header cannot be realised on AF_UNIX.
    let why = e
        .supports(&program(&net(0)), &input(&pkt, &Ctx::default()))
        .unwrap_err();
    assert!(why.starts_with("ctx.network_header = unset"), "{why}");
}

#[test]
fn unix_cpu_is_the_senders() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let pkt = vec![0u8; 300];
    let n = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    for cpu in 0..n as u32 {
        let c = Ctx {
            cpu,
            ..Ctx::default()
        };
        assert_eq!(anc_value(&e, Ext::Cpu, &pkt, &c), (Path::Unix, Some(cpu)));
    }
}

#[test]
fn unix_so_mark_does_not_reach_the_filter() {
    use std::os::fd::AsRawFd;
    let _g = serial();
    let Some(_e) = engine() else { return };
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    assert_eq!(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) },
        0
    );
    // SAFETY: both were just created and are owned here.
    let (a, b) = unsafe {
        use std::os::fd::{FromRawFd, OwnedFd};
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    let mark: libc::c_int = 5;
    // SAFETY: the value is a live int of the size passed.
    let r = unsafe {
        libc::setsockopt(
            a.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const libc::c_int).cast(),
            4,
        )
    };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        assert!(!required(), "SO_MARK failed: {err}");
        eprintln!("skipped: SO_MARK needs CAP_NET_ADMIN: {err}");
        return;
    }
    let mut f = [
        libc::sock_filter {
            code: Op::LdAbs(Size::W).code(),
            jt: 0,
            jf: 0,
            k: Ext::Mark.k().unwrap(),
        },
        libc::sock_filter {
            code: Op::Alu(AluOp::Add, Src::K).code(),
            jt: 0,
            jf: 0,
            k: 1,
        },
        libc::sock_filter {
            code: Op::RetA.code(),
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let p = libc::sock_fprog {
        len: 3,
        filter: f.as_mut_ptr(),
    };
    // SAFETY: `p` points to `f`, both live for the call.
    let r = unsafe {
        libc::setsockopt(
            b.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&p as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    assert_eq!(r, 0);
    let buf = [0u8; 64];
    // SAFETY: `buf` is readable for its length.
    assert_eq!(
        unsafe { libc::send(a.as_raw_fd(), buf.as_ptr().cast(), 64, 0) },
        64
    );
    let mut out = [0u8; 64];
    // SAFETY: `out` is writable for its length.
    let n = unsafe {
        libc::recv(
            b.as_raw_fd(),
            out.as_mut_ptr().cast(),
            64,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    assert_eq!(n, 1, "mark + 1 bytes delivered: skb->mark is 0 on AF_UNIX");
}

/// Netlink attributes: `len` (host order, incl. the 4-byte header), `type`, payload, padded
/// to 4 bytes.
fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(((4 + payload.len()) as u16).to_ne_bytes());
    v.extend(ty.to_ne_bytes());
    v.extend(payload);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

#[test]
fn unix_netlink_attributes() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let c = Ctx::default();
    // [0] type 1 (8 bytes), [8] type 2 (8 bytes, 2 of padding), [16] type 3 nested:
    // [20] type 7, [28] type 8; then [36] type 9.
    let mut buf = nla(1, &[1, 2, 3, 4]);
    buf.extend(nla(2, &[5, 6]));
    let inner = [nla(7, &[0xaa; 4]), nla(8, &[0xbb; 4])].concat();
    buf.extend(nla(3, &inner));
    buf.extend(nla(9, &[0; 60]));
    assert_eq!(buf.len(), 100);
    let find = |ext: Ext, a: u32, x: u32| {
        let prog = [st(Op::LdImm, a), st(Op::LdxImm, x), ld_anc(ext), ret_a()];
        run(&e, &prog, &buf, &c).1
    };
    assert_eq!(find(Ext::Nla, 0, 2), Some(8));
    assert_eq!(find(Ext::Nla, 0, 3), Some(16));
    assert_eq!(find(Ext::Nla, 0, 9), Some(36));
    assert_eq!(
        find(Ext::Nla, 0, 7),
        None,
        "nested attributes are not searched"
    );
    assert_eq!(find(Ext::Nla, 8, 1), None, "search starts at A");
    assert_eq!(find(Ext::Nla, 97, 1), None, "A beyond len - 4");
    assert_eq!(find(Ext::Nlan, 16, 7), Some(20));
    assert_eq!(find(Ext::Nlan, 16, 8), Some(28));
    assert_eq!(find(Ext::Nlan, 16, 9), None);
    assert_eq!(
        find(Ext::Nlan, 0, 1),
        None,
        "nest payload of attribute 1 holds no attributes"
    );
}

#[test]
fn realisation_errors_name_the_field() {
    let _g = serial();
    let e = Linux::new();
    let pkt = vec![0u8; 64];
    let mark = [ld_anc(Ext::Ifidx), ld_anc(Ext::Mark), ret_a()];
    let c = Ctx {
        mark: 5,
        ..Ctx::default()
    };
    let why = e.supports(&program(&mark), &input(&pkt, &c)).unwrap_err();
    assert!(
        why.starts_with("ctx.mark = 5: the unix path presents mark = 0x0"),
        "{why}"
    );
    let rand = [ld_anc(Ext::Rand), ret_a()];
    let c = Ctx {
        rand: Some(4),
        ..Ctx::default()
    };
    let why = e.supports(&program(&rand), &input(&pkt, &c)).unwrap_err();
    assert!(why.starts_with("ctx.rand = 0x4"), "{why}");
    // Fields the program cannot observe do not matter.
    let c = Ctx {
        mark: 5,
        rand: Some(4),
        rxhash: 9,
        ..Ctx::default()
    };
    assert_eq!(e.path_for(&[ret_k(1)], &input(&pkt, &c)), Ok(Path::Unix));
}

#[test]
fn unix_missing_device_returns_a() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let pkt = vec![0u8; 64];
    // Without skb->dev the converted program exits with R0 = A: here 5, so 5 bytes delivered.
    for ext in [Ext::Ifidx, Ext::Hatype] {
        let prog = [st(Op::LdImm, 5), ld_anc(ext), ret_k(60)];
        assert_eq!(
            run(&e, &prog, &pkt, &Ctx::default()),
            (Path::Unix, Some(5)),
            "{}",
            ext.name()
        );
        let prog = [st(Op::LdImm, 0), ld_anc(ext), ret_k(60)];
        assert_eq!(
            run(&e, &prog, &pkt, &Ctx::default()).1,
            None,
            "{}",
            ext.name()
        );
    }
}

#[test]
fn optmem_limit_is_unsupported_not_rejected() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // 4095 `ld [x + 0]` convert to far more eBPF than net.core.optmem_max = 131072 allows.
    let mut big = vec![st(Op::LdInd(Size::W), 0); 4095];
    big.push(ret_k(1));
    let bytes = 96 + 8 * bpfconf_spec::cbpf::check::linux_ebpf_len(&big);
    let optmem: usize = std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if bytes < optmem {
        eprintln!("skipped: optmem_max {optmem} holds {bytes} bytes");
        return;
    }
    let loaded = e.load(&program(&big)).map(drop);
    match loaded {
        Err(LoadError::Unsupported(why)) => assert!(
            why.contains("ENOMEM") && why.contains("optmem_max"),
            "{why}"
        ),
        Err(other) => panic!("expected an unsupported load, got {other}"),
        Ok(_) => panic!("expected ENOMEM for {bytes} bytes"),
    }
}

/// Loads reuse the AF_UNIX pairs of dropped programs, replacing their filter: the new program
/// runs (never the old one), a refused load leaves no trace, and two programs that together
/// exceed `net.core.optmem_max` (the new one is charged before the old one is released) still
/// load one after the other, as on fresh pairs.
#[test]
fn reused_pairs_load_as_fresh_ones() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let pkt = vec![0u8; 64];
    let ret_of = |insns: &[Insn]| {
        let mut l = e.load(&program(insns)).unwrap();
        l.run(&input(&pkt, &Ctx::default())).unwrap().ret
    };
    for k in 1..=40 {
        assert_eq!(ret_of(&[ret_k(k)]), Observed::Delivered(Some(k)));
        assert!(e.load(&program(&[alu_k(AluOp::Div, 0), ret_a()])).is_err());
        assert_eq!(ret_of(&[ret_k(0)]), Observed::Delivered(None));
    }
    let optmem: usize = std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let big = |n: usize, k: u32| {
        let mut v = vec![st(Op::LdInd(Size::W), 0); n];
        v.push(ret_k(k));
        v
    };
    let bytes = |v: &[Insn]| 96 + 8 * bpfconf_spec::cbpf::check::linux_ebpf_len(v);
    // The largest program (up to 4095 loads) whose charge stays below optmem_max.
    let Some(n) = (1..4096)
        .rev()
        .find(|&n| bytes(&big(n, 1)) < optmem && 2 * bytes(&big(n, 1)) >= optmem)
    else {
        eprintln!("skipped: no program size between optmem_max / 2 and optmem_max = {optmem}");
        return;
    };
    for k in 1..=3 {
        assert_eq!(
            ret_of(&big(n, k)),
            Observed::Delivered(Some(k)),
            "program {k} of {n} loads ({} bytes, optmem_max {optmem})",
            bytes(&big(n, k))
        );
    }
    // Two live at once use two pairs, each charged once.
    let mut a = e.load(&program(&big(n, 5))).unwrap();
    let mut b = e.load(&program(&big(n, 6))).unwrap();
    let inp = input(&pkt, &Ctx::default());
    assert_eq!(a.run(&inp).unwrap().ret, Observed::Delivered(Some(5)));
    assert_eq!(b.run(&inp).unwrap().ret, Observed::Delivered(Some(6)));
}

#[test]
fn realisation_messages() {
    let _g = serial();
    let e = Linux::new();
    let why = |insns: &[Insn], pkt: &[u8], c: &Ctx| e.path_for(insns, &input(pkt, c));
    let pkt = vec![0u8; 64];
    let dev7 = Ctx {
        dev: Some(Dev {
            ifindex: 7,
            hatype: 1,
        }),
        ..Ctx::default()
    };
    let cases: [(&[Insn], &[u8], Ctx, &str); 5] = [
        (
            &[ld_anc(Ext::Ifidx), ret_a()],
            &pkt,
            dev7,
            "ctx.ifindex = 7: ",
        ),
        (
            &[ld_anc(Ext::Rxhash), ret_a()],
            &pkt,
            Ctx {
                rxhash: 0x1234,
                ..Ctx::default()
            },
            "ctx.rxhash = 0x1234: ",
        ),
        (
            &[ld_anc(Ext::Type), ret_a()],
            &pkt[..10],
            Ctx {
                pkt_type: 1,
                ..Ctx::default()
            },
            "ctx.pkt_type = 1: ",
        ),
        (
            &[st(Op::LdAbs(Size::B), SKF_LL_OFF), ret_a()],
            &pkt,
            Ctx {
                mac_header: Some(2),
                ..Ctx::default()
            },
            "ctx.mac_header = 2: ",
        ),
        (
            &[ld_anc(Ext::Cpu), ret_a()],
            &pkt,
            Ctx {
                cpu: 999,
                ..Ctx::default()
            },
            "ctx.cpu = 999: ",
        ),
    ];
    for (insns, p, c, prefix) in cases {
        let msg = why(insns, p, &c).unwrap_err();
        assert!(msg.starts_with(prefix), "{msg}");
    }
    // A mark alone is realised on lo when the packet paths are available.
    let mark = why(
        &[ld_anc(Ext::Mark), ret_a()],
        &pkt,
        &Ctx {
            mark: 5,
            ..Ctx::default()
        },
    );
    match e.devices() {
        Ok(d) if d.lo.is_ok() => assert_eq!(mark, Ok(Path::Lo)),
        _ => assert!(mark.unwrap_err().starts_with("ctx.mark = 5: ")),
    }
}
