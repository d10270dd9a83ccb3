"""Frame builders for the discovery tests and benchmark: valid DHCPv4, DHCPv6 and LLDP announcements
and the pieces to break them with, written from the RFCs (not from the scanner under test).

Every layer is a function taking the layer above as bytes, with keyword overrides for the fields a
malformed case needs to get wrong (lengths, checksums, cookies, ports, tags).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Sequence

DEVICE_MAC = "02:00:5e:10:00:01"
OTHER_MAC = "02:00:5e:10:00:99"
BROADCAST = "ff:ff:ff:ff:ff:ff"
LLDP_MULTICAST = "01:80:c2:00:00:0e"
DHCPV6_MULTICAST_MAC = "33:33:00:01:00:02"
URL = "https://mud.example.com/lamp/v1.json"

MAGIC_COOKIE = b"\x63\x82\x53\x63"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ethernet(
    payload: bytes,
    ethertype: int,
    *,
    src: str = DEVICE_MAC,
    dst: str = BROADCAST,
    vlan: int | None = None,
    tags: Sequence[tuple[int, int]] = (),
) -> bytes:
    """An Ethernet II frame; ``vlan`` adds one 802.1Q tag, ``tags`` any (TPID, TCI) stack."""
    stack = list(tags) if tags else ([(0x8100, vlan)] if vlan is not None else [])
    head = mac(dst) + mac(src) + b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in stack)
    return head + struct.pack("!H", ethertype) + payload


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(
    payload: bytes,
    *,
    proto: int = 17,
    src: str = "0.0.0.0",
    dst: str = "255.255.255.255",
    flags_frag: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
    version: int = 4,
    bad_checksum: bool = False,
) -> bytes:
    ihl = (20 + len(options)) // 4
    total = 20 + len(options) + len(payload) if total_length is None else total_length
    src_b = bytes(int(x) for x in src.split("."))
    dst_b = bytes(int(x) for x in dst.split("."))
    head = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, total, 0x1234, flags_frag, 64, proto, 0, src_b, dst_b)
    head += options
    csum = checksum(head) ^ (0xFFFF if bad_checksum else 0)
    head = head[:10] + struct.pack("!H", csum) + head[12:]
    return head + payload


def ipv6(
    payload: bytes,
    *,
    next_header: int = 17,
    src: bytes = bytes.fromhex("fe80000000000000" + "00005efffe100001"),
    dst: bytes = bytes.fromhex("ff020000000000000000000000010002"),
    payload_length: int | None = None,
    version: int = 6,
) -> bytes:
    plen = len(payload) if payload_length is None else payload_length
    return struct.pack("!IHBB", version << 28, plen, next_header, 1) + src + dst + payload


def ext_header(next_header: int, body: bytes = b"\0" * 6) -> bytes:
    """A hop-by-hop/routing/destination-options style extension header (body padded to 8n - 2)."""
    body += b"\0" * (-(len(body) + 2) % 8)
    return bytes([next_header, (len(body) + 2) // 8 - 1]) + body


def fragment_header(next_header: int, offset: int = 0, more: bool = False) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset << 3 | int(more), 0xABCD)


def udp(payload: bytes, sport: int, dport: int, *, length: int | None = None) -> bytes:
    """UDP with checksum 0 (the scanner does not verify UDP checksums, by design)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0) + payload


# ---- DHCPv4 ---------------------------------------------------------------------------------------


def dhcp_option(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def dhcpv4(
    options: bytes,
    *,
    op: int = 1,
    htype: int = 1,
    hlen: int = 6,
    chaddr: str = DEVICE_MAC,
    sname: bytes = b"",
    file: bytes = b"",
    cookie: bytes = MAGIC_COOKIE,
) -> bytes:
    """A BOOTP message; ``options`` is the raw options field (END included by the caller)."""
    head = struct.pack("!BBBBIHH4s4s4s4s", op, htype, hlen, 0, 0x3903F326, 0, 0x8000, b"\0" * 4, *([b"\0" * 4] * 3))
    fixed = head + mac(chaddr).ljust(16, b"\0") + sname.ljust(64, b"\0")[:64] + file.ljust(128, b"\0")[:128]
    return fixed + cookie + options


def v4_options(msg_type: int | None = 1, url: str | bytes | None = URL, extra: Iterable[bytes] = ()) -> bytes:
    """Options field: message type, the MUD URL (option 161), extras, END."""
    out = b"" if msg_type is None else dhcp_option(53, bytes([msg_type]))
    if url is not None:
        out += dhcp_option(161, url.encode() if isinstance(url, str) else url)
    return out + b"".join(extra) + b"\xff"


def dhcpv4_frame(
    options: bytes | None = None,
    *,
    src: str = DEVICE_MAC,
    vlan: int | None = None,
    sport: int = 68,
    dport: int = 67,
    op: int = 1,
    htype: int = 1,
    chaddr: str | None = None,
    sname: bytes = b"",
    file: bytes = b"",
    cookie: bytes = MAGIC_COOKIE,
) -> bytes:
    """A DHCPv4 client frame (default: DISCOVER with the MUD URL); ``chaddr`` defaults to ``src``."""
    msg = dhcpv4(
        v4_options() if options is None else options,
        op=op,
        htype=htype,
        chaddr=src if chaddr is None else chaddr,
        sname=sname,
        file=file,
        cookie=cookie,
    )
    return ethernet(ipv4(udp(msg, sport, dport)), 0x0800, src=src, vlan=vlan)


# ---- DHCPv6 ---------------------------------------------------------------------------------------

DUID_LL = struct.pack("!HH", 3, 1) + mac(DEVICE_MAC)


def dhcpv6_option(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def dhcpv6(msg_type: int = 1, options: bytes | None = None, *, url: str | None = URL) -> bytes:
    """A client message (default Solicit) with Client Identifier and, unless None, option 112."""
    if options is None:
        options = dhcpv6_option(1, DUID_LL) + dhcpv6_option(8, b"\0\0")
        if url is not None:
            options += dhcpv6_option(112, url.encode())
    return bytes([msg_type]) + b"\x12\x34\x56" + options


def relay_forward(inner: bytes, hop_count: int = 0, extra: bytes = b"") -> bytes:
    link = bytes.fromhex("20010db8000000000000000000000001")
    peer = bytes.fromhex("fe80000000000000" + "00005efffe100001")
    return bytes([12, hop_count]) + link + peer + extra + dhcpv6_option(9, inner)


def dhcpv6_frame(
    message: bytes | None = None,
    *,
    src: str = DEVICE_MAC,
    vlan: int | None = None,
    sport: int = 546,
    dport: int = 547,
    ext: bytes = b"",
    first_next_header: int = 17,
) -> bytes:
    msg = dhcpv6() if message is None else message
    return ethernet(
        ipv6(ext + udp(msg, sport, dport), next_header=first_next_header),
        0x86DD,
        src=src,
        dst=DHCPV6_MULTICAST_MAC,
        vlan=vlan,
    )


# ---- LLDP -----------------------------------------------------------------------------------------


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!H", kind << 9 | len(value)) + value


def mud_tlv(url: str | bytes) -> bytes:
    return tlv(127, b"\x00\x00\x5e\x01" + (url.encode() if isinstance(url, str) else url))


def lldpdu(extra: Iterable[bytes] = (), *, url: str | None = URL, ttl: int = 120, end: bool = True) -> bytes:
    """Chassis ID (MAC subtype 4), Port ID (interface name subtype 5), TTL, the MUD TLV, extras, End."""
    out = tlv(1, b"\x04" + mac(DEVICE_MAC)) + tlv(2, b"\x05eth0") + tlv(3, struct.pack("!H", ttl))
    if url is not None:
        out += mud_tlv(url)
    return out + b"".join(extra) + (tlv(0, b"") if end else b"")


def lldp_frame(pdu: bytes | None = None, *, src: str = DEVICE_MAC, vlan: int | None = None) -> bytes:
    return ethernet(lldpdu() if pdu is None else pdu, 0x88CC, src=src, dst=LLDP_MULTICAST, vlan=vlan)


# ---- the case table: every malformed case of THREATS.md rows 11-13, plus the valid edge cases ------


def describe(result: object) -> str:
    """A scan result as one TSV-friendly line: outcome, protocol, then url / reason / kind."""
    from mud_ryu.discovery.scan import Announcement, Malformed, NotDiscovery, NoUrl

    if isinstance(result, Announcement):
        return f"announcement\t{result.protocol}\t{result.url}"
    if isinstance(result, NoUrl):
        return f"no-url\t{result.protocol}\t{result.msg_type}"
    if isinstance(result, Malformed):
        return f"malformed\t{result.protocol or '-'}\t{result.reason}"
    if isinstance(result, NotDiscovery):
        return f"not-discovery\t-\t{result.kind}"
    raise TypeError(f"not a scan result: {result!r}")


def _v4_opts(*opts: bytes) -> bytes:
    return b"".join(opts)


def _url_161(url: bytes) -> bytes:
    return dhcp_option(161, url)


def _mt(t: int) -> bytes:
    return dhcp_option(53, bytes([t]))


def _long_url(n: int) -> str:
    return "https://mud.example.com/" + "a" * (n - len("https://mud.example.com/"))


def _nested(levels: int) -> bytes:
    msg = dhcpv6()
    for hop in range(levels):
        msg = relay_forward(msg, hop_count=hop)
    return msg


def _split_161(url: bytes, *cuts: int) -> bytes:
    bounds = [0, *cuts, len(url)]
    return b"".join(dhcp_option(161, url[a:b]) for a, b in itertools.pairwise(bounds))


def cases() -> list[tuple[str, bytes, str, str]]:
    """(name, frame, expected describe() line, why) for every case the corpus and tests pin down."""
    u = URL.encode()
    end = b"\xff"
    v6o = dhcpv6_option
    c: list[tuple[str, bytes, str, str]] = []

    def add(name: str, frame: bytes, expected: str, why: str) -> None:
        c.append((name, frame, expected, why))

    ann4, ann6, annl = f"announcement\tdhcpv4\t{URL}", f"announcement\tdhcpv6\t{URL}", f"announcement\tlldp\t{URL}"
    # valid DHCPv4 and its legal-but-awkward encodings
    add("v4-valid", dhcpv4_frame(), ann4, "DHCPDISCOVER with option 161")
    add("v4-vlan", dhcpv4_frame(vlan=42), ann4, "same, 802.1Q-tagged (VID 42)")
    add(
        "v4-pad-before-161",
        dhcpv4_frame(_v4_opts(b"\0\0\0", _mt(1), b"\0", _url_161(u), end)),
        ann4,
        "PAD options before 161 (Ryu misses the URL)",
    )
    add(
        "v4-split-161",
        dhcpv4_frame(_v4_opts(_mt(1), _split_161(u, 5, 20), end)),
        ann4,
        "161 split into three instances, concatenated per RFC 3396",
    )
    add(
        "v4-overload-file",
        dhcpv4_frame(_v4_opts(_mt(1), dhcp_option(52, b"\x01"), end), file=_url_161(u) + end),
        ann4,
        "option overload 1: option 161 carried in the BOOTP file field",
    )
    add(
        "v4-overload-both-split",
        dhcpv4_frame(
            _v4_opts(_mt(3), dhcp_option(52, b"\x03"), end), file=_url_161(u[:10]) + end, sname=_url_161(u[10:]) + end
        ),
        f"announcement\tdhcpv4\t{URL}",
        "overload 3: 161 split across file then sname (RFC 3396 order)",
    )
    add(
        "v4-nonascii-sname",
        dhcpv4_frame(sname=b"\xff\xfe\x80", file=b"\xc3(" * 20),
        ann4,
        "non-ASCII sname/file without overload: opaque, ignored (Ryu raises UnicodeDecodeError)",
    )
    add(
        "v4-reserved-part",
        dhcpv4_frame(v4_options(url=URL + " future-ext")),
        ann4,
        "MUD string 'url reserved': the reserved part is ignored (RFC 8520 s10)",
    )
    add("v4-release", dhcpv4_frame(v4_options(msg_type=7, url=None)), "no-url\tdhcpv4\t7", "DHCPRELEASE, no URL")
    add(
        "v4-bootp",
        dhcpv4_frame(v4_options(msg_type=None, url=None)),
        "no-url\tdhcpv4\tNone",
        "plain BOOTP request: no option 53",
    )
    # malformed DHCPv4
    bad4 = "malformed\tdhcpv4\t"
    add(
        "v4-truncated",
        ethernet(ipv4(udp(dhcpv4(b"")[:200], 68, 67)), 0x0800),
        bad4 + "dhcpv4-truncated",
        "BOOTP cut at 200 octets (UDP/IP lengths consistent)",
    )
    add(
        "v4-too-large",
        dhcpv4_frame(v4_options(extra=[dhcp_option(43, b"v" * 250)] * 5)),
        bad4 + "dhcpv4-too-large",
        "DHCP message over 1,472 octets",
    )
    add("v4-bootreply-to-server", dhcpv4_frame(op=2), bad4 + "dhcpv4-not-request", "op=2 sent 68->67")
    add("v4-htype", dhcpv4_frame(htype=6), bad4 + "dhcpv4-bad-hardware", "htype 6 (not Ethernet)")
    add(
        "v4-chaddr-spoof",
        dhcpv4_frame(chaddr=OTHER_MAC),
        bad4 + "chaddr-mismatch",
        "chaddr differs from the Ethernet source (spoofing)",
    )
    add("v4-bad-cookie", dhcpv4_frame(cookie=b"\x63\x82\x53\x64"), bad4 + "dhcpv4-bad-cookie", "magic cookie wrong")
    add(
        "v4-option-overrun",
        dhcpv4_frame(_v4_opts(_mt(1), b"\xa1\xc8" + u)),
        bad4 + "dhcpv4-option-overrun",
        "161 claims 200 octets, 36 follow",
    )
    add(
        "v4-lone-code-at-end",
        dhcpv4_frame(_v4_opts(_mt(1), b"\x0c")),
        bad4 + "dhcpv4-option-overrun",
        "option code with no length octet",
    )
    add("v4-no-end", dhcpv4_frame(_v4_opts(_mt(1), _url_161(u))), bad4 + "dhcpv4-no-end", "END option missing")
    add(
        "v4-many-options",
        dhcpv4_frame(_v4_opts(_mt(1), b"\x0c\x00" * 300, end)),
        bad4 + "dhcpv4-too-many-options",
        "300 empty options",
    )
    add(
        "v4-duplicate-53",
        dhcpv4_frame(_v4_opts(_mt(1), _mt(3), _url_161(u), end)),
        bad4 + "dhcpv4-duplicate-option",
        "two message-type options",
    )
    add(
        "v4-53-length",
        dhcpv4_frame(_v4_opts(dhcp_option(53, b"\x01\x01"), end)),
        bad4 + "dhcpv4-bad-message-type",
        "option 53 of length 2",
    )
    add(
        "v4-offer-in-request",
        dhcpv4_frame(v4_options(msg_type=2)),
        bad4 + "dhcpv4-not-client",
        "DHCPOFFER type inside a BOOTREQUEST",
    )
    add(
        "v4-overload-value",
        dhcpv4_frame(_v4_opts(_mt(1), dhcp_option(52, b"\x04"), end)),
        bad4 + "dhcpv4-bad-overload",
        "option 52 value 4",
    )
    add(
        "v4-overload-nested",
        dhcpv4_frame(_v4_opts(_mt(1), dhcp_option(52, b"\x01"), end), file=dhcp_option(52, b"\x02") + end),
        bad4 + "dhcpv4-bad-overload",
        "option 52 inside the overloaded file field",
    )
    add(
        "v4-two-161",
        dhcpv4_frame(_v4_opts(_mt(1), _url_161(u), _url_161(b"https://evil.example.net/x"), end)),
        bad4 + "dhcpv4-several-urls",
        "two complete MUD URLs",
    )
    add("v4-nonascii-url", dhcpv4_frame(v4_options(url=u + b"\xc3\xa9")), bad4 + "url-non-ascii", "URL with UTF-8")
    add("v4-nul-url", dhcpv4_frame(v4_options(url=u + b"\0")), bad4 + "url-control-char", "NUL-terminated URL")
    add("v4-empty-url", dhcpv4_frame(v4_options(url=b"")), bad4 + "url-empty", "161 of length 0")
    add(
        "v4-split-too-long",
        dhcpv4_frame(_v4_opts(_mt(1), _split_161(_long_url(300).encode(), 200), end)),
        bad4 + "url-too-long",
        "split 161 concatenating to 300 octets",
    )
    add(
        "v4-fragment",
        ethernet(ipv4(udp(dhcpv4(v4_options()), 68, 67), flags_frag=0x2000), 0x0800),
        bad4 + "ip-fragment",
        "first IPv4 fragment (MF set) of a DHCP message",
    )
    add(
        "v4-udp-length",
        ethernet(ipv4(udp(dhcpv4(v4_options()), 68, 67, length=100)), 0x0800),
        bad4 + "udp-length",
        "UDP length disagrees with the IPv4 total length",
    )
    # frame-level malformed
    bad = "malformed\t-\t"
    add("eth-runt", bytes.fromhex("ffffffffffff02005e1000010800")[:13], bad + "eth-truncated", "13-octet frame")
    add("eth-runt-tag", ethernet(b"", 0x8100)[:15], bad + "eth-truncated", "802.1Q tag cut short")
    add(
        "eth-group-source",
        dhcpv4_frame(src="03:00:5e:10:00:01", chaddr="03:00:5e:10:00:01"),
        bad4 + "eth-bad-source",
        "multicast Ethernet source",
    )
    add(
        "eth-qinq",
        ethernet(ipv4(udp(dhcpv4(v4_options()), 68, 67)), 0x0800, tags=[(0x88A8, 10), (0x8100, 20)]),
        bad + "eth-too-many-tags",
        "802.1ad + 802.1Q double tag",
    )
    add(
        "ipv4-version",
        ethernet(ipv4(udp(dhcpv4(v4_options()), 68, 67), version=5), 0x0800),
        bad + "ipv4-header",
        "IP version 5 under EtherType 0x0800",
    )
    add(
        "ipv4-checksum",
        ethernet(ipv4(udp(dhcpv4(v4_options()), 68, 67), bad_checksum=True), 0x0800),
        bad + "ipv4-checksum",
        "IPv4 header checksum wrong",
    )
    add(
        "ipv4-truncated",
        ethernet(ipv4(udp(dhcpv4(v4_options()), 68, 67))[:300], 0x0800),
        bad + "ipv4-truncated",
        "frame ends before the IPv4 total length",
    )
    add("ipv4-runt", ethernet(b"\x45\x00", 0x0800), bad + "ipv4-truncated", "2 octets of IPv4 header")
    add("udp-truncated", ethernet(ipv4(b"\x00\x44\x00"), 0x0800), bad + "udp-truncated", "3 octets of UDP header")
    # DHCPv6
    bad6 = "malformed\tdhcpv6\t"
    add("v6-valid", dhcpv6_frame(), ann6, "Solicit with option 112")
    add("v6-vlan", dhcpv6_frame(vlan=7), ann6, "same, 802.1Q-tagged")
    add("v6-hop-by-hop", dhcpv6_frame(ext=ext_header(17), first_next_header=0), ann6, "after a hop-by-hop header")
    add("v6-relayed-8", dhcpv6_frame(_nested(8), sport=547), ann6, "8 nested Relay-Forward (HOP_COUNT_LIMIT)")
    add("v6-release", dhcpv6_frame(dhcpv6(8, url=None)), "no-url\tdhcpv6\t8", "Release without 112")
    add("v6-relayed-9", dhcpv6_frame(_nested(9), sport=547), bad6 + "dhcpv6-relay-depth", "9 nested Relay-Forward")
    add("v6-empty", dhcpv6_frame(b""), bad6 + "dhcpv6-truncated", "UDP payload empty")
    add("v6-short", dhcpv6_frame(b"\x01\x02"), bad6 + "dhcpv6-truncated", "2-octet Solicit")
    add("v6-too-large", dhcpv6_frame(dhcpv6(1, v6o(16, b"v" * 1450))), bad6 + "dhcpv6-too-large", "1,458-octet msg")
    add("v6-advertise", dhcpv6_frame(dhcpv6(2)), bad6 + "dhcpv6-not-client", "Advertise sent 546->547")
    add("v6-relay-from-client-port", dhcpv6_frame(_nested(1)), bad6 + "dhcpv6-not-client", "Relay-Forward from 546")
    add("v6-solicit-from-relay-port", dhcpv6_frame(sport=547), bad6 + "dhcpv6-not-client", "Solicit from 547")
    add(
        "v6-option-overrun",
        dhcpv6_frame(dhcpv6(1, v6o(1, DUID_LL) + b"\x00\x70\x01\x00" + URL.encode())),
        bad6 + "dhcpv6-option-overrun",
        "112 claims 256 octets",
    )
    add(
        "v6-many-options",
        dhcpv6_frame(dhcpv6(1, v6o(20, b"") * 300)),
        bad6 + "dhcpv6-too-many-options",
        "300 empty options",
    )
    add(
        "v6-two-duid",
        dhcpv6_frame(dhcpv6(1, v6o(1, DUID_LL) * 2)),
        bad6 + "dhcpv6-duplicate-option",
        "two Client Identifier options",
    )
    add(
        "v6-two-112",
        dhcpv6_frame(dhcpv6(1, v6o(112, u) + v6o(112, b"https://evil.example.net/x"))),
        bad6 + "dhcpv6-several-urls",
        "two option 112",
    )
    add(
        "v6-relay-no-msg",
        dhcpv6_frame(relay_forward(dhcpv6())[: -len(dhcpv6()) - 4], sport=547),
        bad6 + "dhcpv6-relay-no-message",
        "Relay-Forward without option 9",
    )
    add("v6-url-control", dhcpv6_frame(dhcpv6(1, v6o(112, u + b"\n"))), bad6 + "url-control-char", "LF in URL")
    add(
        "v6-fragment",
        dhcpv6_frame(ext=fragment_header(17), first_next_header=44),
        bad6 + "ip-fragment",
        "DHCPv6 in a (first) fragment",
    )
    add(
        "v6-udp-length",
        ethernet(ipv6(udp(dhcpv6(), 546, 547, length=20)), 0x86DD),
        bad6 + "udp-length",
        "UDP length disagrees with the IPv6 payload length",
    )
    add(
        "ipv6-version",
        ethernet(ipv6(udp(dhcpv6(), 546, 547), version=4), 0x86DD),
        bad + "ipv6-header",
        "version 4 under EtherType 0x86DD",
    )
    add(
        "ipv6-payload-length",
        ethernet(ipv6(udp(dhcpv6(), 546, 547), payload_length=900), 0x86DD),
        bad + "ipv6-truncated",
        "payload length past the frame",
    )
    add(
        "ipv6-ext-chain",
        dhcpv6_frame(ext=ext_header(60) * 8 + ext_header(17), first_next_header=0),
        bad + "ipv6-ext-limit",
        "9 extension headers",
    )
    # LLDP
    badl = "malformed\tlldp\t"
    add("lldp-valid", lldp_frame(), annl, "LLDPDU with the MUD TLV")
    add("lldp-vlan", lldp_frame(vlan=3), annl, "same, 802.1Q-tagged")
    add("lldp-ttl0", lldp_frame(lldpdu(ttl=0)), annl, "shutdown LLDPDU (TTL 0): reported, not interpreted")
    add(
        "lldp-reserved-tlv",
        lldp_frame(lldpdu([tlv(42, b"??")])),
        annl,
        "reserved TLV type 42 skipped (Ryu gives up on the frame)",
    )
    add("lldp-no-end", lldp_frame(lldpdu(end=False)), annl, "no End TLV, last TLV ends with the frame")
    add("lldp-no-url", lldp_frame(lldpdu(url=None)), "no-url\tlldp\tNone", "LLDPDU without MUD TLV")
    add(
        "lldp-too-large",
        lldp_frame(lldpdu([tlv(127, b"\x00\x12\x0f\x09" + b"x" * 500)] * 3)),
        badl + "lldp-too-large",
        "LLDPDU over 1,500 octets",
    )
    add(
        "lldp-overrun",
        lldp_frame(lldpdu(end=False) + b"\xfe\x40\x00\x00\x5e\x01"),
        badl + "lldp-tlv-overrun",
        "org TLV claims 64 octets, 4 follow",
    )
    add("lldp-odd-byte", lldp_frame(lldpdu(end=False) + b"\xfe"), badl + "lldp-tlv-overrun", "1 octet after TLVs")
    add("lldp-many-tlvs", lldp_frame(lldpdu([tlv(8, b"")] * 130)), badl + "lldp-too-many-tlvs", "130 empty TLVs")
    add(
        "lldp-ttl-short",
        lldp_frame(tlv(1, b"\x04" + mac(DEVICE_MAC)) + tlv(2, b"\x05e") + tlv(3, b"\x01") + mud_tlv(URL)),
        badl + "lldp-bad-mandatory",
        "TTL TLV of 1 octet",
    )
    add(
        "lldp-two-chassis",
        lldp_frame(lldpdu([tlv(1, b"\x04" + mac(OTHER_MAC))])),
        badl + "lldp-duplicate-mandatory",
        "two Chassis ID TLVs",
    )
    add(
        "lldp-no-ttl",
        lldp_frame(tlv(1, b"\x04" + mac(DEVICE_MAC)) + tlv(2, b"\x05e") + mud_tlv(URL)),
        badl + "lldp-missing-mandatory",
        "TTL TLV missing",
    )
    add(
        "lldp-short-org",
        lldp_frame(lldpdu([tlv(127, b"\x00\x00\x5e")])),
        badl + "lldp-short-org-tlv",
        "org TLV of 3 octets",
    )
    add(
        "lldp-two-urls",
        lldp_frame(lldpdu([mud_tlv("https://evil.example.net/x")])),
        badl + "lldp-several-urls",
        "two MUD TLVs",
    )
    add("lldp-url-256", lldp_frame(lldpdu(url=_long_url(256))), badl + "url-too-long", "MUD URL of 256 octets")
    add("lldp-zero-source", lldp_frame(src="00:00:00:00:00:00"), badl + "eth-bad-source", "all-zero Ethernet source")
    # not discovery traffic
    nd = "not-discovery\t-\t"
    add("arp", ethernet(b"\0" * 28, 0x0806), nd + "ethertype", "ARP")
    add("tcp", ethernet(ipv4(b"\0" * 20, proto=6), 0x0800), nd + "ip-protocol", "IPv4 TCP")
    add("dns", ethernet(ipv4(udp(b"\0" * 12, 5353, 53)), 0x0800), nd + "udp-port", "IPv4 UDP to port 53")
    add(
        "v4-fragment-tail",
        ethernet(ipv4(b"\0" * 40, flags_frag=10), 0x0800),
        nd + "ip-fragment-tail",
        "IPv4 fragment at offset 80",
    )
    add(
        "v6-fragment-tail",
        dhcpv6_frame(ext=fragment_header(17, offset=5), first_next_header=44),
        nd + "ip-fragment-tail",
        "IPv6 fragment at offset 40",
    )
    add("v4-offer", dhcpv4_frame(op=2, sport=67, dport=68), nd + "dhcpv4-server", "DHCPOFFER 67->68")
    add("v4-relay", dhcpv4_frame(sport=67, dport=67), nd + "dhcpv4-relay", "relay agent 67->67")
    add("v6-reply", dhcpv6_frame(dhcpv6(7), sport=547, dport=546), nd + "dhcpv6-server", "Reply 547->546")
    return c


def write_corpus(directory: str) -> None:
    """Write the case table as a regression corpus: NAME.hex (32 octets per line), expected.tsv, README.md.

    Run once (``python -m tests.discovery_frames tests/fixtures/discovery``) when cases are added; the
    tests then read the files, not this table, so a change in the builders cannot move the corpus.
    """
    from pathlib import Path

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["# file\toutcome\tprotocol\turl, reason, message type or kind"]
    readme = [
        "# Discovery regression corpus",
        "",
        "Raw Ethernet frames (hex, whitespace ignored) for `mud_ryu.discovery.scan.scan_frame`, one case per file;",
        "`expected.tsv` holds each frame's expected result (outcome, protocol, then the URL, reason code,",
        "message type or not-discovery kind). Generated by `python -m tests.discovery_frames",
        "tests/fixtures/discovery` from `tests/discovery_frames.cases()`; `tests/test_discovery_corpus.py`",
        "reads only these files. Cases follow THREATS.md rows 11-13.",
        "",
        "| file | what it is |",
        "|---|---|",
    ]
    for name, frame, expected, why in cases():
        text = frame.hex()
        (root / f"{name}.hex").write_text("\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n")
        rows.append(f"{name}.hex\t{expected}")
        readme.append(f"| `{name}.hex` | {why} |")
    (root / "expected.tsv").write_text("\n".join(rows) + "\n")
    (root / "README.md").write_text("\n".join(readme) + "\n")


if __name__ == "__main__":
    import sys

    write_corpus(sys.argv[1])
