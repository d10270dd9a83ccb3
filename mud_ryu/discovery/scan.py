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

Layering: :mod:`mud_ryu.discovery.framedemux` reads Ethernet (at most one 802.1Q/802.1ad tag), IPv4 (header
checks, no fragments), IPv6 (a bounded walk of extension headers) and UDP, shared with the DNS scanner;
this module picks the DHCP ports and LLDP, the protocol scanners (:mod:`dhcpv4_scan`,
:mod:`dhcpv6_scan`, :mod:`lldp_scan`) read their payload by offset, and the MUD string check is shared
here. Pure: no framework, no I/O, no clock; work is linear in the frame with every loop capped. UDP
checksums are not verified (checksum offload, see :mod:`mud_ryu.discovery.framedemux`); IPv4 header checksums are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mud_ryu.discovery import dhcpv4 as dhcpv4_scan
from mud_ryu.discovery import dhcpv6 as dhcpv6_scan
from mud_ryu.discovery import lldp as lldp_scan
from mud_ryu.discovery.framedemux import (
    ETH_HEADER,
    ETH_IPV4,
    ETH_IPV6,
    ETH_LLDP,
    FRAME_REASONS,
    IPPROTO_UDP,
    IPV6_AH,
    IPV6_EXT_HEADERS,
    IPV6_FRAGMENT,
    MAX_IPV6_EXT_HEADERS,
    VLAN_TPIDS,
    LinkFault,
    NotUdp,
    format_mac,
    read_ipv4,
    read_ipv6,
    read_link,
)

# The link/IP constants and FRAME_REASONS predate framedemux and are still imported from here.
__all__ = [
    "ETH_HEADER",
    "ETH_IPV4",
    "ETH_IPV6",
    "ETH_LLDP",
    "FRAME_REASONS",
    "IPPROTO_UDP",
    "IPV6_AH",
    "IPV6_EXT_HEADERS",
    "IPV6_FRAGMENT",
    "MAX_IPV6_EXT_HEADERS",
    "MAX_MUD_STRING",
    "NOT_DISCOVERY_KINDS",
    "REASONS",
    "URL_REASONS",
    "VLAN_TPIDS",
    "Announcement",
    "Malformed",
    "NoUrl",
    "NotDiscovery",
    "Protocol",
    "ScanResult",
    "format_mac",
    "mud_string_url",
    "scan_frame",
]

Protocol = Literal["dhcpv4", "dhcpv6", "lldp"]

MAX_MUD_STRING = 255  # RFC 8520 section 10 (the whole MUDstring, reserved part included)

DHCPV4_CLIENT, DHCPV4_SERVER = 68, 67
DHCPV6_CLIENT, DHCPV6_SERVER = 546, 547

_PRINTABLE = bytes(range(0x20, 0x7F))

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
    link = read_link(frame)
    if isinstance(link, LinkFault):
        return Malformed(None, link.reason, link.src, link.vlan)
    d, src, vlan, ethertype, off, bad_source = link
    result: ScanResult
    if ethertype == ETH_LLDP:
        result = _lldp(d, off, src, vlan)
    else:
        if ethertype == ETH_IPV4:
            udp = read_ipv4(d, off)
        elif ethertype == ETH_IPV6:
            udp = read_ipv6(d, off)
        else:
            return NotDiscovery("ethertype")
        if isinstance(udp, NotUdp):
            return NotDiscovery(udp.kind)
        if isinstance(udp, str):
            result = Malformed(None, udp, src, vlan)
        else:
            sport, dport, start, end, version, _, fault = udp
            if version == 4:
                result = _dhcpv4(d, sport, dport, start, end, fault, src, vlan)
            else:
                result = _dhcpv6(d, sport, dport, start, end, fault, src, vlan)
    if not isinstance(result, NotDiscovery) and bad_source:
        # discovery traffic from a group or all-zero source names no device: refused whatever it holds
        return Malformed(result.protocol, "eth-bad-source", src, vlan)
    return result


def _dhcpv4(
    d: bytes, sport: int, dport: int, start: int, end: int, fault: str | None, src: str, vlan: int | None
) -> ScanResult:
    if sport != DHCPV4_CLIENT or dport != DHCPV4_SERVER:
        if sport == DHCPV4_SERVER and dport in (DHCPV4_CLIENT, DHCPV4_SERVER):
            return NotDiscovery("dhcpv4-server" if dport == DHCPV4_CLIENT else "dhcpv4-relay")
        return NotDiscovery("udp-port")
    if fault is not None:  # a first fragment of a DHCP message is refused, never reassembled; or udp-length
        return Malformed("dhcpv4", fault, src, vlan)
    found = dhcpv4_scan.scan(d, start, end, d[6:12])
    if isinstance(found, str):
        return Malformed("dhcpv4", found, src, vlan)
    chaddr = format_mac(found.chaddr)
    if found.mud is None:
        return NoUrl("dhcpv4", src, vlan, msg_type=found.msg_type, chaddr=chaddr)
    url = mud_string_url(found.mud)
    if isinstance(url, tuple):
        return Malformed("dhcpv4", url[0], src, vlan)
    return Announcement("dhcpv4", src, vlan, url, msg_type=found.msg_type, chaddr=chaddr)


def _dhcpv6(
    d: bytes, sport: int, dport: int, start: int, end: int, fault: str | None, src: str, vlan: int | None
) -> ScanResult:
    if dport != DHCPV6_SERVER or sport not in (DHCPV6_CLIENT, DHCPV6_SERVER):
        return NotDiscovery("dhcpv6-server" if (sport, dport) == (DHCPV6_SERVER, DHCPV6_CLIENT) else "udp-port")
    if fault is not None:  # any fragment header, atomic ones included: refused, never reassembled; or udp-length
        return Malformed("dhcpv6", fault, src, vlan)
    found = dhcpv6_scan.scan(d, start, end, from_relay=sport == DHCPV6_SERVER)
    if isinstance(found, str):
        return Malformed("dhcpv6", found, src, vlan)
    duid = None if found.duid is None else found.duid.hex()
    if found.mud is None:
        return NoUrl("dhcpv6", src, vlan, msg_type=found.msg_type, duid=duid, relay_hops=found.relay_hops)
    url = mud_string_url(found.mud)
    if isinstance(url, tuple):
        return Malformed("dhcpv6", url[0], src, vlan)
    return Announcement("dhcpv6", src, vlan, url, msg_type=found.msg_type, duid=duid, relay_hops=found.relay_hops)


def _lldp(d: bytes, off: int, src: str, vlan: int | None) -> ScanResult:
    found = lldp_scan.scan(d, off, len(d))
    if isinstance(found, str):
        return Malformed("lldp", found, src, vlan)
    chassis, port = found.chassis_id.hex(), found.port_id.hex()
    if found.mud is None:
        return NoUrl("lldp", src, vlan, chassis_id=chassis, port_id=port, ttl=found.ttl)
    url = mud_string_url(found.mud)
    if isinstance(url, tuple):
        return Malformed("lldp", url[0], src, vlan)
    return Announcement("lldp", src, vlan, url, chassis_id=chassis, port_id=port, ttl=found.ttl)
