"""Frame builders for the DNS tests and benchmark: queries and answers written from RFC 1035 (not
from the scanner under test), over the Ethernet/IP/UDP builders of :mod:`tests.discovery_frames`.

A message is built from parts, so a malformed case can get any one of them wrong: names are given
as wire bytes (``name()`` encodes a dotted name, ``pointer()`` a compression pointer), records as
``rr()`` bytes, and the header counts can be overridden.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from tests import discovery_frames as df

DEVICE_MAC = df.DEVICE_MAC
ROUTER_MAC = "02:00:5e:10:00:fe"
DEVICE_IP = "192.0.2.10"
RESOLVER_IP = "192.0.2.53"
DEVICE_IP6 = "2001:db8::10"
RESOLVER_IP6 = "2001:db8::53"
CLIENT_PORT = 40000
TXID = 0x1234

A, NS, CNAME, SOA, TXT, AAAA, OPT, RRSIG, HTTPS = 1, 2, 5, 6, 16, 28, 41, 46, 65
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080


def name(text: str) -> bytes:
    """The uncompressed wire form of a dotted name ('' or '.' is the root)."""
    labels = [x for x in text.rstrip(".").split(".") if x] if text not in ("", ".") else []
    return b"".join(bytes([len(x)]) + x.encode("latin-1") for x in labels) + b"\0"


def labels(*parts: bytes) -> bytes:
    """Raw labels without the root (to end with a pointer); each part is its own label."""
    return b"".join(bytes([len(p)]) + p for p in parts)


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def question(qname: bytes | str, qtype: int = A, qclass: int = 1) -> bytes:
    return (name(qname) if isinstance(qname, str) else qname) + struct.pack("!HH", qtype, qclass)


def rr(
    owner: bytes | str, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1, rdlength: int | None = None
) -> bytes:
    owner_b = name(owner) if isinstance(owner, str) else owner
    length = len(rdata) if rdlength is None else rdlength
    return owner_b + struct.pack("!HHIH", rtype, rclass, ttl, length) + rdata


def a(owner: bytes | str, addr: str, ttl: int = 300) -> bytes:
    return rr(owner, A, ipaddress.IPv4Address(addr).packed, ttl)


def aaaa(owner: bytes | str, addr: str, ttl: int = 300) -> bytes:
    return rr(owner, AAAA, ipaddress.IPv6Address(addr).packed, ttl)


def cname(owner: bytes | str, target: bytes | str, ttl: int = 300) -> bytes:
    return rr(owner, CNAME, name(target) if isinstance(target, str) else target, ttl)


def message(
    questions: Sequence[bytes] = (),
    answers: Sequence[bytes] = (),
    *,
    txid: int = TXID,
    flags: int = RD,
    rcode: int = 0,
    authority: Sequence[bytes] = (),
    additional: Sequence[bytes] = (),
    counts: tuple[int, int, int, int] | None = None,
) -> bytes:
    """A DNS message; ``counts`` overrides (QD, AN, NS, AR)."""
    qd, an, ns, ar = counts or (len(questions), len(answers), len(authority), len(additional))
    head = struct.pack("!6H", txid, flags | rcode, qd, an, ns, ar)
    return head + b"".join([*questions, *answers, *authority, *additional])


def query(qname: str = "cloud.example.com", qtype: int = A, *, txid: int = TXID) -> bytes:
    return message([question(qname, qtype)], txid=txid)


def response(
    qname: str = "cloud.example.com", answers: Sequence[bytes] = (), qtype: int = A, *, txid: int = TXID, rcode: int = 0
) -> bytes:
    return message([question(qname, qtype)], answers, txid=txid, flags=QR | RD | RA, rcode=rcode)


def ip_udp(
    payload: bytes, src: str, dst: str, sport: int, dport: int, *, udp_length: int | None = None
) -> tuple[bytes, int]:
    """IPv4 or IPv6 (by the address family) around a UDP datagram; returns (packet, ethertype)."""
    seg = df.udp(payload, sport, dport, length=udp_length)
    if ipaddress.ip_address(src).version == 4:
        return df.ipv4(seg, src=src, dst=dst), 0x0800
    return df.ipv6(seg, src=ipaddress.IPv6Address(src).packed, dst=ipaddress.IPv6Address(dst).packed), 0x86DD


def query_frame(
    payload: bytes | None = None,
    *,
    client_ip: str = DEVICE_IP,
    resolver_ip: str = RESOLVER_IP,
    sport: int = CLIENT_PORT,
    dport: int = 53,
    mac: str = DEVICE_MAC,
    vlan: int | None = None,
) -> bytes:
    """A frame from the device to the resolver (through the router)."""
    packet, ethertype = ip_udp(query() if payload is None else payload, client_ip, resolver_ip, sport, dport)
    return df.ethernet(packet, ethertype, src=mac, dst=ROUTER_MAC, vlan=vlan)


def answer_frame(
    payload: bytes | None = None,
    *,
    client_ip: str = DEVICE_IP,
    resolver_ip: str = RESOLVER_IP,
    sport: int = 53,
    dport: int = CLIENT_PORT,
    mac: str = DEVICE_MAC,
    vlan: int | None = None,
) -> bytes:
    """A frame from the resolver (through the router) to the device."""
    body = response(answers=[a("cloud.example.com", "198.51.100.7")]) if payload is None else payload
    packet, ethertype = ip_udp(body, resolver_ip, client_ip, sport, dport)
    return df.ethernet(packet, ethertype, src=ROUTER_MAC, dst=mac, vlan=vlan)
