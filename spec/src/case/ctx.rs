//! The execution context of a classic case: skb fields (Linux), lengths, and NetBSD's
//! coprocessor table and external memory.

use crate::cop::CopFn;
use serde::{Deserialize, Serialize};

/// The device an skb arrived on (`skb->dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dev {
    /// `dev->ifindex`.
    pub ifindex: u32,
    /// `dev->type` (ARPHRD_*), 1 for Ethernet.
    pub hatype: u16,
}

/// Everything besides the packet bytes that a classic program can observe.
///
/// The defaults describe a datagram sent on a local AF_UNIX socket: no device, protocol 0,
/// `PACKET_HOST`, no VLAN, no link-layer or network header, hash 0, mark 0, CPU 0.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ctx {
    /// `skb->protocol` in host order (e.g. 0x0800 for IPv4).
    pub protocol: u16,
    /// `skb->pkt_type` (0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing).
    pub pkt_type: u8,
    /// The receiving device, or `None` when `skb->dev` is NULL (ifidx/hatype loads then end the
    /// program on Linux, returning the current A).
    pub dev: Option<Dev>,
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->queue_mapping`.
    pub queue_mapping: u16,
    /// `skb->hash`.
    pub rxhash: u32,
    /// `skb->vlan_tci` (meaningful when `vlan_present`).
    pub vlan_tci: u16,
    /// Whether a VLAN tag was stripped into the skb (`skb_vlan_tag_present`).
    pub vlan_present: bool,
    /// `skb->vlan_proto` in host order (0x8100 or 0x88a8 when present, else 0).
    pub vlan_tpid: u16,
    /// The CPU the filter runs on.
    pub cpu: u32,
    /// The value `prandom_u32()` returns, or `None` when the case does not depend on it.
    pub rand: Option<u32>,
    /// The payload offset the kernel's flow dissector computes for this packet (`poff`).
    pub poff: u32,
    /// Offset of the link-layer header from the first packet byte, if set (for `SKF_LL_OFF`).
    pub mac_header: Option<u32>,
    /// Offset of the network header from the first packet byte, if set (for `SKF_NET_OFF`).
    pub network_header: Option<u32>,
    /// Wire length for BSD/NetBSD (`wirelen` argument of `bpf_filter`); `None` = packet length.
    pub wirelen: Option<u32>,
    /// NetBSD coprocessor table (empty = no table installed).
    pub cop: Vec<CopFn>,
    /// NetBSD external memory: replaces M[] with these words (initial values; all pre-initialised).
    pub extmem: Option<Vec<u32>>,
}

impl Ctx {
    /// The memory store size the program sees: the external memory's, or 16.
    pub fn memwords(&self) -> usize {
        self.extmem
            .as_ref()
            .map_or(crate::cbpf::MEMWORDS, |m| m.len())
    }

    /// The wire length for a packet of `buflen` bytes.
    pub fn wirelen_for(&self, buflen: usize) -> u32 {
        self.wirelen.unwrap_or(buflen as u32)
    }
}

/// The serialized (TOML/JSON) form of [`Ctx`]: every field optional, unknown fields rejected.
/// Device fields are flattened (`ifindex`, `hatype`) and coprocessor functions are named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CtxSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkt_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hatype: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_mapping: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rxhash: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_tci: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_present: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_tpid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rand: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poff: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_header: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_header: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wirelen: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extmem: Option<Vec<u32>>,
}

impl CtxSpec {
    /// Validates and converts to a [`Ctx`]; errors name the field.
    pub fn into_ctx(self) -> Result<Ctx, String> {
        let dev = match (self.ifindex, self.hatype) {
            (Some(ifindex), hatype) => Some(Dev {
                ifindex,
                hatype: hatype.unwrap_or(1),
            }),
            (None, Some(_)) => {
                return Err("ctx.hatype needs ctx.ifindex (a device has both)".into());
            }
            (None, None) => None,
        };
        let vlan_present = self.vlan_present.unwrap_or(false);
        if !vlan_present && (self.vlan_tci.is_some() || self.vlan_tpid.is_some()) {
            return Err("ctx.vlan_tci / ctx.vlan_tpid need ctx.vlan_present = true".into());
        }
        let cop = self
            .cop
            .unwrap_or_default()
            .iter()
            .map(|s| s.parse::<CopFn>().map_err(|e| format!("ctx.cop: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(m) = &self.extmem {
            if m.is_empty() || m.len() > 30 {
                return Err(format!(
                    "ctx.extmem: {} words; NetBSD allows 1..=30 (BPF_MAX_MEMWORDS)",
                    m.len()
                ));
            }
        }
        Ok(Ctx {
            protocol: self.protocol.unwrap_or(0),
            pkt_type: self.pkt_type.unwrap_or(0),
            dev,
            mark: self.mark.unwrap_or(0),
            queue_mapping: self.queue_mapping.unwrap_or(0),
            rxhash: self.rxhash.unwrap_or(0),
            vlan_tci: self.vlan_tci.unwrap_or(0),
            vlan_present,
            vlan_tpid: self
                .vlan_tpid
                .unwrap_or(if vlan_present { 0x8100 } else { 0 }),
            cpu: self.cpu.unwrap_or(0),
            rand: self.rand,
            poff: self.poff.unwrap_or(0),
            mac_header: self.mac_header,
            network_header: self.network_header,
            wirelen: self.wirelen,
            cop,
            extmem: self.extmem,
        })
    }
}

impl From<&Ctx> for CtxSpec {
    /// The serialized form of a context, listing only fields that differ from the defaults.
    fn from(c: &Ctx) -> Self {
        let d = Ctx::default();
        let opt = |differs: bool| differs.then_some(());
        CtxSpec {
            protocol: opt(c.protocol != d.protocol).map(|_| c.protocol),
            pkt_type: opt(c.pkt_type != d.pkt_type).map(|_| c.pkt_type),
            ifindex: c.dev.map(|dev| dev.ifindex),
            hatype: c.dev.map(|dev| dev.hatype),
            mark: opt(c.mark != d.mark).map(|_| c.mark),
            queue_mapping: opt(c.queue_mapping != d.queue_mapping).map(|_| c.queue_mapping),
            rxhash: opt(c.rxhash != d.rxhash).map(|_| c.rxhash),
            vlan_tci: opt(c.vlan_present).map(|_| c.vlan_tci),
            vlan_present: opt(c.vlan_present).map(|_| true),
            vlan_tpid: opt(c.vlan_present).map(|_| c.vlan_tpid),
            cpu: opt(c.cpu != d.cpu).map(|_| c.cpu),
            rand: c.rand,
            poff: opt(c.poff != d.poff).map(|_| c.poff),
            mac_header: c.mac_header,
            network_header: c.network_header,
            wirelen: c.wirelen,
            cop: opt(!c.cop.is_empty())
                .map(|_| c.cop.iter().map(|f| f.name().to_string()).collect()),
            extmem: c.extmem.clone(),
        }
    }
}
