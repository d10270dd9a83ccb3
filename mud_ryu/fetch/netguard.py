"""Which IP addresses a MUD fetch may connect to (THREATS.md row 4: SSRF through the MUD URL).

A device chooses its MUD URL, so without this check any device could make the controller open connections to
the controller host itself, to the cloud metadata service (169.254.169.254), or into the management network.
Every address a MUD host resolves to, and the address the socket finally connected to, goes through
``denied_reason``. Labs whose MUD server sits on a private or loopback address list that network explicitly.

The deny-list is :mod:`mud_ryu.fetch.special_purpose`: the IANA special-purpose registries, one row per entry, plus
multicast and the reserved IPv6 space outside 2000::/3. Everything else is ordinary unicast and allowed.

Pure: no DNS, no sockets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from mud_ryu.fetch import special_purpose

IPAddress = special_purpose.IPAddress
IPNetwork = special_purpose.IPNetwork


def parse_address(text: str) -> IPAddress | None:
    """Parse a textual address as returned by getaddrinfo/getpeername (a zone id is never accepted)."""
    if "%" in text:  # fe80::1%eth0: scoped addresses are link-local, and a zone id would slip past comparisons
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def denied_reason(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` must not be contacted, naming the table entry that forbids it; None when it may be.

    The entries are :data:`mud_ryu.fetch.special_purpose.TABLE`. An address in a block that carries an IPv4 address
    (IPv4-mapped, -translated, -compatible, NAT64, 6to4, Teredo) is also judged by that IPv4 address, so
    64:ff9b::7f00:1 is refused as 127.0.0.1 while 64:ff9b::808:808 (8.8.8.8 through a NAT64) is not.
    ``allowed`` networks (lab MUD servers) take precedence, for the address exactly as given: allowing
    127.0.0.1 does not allow ::ffff:127.0.0.1 or 64:ff9b::7f00:1.
    """
    for net in allowed:
        if address.version == net.version and address in net:
            return None
    block = special_purpose.lookup(address)
    if block is None:
        return None
    inner = special_purpose.embedded_ipv4(block, address)
    inner_block = special_purpose.lookup(inner) if inner is not None else None
    if inner_block is not None and inner_block.denied:
        return f"{block.describe()} carrying {inner}, {inner_block.describe()}"
    return block.describe() if block.denied else None


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse an operator's allow-list ("127.0.0.1", "10.0.0.0/8"); a host address becomes a /32 or /128."""
    return tuple(ipaddress.ip_network(t.strip(), strict=True) for t in texts if t.strip())
