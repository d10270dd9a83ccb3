"""The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, RFC 8190) as data, plus the few blocks
outside them that a fetch must never reach either.

One row per registry entry, in the registries' own order and with their own names, as of the IPv4 registry's and
the IPv6 registry's 2025 revisions (25 entries each; the newest, 100:0:0:1::/64, RFC 9780, dated 2025-04). The
IPv4 entry "192.0.0.170/32, 192.0.0.171/32" lists two addresses and is written here as one row per address.
``reachable`` is the registry's "Globally Reachable" column: True, False, or None for "N/A" and for the
terminated entries (whose columns are empty).

:mod:`mud_ryu.fetch.netguard` derives the SSRF deny-list from this table alone: a block is denied unless the registry
calls it globally reachable *and* no ``refused`` note says why a MUD fetch must not go there anyway. Where blocks
nest (192.0.0.9/32 inside 192.0.0.0/24) the most specific one decides, as the registries' footnotes say.

Pure data and lookups: no DNS, no sockets.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Embeds(enum.Enum):
    """Where an IPv6 block carries an IPv4 address (the address a translator or tunnel would really reach)."""

    LOW_32 = "the last 32 bits"  # ::ffff:0:0/96, ::ffff:0:0:0/96, ::/96, 64:ff9b::/96 (RFC 4291, 2765, 6052)
    RFC6052_LOCAL = "an RFC 6052 /48 or /96 layout"  # 64:ff9b:1::/48: the operator picks the length (RFC 8215)
    SIX_TO_FOUR = "bits 16 to 47"  # 2002:V4ADDR::/48 (RFC 3056)
    TEREDO_CLIENT = "the last 32 bits, inverted"  # the obfuscated client address (RFC 4380, section 4)


class Source(enum.Enum):
    IPV4_REGISTRY = "IANA IPv4 Special-Purpose Address Registry"
    IPV6_REGISTRY = "IANA IPv6 Special-Purpose Address Registry"
    OTHER = "outside the special-purpose registries"


@dataclass(frozen=True, slots=True)
class Block:
    """One address block: a registry entry, or one of the extra blocks at the end of the table."""

    prefix: IPNetwork
    name: str
    rfc: str
    reachable: bool | None  # the registry's "Globally Reachable"; None: N/A or terminated
    source: Source
    refused: str | None = None  # why a globally reachable block is denied all the same
    embeds: Embeds | None = None

    @property
    def denied(self) -> bool:
        return self.reachable is not True or self.refused is not None

    def describe(self) -> str:
        """The reason text naming this entry, e.g. ``Loopback 127.0.0.0/8 (RFC 1122, Section 3.2.1.3)``."""
        why = f"; {self.refused}" if self.refused else ""
        return f"{self.name} {self.prefix} ({self.rfc}{why})"


def _v4(prefix: str, name: str, rfc: str, reachable: bool | None, refused: str | None = None) -> Block:
    return Block(ipaddress.IPv4Network(prefix), name, rfc, reachable, Source.IPV4_REGISTRY, refused)


def _v6(
    prefix: str, name: str, rfc: str, reachable: bool | None, refused: str | None = None, embeds: Embeds | None = None
) -> Block:
    return Block(ipaddress.IPv6Network(prefix), name, rfc, reachable, Source.IPV6_REGISTRY, refused, embeds)


def _other(prefix: str, name: str, rfc: str, embeds: Embeds | None = None) -> Block:
    return Block(ipaddress.ip_network(prefix), name, rfc, False, Source.OTHER, None, embeds)


# Judgements on entries the registries call globally reachable. Anycast service addresses reach the *nearest*
# instance, which may well be run inside the controller's own network (AS112 invites local instances, PCP and
# DNS-SD SRP anycast exist to find the local one); ORCHIDs and DETs are identifiers, not where a server listens.
_ANYCAST = "an anycast service address, never a MUD server"
_IDENTIFIER = "an identifier prefix, not a locator"

IPV4_REGISTRY: tuple[Block, ...] = (
    _v4("0.0.0.0/8", '"This network"', "RFC 791, Section 3.2", False),
    _v4("0.0.0.0/32", '"This host on this network"', "RFC 1122, Section 3.2.1.3", False),
    _v4("10.0.0.0/8", "Private-Use", "RFC 1918", False),
    _v4("100.64.0.0/10", "Shared Address Space", "RFC 6598", False),
    _v4("127.0.0.0/8", "Loopback", "RFC 1122, Section 3.2.1.3", False),
    _v4("169.254.0.0/16", "Link Local", "RFC 3927", False),  # incl. the 169.254.169.254 metadata service
    _v4("172.16.0.0/12", "Private-Use", "RFC 1918", False),
    _v4("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890, Section 2.1", False),
    _v4("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", False),
    _v4("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False),
    _v4("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True, _ANYCAST),
    _v4("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True, _ANYCAST),
    _v4("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 Section 2.2", False),
    _v4("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 Section 2.2", False),
    _v4("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False),
    _v4("192.31.196.0/24", "AS112-v4", "RFC 7535", True, _ANYCAST),
    _v4("192.52.193.0/24", "AMT", "RFC 7450", True, _ANYCAST),
    _v4("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None),
    _v4("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", False),
    _v4("192.168.0.0/16", "Private-Use", "RFC 1918", False),
    _v4("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True, _ANYCAST),
    _v4("198.18.0.0/15", "Benchmarking", "RFC 2544", False),
    _v4("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False),
    _v4("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False),
    _v4("240.0.0.0/4", "Reserved", "RFC 1112, Section 4", False),
    _v4("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 Section 7", False),
)

IPV6_REGISTRY: tuple[Block, ...] = (
    _v6("::1/128", "Loopback Address", "RFC 4291", False),
    _v6("::/128", "Unspecified Address", "RFC 4291", False),
    _v6("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False, embeds=Embeds.LOW_32),
    _v6("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True, embeds=Embeds.LOW_32),
    _v6("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215", False, embeds=Embeds.RFC6052_LOCAL),
    _v6("100::/64", "Discard-Only Address Block", "RFC 6666", False),
    _v6("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False),
    _v6("2001::/23", "IETF Protocol Assignments", "RFC 2928", False),
    _v6("2001::/32", "TEREDO", "RFC 4380, RFC 8190", None, embeds=Embeds.TEREDO_CLIENT),
    _v6("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True, _ANYCAST),
    _v6("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True, _ANYCAST),
    _v6("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True, _ANYCAST),
    _v6("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752", False),
    _v6("2001:3::/32", "AMT", "RFC 7450", True, _ANYCAST),
    _v6("2001:4:112::/48", "AS112-v6", "RFC 7535", True, _ANYCAST),
    _v6("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None),
    _v6("2001:20::/28", "ORCHIDv2", "RFC 7343", True, _IDENTIFIER),
    _v6("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True, _IDENTIFIER),
    _v6("2001:db8::/32", "Documentation", "RFC 3849", False),
    _v6("2002::/16", "6to4", "RFC 3056", None, embeds=Embeds.SIX_TO_FOUR),
    _v6("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True, _ANYCAST),
    _v6("3fff::/20", "Documentation", "RFC 9637", False),
    _v6("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    _v6("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", False),
    _v6("fe80::/10", "Link-Local Unicast", "RFC 4291", False),
)

# Not special-purpose entries, but no unicast server either: multicast, the embedded-IPv4 forms the registry does
# not list, deprecated site-local, and every IPv6 block outside 2000::/3 that RFC 4291 leaves "Reserved by IETF"
# (the three blocks below cover all of it; the entries above that lie inside them are more specific and win).
OTHER_BLOCKS: tuple[Block, ...] = (
    _other("224.0.0.0/4", "IPv4 Multicast", "RFC 5771"),
    _other("ff00::/8", "IPv6 Multicast", "RFC 4291"),
    _other("::/96", "IPv4-Compatible IPv6 Address (deprecated)", "RFC 4291, Section 2.5.5.1", Embeds.LOW_32),
    _other("::ffff:0:0:0/96", "IPv4-translated Address", "RFC 2765, Section 2.1", Embeds.LOW_32),
    _other("fec0::/10", "Site-Local Unicast (deprecated)", "RFC 3879"),
    _other("::/3", "Reserved by IETF (not global unicast 2000::/3)", "RFC 4291"),
    _other("4000::/2", "Reserved by IETF (not global unicast 2000::/3)", "RFC 4291"),
    _other("8000::/1", "Reserved by IETF (not global unicast 2000::/3)", "RFC 4291"),
)

TABLE: tuple[Block, ...] = IPV4_REGISTRY + IPV6_REGISTRY + OTHER_BLOCKS

# Most specific first, so the first block containing an address is the one that decides.
_BY_SPECIFICITY: tuple[Block, ...] = tuple(sorted(TABLE, key=lambda b: -b.prefix.prefixlen))


def lookup(address: IPAddress) -> Block | None:
    """The most specific block of :data:`TABLE` holding ``address``, or None (ordinary unicast space)."""
    for block in _BY_SPECIFICITY:
        if block.prefix.version == address.version and address in block.prefix:
            return block
    return None


def _rfc6052(value: int, length: int) -> ipaddress.IPv4Address:
    """The IPv4 address an RFC 6052 (section 2.2) address with a ``length``-bit prefix carries.

    Bits 64-71 (the "u" octet) are never part of it, so drop them first; the 32 address bits then start at bit
    ``length`` for prefixes up to /64 and at bit 88 for a /96.
    """
    compact = ((value >> 64) << 56) | (value & ((1 << 56) - 1))  # 120 bits: the address without the u octet
    start = length if length <= 64 else length - 8
    return ipaddress.IPv4Address((compact >> (120 - start - 32)) & 0xFFFFFFFF)


def embedded_ipv4(block: Block, address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``address`` (inside ``block``) carries, to be checked against the IPv4 registry."""
    if block.embeds is None or not isinstance(address, ipaddress.IPv6Address):
        return None
    value = int(address)
    if block.embeds is Embeds.LOW_32:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if block.embeds is Embeds.RFC6052_LOCAL:
        # RFC 6052 zeroes the suffix after the IPv4 bits: a /48 layout leaves bits 88-127 zero; a /96 has none.
        return _rfc6052(value, 48 if value & ((1 << 40) - 1) == 0 else 96)
    if block.embeds is Embeds.SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return ipaddress.IPv4Address(~value & 0xFFFFFFFF)  # TEREDO_CLIENT
