//! Packet paths (TAP, TUN, lo, TAP transmit): the skb context the kernel presents there.

use super::*;
#[test]
fn tap_ancillary_values() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let c = tap_ctx(&d);
    let f = frame(TAP_MAC, 0x0800, 300);
    let expect = [
        (Ext::Proto, 0x0800),
        (Ext::Type, 0),
        (Ext::Ifidx, d.tap_ifindex),
        (Ext::Hatype, 1),
        (Ext::Mark, 0),
        (Ext::Queue, 1),
        (Ext::Rxhash, 0),
        (Ext::VlanTci, 0),
        (Ext::VlanPr, 0),
        (Ext::VlanTpid, 0),
    ];
    for (ext, want) in expect {
        assert_eq!(
            anc_value_on(&e, ext, Some(Ext::Ifidx), &f, &c),
            (Path::Tap, Some(want)),
            "{}",
            ext.name()
        );
    }
    let c = Ctx { poff: 54, ..c };
    assert_eq!(
        anc_value_on(&e, Ext::Poff, Some(Ext::Ifidx), &f, &c).1,
        Some(54),
        "poff for Ethernet/IPv4/TCP"
    );
    let (_, len) = run(&e, &on(Ext::Ifidx, &[st(Op::LdLen, 0), ret_a()]), &f, &c);
    assert_eq!(len, Some(300));
}

#[test]
fn tap_pkt_type_from_destination() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let cases = [
        (TAP_MAC, 0u8),
        ([0xff; 6], 1),
        ([0x01, 0, 0x5e, 0, 0, 1], 2),
        ([0x02, 0, 0, 0, 0, 9], 3),
    ];
    for (dst, ty) in cases {
        let c = Ctx {
            pkt_type: ty,
            ..tap_ctx(&d)
        };
        let f = frame(dst, 0x0800, 300);
        let prog = on(
            Ext::Ifidx,
            &[ld_anc(Ext::Type), alu_k(AluOp::Add, 1), ret_a()],
        );
        assert_eq!(
            run(&e, &prog, &f, &c),
            (Path::Tap, Some(ty as u32 + 1)),
            "dst {dst:x?}"
        );
    }
}

#[test]
fn tap_protocol_rules() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let prog = on(Ext::Ifidx, &[ld_anc(Ext::Proto), ret_a()]);
    let mut raw = frame(TAP_MAC, 0x0040, 300);
    raw[14..16].copy_from_slice(&[0xff, 0xff]);
    let llc = frame(TAP_MAC, 0x0040, 300);
    let short = frame(TAP_MAC, 0x05ff, 14);
    for (f, proto) in [(raw, 1u16), (llc, 4), (short, 4)] {
        let c = Ctx {
            protocol: proto,
            ..tap_ctx(&d)
        };
        let (path, got) = run(&e, &prog, &f, &c);
        assert_eq!(path, Path::Tap);
        assert_eq!(got, Some((proto as u32).min(f.len() as u32)));
    }
}

#[test]
fn tap_lengths_and_headers() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let c = tap_ctx(&d);
    let f = frame(TAP_MAC, 0x0800, 300);
    let tap = ld_anc(Ext::Ifidx);
    assert_eq!(run(&e, &[tap, ret_k(2)], &f, &c), (Path::Tap, Some(2)));
    assert_eq!(run(&e, &[tap, ret_k(0)], &f, &c).1, None);
    assert_eq!(run(&e, &[tap, ret_k(u32::MAX)], &f, &c).1, Some(300));
    let f14 = frame(TAP_MAC, 0x0800, 14);
    assert_eq!(run(&e, &[tap, ret_k(u32::MAX)], &f14, &c).1, Some(14));
    let big = frame(TAP_MAC, 0x0800, 9000);
    assert_eq!(run(&e, &[tap, ret_k(u32::MAX)], &big, &c).1, Some(9000));
    // SKF_LL_OFF at the frame start, SKF_NET_OFF at 14.
    let ll = [st(Op::LdAbs(Size::H), SKF_LL_OFF + 12), ret_a()];
    assert_eq!(run(&e, &ll, &f, &c), (Path::Tap, Some(300)), "0x0800 > 300");
    let net = [st(Op::LdAbs(Size::B), SKF_NET_OFF), ret_a()];
    assert_eq!(run(&e, &net, &f, &c), (Path::Tap, Some(0x45)));
    // Too short for an Ethernet frame: no packet path.
    let why = e
        .supports(&program(&[tap, ret_k(1)]), &input(&[0; 13], &c))
        .unwrap_err();
    assert!(why.contains("at least 14 bytes"), "{why}");
}

#[test]
fn tap_vlan_is_stripped_before_the_filter() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let f = frame(TAP_MAC, 0x0800, 300);
    for tpid in [0x8100u16, 0x88a8] {
        let c = Ctx {
            vlan_present: true,
            vlan_tci: 0xa005,
            vlan_tpid: tpid,
            ..tap_ctx(&d)
        };
        assert_eq!(
            anc_value_on(&e, Ext::VlanTci, Some(Ext::Ifidx), &f, &c),
            (Path::Tap, Some(0xa005))
        );
        assert_eq!(
            anc_value_on(&e, Ext::VlanPr, Some(Ext::Ifidx), &f, &c).1,
            Some(1)
        );
        assert_eq!(
            anc_value_on(&e, Ext::VlanTpid, Some(Ext::Ifidx), &f, &c).1,
            Some(tpid as u32)
        );
        assert_eq!(
            anc_value_on(&e, Ext::Proto, Some(Ext::Ifidx), &f, &c).1,
            Some(0x0800)
        );
        // The filter sees the frame without the tag.
        let prog = on(
            Ext::VlanPr,
            &[
                st(Op::LdAbs(Size::H), 12),
                alu_k(AluOp::Sub, 0x0700),
                ret_a(),
            ],
        );
        assert_eq!(run(&e, &prog, &f, &c).1, Some(0x100));
        let len = on(Ext::VlanPr, &[st(Op::LdLen, 0), ret_a()]);
        assert_eq!(run(&e, &len, &f, &c).1, Some(300));
        let net = on(Ext::VlanPr, &[st(Op::LdAbs(Size::B), SKF_NET_OFF), ret_a()]);
        assert_eq!(run(&e, &net, &f, &c).1, Some(0x45));
    }
    // A tag with TCI 0 is still a tag.
    let c = Ctx {
        vlan_present: true,
        vlan_tci: 0,
        vlan_tpid: 0x8100,
        ..tap_ctx(&d)
    };
    assert_eq!(
        anc_value_on(&e, Ext::VlanPr, Some(Ext::Ifidx), &f, &c).1,
        Some(1)
    );
    // Double tagging: the outer tag is stripped, the inner stays in the packet.
    let qinq = frame(TAP_MAC, 0x8100, 300);
    let c = Ctx {
        protocol: 0x8100,
        vlan_present: true,
        vlan_tci: 7,
        vlan_tpid: 0x88a8,
        ..tap_ctx(&d)
    };
    assert_eq!(
        anc_value_on(&e, Ext::Proto, Some(Ext::Ifidx), &qinq, &c),
        (Path::Tap, Some(0x8100))
    );
    assert_eq!(
        anc_value_on(&e, Ext::VlanTci, Some(Ext::Ifidx), &qinq, &c).1,
        Some(7)
    );
    // An untagged case whose packet has a tag EtherType cannot be realised on a receive path.
    let prog = [ld_anc(Ext::Ifidx), ld_anc(Ext::Type), ret_k(1)];
    let why = e.path_for(&prog, &input(&qinq, &tap_ctx(&d))).unwrap_err();
    assert!(why.contains("VLAN tag"), "{why}");
}

#[test]
fn tun_path() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let c = Ctx {
        protocol: 0x1234,
        dev: Some(Dev {
            ifindex: d.tun_ifindex,
            hatype: 0xfffe,
        }),
        queue_mapping: 1,
        mac_header: Some(0),
        network_header: Some(0),
        ..Ctx::default()
    };
    let p: Vec<u8> = (0..300u32).map(|i| (i * 5 + 1) as u8).collect();
    for (ext, want) in [
        (Ext::Proto, 0x1234),
        (Ext::Ifidx, d.tun_ifindex),
        (Ext::Hatype, 0xfffe),
        (Ext::Type, 0),
        (Ext::Queue, 1),
    ] {
        assert_eq!(
            anc_value_on(&e, ext, Some(Ext::Hatype), &p, &c),
            (Path::Tun, Some(want)),
            "{}",
            ext.name()
        );
    }
    let hdrs = on(
        Ext::Hatype,
        &[
            st(Op::LdAbs(Size::B), SKF_LL_OFF + 3),
            st(Op::Tax, 0),
            st(Op::LdAbs(Size::B), SKF_NET_OFF + 3),
            st(Op::Alu(AluOp::Add, Src::X), 0),
            ret_a(),
        ],
    );
    assert_eq!(run(&e, &hdrs, &p, &c), (Path::Tun, Some(2 * p[3] as u32)));
    let one = [ld_anc(Ext::Hatype), ret_k(u32::MAX)];
    assert_eq!(run(&e, &one, &p[..1], &c), (Path::Tun, Some(1)));
}

#[test]
fn lo_path_carries_the_mark() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    if let Err(why) = &d.lo {
        assert!(!required(), "lo path required: {why}");
        return;
    }
    let lo = Ctx {
        protocol: 0x0800,
        dev: Some(Dev {
            ifindex: 1,
            hatype: 772,
        }),
        mark: 0x1234_5678,
        mac_header: Some(0),
        network_header: Some(14),
        ..Ctx::default()
    };
    let f = frame([0; 6], 0x0800, 300);
    for (ext, want) in [
        (Ext::Mark, 0x1234_5678),
        (Ext::Ifidx, 1),
        (Ext::Hatype, 772),
        (Ext::Type, 0),
        (Ext::Queue, 0),
        (Ext::Proto, 0x0800),
        (Ext::Rxhash, 0),
    ] {
        assert_eq!(
            anc_value_on(&e, ext, Some(Ext::Mark), &f, &lo),
            (Path::Lo, Some(want)),
            "{}",
            ext.name()
        );
    }
    // A mark alone needs no device in the case: lo realises it.
    let c = Ctx {
        mark: 77,
        ..Ctx::default()
    };
    assert_eq!(
        run(&e, &[ld_anc(Ext::Mark), ret_a()], &f, &c),
        (Path::Lo, Some(77))
    );
    for (dst, ty) in [([0xff; 6], 2u32), ([0x02, 0, 0, 0, 0, 9], 3)] {
        let c = Ctx {
            pkt_type: ty as u8,
            ..lo.clone()
        };
        let prog = on(
            Ext::Hatype,
            &[ld_anc(Ext::Type), alu_k(AluOp::Add, 1), ret_a()],
        );
        assert_eq!(
            run(&e, &prog, &frame(dst, 0x0800, 300), &c),
            (Path::Lo, Some(ty + 1))
        );
    }
    let c = Ctx {
        vlan_present: true,
        vlan_tci: 0x0123,
        vlan_tpid: 0x8100,
        ..lo
    };
    assert_eq!(
        anc_value_on(&e, Ext::VlanTci, Some(Ext::Mark), &f, &c),
        (Path::Lo, Some(0x0123))
    );
}

#[test]
fn tap_out_path() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    if let Err(why) = &d.tap_out {
        assert!(!required(), "tap-out path required: {why}");
        return;
    }
    let c = Ctx {
        protocol: 0x4321,
        pkt_type: 4,
        dev: Some(Dev {
            ifindex: d.tap_ifindex,
            hatype: 1,
        }),
        mark: 0xdead_beef,
        mac_header: Some(0),
        network_header: Some(14),
        ..Ctx::default()
    };
    let f = frame([0xaa; 6], 0x0800, 300);
    for (ext, want) in [
        (Ext::Type, 4),
        (Ext::Mark, 0xdead_beef),
        (Ext::Proto, 0x4321),
        (Ext::Ifidx, d.tap_ifindex),
        (Ext::Queue, 0),
        (Ext::Rxhash, 0),
    ] {
        assert_eq!(
            anc_value_on(&e, ext, Some(Ext::Type), &f, &c),
            (Path::TapOut, Some(want)),
            "{}",
            ext.name()
        );
    }
    let ll = on(
        Ext::Type,
        &[
            st(Op::LdAbs(Size::B), SKF_LL_OFF),
            st(Op::Tax, 0),
            st(Op::LdAbs(Size::B), SKF_NET_OFF + 9),
            st(Op::Alu(AluOp::Add, Src::X), 0),
            ret_a(),
        ],
    );
    assert_eq!(
        run(&e, &ll, &f, &c),
        (Path::TapOut, Some(0xaa + 6)),
        "dst[0] + IPv4 protocol (TCP)"
    );
    assert_eq!(
        run(&e, &[ld_anc(Ext::Type), ret_k(3)], &f, &c),
        (Path::TapOut, Some(3))
    );
}

#[test]
fn cpu_on_packet_paths() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let n = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4) as u32;
    let f = frame(TAP_MAC, 0x0800, 300);
    for cpu in 0..n {
        let c = Ctx { cpu, ..tap_ctx(&d) };
        let prog = on(
            Ext::Ifidx,
            &[ld_anc(Ext::Cpu), alu_k(AluOp::Add, 1), ret_a()],
        );
        assert_eq!(run(&e, &prog, &f, &c), (Path::Tap, Some(cpu + 1)));
        let tun = Ctx {
            cpu,
            protocol: 0x0800,
            dev: Some(Dev {
                ifindex: d.tun_ifindex,
                hatype: 0xfffe,
            }),
            queue_mapping: 1,
            ..Ctx::default()
        };
        let prog = on(
            Ext::Hatype,
            &[ld_anc(Ext::Cpu), alu_k(AluOp::Add, 1), ret_a()],
        );
        assert_eq!(run(&e, &prog, &f, &tun), (Path::Tun, Some(cpu + 1)));
        if d.lo.is_ok() {
            let lo = Ctx {
                cpu,
                mark: 3,
                ..Ctx::default()
            };
            let prog = on(
                Ext::Mark,
                &[ld_anc(Ext::Cpu), alu_k(AluOp::Add, 1), ret_a()],
            );
            assert_eq!(
                run(&e, &prog, &frame([0; 6], 0x0800, 300), &lo),
                (Path::Lo, Some(cpu + 1))
            );
        }
        if d.tap_out.is_ok() {
            let out = Ctx {
                cpu,
                pkt_type: 4,
                protocol: 0x0800,
                ..Ctx::default()
            };
            let prog = on(
                Ext::Type,
                &[ld_anc(Ext::Cpu), alu_k(AluOp::Add, 1), ret_a()],
            );
            assert_eq!(run(&e, &prog, &f, &out), (Path::TapOut, Some(cpu + 1)));
        }
    }
}

#[test]
fn tap_poff_ipv6_udp() {
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let mut f = frame(TAP_MAC, 0x86dd, 300);
    // IPv6: version 6, payload length 8, next header UDP (17), hop limit 64, ::1 -> ::2.
    f[14] = 0x60;
    f[18..20].copy_from_slice(&8u16.to_be_bytes());
    f[20] = 17;
    f[21] = 64;
    f[37] = 1;
    f[53] = 2;
    let c = Ctx {
        protocol: 0x86dd,
        poff: 62,
        ..tap_ctx(&d)
    };
    assert_eq!(
        anc_value_on(&e, Ext::Poff, Some(Ext::Ifidx), &f, &c),
        (Path::Tap, Some(62)),
        "14 + 40 + 8"
    );
}

#[test]
fn nla_needs_a_linear_skb() {
    use bpfconf_engines::linux::realise::{linear_limit, MAX_PACKET};
    let _g = serial();
    let Some((e, d)) = packet_engine() else {
        return;
    };
    let lo = Ctx {
        protocol: 0x0800,
        dev: Some(Dev {
            ifindex: 1,
            hatype: 772,
        }),
        mark: 9,
        ..Ctx::default()
    };
    let tun = Ctx {
        protocol: 0x0800,
        dev: Some(Dev {
            ifindex: d.tun_ifindex,
            hatype: 0xfffe,
        }),
        queue_mapping: 1,
        ..Ctx::default()
    };
    let tagged = |c: &Ctx| Ctx {
        vlan_present: true,
        vlan_tci: 5,
        vlan_tpid: 0x8100,
        ..c.clone()
    };
    let mut paths = vec![
        (Path::Unix, Ctx::default(), None, [0; 6]),
        (Path::Tap, tap_ctx(&d), Some(Ext::Ifidx), TAP_MAC),
        (Path::Tap, tagged(&tap_ctx(&d)), Some(Ext::Ifidx), TAP_MAC),
        (Path::Tun, tun, Some(Ext::Hatype), [0; 6]),
    ];
    if d.lo.is_ok() {
        paths.push((Path::Lo, lo.clone(), Some(Ext::Mark), [0; 6]));
        paths.push((Path::Lo, tagged(&lo), Some(Ext::Mark), [0; 6]));
    }
    for (path, c, marker, dst) in paths {
        let limit = linear_limit(path, c.vlan_present);
        let nla = [
            st(Op::LdImm, 14),
            st(Op::LdxImm, 5),
            ld_anc(Ext::Nla),
            ret_a(),
        ];
        let nla = marker.map_or(nla.to_vec(), |m| on(m, &nla));
        let packet = |len: usize| {
            let mut f = frame(dst, 0x0800, len);
            f[14..18].copy_from_slice(&[4, 0, 5, 0]); // attribute type 5 at offset 14
            f
        };
        let at = packet(limit);
        assert_eq!(
            run(&e, &nla, &at, &c),
            (path, Some(14)),
            "{path:?} at {limit}"
        );
        if limit == MAX_PACKET - 4 {
            continue; // tagged frames on lo: linear at every size
        }
        let over = packet(limit + 1);
        let why = e.supports(&program(&nla), &input(&over, &c)).unwrap_err();
        assert!(why.contains("non-linear"), "{why}");
        let inp = ClassicInput {
            packet: over.clone(),
            ctx: c.clone(),
        };
        assert_eq!(
            e.probe(path, &nla, &inp),
            Ok(None),
            "{path:?}: nla is 0 beyond {limit}"
        );
        // Packet loads, negative offsets included, read the fragments.
        let k = over.len() as u32 - 30;
        let net = [
            st(Op::LdAbs(Size::B), SKF_NET_OFF + k),
            alu_k(AluOp::Add, 1),
            ret_a(),
        ];
        let want = over[(k + if path == Path::Unix || path == Path::Tun {
            0
        } else {
            14
        }) as usize] as u32
            + 1;
        assert_eq!(
            e.probe(path, &net, &inp),
            Ok(Some(want)),
            "{path:?} SKF_NET_OFF beyond {limit}"
        );
    }
}
