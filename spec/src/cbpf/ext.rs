//! Linux classic BPF extensions: ancillary loads (`SKF_AD_*`) and negative offset bases.
//!
//! Facts from `include/uapi/linux/filter.h` and filter.txt: an ancillary load is a
//! `BPF_LD|BPF_{B,H,W}|BPF_ABS` whose k is `SKF_AD_OFF + SKF_AD_x`; the load size is ignored.
//! `ld len` is not an ancillary offset but its own opcode (`BPF_LD|BPF_W|BPF_LEN`); it is listed
//! here because bpf_asm and filter.txt present it among the extensions.

/// `SKF_AD_OFF`: base of ancillary data offsets, as an unsigned k.
pub const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
/// `SKF_AD_MAX`: one past the last ancillary offset.
pub const SKF_AD_MAX: u32 = 64;
/// `SKF_NET_OFF`: negative offset base relative to the network header.
pub const SKF_NET_OFF: u32 = (-0x100000i32) as u32;
/// `SKF_LL_OFF`: negative offset base relative to the link-layer (MAC) header.
pub const SKF_LL_OFF: u32 = (-0x200000i32) as u32;

/// A Linux classic BPF extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ext {
    /// `len`: skb->len (opcode `BPF_LD|BPF_W|BPF_LEN`, not an ancillary offset).
    Len,
    /// `proto`: skb->protocol, host order of the big-endian field (SKF_AD_PROTOCOL = 0).
    Proto,
    /// `type`: skb->pkt_type (SKF_AD_PKTTYPE = 4).
    Type,
    /// `ifidx`: skb->dev->ifindex; without a device the program ends returning A (SKF_AD_IFINDEX = 8).
    Ifidx,
    /// `nla`: netlink attribute of type X starting at offset A (SKF_AD_NLATTR = 12).
    Nla,
    /// `nlan`: nested netlink attribute of type X at offset A (SKF_AD_NLATTR_NEST = 16).
    Nlan,
    /// `mark`: skb->mark (SKF_AD_MARK = 20).
    Mark,
    /// `queue`: skb->queue_mapping (SKF_AD_QUEUE = 24).
    Queue,
    /// `hatype`: skb->dev->type; without a device the program ends returning A (SKF_AD_HATYPE = 28).
    Hatype,
    /// `rxhash`: skb->hash (SKF_AD_RXHASH = 32).
    Rxhash,
    /// `cpu`: raw_smp_processor_id() (SKF_AD_CPU = 36).
    Cpu,
    /// `xor_x`: A ^= X (SKF_AD_ALU_XOR_X = 40). bpf_asm has no name for it; bpfconf's assembler
    /// accepts `xor_x`.
    XorX,
    /// `vlan_tci`: the VLAN TCI, tag-present bit masked out in old kernels (SKF_AD_VLAN_TAG = 44).
    VlanTci,
    /// `vlan_pr` / `vlan_avail`: 1 if a VLAN tag is present (SKF_AD_VLAN_TAG_PRESENT = 48).
    VlanPr,
    /// `poff`: payload offset from the flow dissector (SKF_AD_PAY_OFFSET = 52).
    Poff,
    /// `rand`: prandom_u32() (SKF_AD_RANDOM = 56).
    Rand,
    /// `vlan_tpid`: skb->vlan_proto (SKF_AD_VLAN_TPID = 60).
    VlanTpid,
}

impl Ext {
    /// Every extension, `len` first, then by ancillary offset.
    pub const ALL: [Ext; 17] = [
        Ext::Len,
        Ext::Proto,
        Ext::Type,
        Ext::Ifidx,
        Ext::Nla,
        Ext::Nlan,
        Ext::Mark,
        Ext::Queue,
        Ext::Hatype,
        Ext::Rxhash,
        Ext::Cpu,
        Ext::XorX,
        Ext::VlanTci,
        Ext::VlanPr,
        Ext::Poff,
        Ext::Rand,
        Ext::VlanTpid,
    ];

    /// The `SKF_AD_*` offset relative to `SKF_AD_OFF`, or `None` for `len`.
    pub fn ad_offset(self) -> Option<u32> {
        Some(match self {
            Ext::Len => return None,
            Ext::Proto => 0,
            Ext::Type => 4,
            Ext::Ifidx => 8,
            Ext::Nla => 12,
            Ext::Nlan => 16,
            Ext::Mark => 20,
            Ext::Queue => 24,
            Ext::Hatype => 28,
            Ext::Rxhash => 32,
            Ext::Cpu => 36,
            Ext::XorX => 40,
            Ext::VlanTci => 44,
            Ext::VlanPr => 48,
            Ext::Poff => 52,
            Ext::Rand => 56,
            Ext::VlanTpid => 60,
        })
    }

    /// The full k of the ancillary load (`SKF_AD_OFF + offset`), or `None` for `len`.
    pub fn k(self) -> Option<u32> {
        self.ad_offset().map(|o| SKF_AD_OFF.wrapping_add(o))
    }

    /// The extension an ancillary k names, if any.
    pub fn from_k(k: u32) -> Option<Ext> {
        Ext::ALL.iter().copied().find(|e| e.k() == Some(k))
    }

    /// The canonical bpf_asm name (without `#`).
    pub fn name(self) -> &'static str {
        match self {
            Ext::Len => "len",
            Ext::Proto => "proto",
            Ext::Type => "type",
            Ext::Ifidx => "ifidx",
            Ext::Nla => "nla",
            Ext::Nlan => "nlan",
            Ext::Mark => "mark",
            Ext::Queue => "queue",
            Ext::Hatype => "hatype",
            Ext::Rxhash => "rxhash",
            Ext::Cpu => "cpu",
            Ext::XorX => "xor_x",
            Ext::VlanTci => "vlan_tci",
            Ext::VlanPr => "vlan_pr",
            Ext::Poff => "poff",
            Ext::Rand => "rand",
            Ext::VlanTpid => "vlan_tpid",
        }
    }

    /// Parses a bpf_asm extension name, with or without `#` (`vlan_avail` is an alias of `vlan_pr`).
    pub fn from_name(s: &str) -> Option<Ext> {
        let s = s.strip_prefix('#').unwrap_or(s);
        if s == "vlan_avail" {
            return Some(Ext::VlanPr);
        }
        Ext::ALL.iter().copied().find(|e| e.name() == s)
    }
}

/// Where a negative (Linux) packet offset points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NegBase {
    /// Relative to the network header (`SKF_NET_OFF`).
    Net,
    /// Relative to the link-layer header (`SKF_LL_OFF`).
    Ll,
}

impl NegBase {
    /// Classifies a packet offset viewed as a signed 32-bit value, as
    /// `bpf_internal_load_pointer_neg_helper` does: `[SKF_NET_OFF, 0)` is network-relative,
    /// `[SKF_LL_OFF, SKF_NET_OFF)` link-layer relative, anything lower is invalid.
    /// Returns the base and the offset from it.
    pub fn classify(off: i32) -> Option<(NegBase, u32)> {
        let net = SKF_NET_OFF as i32;
        let ll = SKF_LL_OFF as i32;
        if off >= 0 {
            None
        } else if off >= net {
            Some((NegBase::Net, (off - net) as u32))
        } else if off >= ll {
            Some((NegBase::Ll, (off - ll) as u32))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_uapi() {
        assert_eq!(SKF_AD_OFF, 0xfffff000);
        assert_eq!(Ext::Proto.k(), Some(0xfffff000));
        assert_eq!(Ext::VlanTpid.k(), Some(0xfffff03c));
        assert_eq!(Ext::from_k(0xfffff034), Some(Ext::Poff));
        assert_eq!(Ext::from_k(0xfffff040), None);
        assert_eq!(Ext::from_name("#vlan_avail"), Some(Ext::VlanPr));
        assert_eq!(Ext::from_name("ifidx"), Some(Ext::Ifidx));
    }

    #[test]
    fn negative_bases() {
        assert_eq!(NegBase::classify(-1), Some((NegBase::Net, 0xfffff)));
        assert_eq!(
            NegBase::classify(SKF_NET_OFF as i32),
            Some((NegBase::Net, 0))
        );
        assert_eq!(
            NegBase::classify(SKF_LL_OFF as i32 + 14),
            Some((NegBase::Ll, 14))
        );
        assert_eq!(NegBase::classify(SKF_LL_OFF as i32 - 1), None);
        assert_eq!(NegBase::classify(0), None);
    }
}
