"""A device that looks its service up before every connection (``python -m mud_ryu.lab.dnsprobe``), as IoT
devices do: query the resolver, connect to the answered address, record the outcome; every ``--interval-s`` for
``--count`` rounds. Prints one JSON list. The R15 proof asks of it: was there ever an answer the device could not
use?"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from typing import Any


def _query(name: str, txid: int) -> bytes:
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def _first_a(reply: bytes, txid: int) -> str | None:
    if len(reply) < 12 or struct.unpack("!H", reply[:2])[0] != txid:
        return None
    ancount = struct.unpack("!H", reply[6:8])[0]
    pos = 12
    while pos < len(reply) and reply[pos] != 0:
        pos += 1 + reply[pos]
    pos += 5
    for _ in range(min(ancount, 16)):
        if pos + 12 > len(reply):
            return None
        pos += 2 if reply[pos] & 0xC0 == 0xC0 else 0
        rtype, _, _, rdlen = struct.unpack("!HHIH", reply[pos : pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(reply[pos : pos + 4])
        pos += rdlen
    return None


def probe(resolver: str, name: str, port: int, count: int, interval_s: float) -> list[dict[str, Any]]:
    rounds: list[dict[str, Any]] = []
    start = time.monotonic()
    for i in range(count):
        due = start + i * interval_s
        time.sleep(max(0.0, due - time.monotonic()))
        txid = int.from_bytes(os.urandom(2), "big")
        entry: dict[str, Any] = {"t": time.time(), "address": None, "ok": False}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(1.0)
            try:
                udp.sendto(_query(name, txid), (resolver, 53))
                entry["address"] = _first_a(udp.recv(1500), txid)
            except OSError as exc:
                entry["error"] = f"dns: {exc}"
        if entry["address"]:
            try:
                with socket.create_connection((entry["address"], port), timeout=0.5):
                    entry["ok"] = True
            except OSError as exc:
                entry["error"] = f"connect: {exc}"
        rounds.append(entry)
    return rounds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resolver", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--interval-s", type=float, default=0.1)
    args = ap.parse_args(argv)
    print(json.dumps(probe(args.resolver, args.name, args.port, min(args.count, 2000), args.interval_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
