"""Ethernet / VLAN / IPv4 / IPv6 / UDP demultiplexing of one raw frame, shared by the frame scanners.

:mod:`mud_ryu.discovery.scan` (DHCPv4, DHCPv6, LLDP) and :mod:`mud_ryu.dns.frame` (DNS) read untrusted
frames punted by the switch. They agree on everything below their own protocol, so that part lives
here once: one place decides what a well-formed link, IP and UDP header is, and both scanners refuse
the same bad frames with the same reason codes (:data:`FRAME_REASONS`).

Two steps, so each scanner keeps its own order of checks:

* :func:`read_link` -- bytes -> :data:`Link` (source MAC, at most one 802.1Q/802.1ad tag, the inner
  EtherType) or :class:`LinkFault`;
* :func:`read_udp` -- an IPv4/IPv6 link -> :data:`Datagram` (the UDP header is present, ports read)
  or a reason string from :data:`FRAME_REASONS`, or :class:`NotUdp` for traffic that is simply
  something else. A datagram carries, unapplied, the refusal that applies only once a scanner claims
  its ports (a fragment is refused, the UDP length must match): a frame to ports nobody reads is
  "not ours", not "malformed".

IPv4: header checks with the header checksum verified (it is always computed in software), no
fragments reassembled (a later fragment is ``ip-fragment-tail``). IPv6: a bounded walk of extension
headers (hop-by-hop, routing, destination, fragment, AH). UDP checksums are deliberately NOT
verified: with checksum offload (veth, virtio) frames reach the switch with partial checksums
(RUNTIME.md), so checking would refuse real devices while buying no safety (the sender controls the
checksum anyway). Pure and bounded: no I/O, every loop capped, work linear in the frame.

Speed: this runs for every punted frame, before the protocol scanners (THREATS.md R6 budget), so the
two results every frame produces (:data:`Link`, :data:`Datagram`) are plain tuples the callers
unpack at once: a NamedTuple or frozen dataclass costs more to build than the whole Ethernet step.
The rare outcomes (faults, not UDP) are NamedTuples.
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

ETH_HEADER = 14
ETH_IPV4, ETH_IPV6, ETH_LLDP = 0x0800, 0x86DD, 0x88CC
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad, pre-standard QinQ
IPPROTO_UDP = 17
IPV6_EXT_HEADERS = frozenset({0, 43, 60, 44, 51})  # hop-by-hop, routing, destination, fragment, AH
IPV6_FRAGMENT, IPV6_AH = 44, 51
MAX_IPV6_EXT_HEADERS = 8

_ZERO_MAC = b"\x00" * 6

# Every reason read_link / read_udp / a Datagram's fault can give (logs, REST API and metrics key on these).
FRAME_REASONS: frozenset[str] = frozenset(
    {
        "not-bytes",
        "eth-truncated",
        "eth-bad-source",  # given by the scanners (they differ on when it matters), see Link
        "eth-too-many-tags",
        "ipv4-header",
        "ipv4-checksum",
        "ipv4-truncated",
        "ipv6-header",
        "ipv6-truncated",
        "ipv6-ext-limit",
        "ip-fragment",
        "udp-truncated",
        "udp-length",
    }
)
# Kinds of NotUdp: traffic that is well-formed as far as read but carries no UDP to look at.
NOT_UDP_KINDS: frozenset[str] = frozenset({"ethertype", "ip-protocol", "ip-fragment-tail"})


def format_mac(raw: bytes) -> str:
    """Lower-case colon hex of a MAC address."""
    return raw.hex(":")


def ipv4_text(raw: bytes) -> str:
    """Dotted-quad text of 4 octets (what ``str(IPv4Address(raw))`` gives, at a fifth of the cost)."""
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def ipv4_checksum_ok(d: bytes, start: int, end: int) -> bool:
    """Whether the IPv4 header ``d[start:end]`` (not all zero) has a valid header checksum.

    Valid means the folded one's-complement sum of its 16-bit words is 0xFFFF, i.e. the sum is a
    positive multiple of 0xFFFF. As 2**16 is 1 modulo 0xFFFF, the header read as one big-endian
    integer is congruent to that sum, so one modulo replaces the word loop (less than half the time).
    """
    return int.from_bytes(d[start:end], "big") % 0xFFFF == 0


# (frame as bytes, source MAC text, VID of the tag -- 0 for a priority tag, None untagged --, inner
# EtherType, offset of the first octet after the Ethernet header, and whether the source MAC is a
# group or all-zero address: such a source names no device, client or resolver)
Link = tuple[bytes, str, int | None, int, int, bool]

# (source port, destination port, offset of the UDP payload, end of the IP payload, IP version 4 or 6,
# offset of the IP header (for ip_addresses), and the refusal that applies if the ports are read:
# "ip-fragment" for a first IPv4 fragment or any IPv6 fragment header (atomic ones included, never
# reassembled), else "udp-length" when the UDP length is not the IP payload's, else None)
Datagram = tuple[int, int, int, int, int, int, str | None]


class LinkFault(NamedTuple):
    """A frame refused at the link layer; ``src`` is None when the frame is too short to hold one."""

    reason: str
    src: str | None
    vlan: int | None


class NotUdp(NamedTuple):
    """Not UDP (or a later IP fragment, which has no UDP header); ``kind`` comes from NOT_UDP_KINDS."""

    kind: str


NOT_IP: Final = NotUdp("ethertype")
NOT_UDP: Final = NotUdp("ip-protocol")
FRAGMENT_TAIL: Final = NotUdp("ip-fragment-tail")


def read_link(frame: bytes | bytearray | memoryview) -> Link | LinkFault:
    """The Ethernet header of ``frame`` (any object: non-bytes give ``not-bytes``). Never raises."""
    if not isinstance(frame, bytes):
        if not isinstance(frame, bytearray | memoryview):
            return LinkFault("not-bytes", None, None)
        frame = bytes(frame)  # Ryu hands packet-in data over as a bytearray
    d = frame
    n = len(d)
    if n < ETH_HEADER:
        return LinkFault("eth-truncated", None, None)
    src_raw = d[6:12]
    src = src_raw.hex(":")
    bad_source = src_raw[0] & 1 == 1 or src_raw == _ZERO_MAC
    ethertype = (d[12] << 8) | d[13]
    if ethertype not in VLAN_TPIDS:
        return (d, src, None, ethertype, ETH_HEADER, bad_source)
    if n < ETH_HEADER + 4:
        return LinkFault("eth-truncated", src, None)
    vlan = ((d[14] << 8) | d[15]) & 0x0FFF
    ethertype = (d[16] << 8) | d[17]
    if ethertype in VLAN_TPIDS:
        return LinkFault("eth-too-many-tags", src, vlan)
    return (d, src, vlan, ethertype, ETH_HEADER + 4, bad_source)


def read_udp(d: bytes, ethertype: int, off: int) -> Datagram | NotUdp | str:
    """The UDP header of the IP packet at ``d[off:]``, a reason from FRAME_REASONS, or NotUdp. Never raises."""
    if ethertype == ETH_IPV4:
        return read_ipv4(d, off)
    if ethertype == ETH_IPV6:
        return read_ipv6(d, off)
    return NOT_IP


def ip_addresses(d: bytes, version: int, ip: int) -> tuple[str, str]:
    """The (source, destination) addresses, canonical text, of the IP header at ``d[ip:]``."""
    if version == 4:
        return ipv4_text(d[ip + 12 : ip + 16]), ipv4_text(d[ip + 16 : ip + 20])
    return str(ipaddress.IPv6Address(d[ip + 8 : ip + 24])), str(ipaddress.IPv6Address(d[ip + 24 : ip + 40]))


def read_ipv4(d: bytes, off: int) -> Datagram | NotUdp | str:
    """:func:`read_udp` of an IPv4 packet at ``d[off:]`` (for callers that dispatch on the EtherType themselves)."""
    n = len(d)
    if n - off < 20:
        return "ipv4-truncated"
    ihl = (d[off] & 0x0F) * 4
    total = (d[off + 2] << 8) | d[off + 3]
    if d[off] >> 4 != 4 or ihl < 20 or total < ihl:
        return "ipv4-header"
    end = off + total
    if end > n:
        return "ipv4-truncated"
    if not ipv4_checksum_ok(d, off, off + ihl):  # the version nibble makes the header non-zero
        return "ipv4-checksum"
    if d[off + 9] != IPPROTO_UDP:
        return NOT_UDP
    frag = (d[off + 6] << 8) | d[off + 7]
    if frag & 0x1FFF:  # a later fragment: no UDP header to tell what it is
        return FRAGMENT_TAIL
    p = off + ihl
    if end - p < 8:
        return "udp-truncated"
    length_ok = (d[p + 4] << 8) | d[p + 5] == end - p
    fault = "ip-fragment" if frag & 0x2000 else None if length_ok else "udp-length"  # see Datagram
    return (d[p] << 8) | d[p + 1], (d[p + 2] << 8) | d[p + 3], p + 8, end, 4, off, fault


def read_ipv6(d: bytes, off: int) -> Datagram | NotUdp | str:
    """:func:`read_udp` of an IPv6 packet at ``d[off:]``: a bounded walk of its extension headers first."""
    n = len(d)
    if n - off < 40:
        return "ipv6-truncated"
    plen = (d[off + 4] << 8) | d[off + 5]
    if d[off] >> 4 != 6 or plen == 0:  # payload length 0 would be a jumbogram: not on an access link
        return "ipv6-header"
    end = off + 40 + plen
    if end > n:
        return "ipv6-truncated"
    nxt, p, fragmented = d[off + 6], off + 40, False
    if nxt in IPV6_EXT_HEADERS:  # the common case has none: no loop set up
        for _ in range(MAX_IPV6_EXT_HEADERS + 1):
            if nxt not in IPV6_EXT_HEADERS:
                break
            if p + 8 > end:
                return "ipv6-truncated"
            if nxt == IPV6_FRAGMENT:
                if ((d[p + 2] << 8) | d[p + 3]) & 0xFFF8:
                    return FRAGMENT_TAIL
                fragmented, size = True, 8
            elif nxt == IPV6_AH:
                size = (d[p + 1] + 2) * 4
            else:
                size = (d[p + 1] + 1) * 8
            nxt, p = d[p], p + size
            if p > end:
                return "ipv6-truncated"
        else:
            return "ipv6-ext-limit"
    if nxt != IPPROTO_UDP:
        return NOT_UDP
    if end - p < 8:
        return "udp-truncated"
    length_ok = (d[p + 4] << 8) | d[p + 5] == end - p
    fault = "ip-fragment" if fragmented else None if length_ok else "udp-length"  # see Datagram
    return (d[p] << 8) | d[p + 1], (d[p + 2] << 8) | d[p + 3], p + 8, end, 6, off, fault
