#!/usr/bin/env python3
"""A bpfconf JSON-lines plugin in Python that forwards every line to `bpfconf serve`.

Usage: jsonl_serve.py BPFCONF_BINARY [ENGINE]. It checks each reply is one JSON object before
passing it on, so it exercises the protocol end to end (handshake, load_only, runs) through a
process that is not bpfconf itself.
"""

import json
import subprocess
import sys


def main():
    binary = sys.argv[1]
    engine = sys.argv[2] if len(sys.argv) > 2 else "interp"
    serve = subprocess.Popen(
        [binary, "serve", "--engine", engine],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        serve.stdin.write(line if line.endswith("\n") else line + "\n")
        serve.stdin.flush()
        reply = serve.stdout.readline()
        if not reply:
            return 1
        json.loads(reply)
        sys.stdout.write(reply)
        sys.stdout.flush()
    serve.stdin.close()
    return serve.wait()


if __name__ == "__main__":
    sys.exit(main())
