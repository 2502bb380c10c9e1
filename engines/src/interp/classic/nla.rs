//! Linux's netlink attribute lookups behind `SKF_AD_NLATTR` and `SKF_AD_NLATTR_NEST`
//! (`nla_find()` over the packet, as `net/core/filter.c` calls it).

/// Size of `struct nlattr`.
const NLA_HDRLEN: usize = 4;

fn nla_at(pkt: &[u8], off: usize) -> Option<(usize, u16)> {
    let b = pkt.get(off..off + NLA_HDRLEN)?;
    // nla_len and nla_type are host-endian (little-endian on the machines we model).
    Some((
        u16::from_le_bytes([b[0], b[1]]) as usize,
        u16::from_le_bytes([b[2], b[3]]),
    ))
}

/// `nla_find(head, len, type)` over `pkt[start..start+len]`; returns the offset of the match.
fn nla_find(pkt: &[u8], start: usize, len: i64, attr: u32) -> Option<usize> {
    let mut pos = start;
    let mut rem = len;
    loop {
        // nla_ok(): remaining >= header, header length sane and within remaining.
        if rem < NLA_HDRLEN as i64 {
            return None;
        }
        let (nla_len, nla_type) = nla_at(pkt, pos)?;
        if nla_len < NLA_HDRLEN || nla_len as i64 > rem {
            return None;
        }
        // nla_type() masks out NLA_F_NESTED and NLA_F_NET_BYTEORDER.
        if (nla_type & 0x3fff) as u32 == attr {
            return Some(pos);
        }
        let tot = (nla_len + 3) & !3;
        rem -= tot as i64;
        pos += tot;
    }
}

/// `SKF_AD_NLATTR`: find attribute type `x` in the attribute stream starting at offset `a`.
pub(crate) fn nla_find_at(pkt: &[u8], a: u32, x: u32) -> u32 {
    let len = pkt.len();
    if len < NLA_HDRLEN || a as usize > len - NLA_HDRLEN {
        return 0;
    }
    nla_find(pkt, a as usize, (len - a as usize) as i64, x).map_or(0, |o| o as u32)
}

/// `SKF_AD_NLATTR_NEST`: find attribute type `x` nested inside the attribute at offset `a`.
pub(crate) fn nla_find_nested_at(pkt: &[u8], a: u32, x: u32) -> u32 {
    let len = pkt.len();
    if len < NLA_HDRLEN || a as usize > len - NLA_HDRLEN {
        return 0;
    }
    let a = a as usize;
    let Some((nla_len, _)) = nla_at(pkt, a) else {
        return 0;
    };
    if nla_len > len - a {
        return 0;
    }
    nla_find(pkt, a + NLA_HDRLEN, nla_len as i64 - NLA_HDRLEN as i64, x).map_or(0, |o| o as u32)
}
