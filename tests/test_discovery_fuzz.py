"""Property tests: scan_frame is total on random and mutated frames, and the legal encodings of one
announcement (PAD, RFC 3396 splits, overload, tags) all mean the same thing."""

from __future__ import annotations

import itertools
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.discovery.scan import (
    NOT_DISCOVERY_KINDS,
    REASONS,
    Announcement,
    Malformed,
    NotDiscovery,
    NoUrl,
    ScanResult,
    scan_frame,
)
from tests import discovery_frames as df

BASES = [
    df.dhcpv4_frame(),
    df.dhcpv4_frame(vlan=5),
    df.dhcpv4_frame(
        df.dhcp_option(53, b"\x03") + df.dhcp_option(52, b"\x03") + b"\xff",
        file=df.dhcp_option(161, df.URL.encode()[:9]) + b"\xff",
        sname=df.dhcp_option(161, df.URL.encode()[9:]) + b"\xff",
    ),
    df.dhcpv6_frame(),
    df.dhcpv6_frame(df.relay_forward(df.relay_forward(df.dhcpv6())), sport=547, vlan=3),
    df.dhcpv6_frame(ext=df.ext_header(60, b"\0" * 14) + df.ext_header(17), first_next_header=0),
    df.lldp_frame(),
    df.lldp_frame(df.lldpdu([df.tlv(5, b"host"), df.tlv(42, b"x")]), vlan=1),
]

URL_CHARS = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%"


def check(result: ScanResult) -> None:
    """The invariants every result keeps, whatever the input."""
    assert isinstance(result, Announcement | NoUrl | Malformed | NotDiscovery)
    if isinstance(result, Malformed):
        assert result.reason in REASONS
    elif isinstance(result, NotDiscovery):
        assert result.kind in NOT_DISCOVERY_KINDS
    else:
        assert len(result.src_mac) == 17 and result.src_mac == result.src_mac.lower()
        assert result.vlan is None or 0 <= result.vlan < 4096
    if isinstance(result, Announcement):
        assert 0 < len(result.url) <= 255
        assert result.url.isascii() and result.url.isprintable() and " " not in result.url


@settings(max_examples=1500)
@given(st.binary(max_size=1600))
def test_random_bytes(data: bytes) -> None:
    check(scan_frame(data))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del frame[pos:]
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del frame[pos : pos + draw(st.integers(1, 16))]
    return bytes(frame)


@settings(max_examples=3000)
@given(mutated())
def test_mutated_frames(frame: bytes) -> None:
    check(scan_frame(frame))


# Structure-aware: valid headers around random payloads reach deep into the option/TLV walks,
# which random frames almost never do (IP/UDP lengths and checksums have to line up first).


@settings(max_examples=1500)
@given(st.binary(max_size=1300), st.binary(max_size=64), st.binary(max_size=128))
def test_random_dhcpv4_options(options: bytes, sname: bytes, file: bytes) -> None:
    check(scan_frame(df.dhcpv4_frame(b"\x34\x01\x03" + options, sname=sname, file=file)))
    check(scan_frame(df.dhcpv4_frame(options, sname=sname, file=file)))


@settings(max_examples=1500)
@given(st.binary(max_size=1400), st.sampled_from([546, 547]))
def test_random_dhcpv6_payload(payload: bytes, sport: int) -> None:
    check(scan_frame(df.dhcpv6_frame(payload, sport=sport)))
    check(scan_frame(df.dhcpv6_frame(b"\x0c\x00" + b"\0" * 32 + payload, sport=547)))


@settings(max_examples=1500)
@given(st.lists(st.tuples(st.integers(0, 127), st.binary(max_size=40)), max_size=40), st.binary(max_size=8))
def test_random_lldp_tlvs(tlvs: list[tuple[int, bytes]], tail: bytes) -> None:
    check(scan_frame(df.lldp_frame(df.lldpdu([df.tlv(t, v) for t, v in tlvs]) + tail)))
    check(scan_frame(df.lldp_frame(b"".join(df.tlv(t, v) for t, v in tlvs) + tail)))


urls = st.text(URL_CHARS, min_size=1, max_size=255 - 8).map(lambda s: "https://" + s)


@given(urls, st.integers(0, 4095) | st.none())
def test_any_printable_url_round_trips_on_every_protocol(url: str, vlan: int | None) -> None:
    frames = [
        df.dhcpv4_frame(df.v4_options(url=url), vlan=vlan),
        df.dhcpv6_frame(df.dhcpv6(url=url), vlan=vlan),
        df.lldp_frame(df.lldpdu(url=url), vlan=vlan),
    ]
    for frame in frames:
        got = scan_frame(frame)
        assert isinstance(got, Announcement) and (got.url, got.vlan) == (url, vlan)


@given(urls, st.data())
def test_rfc3396_splits_and_pads_do_not_change_the_url(url: str, data: st.DataObject) -> None:
    raw = url.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    bounds = [0, *cuts, len(raw)]
    pieces = [df.dhcp_option(161, raw[a:b]) for a, b in itertools.pairwise(bounds)]
    opts = [df.dhcp_option(53, b"\x01"), *pieces, df.dhcp_option(12, b"host")]
    pads = data.draw(st.lists(st.integers(0, 3), min_size=len(opts), max_size=len(opts)))
    options = b"".join(b"\0" * p + o for p, o in zip(pads, opts, strict=True)) + b"\xff" + b"\0" * 8
    got = scan_frame(df.dhcpv4_frame(options))
    if raw.count(b"://") > 1 and len(pieces) > 1:
        assert isinstance(got, Malformed) and got.reason == "dhcpv4-several-urls"
    else:
        assert isinstance(got, Announcement) and got.url == url
