"""A scripted helper for the hub's tests: it connects to a service's helpers' socket as
whoever runs it, says hello naming a display, prints every line it receives, and
answers the first question (or ends the session from the banner) as told.

The standard library only, so that any account's python3 can run it by path.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--display", default="")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--answer", choices=("allow", "deny"))
    parser.add_argument("--end", action="store_true", help="press End session on the banner")
    args = parser.parse_args()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(args.socket)

        def send(**message: object) -> None:
            sock.sendall(json.dumps(message).encode() + b"\n")

        send(type="hello", version=args.version, display=args.display)
        for line in sock.makefile("rb"):
            print(line.decode().strip(), flush=True)
            message = json.loads(line)
            if message["type"] == "question" and args.answer:
                send(type="answer", id=message["id"], allow=args.answer == "allow")
            elif message["type"] == "banner" and args.end:
                send(type="end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
