//! Resources: descriptors are never leaked.

use super::*;
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn no_fd_leaks() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let base = open_fds();
    let devs = e.devices().ok();
    let unix_prog = |i: u32| {
        vec![
            st(Op::LdAbs(Size::B), i % 64),
            alu_k(AluOp::Add, i),
            ret_a(),
        ]
    };
    let tap_prog = |i: u32| vec![ld_anc(Ext::Ifidx), st(Op::LdAbs(Size::B), i % 64), ret_a()];
    let mark_prog = [ld_anc(Ext::Mark), ret_a()];
    let f = frame(TAP_MAC, 0x0800, 64);
    let lo_ok = devs.as_ref().is_some_and(|d| d.lo.is_ok());
    let one_round = |i: u32| {
        if i.is_multiple_of(50) {
            // Rejected loads must not leak either.
            assert!(e.load(&program(&[alu_k(AluOp::Div, 0), ret_a()])).is_err());
        }
        match (&devs, i % 8) {
            (Some(d), 0) => {
                let mut l = e.load(&program(&tap_prog(i))).unwrap();
                assert_eq!(
                    l.run(&input(&f, &tap_ctx(d))).unwrap().ret,
                    Observed::delivered_for(f[(i % 64) as usize] as u32, 64)
                );
                // The same program on AF_UNIX: no device, ifidx returns 0.
                assert_eq!(
                    l.run(&input(&f, &Ctx::default())).unwrap().ret,
                    Observed::Delivered(None)
                );
            }
            (Some(_), 4) if lo_ok => {
                let mut l = e.load(&program(&mark_prog)).unwrap();
                let got = l
                    .run(&input(
                        &f,
                        &Ctx {
                            mark: i,
                            ..Ctx::default()
                        },
                    ))
                    .unwrap()
                    .ret;
                assert_eq!(got, Observed::delivered_for(i, 64));
            }
            _ => {
                let mut l = e.load(&program(&unix_prog(i))).unwrap();
                for _ in 0..2 {
                    let want = (f[(i % 64) as usize] as u32).wrapping_add(i);
                    assert_eq!(
                        l.run(&input(&f, &Ctx::default())).unwrap().ret,
                        Observed::delivered_for(want, 64)
                    );
                }
            }
        }
    };
    // Warm up: the namespace, the test-socket pool.
    for i in 0..8 {
        one_round(i);
    }
    let before = open_fds();
    let iterations = 20_000u32;
    for i in 0..iterations {
        one_round(i);
    }
    assert_eq!(
        open_fds(),
        before,
        "descriptors leaked over {iterations} loads and runs"
    );
    drop(e);
    assert_eq!(
        open_fds(),
        base,
        "dropping the engine closes all its descriptors"
    );
}

#[test]
fn concurrent_runs_are_isolated() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let f = frame(TAP_MAC, 0x0800, 200);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (e, d, f) = (&e, &d, &f);
            s.spawn(move || {
                // Each thread keeps its own programs loaded (so several test sockets on the
                // same devices are live at once) and checks every result.
                let tap_prog = [ld_anc(Ext::Ifidx), st(Op::LdImm, 10 + t), ret_a()];
                let drop_prog = [ld_anc(Ext::Ifidx), ret_k(0)];
                let mark_prog = [ld_anc(Ext::Mark), alu_k(AluOp::Add, t), ret_a()];
                let mut tap = e.load(&program(&tap_prog)).unwrap();
                let mut drop = e.load(&program(&drop_prog)).unwrap();
                let mut mark = e.load(&program(&mark_prog)).unwrap();
                for i in 0..300u32 {
                    let c = tap_ctx(d);
                    let got = tap.run(&input(f, &c)).unwrap().ret;
                    assert_eq!(got, Observed::Delivered(Some(10 + t)), "thread {t} run {i}");
                    assert_eq!(
                        drop.run(&input(f, &c)).unwrap().ret,
                        Observed::Delivered(None)
                    );
                    if d.lo.is_ok() {
                        let lo = Ctx {
                            mark: 1 + i % 50,
                            ..Ctx::default()
                        };
                        let got = mark
                            .run(&input(&frame([0; 6], 0x0800, 200), &lo))
                            .unwrap()
                            .ret;
                        assert_eq!(got, Observed::Delivered(Some(1 + i % 50 + t)));
                    }
                }
            });
        }
    });
}
