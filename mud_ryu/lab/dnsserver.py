"""The lab's DNS server: one name whose A record rotates (``python -m mud_ryu.lab.dnsserver``), for the R15 proof.

Answers ``--name`` with one of ``--address`` (the next one every ``--rotate-s`` seconds, TTL = ``--ttl``), refuses
every other name with NXDOMAIN, and ignores anything that is not a plain query. UDP only, one socket, bounded
lifetime; each answer is logged as a JSON line (time, transaction id, address) so a test can line up what the
device was told with what it could reach.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from pathlib import Path

MAX_QUERY = 512


def _qname(msg: bytes) -> tuple[str, int] | None:
    """The question name (lower case) and where the question ends, for a single uncompressed question."""
    pos = 12
    labels: list[str] = []
    while pos < len(msg) and len(labels) < 64:
        length = msg[pos]
        if length == 0:
            return ".".join(labels).lower(), pos + 5  # zero octet, QTYPE, QCLASS
        if length & 0xC0 or pos + 1 + length > len(msg):
            return None
        labels.append(msg[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    return None


def answer(query: bytes, name: str, address: str | None, ttl: int) -> bytes | None:
    """The response to ``query``: ``address`` for an A query of ``name``, NXDOMAIN for other names."""
    if len(query) < 17 or len(query) > MAX_QUERY:
        return None
    txid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or (flags >> 11) & 0xF or qdcount != 1:
        return None
    parsed = _qname(query)
    if parsed is None or parsed[1] > len(query):
        return None
    qname, end = parsed
    qtype = struct.unpack("!H", query[end - 4 : end - 2])[0]
    question = query[12:end]
    known = qname == name.lower()
    records = b""
    if known and qtype == 1 and address is not None:
        records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(address)
    rcode = 0 if known else 3
    header = struct.pack("!HHHHHH", txid, 0x8180 | rcode, 1, 1 if records else 0, 0, 0)
    return header + question + records


def serve(
    name: str,
    addresses: list[str],
    rotate_s: float,
    ttl: int,
    log: Path,
    lifetime_s: float,
    ready: Path,
    bind: tuple[str, int] = ("0.0.0.0", 53),
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(bind)
    sock.settimeout(0.5)
    ready.write_text(f"{sock.getsockname()[1]}\n")  # the port (useful with --port 0)
    start = time.monotonic()
    with log.open("a", encoding="utf-8") as out:
        while time.monotonic() - start < lifetime_s:
            try:
                query, peer = sock.recvfrom(MAX_QUERY + 1)
            except TimeoutError:
                continue
            current = addresses[int((time.monotonic() - start) / rotate_s) % len(addresses)]
            reply = answer(query, name, current, ttl)
            if reply is None:
                continue
            sock.sendto(reply, peer)
            out.write(json.dumps({"t": time.time(), "txid": struct.unpack("!H", query[:2])[0], "address": current})
                      + "\n")  # fmt: skip
            out.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--address", action="append", required=True)
    ap.add_argument("--rotate-s", type=float, default=3.0)
    ap.add_argument("--ttl", type=int, default=3)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--lifetime-s", type=float, default=300.0)
    ap.add_argument("--ready", type=Path, required=True)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=53)
    args = ap.parse_args(argv)
    serve(args.name, args.address, args.rotate_s, args.ttl, args.log, args.lifetime_s, args.ready,
          (args.bind, args.port))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
