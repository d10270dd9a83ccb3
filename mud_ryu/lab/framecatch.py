"""Crafted frames in and out of a lab host's own interface: ``python -m mud_ryu.lab.framecatch send|catch``.

Run inside a host's network namespace (Mininet's ``popen``):

* ``send --iface IF``: reads a JSON list of hex frames on stdin and puts each on the wire as it is (AF_PACKET), so a
  test can forge any source MAC or IP, broadcast framing, a rogue server's message;
* ``catch --iface IF --out FILE --ready FILE --seconds N``: records which attack markers (``MUDATK:<id>;``) arrive
  on the interface *from the switch* -- what the host actually received -- until SIGTERM or N seconds, as a JSON
  object (marker -> count) in FILE, rewritten whenever a new marker arrives.

Bounded: at most MAX_FRAMES frames read, N <= 300 s, frames of at most 64 KiB.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import signal
import socket
import sys
import time
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MAX_FRAMES = 200_000
MARKER = re.compile(rb"MUDATK:([A-Za-z0-9_-]{1,40});")


def marker(attack_id: str) -> bytes:
    return f"MUDATK:{attack_id};".encode()


def _send(iface: str) -> int:
    frames = json.loads(sys.stdin.read())
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((iface, 0))
        for frame in frames[:1000]:
            sock.send(bytes.fromhex(frame))
    return 0


def _catch(iface: str, out: Path, ready: Path, seconds: float) -> int:
    seen: dict[str, int] = {}
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.bind((iface, 0))
        ready.write_text("ready\n")
        deadline = time.monotonic() + min(seconds, 300.0)
        frames = 0
        while not stop[0] and frames < MAX_FRAMES and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], min(left, 0.2))
            if not readable:
                continue
            data, addr = sock.recvfrom(65535)
            frames += 1
            if addr[2] == PACKET_OUTGOING:
                continue  # sent by this host, not received
            new = False
            for found in MARKER.findall(data):
                key = found.decode()
                new |= key not in seen
                seen[key] = seen.get(key, 0) + 1
            if new:  # written as they come, so the sender can poll for its controls
                _write(out, seen)
    _write(out, seen)
    return 0


def _write(out: Path, seen: dict[str, int]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(seen))
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="framecatch")
    sub = parser.add_subparsers(dest="cmd", required=True)
    send = sub.add_parser("send")
    send.add_argument("--iface", required=True)
    catch = sub.add_parser("catch")
    catch.add_argument("--iface", required=True)
    catch.add_argument("--out", type=Path, required=True)
    catch.add_argument("--ready", type=Path, required=True)
    catch.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.cmd == "send":
        return _send(args.iface)
    return _catch(args.iface, args.out, args.ready, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
