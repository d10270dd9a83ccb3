"""DHCP server messages seen on a trusted port: which address the server gave which client, for how long, and
which routers it named (DHCP snooping).

The IP source guard (:mod:`mud_ryu.guard.bindings`) binds a leased address to its client when the server's answer
passes the switch -- before the client uses it -- so no other device can claim it first; it keeps the binding for
the lease's lifetime, and it protects the routers a DHCPv4 server names (option 3) from any device's claim. Two
messages are read: a DHCPv4 ACK (UDP 67 -> 68: ``yiaddr`` to ``chaddr``, option 51 the lease time) and a DHCPv6
Reply (UDP 547 -> 546: every IA_NA/IA_TA address with a valid lifetime, to the client the frame is addressed to --
a DHCPv6 message carries no hardware address, and the switch delivers the Reply by its Ethernet destination).

Only frames that came in on a trusted port are read (the caller checks). The parsers are total and bounded: any
malformed frame is None (or no lease), never an exception.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from dataclasses import dataclass

from mud_ryu.discovery.framedemux import (
    ETH_IPV4,
    ETH_IPV6,
    LinkFault,
    NotUdp,
    format_mac,
    ip_addresses,
    ipv4_text,
    read_link,
    read_udp,
)

BOOTREPLY, DHCPACK = 2, 5
MAGIC = b"\x63\x82\x53\x63"
OPT_PAD, OPT_END, OPT_ROUTER, OPT_LEASE_TIME, OPT_MSG_TYPE = 0, 255, 3, 51, 53
BOOTP_FIXED = 236
MAX_OPTIONS = 128  # per message, over every nesting level: real messages hold < 20
MAX_ROUTERS = 4
INFINITE = 0xFFFFFFFF  # RFC 2131 s3.3 and RFC 8415 s7.7: a lease (lifetime) that never ends
NO_LEASE_TIME_S = 3600.0  # an ACK must carry option 51 (RFC 2131 s4.3.1); one without it is not trusted for longer

DHCP6_REPLY = 7
OPT6_IA_NA, OPT6_IA_TA, OPT6_IAADDR, OPT6_STATUS = 3, 4, 5, 13
IA_NA_FIXED, IA_TA_FIXED, IAADDR_FIXED = 12, 4, 24  # IAID + T1 + T2; IAID; address + preferred + valid lifetime
MAX_V6_LEASES = 8  # addresses one Reply may bind (the source guard's cap per device)
_CODE_LENGTH = struct.Struct("!HH").unpack_from


@dataclass(frozen=True, slots=True)
class Lease:
    client_mac: str  # chaddr (DHCPv4), the Reply's Ethernet destination (DHCPv6)
    address: str  # yiaddr, or an IA address
    lifetime_s: float = math.inf  # option 51 / the valid lifetime; inf: infinite
    routers: tuple[str, ...] = ()  # option 3 (DHCPv4 only)
    server: str = ""  # the IPv4 source of the ACK (the server or relay agent that sent it); "" for DHCPv6


def scan_ack(frame: bytes) -> Lease | None:
    """The lease a DHCPACK (UDP 67 -> 68) in ``frame`` grants, or None."""
    udp = _udp(frame, ETH_IPV4, (67, 68))
    if udp is None:
        return None
    d, start, end, ip = udp
    if end - start < BOOTP_FIXED + 4 or d[start] != BOOTREPLY or d[start + 1] != 1 or d[start + 2] != 6:
        return None  # Ethernet hardware addresses only
    if d[start + BOOTP_FIXED : start + BOOTP_FIXED + 4] != MAGIC:
        return None
    yiaddr = d[start + 16 : start + 20]
    if yiaddr == b"\0\0\0\0":
        return None
    options = _v4_options(d, start + BOOTP_FIXED + 4, end)
    msg_type = options.get(OPT_MSG_TYPE, b"")
    if len(msg_type) != 1 or msg_type[0] != DHCPACK:
        return None
    lease_time = options.get(OPT_LEASE_TIME, b"")
    lifetime = _lifetime(int.from_bytes(lease_time, "big")) if len(lease_time) == 4 else NO_LEASE_TIME_S
    routers = options.get(OPT_ROUTER, b"")
    named = tuple(dict.fromkeys(ipv4_text(routers[i : i + 4]) for i in range(0, len(routers) - len(routers) % 4, 4)))
    server = ip_addresses(d, 4, ip)[0]
    return Lease(format_mac(d[start + 28 : start + 34]), ipv4_text(yiaddr), lifetime, named[:MAX_ROUTERS], server)


def scan_reply6(frame: bytes) -> tuple[Lease, ...]:
    """The addresses a DHCPv6 Reply (UDP 547 -> 546) in ``frame`` grants its client, or ()."""
    link = read_link(frame)
    if isinstance(link, LinkFault) or link[0][0] & 1:
        return ()  # a Reply to a group address names no client
    udp = _udp(frame, ETH_IPV6, (547, 546))
    if udp is None:
        return ()
    d, start, end, _ip = udp
    if end - start < 4 or d[start] != DHCP6_REPLY:
        return ()
    client = format_mac(d[0:6])
    budget = [MAX_OPTIONS]
    leases: list[Lease] = []
    top = _v6_options(d, start + 4, end, budget)
    if any(c == OPT6_STATUS and ln >= 2 and d[a : a + 2] != b"\0\0" for c, a, ln in top):
        return ()  # the whole request failed (NoAddrsAvail, UnspecFail, ...): nothing in it is leased
    for code, at, length in top:
        fixed = IA_NA_FIXED if code == OPT6_IA_NA else IA_TA_FIXED if code == OPT6_IA_TA else None
        if fixed is None or length < fixed:
            continue
        inner = list(_v6_options(d, at + fixed, at + length, budget))
        if any(c == OPT6_STATUS and ln >= 2 and d[a : a + 2] != b"\0\0" for c, a, ln in inner):
            continue  # the server refused this IA (NoAddrsAvail, NoBinding, ...): nothing in it is leased
        for c, a, ln in inner:
            if c != OPT6_IAADDR or ln < IAADDR_FIXED:
                continue
            valid = int.from_bytes(d[a + 20 : a + 24], "big")
            if valid and len(leases) < MAX_V6_LEASES:  # valid lifetime 0: the server withdraws the address
                leases.append(Lease(client, str(ipaddress.IPv6Address(d[a : a + 16])), _lifetime(valid)))
    return tuple(leases)


def _udp(frame: bytes, ethertype: int, ports: tuple[int, int]) -> tuple[bytes, int, int, int] | None:
    """(frame, payload start, payload end, IP header offset) of a well-formed datagram between ``ports``."""
    link = read_link(frame)
    if isinstance(link, LinkFault):
        return None
    d, _src, _vlan, found, off, _bad = link
    if found != ethertype:
        return None
    udp = read_udp(d, found, off)
    if isinstance(udp, NotUdp | str):
        return None
    sport, dport, start, end, _version, ip, fault = udp
    if (sport, dport) != ports or fault is not None:
        return None
    return d, start, end, ip


def _lifetime(seconds: int) -> float:
    return math.inf if seconds == INFINITE else float(seconds)


def _v4_options(d: bytes, i: int, end: int) -> dict[int, bytes]:
    """The options up to END (the first of each code counts); what an overrun or the budget cut off is not read."""
    found: dict[int, bytes] = {}
    for _ in range(MAX_OPTIONS):
        if i >= end or d[i] == OPT_END:
            break
        if d[i] == OPT_PAD:
            i += 1
            continue
        if i + 2 > end or i + 2 + d[i + 1] > end:
            break
        found.setdefault(d[i], d[i + 2 : i + 2 + d[i + 1]])
        i += 2 + d[i + 1]
    return found


def _v6_options(d: bytes, i: int, end: int, budget: list[int]) -> list[tuple[int, int, int]]:
    """(code, start of value, length) of each option in ``d[i:end]``; stops at an overrun or when the budget
    shared by every nesting level runs out."""
    out: list[tuple[int, int, int]] = []
    while i + 4 <= end and budget[0] > 0:
        budget[0] -= 1
        code, length = _CODE_LENGTH(d, i)
        if i + 4 + length > end:
            break
        out.append((code, i + 4, length))
        i += 4 + length
    return out
