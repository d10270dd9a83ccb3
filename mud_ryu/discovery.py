"""MUD URL discovery: one raw Ethernet frame (a packet-in's data) -> what it announces, or why not.

Devices announce their MUD URL in DHCPv4 option 161, DHCPv6 option 112 or an LLDP TLV (RFC 8520
section 10). The frames come from untrusted devices, so :func:`scan_frame` is total: for any bytes
it returns exactly one of

* :class:`Announcement` -- a well-formed client message carrying a MUD URL (printable ASCII, at most
  255 octets; the URL gate decides later whether it may be fetched);
* :class:`NoUrl` -- a well-formed client message without one (DHCP RELEASE handling needs its type);
* :class:`Malformed` -- a frame that claims to be one of the three but breaks a rule, with a stable
  reason code from :data:`REASONS`;
* :class:`NotDiscovery` -- anything else (other EtherTypes, protocols, ports, server replies), with a
  kind from :data:`NOT_DISCOVERY_KINDS` for counters.

Layering: this module demultiplexes Ethernet (at most one 802.1Q/802.1ad tag), IPv4 (header checks,
no fragments), IPv6 (a bounded walk of extension headers) and UDP; the protocol scanners
(:mod:`dhcpv4_scan`, :mod:`dhcpv6_scan`, :mod:`lldp_scan`) read their payload by offset; the MUD
string check is shared here. Pure: no framework, no I/O, no clock; work is linear in the frame with
every loop capped.

UDP checksums are deliberately NOT verified: with checksum offload (veth, virtio) frames reach the
switch with partial checksums (RUNTIME.md), so checking would refuse real devices while buying no
safety (the sender controls the checksum anyway). The IPv4 header checksum is always computed in
software and is checked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from mud_ryu import dhcpv4_scan, dhcpv6_scan, lldp_scan

Protocol = Literal["dhcpv4", "dhcpv6", "lldp"]

ETH_HEADER = 14
ETH_IPV4, ETH_IPV6, ETH_LLDP = 0x0800, 0x86DD, 0x88CC
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad, pre-standard QinQ
IPPROTO_UDP = 17
IPV6_EXT_HEADERS = frozenset({0, 43, 60, 44, 51})  # hop-by-hop, routing, destination, fragment, AH
IPV6_FRAGMENT, IPV6_AH = 44, 51
MAX_IPV6_EXT_HEADERS = 8
MAX_MUD_STRING = 255  # RFC 8520 section 10 (the whole MUDstring, reserved part included)

DHCPV4_CLIENT, DHCPV4_SERVER = 68, 67
DHCPV6_CLIENT, DHCPV6_SERVER = 546, 547

_PRINTABLE = bytes(range(0x20, 0x7F))

FRAME_REASONS: frozenset[str] = frozenset(
    {
        "not-bytes",
        "eth-truncated",
        "eth-bad-source",
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
URL_REASONS: frozenset[str] = frozenset({"url-empty", "url-too-long", "url-non-ascii", "url-control-char"})

# Every reason a Malformed can carry (the log, REST API and metrics key on these strings).
REASONS: frozenset[str] = FRAME_REASONS | URL_REASONS | dhcpv4_scan.REASONS | dhcpv6_scan.REASONS | lldp_scan.REASONS

NOT_DISCOVERY_KINDS: frozenset[str] = frozenset(
    {"ethertype", "ip-protocol", "udp-port", "ip-fragment-tail", "dhcpv4-server", "dhcpv4-relay", "dhcpv6-server"}
)


@dataclass(frozen=True, slots=True)
class Announcement:
    """A well-formed client message carrying a MUD URL.

    ``url`` is the MUD string up to its first space (RFC 8520: a reserved part may follow, and
    managers that do not understand it MUST ignore it). ``vlan`` is the VID of the frame's tag (0 for
    a priority tag), None when untagged. Per protocol: ``msg_type`` is the DHCPv4 option 53 value
    (None for plain BOOTP) or the DHCPv6 type of the client's own message; ``chaddr`` (DHCPv4, equal
    to ``src_mac``); ``duid`` the DHCPv6 Client Identifier in hex and ``relay_hops`` the number of
    Relay-Forward wrappers; ``chassis_id``/``port_id`` (LLDP, hex of subtype + value) and ``ttl``
    (LLDP; 0 is a shutdown LLDPDU, which must not delete trust state).
    """

    protocol: Protocol
    src_mac: str
    vlan: int | None
    url: str
    msg_type: int | None = None
    chaddr: str | None = None
    duid: str | None = None
    relay_hops: int = 0
    chassis_id: str | None = None
    port_id: str | None = None
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class NoUrl:
    """A well-formed client message without a MUD URL; fields as in :class:`Announcement`."""

    protocol: Protocol
    src_mac: str
    vlan: int | None
    msg_type: int | None = None
    chaddr: str | None = None
    duid: str | None = None
    relay_hops: int = 0
    chassis_id: str | None = None
    port_id: str | None = None
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that claims to be discovery traffic but breaks a rule. ``protocol`` is None when the
    frame broke before its protocol was known (Ethernet, IP headers); ``src_mac`` when too short."""

    protocol: Protocol | None
    reason: str
    src_mac: str | None
    vlan: int | None = None


@dataclass(frozen=True, slots=True)
class NotDiscovery:
    """Not DHCPv4/DHCPv6/LLDP client traffic; ``kind`` (from NOT_DISCOVERY_KINDS) says what it was."""

    kind: str


ScanResult = Announcement | NoUrl | Malformed | NotDiscovery


def format_mac(raw: bytes) -> str:
    """Lower-case colon hex of a MAC address."""
    return raw.hex(":")


def mud_string_url(raw: bytes) -> str | tuple[str]:
    """The URL of a raw MUD string, or a 1-tuple holding the reason it is refused."""
    if len(raw) > MAX_MUD_STRING:
        return ("url-too-long",)
    if not raw.isascii():
        return ("url-non-ascii",)
    if raw.translate(None, _PRINTABLE):
        return ("url-control-char",)
    url = raw.decode("ascii").split(" ", 1)[0]
    return url if url else ("url-empty",)


def scan_frame(frame: bytes | bytearray | memoryview) -> ScanResult:
    """Classify one raw Ethernet frame. Never raises; see the module docstring for the four outcomes."""
    if not isinstance(frame, bytes):
        if not isinstance(frame, bytearray | memoryview):
            return Malformed(None, "not-bytes", None)
        frame = bytes(frame)  # Ryu hands packet-in data over as a bytearray
    d = frame
    n = len(d)
    if n < ETH_HEADER:
        return Malformed(None, "eth-truncated", None)
    src_raw = d[6:12]
    src = format_mac(src_raw)
    ethertype = (d[12] << 8) | d[13]
    off = ETH_HEADER
    vlan: int | None = None
    if ethertype in VLAN_TPIDS:
        if n < ETH_HEADER + 4:
            return Malformed(None, "eth-truncated", src)
        vlan = ((d[14] << 8) | d[15]) & 0x0FFF
        ethertype = (d[16] << 8) | d[17]
        off += 4
        if ethertype in VLAN_TPIDS:
            return Malformed(None, "eth-too-many-tags", src, vlan)
    if ethertype == ETH_LLDP:
        result = _lldp(d, off, n, src, vlan)
    elif ethertype == ETH_IPV4:
        result = _ipv4(d, off, n, src_raw, src, vlan)
    elif ethertype == ETH_IPV6:
        result = _ipv6(d, off, n, src, vlan)
    else:
        return NotDiscovery("ethertype")
    if (d[6] & 1 or src_raw == b"\x00" * 6) and not isinstance(result, NotDiscovery):
        # discovery traffic from a group or all-zero source names no device: refused whatever it holds
        return Malformed(result.protocol, "eth-bad-source", src, vlan)
    return result


def _ipv4(d: bytes, off: int, n: int, src_raw: bytes, src: str, vlan: int | None) -> ScanResult:
    if n - off < 20:
        return Malformed(None, "ipv4-truncated", src, vlan)
    ihl = (d[off] & 0x0F) * 4
    if d[off] >> 4 != 4 or ihl < 20:
        return Malformed(None, "ipv4-header", src, vlan)
    total = (d[off + 2] << 8) | d[off + 3]
    if total < ihl:
        return Malformed(None, "ipv4-header", src, vlan)
    if off + total > n:
        return Malformed(None, "ipv4-truncated", src, vlan)
    if _checksum(d, off, off + ihl) != 0xFFFF:
        return Malformed(None, "ipv4-checksum", src, vlan)
    if d[off + 9] != IPPROTO_UDP:
        return NotDiscovery("ip-protocol")
    frag = (d[off + 6] << 8) | d[off + 7]
    if frag & 0x1FFF:  # a later fragment: no UDP header to tell what it is
        return NotDiscovery("ip-fragment-tail")
    l4, end = off + ihl, off + total
    if end - l4 < 8:
        return Malformed(None, "udp-truncated", src, vlan)
    sport, dport = (d[l4] << 8) | d[l4 + 1], (d[l4 + 2] << 8) | d[l4 + 3]
    if (sport, dport) != (DHCPV4_CLIENT, DHCPV4_SERVER):
        if sport == DHCPV4_SERVER and dport in (DHCPV4_CLIENT, DHCPV4_SERVER):
            return NotDiscovery("dhcpv4-server" if dport == DHCPV4_CLIENT else "dhcpv4-relay")
        return NotDiscovery("udp-port")
    if frag & 0x2000:  # first fragment of a DHCP message: refused, never reassembled
        return Malformed("dhcpv4", "ip-fragment", src, vlan)
    if (d[l4 + 4] << 8) | d[l4 + 5] != end - l4:
        return Malformed("dhcpv4", "udp-length", src, vlan)
    found = dhcpv4_scan.scan(d, l4 + 8, end, src_raw)
    if isinstance(found, str):
        return Malformed("dhcpv4", found, src, vlan)
    chaddr = format_mac(found.chaddr)
    if found.mud is None:
        return NoUrl("dhcpv4", src, vlan, msg_type=found.msg_type, chaddr=chaddr)
    url = mud_string_url(found.mud)
    if isinstance(url, tuple):
        return Malformed("dhcpv4", url[0], src, vlan)
    return Announcement("dhcpv4", src, vlan, url, msg_type=found.msg_type, chaddr=chaddr)


def _checksum(d: bytes, start: int, end: int) -> int:
    """The folded one's-complement sum of the 16-bit words of ``d[start:end]`` (even length)."""
    s: int = sum(struct.unpack_from(f"!{(end - start) // 2}H", d, start))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _ipv6(d: bytes, off: int, n: int, src: str, vlan: int | None) -> ScanResult:
    if n - off < 40:
        return Malformed(None, "ipv6-truncated", src, vlan)
    plen = (d[off + 4] << 8) | d[off + 5]
    if d[off] >> 4 != 6 or plen == 0:  # payload length 0 would be a jumbogram: not on an access link
        return Malformed(None, "ipv6-header", src, vlan)
    end = off + 40 + plen
    if end > n:
        return Malformed(None, "ipv6-truncated", src, vlan)
    nxt, p = d[off + 6], off + 40
    fragmented = False
    for _ in range(MAX_IPV6_EXT_HEADERS + 1):
        if nxt not in IPV6_EXT_HEADERS:
            break
        if p + 8 > end:
            return Malformed(None, "ipv6-truncated", src, vlan)
        if nxt == IPV6_FRAGMENT:
            if ((d[p + 2] << 8) | d[p + 3]) & 0xFFF8:
                return NotDiscovery("ip-fragment-tail")
            fragmented, size = True, 8
        elif nxt == IPV6_AH:
            size = (d[p + 1] + 2) * 4
        else:
            size = (d[p + 1] + 1) * 8
        nxt, p = d[p], p + size
        if p > end:
            return Malformed(None, "ipv6-truncated", src, vlan)
    else:
        return Malformed(None, "ipv6-ext-limit", src, vlan)
    if nxt != IPPROTO_UDP:
        return NotDiscovery("ip-protocol")
    if end - p < 8:
        return Malformed(None, "udp-truncated", src, vlan)
    sport, dport = (d[p] << 8) | d[p + 1], (d[p + 2] << 8) | d[p + 3]
    if dport != DHCPV6_SERVER or sport not in (DHCPV6_CLIENT, DHCPV6_SERVER):
        return NotDiscovery("dhcpv6-server" if (sport, dport) == (DHCPV6_SERVER, DHCPV6_CLIENT) else "udp-port")
    if fragmented:  # any fragment header, atomic ones included: refused, never reassembled
        return Malformed("dhcpv6", "ip-fragment", src, vlan)
    if (d[p + 4] << 8) | d[p + 5] != end - p:
        return Malformed("dhcpv6", "udp-length", src, vlan)
    found = dhcpv6_scan.scan(d, p + 8, end, from_relay=sport == DHCPV6_SERVER)
    if isinstance(found, str):
        return Malformed("dhcpv6", found, src, vlan)
    duid = None if found.duid is None else found.duid.hex()
    if found.mud is None:
        return NoUrl("dhcpv6", src, vlan, msg_type=found.msg_type, duid=duid, relay_hops=found.relay_hops)
    url = mud_string_url(found.mud)
    if isinstance(url, tuple):
        return Malformed("dhcpv6", url[0], src, vlan)
    return Announcement("dhcpv6", src, vlan, url, msg_type=found.msg_type, duid=duid, relay_hops=found.relay_hops)


def _lldp(d: bytes, off: int, n: int, src: str, vlan: int | None) -> ScanResult:
    found = lldp_scan.scan(d, off, n)
    if isinstance(found, str):
        return Malformed("lldp", found, src, vlan)
    chassis, port = found.chassis_id.hex(), found.port_id.hex()
    if found.mud is None:
        return NoUrl("lldp", src, vlan, chassis_id=chassis, port_id=port, ttl=found.ttl)
    url = mud_string_url(found.mud)
    if isinstance(url, tuple):
        return Malformed("lldp", url[0], src, vlan)
    return Announcement("lldp", src, vlan, url, chassis_id=chassis, port_id=port, ttl=found.ttl)
