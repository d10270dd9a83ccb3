"""A total, bounded scanner for DHCPv4 client messages: BOOTP header, options, MUD URL (option 161).

Why not a general DHCP parser: the enforcer needs four facts from a client's BOOTREQUEST -- that it
is one, who sent it (``chaddr``), its message type (option 53) and its MUD string (option 161,
RFC 8520 section 10) -- and must get them from hostile bytes without ever raising. Ryu's parser
decodes ``sname``/``file`` as text (an uncaught ``UnicodeDecodeError`` on a non-ASCII byte), stops
at a PAD before 161, returns split 161s as two options, accepts a wrong magic cookie and ignores
option overload (RUNTIME.md). This scanner reads only what it needs, by offset, with every read
checked against the end of the message.

Decisions (each one returns a stable reason code, never an exception):

* Only BOOTREQUEST (op 1) with Ethernet hardware (htype 1, hlen 6) is a device announcement, and its
  ``chaddr`` must equal the Ethernet source MAC (``chaddr-mismatch``): the anti-spoofing check of
  THREATS.md row 1, done here so no caller can forget it.
* Split options are concatenated in order (RFC 3396): options field, then ``file``, then ``sname``.
  Clients never need to split a MUD string (it is at most 255 octets), but RFC 3396 makes a split
  legal, so it is honoured. Several 161 instances whose concatenation holds more than one
  ``://`` are two URLs, not one split URL: ``dhcpv4-several-urls`` (RFC 8520: a client emits at
  most one MUD URL).
* Option overload (52) is HANDLED, not rejected: value 1 scans ``file``, 2 ``sname``, 3 both
  (RFC 2131 section 4.1 order: ``file`` before ``sname``). Option 52 inside an overloaded field,
  a second 52, a length other than 1 or a value outside 1..3 is ``dhcpv4-bad-overload``. Without
  option 52, ``sname`` and ``file`` are opaque and never decoded.
* The options field must end with END (``dhcpv4-no-end``); an overloaded ``file``/``sname`` field
  may end at its own boundary instead (RFC 2131 does not require END there).
* Option 53 and 52 are single-octet, single-instance options: a second instance is
  ``dhcpv4-duplicate-option``, not a concatenation.
* Message type 53 is optional (a plain BOOTP request has none, reported as ``None``); when present
  it must be a client type (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM).
* Bounds: at most ``MAX_MESSAGE`` octets (a 1,500-octet IPv4 MTU minus minimal IPv4 and UDP
  headers) and ``MAX_OPTIONS`` option instances and PAD runs (each run skipped at C speed), so the
  Python-level loop runs at most 128 times whatever the input (under 20 us on a 2-core VM, see
  benchmarks/discovery.py); real clients send fewer than 20 options.
"""

from __future__ import annotations

from dataclasses import dataclass

BOOTREQUEST = 1
HTYPE_ETHERNET = 1
MAGIC_COOKIE = b"\x63\x82\x53\x63"
SNAME = (44, 108)  # offsets of the BOOTP 'sname' field
FILE = (108, 236)  # offsets of the BOOTP 'file' field
CHADDR = 28
COOKIE_AT = 236
OPTIONS_AT = 240

OPT_PAD = 0
OPT_END = 255
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_MUD_URL = 161

MAX_MESSAGE = 1472  # 1500-octet MTU - 20 (IPv4) - 8 (UDP)
MAX_OPTIONS = 128  # option instances + PAD runs over all fields: real clients send < 20; bounds the scan time

_INTERESTING = frozenset({OPT_MUD_URL, OPT_MESSAGE_TYPE, OPT_OVERLOAD})

# DHCP message types a client sends (RFC 2132 section 9.6); server types in a BOOTREQUEST are refused.
CLIENT_MESSAGE_TYPES: frozenset[int] = frozenset({1, 3, 4, 7, 8})  # DISCOVER REQUEST DECLINE RELEASE INFORM

REASONS: frozenset[str] = frozenset(
    {
        "dhcpv4-truncated",
        "dhcpv4-too-large",
        "dhcpv4-not-request",
        "dhcpv4-bad-hardware",
        "chaddr-mismatch",
        "dhcpv4-bad-cookie",
        "dhcpv4-option-overrun",
        "dhcpv4-no-end",
        "dhcpv4-too-many-options",
        "dhcpv4-duplicate-option",
        "dhcpv4-bad-message-type",
        "dhcpv4-not-client",
        "dhcpv4-bad-overload",
        "dhcpv4-several-urls",
    }
)


@dataclass(frozen=True, slots=True)
class Request:
    """What the enforcer needs from a valid BOOTREQUEST. ``mud`` is the raw MUD string, or None."""

    msg_type: int | None
    chaddr: bytes
    mud: bytes | None


class _Options:
    """Accumulates the options of interest while the fields are walked (one instance per message)."""

    __slots__ = ("count", "msg_type", "mud", "overload")

    def __init__(self) -> None:
        self.count = 0
        self.msg_type: int | None = None
        self.overload: int | None = None
        self.mud: list[bytes] = []

    def walk(self, d: bytes, i: int, end: int, *, main: bool) -> str | None:
        """Walk one option field ``d[i:end]``; return a reason code or None when it is well formed."""
        # The hot loop keeps its state in locals and tests the rare codes last: it runs once per option.
        budget = MAX_OPTIONS - self.count
        try:
            while i < end:
                code = d[i]
                if code == OPT_PAD:  # a run of PAD costs one unit of budget and is skipped at C speed
                    budget -= 1
                    if budget < 0:
                        return "dhcpv4-too-many-options"
                    i += 1
                    if i < end and d[i] == OPT_PAD:
                        i = end - len(d[i:end].lstrip(b"\x00"))
                    continue
                if code == OPT_END:
                    return None
                if i + 1 >= end:
                    return "dhcpv4-option-overrun"
                j = i + 2 + d[i + 1]
                if j > end:
                    return "dhcpv4-option-overrun"
                budget -= 1
                if budget < 0:
                    return "dhcpv4-too-many-options"
                if code in _INTERESTING:
                    reason = self._take(code, d, i + 2, j, main)
                    if reason is not None:
                        return reason
                i = j
            return "dhcpv4-no-end" if main else None
        finally:
            self.count = MAX_OPTIONS - budget

    def _take(self, code: int, d: bytes, start: int, end: int, main: bool) -> str | None:
        if code == OPT_MUD_URL:
            self.mud.append(d[start:end])
        elif code == OPT_MESSAGE_TYPE:
            if self.msg_type is not None:
                return "dhcpv4-duplicate-option"
            if end - start != 1:
                return "dhcpv4-bad-message-type"
            self.msg_type = d[start]
        else:  # OPT_OVERLOAD
            if not main or self.overload is not None or end - start != 1 or d[start] not in (1, 2, 3):
                return "dhcpv4-bad-overload"
            self.overload = d[start]
        return None


def scan(d: bytes, start: int, end: int, eth_src: bytes) -> Request | str:
    """Scan the DHCPv4 message ``d[start:end]`` sent from ``eth_src``; a Request or a reason code."""
    n = end - start
    if n < OPTIONS_AT:
        return "dhcpv4-truncated"
    if n > MAX_MESSAGE:
        return "dhcpv4-too-large"
    if d[start] != BOOTREQUEST:
        return "dhcpv4-not-request"
    if d[start + 1] != HTYPE_ETHERNET or d[start + 2] != 6:
        return "dhcpv4-bad-hardware"
    chaddr = d[start + CHADDR : start + CHADDR + 6]
    if chaddr != eth_src:
        return "chaddr-mismatch"
    if d[start + COOKIE_AT : start + OPTIONS_AT] != MAGIC_COOKIE:
        return "dhcpv4-bad-cookie"
    opts = _Options()
    reason = opts.walk(d, start + OPTIONS_AT, end, main=True)
    if reason is None and opts.overload is not None:
        if opts.overload & 1:
            reason = opts.walk(d, start + FILE[0], start + FILE[1], main=False)
        if reason is None and opts.overload & 2:
            reason = opts.walk(d, start + SNAME[0], start + SNAME[1], main=False)
    if reason is not None:
        return reason
    if opts.msg_type is not None and opts.msg_type not in CLIENT_MESSAGE_TYPES:
        return "dhcpv4-not-client"
    mud: bytes | None = None
    if opts.mud:
        mud = b"".join(opts.mud)
        if len(opts.mud) > 1 and mud.count(b"://") > 1:
            return "dhcpv4-several-urls"
    return Request(opts.msg_type, chaddr, mud)
