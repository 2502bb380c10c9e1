//! The classic benchmark's workload: tcpdump filter expressions (compiled by libpcap, as
//! `tcpdump -d` would for an Ethernet capture) and a deterministic mix of Ethernet frames.

/// The filters: what people type into tcpdump, from a one-word protocol test to port ranges,
/// TCP flags, networks and IPv6.
pub const EXPRESSIONS: &[&str] = &[
    "arp",
    "tcp port 22",
    "udp port 53",
    "host 10.0.0.1",
    "net 192.168.0.0/16",
    "icmp or icmp6",
    "ip6 and tcp",
    "vlan 10 and udp",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "tcp dst portrange 8000-9000",
    "ip and (tcp port 80 or tcp port 443) and not src net 10.0.0.0/8",
    "ether broadcast or ether multicast",
    "ip[8] < 5",
    "ip[6:2] & 0x1fff != 0",
    "greater 500",
    "ip6 multicast",
];

/// How many frames [`frames`] makes.
pub const FRAMES: usize = 400;

/// A small deterministic generator (xorshift64*), so every run sees the same frames.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn ipv4_addr(r: &mut Rng) -> [u8; 4] {
    match r.below(4) {
        0 => [10, 0, 0, 1 + r.below(4) as u8],
        1 => [192, 168, r.below(4) as u8, r.below(255) as u8],
        2 => [172, 16, 0, r.below(255) as u8],
        _ => (r.next() as u32).to_be_bytes(),
    }
}

fn ipv6_addr(r: &mut Rng, multicast: bool) -> [u8; 16] {
    let mut a = [0u8; 16];
    if multicast {
        a[0] = 0xff;
        a[1] = 0x02;
        a[15] = 1 + r.below(3) as u8;
    } else {
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[8..].copy_from_slice(&r.next().to_be_bytes());
    }
    a
}

fn port(r: &mut Rng) -> u16 {
    let common = [22, 53, 80, 443, 8080, 8443, 123, 5353];
    if r.below(3) == 0 {
        1024 + r.below(64000) as u16
    } else {
        r.pick(&common)
    }
}

/// A TCP or UDP (or ICMP) transport header and payload for protocol `proto`.
fn transport(r: &mut Rng, proto: u8, payload: usize) -> Vec<u8> {
    let mut t = Vec::new();
    match proto {
        6 => {
            t.extend(port(r).to_be_bytes());
            t.extend(port(r).to_be_bytes());
            t.extend((r.next() as u32).to_be_bytes());
            t.extend((r.next() as u32).to_be_bytes());
            let flags = r.pick(&[0x02u8, 0x10, 0x12, 0x18, 0x11, 0x04]);
            t.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        17 => {
            t.extend(port(r).to_be_bytes());
            t.extend(port(r).to_be_bytes());
            t.extend(((8 + payload) as u16).to_be_bytes());
            t.extend([0, 0]);
        }
        _ => t.extend([8, 0, 0, 0, 0, 1, 0, 1]), // ICMP/ICMPv6 echo request
    }
    t.extend((0..payload).map(|i| i as u8));
    t
}

fn ethernet(dst: [u8; 6], vlan: Option<u16>, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + body.len());
    f.extend(dst);
    f.extend(PEER_MAC);
    if let Some(tci) = vlan {
        f.extend(0x8100u16.to_be_bytes());
        f.extend(tci.to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    f.extend(body);
    f
}

fn ipv4(r: &mut Rng, proto: u8, payload: usize) -> Vec<u8> {
    let options = if r.below(10) == 0 { 4 } else { 0 };
    let t = transport(r, proto, payload);
    let total = 20 + options + t.len();
    let frag: u16 = match r.below(12) {
        0 => 0x2000 | r.below(100) as u16, // a fragment
        _ => 0x4000,                       // don't fragment
    };
    let ttl = if r.below(8) == 0 { 1 + r.below(4) } else { 64 } as u8;
    let mut p = vec![0x45 + (options / 4) as u8, 0];
    p.extend((total as u16).to_be_bytes());
    p.extend((r.next() as u16).to_be_bytes());
    p.extend(frag.to_be_bytes());
    p.extend([ttl, proto, 0, 0]);
    p.extend(ipv4_addr(r));
    p.extend(ipv4_addr(r));
    p.extend(std::iter::repeat_n(1u8, options)); // NOPs
    p.extend(t);
    p
}

fn ipv6(r: &mut Rng, next: u8, payload: usize, multicast: bool) -> Vec<u8> {
    let t = transport(r, next, payload);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((t.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(ipv6_addr(r, false));
    p.extend(ipv6_addr(r, multicast));
    p.extend(t);
    p
}

/// The frames: Ethernet with IPv4 (TCP, UDP, ICMP; some fragments, options, low TTLs), IPv6
/// (TCP, UDP, ICMPv6; some multicast), ARP, 802.1Q-tagged IPv4, broadcast and multicast
/// destinations; payloads from 0 to 1400 bytes.
pub fn frames() -> Vec<Vec<u8>> {
    let mut r = Rng(0x6270_6663_6f6e_6621);
    (0..FRAMES)
        .map(|_| {
            let payload = match r.below(4) {
                0 => 0,
                1 => r.below(64) as usize,
                2 => 64 + r.below(512) as usize,
                _ => 512 + r.below(889) as usize,
            };
            let dst = match r.below(16) {
                0 => [0xff; 6],
                1 => [0x01, 0x00, 0x5e, 0, 0, 1],
                _ => OUR_MAC,
            };
            match r.below(20) {
                0..=6 => ethernet(dst, None, 0x0800, &ipv4(&mut r, 6, payload)),
                7..=9 => ethernet(dst, None, 0x0800, &ipv4(&mut r, 17, payload)),
                10 => ethernet(dst, None, 0x0800, &ipv4(&mut r, 1, payload)),
                11..=13 => ethernet(dst, None, 0x86dd, &ipv6(&mut r, 6, payload, false)),
                14 | 15 => {
                    let mcast = r.below(3) == 0;
                    let dst = if mcast { [0x33, 0x33, 0, 0, 0, 1] } else { dst };
                    ethernet(dst, None, 0x86dd, &ipv6(&mut r, 17, payload, mcast))
                }
                16 => ethernet(dst, None, 0x86dd, &ipv6(&mut r, 58, payload, false)),
                17 => {
                    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
                    arp.extend(PEER_MAC);
                    arp.extend(ipv4_addr(&mut r));
                    arp.extend([0; 6]);
                    arp.extend(ipv4_addr(&mut r));
                    ethernet([0xff; 6], None, 0x0806, &arp)
                }
                _ => {
                    let tci = r.pick(&[10u16, 11, 0x2000 | 10]);
                    let proto = r.pick(&[6u8, 17]);
                    ethernet(dst, Some(tci), 0x0800, &ipv4(&mut r, proto, payload))
                }
            }
        })
        .collect()
}

/// A short description of the frame mix, for the report.
pub const DESCRIPTION: &str = "Ethernet: IPv4 TCP/UDP/ICMP (fragments, options, low TTLs), IPv6 TCP/UDP/ICMPv6 (some multicast), ARP, 802.1Q-tagged IPv4";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_deterministic_and_mixed() {
        let f = frames();
        assert_eq!(f, frames());
        assert_eq!(f.len(), FRAMES);
        let ethertype = |x: &Vec<u8>| u16::from_be_bytes([x[12], x[13]]);
        for t in [0x0800, 0x86dd, 0x0806, 0x8100] {
            assert!(
                f.iter().filter(|x| ethertype(x) == t).count() >= 5,
                "{t:#x}"
            );
        }
        assert!(f.iter().all(|x| x.len() >= 42 && x.len() <= 1518));
    }
}
