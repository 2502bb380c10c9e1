#!/usr/bin/env python3
"""A plugin that misbehaves on purpose, for either protocol: bpfconf must turn each kind of
misbehaviour into a verdict and go on.

Usage: misbehave.py PROTOCOL MODE [--always]
  PROTOCOL  conformance | jsonl
  MODE      crash (dies by SIGSEGV) | hang (sleeps forever) | garbage (prints nonsense)
            | exit (exits with status 3 without answering; jsonl only)

It otherwise behaves (mini_ebpf runs eBPF programs), and misbehaves only on programs containing
the immediate 0xbad — or on every run with --always. The jsonl side answers the handshake and
load_only requests correctly, so misbehaviour hits runs, and a restarted process serves the next
request.
"""

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mini_ebpf  # noqa: E402

TRIGGER = 0xBAD


def misbehave(mode, out):
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "hang":
        while True:
            time.sleep(60)
    elif mode == "garbage":
        out.write("this is not what you asked for {\n")
        out.flush()
    elif mode == "exit":
        sys.exit(3)


def conformance(mode, always):
    args = sys.argv[3:]
    args = [a for a in args if a != "--always"]
    mem = bytes.fromhex("".join(args[0].split())) if args else b""
    prog = bytes.fromhex("".join(sys.stdin.readline().split()))
    insns = mini_ebpf.decode(prog)
    if always or any(i[4] == TRIGGER for i in insns):
        misbehave(mode, sys.stdout)
        return 0
    try:
        r0, _ = mini_ebpf.run(prog, mem)
    except (mini_ebpf.Fault, mini_ebpf.Unsupported) as e:
        print(e)
        return 1
    print("%x" % r0)
    return 0


def encode(rows):
    out = bytearray()
    for code, dst, src, off, imm in rows:
        out += bytes([code, (dst & 0xF) | (src << 4)])
        out += (off & 0xFFFF).to_bytes(2, "little") + (imm & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)


def jsonl(mode, always):
    for line in sys.stdin:
        req = json.loads(line)
        rid = req.get("id")
        if "hello" in req:
            reply = {"id": rid, "hello": {"protocol": "bpfconf-jsonl", "version": 1,
                                          "engine": "misbehave-" + mode}}
        elif "ebpf" not in req:
            reply = {"id": rid, "skipped": "misbehave.py runs eBPF only"}
        elif req.get("load_only"):
            reply = {"id": rid, "accepted": True}
        else:
            rows = req["ebpf"]
            if always or any(r[4] == TRIGGER for r in rows):
                misbehave(mode, sys.stdout)
                continue
            try:
                r0, mem = mini_ebpf.run(encode(rows), bytes.fromhex(req.get("mem", "")))
                reply = {"id": rid, "r0": r0, "mem": mem.hex()}
            except mini_ebpf.Fault as e:
                reply = {"id": rid, "fault": str(e)}
            except mini_ebpf.Unsupported as e:
                reply = {"id": rid, "skipped": str(e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


def main():
    protocol, mode = sys.argv[1], sys.argv[2]
    always = "--always" in sys.argv[3:]
    if protocol == "conformance":
        return conformance(mode, always)
    return jsonl(mode, always)


if __name__ == "__main__":
    sys.exit(main())
