"""Which IP addresses a MUD fetch may connect to (THREATS.md row 4: SSRF through the MUD URL).

A device chooses its MUD URL, so without this check any device could make the controller open connections to
the controller host itself, to the cloud metadata service (169.254.169.254), or into the management network.
Every address a MUD host resolves to, and the address the socket finally connected to, goes through
``denied_reason``. Labs whose MUD server sits on a private or loopback address list that network explicitly.

Pure: no DNS, no sockets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# (category, networks). Named categories make the operator's log line say *why* an address was refused.
_DENIED: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),  # incl. the 169.254.169.254 metadata service
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),  # RFC 1918
    ("shared-cgnat", _nets("100.64.0.0/10")),  # RFC 6598
    ("unique-local", _nets("fc00::/7", "fec0::/10")),  # RFC 4193 ULA and deprecated site-local
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    ("broadcast-reserved", _nets("240.0.0.0/4")),  # incl. 255.255.255.255
    # Embedded-IPv4 forms: the IPv4 address inside cannot be checked reliably by every stack, so refuse them all.
    ("v4-mapped", _nets("::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")),
    ("special-purpose", _nets("192.0.0.0/24", "198.18.0.0/15", "100::/64")),  # IETF assignments, benchmarking
)


def parse_address(text: str) -> IPAddress | None:
    """Parse a textual address as returned by getaddrinfo/getpeername (a zone id is never accepted)."""
    if "%" in text:  # fe80::1%eth0: scoped addresses are link-local, and a zone id would slip past comparisons
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def denied_reason(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Return the category that forbids ``address`` (e.g. "loopback"), or None when it may be contacted.

    ``allowed`` networks (lab MUD servers) take precedence over every category.
    """
    for net in allowed:
        if address.version == net.version and address in net:
            return None
    for category, nets in _DENIED:
        for net in nets:
            if address.version == net.version and address in net:
                return category
    # Anything else the IANA special-purpose registries call non-global (Python keeps that list current).
    if not address.is_global:
        return "not-global"
    return None


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse an operator's allow-list ("127.0.0.1", "10.0.0.0/8"); a host address becomes a /32 or /128."""
    return tuple(ipaddress.ip_network(t.strip(), strict=True) for t in texts if t.strip())
