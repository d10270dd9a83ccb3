"""DHCPv4 acknowledgements seen on a trusted port: which address the server gave which client (DHCP snooping).

The IP source guard (:mod:`mud_ryu.address_bindings`) binds a leased address to its client when the server's ACK
passes the switch -- before the client uses it -- so no other device can claim it first. Only frames that came in
on a trusted port are read (the caller checks); this parser is total and bounded: any malformed frame is None.
"""

from __future__ import annotations

from dataclasses import dataclass

from mud_ryu.framedemux import ETH_IPV4, LinkFault, NotUdp, format_mac, ipv4_text, read_link, read_udp

BOOTREPLY, DHCPACK = 2, 5
MAGIC = b"\x63\x82\x53\x63"
OPT_PAD, OPT_END, OPT_MSG_TYPE = 0, 255, 53
BOOTP_FIXED = 236
MAX_OPTIONS = 128


@dataclass(frozen=True, slots=True)
class Lease:
    client_mac: str  # chaddr
    address: str  # yiaddr


def scan_ack(frame: bytes) -> Lease | None:
    """The lease a DHCPACK (UDP 67 -> 68) in ``frame`` grants, or None."""
    link = read_link(frame)
    if isinstance(link, LinkFault):
        return None
    d, _src, _vlan, ethertype, off, _bad = link
    if ethertype != ETH_IPV4:
        return None
    udp = read_udp(d, ethertype, off)
    if isinstance(udp, NotUdp | str):
        return None
    sport, dport, start, end, _version, _ip, fault = udp
    if (sport, dport) != (67, 68) or fault is not None or end - start < BOOTP_FIXED + 4:
        return None
    if d[start] != BOOTREPLY or d[start + 1] != 1 or d[start + 2] != 6:  # Ethernet hardware addresses only
        return None
    if d[start + BOOTP_FIXED : start + BOOTP_FIXED + 4] != MAGIC:
        return None
    yiaddr = d[start + 16 : start + 20]
    if yiaddr == b"\0\0\0\0":
        return None
    if _message_type(d, start + BOOTP_FIXED + 4, end) != DHCPACK:
        return None
    return Lease(format_mac(d[start + 28 : start + 34]), ipv4_text(yiaddr))


def _message_type(d: bytes, i: int, end: int) -> int | None:
    for _ in range(MAX_OPTIONS):
        if i >= end:
            return None
        code = d[i]
        if code == OPT_END:
            return None
        if code == OPT_PAD:
            i += 1
            continue
        if i + 2 > end or i + 2 + d[i + 1] > end:
            return None
        if code == OPT_MSG_TYPE and d[i + 1] == 1:
            return d[i + 2]
        i += 2 + d[i + 1]
    return None
