"""A tiny eBPF interpreter for bpfconf's plugin tests (not a reference: bpfconf's `interp` is).

Covers the base32/base64 and divmul groups without the v4 additions: ALU and ALU64
(add sub mul div or and lsh rsh neg mod xor mov arsh, le/be), JMP and JMP32 conditional
jumps, ja, exit, ldx/st/stx of 1/2/4/8 bytes and lddw (src 0). Anything else
(signed div/mod, movsx, sign-extending loads, atomics, calls, bswap, ja32, packet loads)
raises Unsupported. The machine model is bpf_conformance's: R1 = address of the memory
(0 if empty), R2 = its length, R10 = top of a 512-byte stack.
"""

import struct

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
MEM_BASE = 0x1_0000_0000
STACK_BASE = 0x2_0000_0000
STACK_SIZE = 512
STEP_LIMIT = 1_000_000


class Fault(Exception):
    """The program did something the ISA forbids at run time."""


class Unsupported(Exception):
    """The program uses an instruction this interpreter does not implement."""


def decode(prog):
    """Splits program bytes into (code, dst, src, off, imm) tuples."""
    if len(prog) % 8:
        raise Unsupported("program length is not a multiple of 8")
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", prog, i)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def sx(v, bits):
    """Sign-extends the low `bits` of v."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def alu(op, a, b, bits, imm_src):
    """One ALU operation on `bits`-wide operands; returns the unmasked result."""
    m = (1 << bits) - 1
    a &= m
    b &= m
    if op == 0x00:
        return a + b
    if op == 0x10:
        return a - b
    if op == 0x20:
        return a * b
    if op == 0x30:
        return a // b if b else 0
    if op == 0x40:
        return a | b
    if op == 0x50:
        return a & b
    if op == 0x60:
        return a << (b & (bits - 1))
    if op == 0x70:
        return a >> (b & (bits - 1))
    if op == 0x80:
        return -a
    if op == 0x90:
        return a % b if b else a
    if op == 0xA0:
        return a ^ b
    if op == 0xB0:
        return b
    if op == 0xC0:
        return sx(a, bits) >> (b & (bits - 1))
    raise Unsupported("unknown ALU operation %#x" % op)


def swap(v, width, big):
    """le/be: keeps (and, for big-endian, reverses) the low `width` bits."""
    v &= (1 << width) - 1
    if big:
        v = int.from_bytes(v.to_bytes(width // 8, "little"), "big")
    return v


def cond(op, a, b, bits):
    """Whether a conditional jump is taken."""
    m = (1 << bits) - 1
    a &= m
    b &= m
    sa, sb = sx(a, bits), sx(b, bits)
    table = {
        0x10: a == b,
        0x20: a > b,
        0x30: a >= b,
        0x40: (a & b) != 0,
        0x50: a != b,
        0x60: sa > sb,
        0x70: sa >= sb,
        0xA0: a < b,
        0xB0: a <= b,
        0xC0: sa < sb,
        0xD0: sa <= sb,
    }
    if op not in table:
        raise Unsupported("unknown jump operation %#x" % op)
    return table[op]


SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}


def run(prog_bytes, mem):
    """Runs a program on a copy of `mem`; returns (r0, final memory)."""
    insns = decode(prog_bytes)
    mem = bytearray(mem)
    stack = bytearray(STACK_SIZE)
    regs = [0] * 11
    regs[1] = MEM_BASE if mem else 0
    regs[2] = len(mem)
    regs[10] = STACK_BASE + STACK_SIZE

    def region(addr, size):
        for base, buf in ((MEM_BASE, mem), (STACK_BASE, stack)):
            if buf and base <= addr and addr + size <= base + len(buf):
                return buf, addr - base
        raise Fault("out-of-bounds access of %d bytes at %#x" % (size, addr))

    pc = 0
    steps = 0
    while True:
        if pc < 0 or pc >= len(insns):
            raise Fault("pc %d outside the program" % pc)
        steps += 1
        if steps > STEP_LIMIT:
            raise Fault("step limit")
        code, dst, src, off, imm = insns[pc]
        cls = code & 7
        pc += 1
        if cls in (0x04, 0x07):
            op, bits = code & 0xF0, 64 if cls == 0x07 else 32
            if op in (0x30, 0x90, 0xB0) and off != 0:
                raise Unsupported("signed division or movsx")
            if op == 0xD0:
                if cls == 0x07:
                    raise Unsupported("bswap")
                regs[dst] = swap(regs[dst], imm, bool(code & 0x08))
                continue
            b = regs[src] if code & 0x08 else imm & MASK64
            regs[dst] = alu(op, regs[dst], b, bits, not code & 0x08) & (
                MASK64 if bits == 64 else MASK32
            )
        elif cls in (0x05, 0x06):
            op = code & 0xF0
            if op == 0x90 and code == 0x95:
                return regs[0], bytes(mem)
            if code == 0x05:
                pc += off
                continue
            if op == 0x80 or op == 0x90 or op == 0x00:
                raise Unsupported("calls, ja32 and unknown jumps")
            b = regs[src] if code & 0x08 else imm & MASK64
            if cond(op, regs[dst], b, 64 if cls == 0x05 else 32):
                pc += off
        elif code == 0x18:
            if src != 0 or pc >= len(insns):
                raise Unsupported("lddw with src != 0")
            regs[dst] = (imm & MASK32) | ((insns[pc][4] & MASK32) << 32)
            pc += 1
        elif cls == 0x01 and code & 0xE0 == 0x60:
            size = SIZES[code & 0x18]
            buf, o = region((regs[src] + off) & MASK64, size)
            regs[dst] = int.from_bytes(buf[o : o + size], "little")
        elif cls in (0x02, 0x03) and code & 0xE0 == 0x60:
            size = SIZES[code & 0x18]
            v = regs[src] if cls == 0x03 else imm & MASK64
            buf, o = region((regs[dst] + off) & MASK64, size)
            buf[o : o + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        else:
            raise Unsupported("opcode %#04x" % code)
