#!/usr/bin/env python3
"""A bpf_conformance-protocol plugin in Python, over mini_ebpf: bpfconf's plugin tests run it.

Protocol (bpf_conformance's src/bpf_conformance.cc): argv[1] is the input memory in hex
(absent when empty), the program arrives in hex on stdin, r0 goes to stdout in hex; an error
exits non-zero with a message on stdout.
"""

import os
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mini_ebpf  # noqa: E402


def unhex(text):
    return bytes.fromhex("".join(text.split()))


def main():
    args = sys.argv[1:]
    mem = b""
    if args and not args[0].startswith("--"):
        mem = unhex(args.pop(0))
    if args:
        print("unknown option %s" % args[0])
        return 2
    prog = unhex(sys.stdin.readline())
    try:
        r0, _ = mini_ebpf.run(prog, mem)
    except (mini_ebpf.Fault, mini_ebpf.Unsupported) as e:
        print(e)
        return 1
    print("%x" % r0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
