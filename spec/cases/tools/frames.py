# Crafts the Ethernet frames used by spec/cases/classic/tcpdump.toml and ext.toml; prints name, length, hex.
import struct
DST=bytes.fromhex('020000000001'); SRC=bytes.fromhex('020000000002')
def eth(t, payload, dst=DST): return dst+SRC+struct.pack('!H',t)+payload
def ip4(proto, payload, frag=0x4000):
    return struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(payload),0,frag,64,proto,0,bytes([10,0,0,1]),bytes([10,0,0,2]))+payload
def ip6(nh, payload, dst=bytes.fromhex('20010db8000000000000000000000002')):
    return struct.pack('!IHBB',0x60000000,len(payload),nh,64)+bytes.fromhex('20010db8000000000000000000000001')+dst+payload
def tcp(sp,dp,flags): return struct.pack('!HHIIBBHHH',sp,dp,0,0,0x50,flags,0xffff,0,0)
def udp(sp,dp,data=b'hi'): return struct.pack('!HHHH',sp,dp,8+len(data),0)+data
def vlan(tci, inner_type, payload, tpid=0x8100): return DST+SRC+struct.pack('!HHH',tpid,tci,inner_type)+payload
F={
 'v4_tcp_dport22_syn': eth(0x800, ip4(6,tcp(1234,22,0x02))),
 'v4_tcp_sport22_ack': eth(0x800, ip4(6,tcp(22,1234,0x10))),
 'v4_tcp_80_syn': eth(0x800, ip4(6,tcp(1234,80,0x02))),
 'v4_udp_22': eth(0x800, ip4(17,udp(1234,22))),
 'v4_tcp_22_frag': eth(0x800, ip4(6,tcp(1234,22,0x02), frag=0x2001)),
 'v6_tcp_dport22': eth(0x86dd, ip6(6,tcp(1234,22,0x02))),
 'v6_udp_mcast': eth(0x86dd, ip6(17,udp(1234,5353), dst=bytes.fromhex('ff020000000000000000000000000001')), dst=bytes.fromhex('333300000001')),
 'v6_udp_unicast': eth(0x86dd, ip6(17,udp(1234,5353))),
 'vlan10_v4_udp': vlan(10,0x800, ip4(17,udp(1234,53))),
 'vlan11_v4_udp': vlan(11,0x800, ip4(17,udp(1234,53))),
 'vlan10_v4_tcp': vlan(10,0x800, ip4(6,tcp(1234,80,2))),
 'plain_v4_udp': eth(0x800, ip4(17,udp(1234,53))),
 'arp': eth(0x806, bytes.fromhex('0001080006040001020000000002 0a000001 000000000000 0a000002'.replace(' ',''))),
}
if __name__ == "__main__":
    for k,v in F.items(): print(k, len(v), v.hex())

# Frames addressed to the Linux engine's TAP device (MAC 02:62:70:66:63:01, see
# engines/src/linux/realise.rs), for skb.toml and negoff.toml.
TAP = bytes.fromhex('026270666301')
T = {
 'tap_v4_tcp': eth(0x800, ip4(6, tcp(1234, 22, 0x02)), dst=TAP),
 'tap_v4_udp': eth(0x800, ip4(17, udp(1234, 53)), dst=TAP),
 'tap_v6_udp': eth(0x86dd, ip6(17, udp(1234, 53)), dst=TAP),
 'bcast_v4_udp': eth(0x800, ip4(17, udp(1234, 53)), dst=b'\xff' * 6),
 'mcast_v4_udp': eth(0x800, ip4(17, udp(1234, 53)), dst=bytes.fromhex('01005e000001')),
 'other_v4_udp': eth(0x800, ip4(17, udp(1234, 53)), dst=bytes.fromhex('020000000009')),
 'lo_v4_udp': eth(0x800, ip4(17, udp(1234, 53)), dst=bytes(6)),
}
if __name__ == '__main__':
    for k, v in T.items():
        print(k, len(v), v.hex())
