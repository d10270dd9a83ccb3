"""A total, bounded scanner for DHCPv6 client messages, directly or inside Relay-Forward messages.

The enforcer needs the client's message type, its DUID (option 1, Client Identifier) and its MUD
string (option 112, OPTION_MUD_URL_V6, RFC 8520 section 10) from untrusted bytes, without raising.

Decisions (each one returns a stable reason code, never an exception):

* From the client port (546) only client message types are accepted (Solicit, Request, Confirm,
  Renew, Rebind, Release, Decline, Information-request); from the server/relay port (547) only a
  Relay-Forward. Server messages (Advertise, Reply, Reconfigure, Relay-Reply) are
  ``dhcpv6-not-client``: they are not device announcements.
* A Relay-Forward must hold exactly one Relay Message option (9), which is scanned in turn. At most
  ``HOP_COUNT_LIMIT`` (RFC 8415 section 7.6: 8) Relay-Forward wrappers are followed; one more is
  ``dhcpv6-relay-depth``. Options a relay adds (including a 112 of its own) are not the client's and
  are ignored.
* DHCPv6 has no option concatenation: a second 112 is ``dhcpv6-several-urls`` (RFC 7227 singleton,
  RFC 8520: at most one MUD URL), a second option 1 or 9 is ``dhcpv6-duplicate-option``.
* Bounds: the UDP payload is at most ``MAX_MESSAGE`` octets (1,500-octet MTU minus minimal IPv6 and
  UDP headers: an unfragmented message on an Ethernet access link), and at most ``MAX_OPTIONS``
  option instances are read over all nesting levels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RELAY_FORW = 12
HOP_COUNT_LIMIT = 8  # RFC 8415 section 7.6
RELAY_HEADER = 34  # msg-type, hop-count, link-address, peer-address
CLIENT_HEADER = 4  # msg-type, transaction-id

OPT_CLIENTID = 1
OPT_RELAY_MSG = 9
OPT_MUD_URL_V6 = 112

MAX_MESSAGE = 1452  # 1500-octet MTU - 40 (IPv6) - 8 (UDP)
MAX_OPTIONS = 128  # over all nesting levels: real messages hold < 20 per level; bounds the scan time

_CODE_LENGTH = struct.Struct("!HH").unpack_from

# RFC 8415 section 7.3: the messages a client sends.
CLIENT_MESSAGE_TYPES: frozenset[int] = frozenset({1, 3, 4, 5, 6, 8, 9, 11})

REASONS: frozenset[str] = frozenset(
    {
        "dhcpv6-truncated",
        "dhcpv6-too-large",
        "dhcpv6-not-client",
        "dhcpv6-option-overrun",
        "dhcpv6-too-many-options",
        "dhcpv6-duplicate-option",
        "dhcpv6-several-urls",
        "dhcpv6-relay-no-message",
        "dhcpv6-relay-depth",
    }
)


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """What the enforcer needs from a client message; ``relay_hops`` counts Relay-Forward wrappers."""

    msg_type: int
    duid: bytes | None
    mud: bytes | None
    relay_hops: int


def _options(d: bytes, i: int, end: int, wanted: tuple[int, ...], budget: list[int]) -> dict[int, bytes] | str:
    """Values of the ``wanted`` options in ``d[i:end]`` (each at most once); ``budget[0]`` counts down."""
    found: dict[int, bytes] = {}
    left = budget[0]  # a local in the hot loop, written back once
    try:
        while i < end:
            if i + 4 > end:
                return "dhcpv6-option-overrun"
            code, length = _CODE_LENGTH(d, i)  # one C call instead of four indexings
            j = i + 4 + length
            if j > end:
                return "dhcpv6-option-overrun"
            left -= 1
            if left < 0:
                return "dhcpv6-too-many-options"
            if code in wanted:
                if code in found:
                    return "dhcpv6-several-urls" if code == OPT_MUD_URL_V6 else "dhcpv6-duplicate-option"
                found[code] = d[i + 4 : j]
            i = j
        return found
    finally:
        budget[0] = left


def scan(d: bytes, start: int, end: int, *, from_relay: bool) -> ClientMessage | str:
    """Scan the DHCPv6 message ``d[start:end]``; ``from_relay`` is True for UDP source port 547."""
    if end - start > MAX_MESSAGE:
        return "dhcpv6-too-large"
    budget = [MAX_OPTIONS]
    hops = 0
    while True:
        if start >= end:
            return "dhcpv6-truncated"
        msg_type = d[start]
        if msg_type == RELAY_FORW and (from_relay or hops):
            hops += 1
            if hops > HOP_COUNT_LIMIT:
                return "dhcpv6-relay-depth"
            if end - start < RELAY_HEADER:
                return "dhcpv6-truncated"
            found = _options(d, start + RELAY_HEADER, end, (OPT_RELAY_MSG,), budget)
            if isinstance(found, str):
                return found
            inner = found.get(OPT_RELAY_MSG)
            if inner is None:
                return "dhcpv6-relay-no-message"
            # continue with the relayed message as a buffer of its own (bounded by MAX_MESSAGE above)
            d, start, end = inner, 0, len(inner)
            continue
        if msg_type not in CLIENT_MESSAGE_TYPES or (from_relay and not hops):
            return "dhcpv6-not-client"
        if end - start < CLIENT_HEADER:
            return "dhcpv6-truncated"
        found = _options(d, start + CLIENT_HEADER, end, (OPT_CLIENTID, OPT_MUD_URL_V6), budget)
        if isinstance(found, str):
            return found
        return ClientMessage(msg_type, found.get(OPT_CLIENTID), found.get(OPT_MUD_URL_V6), hops)
