"""framedemux: the shared link/IP/UDP layer under discovery and dnsframe. The scanners' own tests cover
every reason through them; these pin what the layer itself promises: the fast IPv4 checksum gives the
verdict of the RFC 1071 folded sum, and port-dependent refusals are carried, not applied."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from mud_ryu.discovery.framedemux import (
    FRAGMENT_TAIL,
    NOT_IP,
    NOT_UDP,
    NOT_UDP_KINDS,
    LinkFault,
    ip_addresses,
    ipv4_checksum_ok,
    read_link,
    read_udp,
)
from tests import discovery_frames as df


def _folded_sum_ok(header: bytes) -> bool:
    s: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


@given(st.binary(min_size=20, max_size=60).filter(lambda b: len(b) % 4 == 0 and any(b)))
def test_checksum_matches_folded_sum_on_any_header(header: bytes) -> None:
    assert ipv4_checksum_ok(header, 0, len(header)) == _folded_sum_ok(header)


@given(st.integers(0, 0xFFFF), st.binary(min_size=0, max_size=40).filter(lambda b: len(b) % 4 == 0))
def test_checksum_accepts_exactly_the_right_checksum(other: int, options: bytes) -> None:
    valid = df.ipv4(b"", src="10.0.0.1", dst="10.0.0.2", options=options)
    assert ipv4_checksum_ok(valid, 0, len(valid))
    changed = valid[:10] + struct.pack("!H", other) + valid[12:]
    assert ipv4_checksum_ok(changed, 0, len(changed)) == _folded_sum_ok(changed)


def test_link_reads_tags_and_source_kind() -> None:
    frame = df.ethernet(b"", 0x0800, vlan=0x2005, src="02:00:00:00:00:01")
    assert read_link(bytearray(frame)) == (frame, "02:00:00:00:00:01", 5, 0x0800, 18, False)
    assert read_link(df.ethernet(b"", 0x86DD)) == (df.ethernet(b"", 0x86DD), df.DEVICE_MAC, None, 0x86DD, 14, False)
    for group_or_zero in ("01:00:5e:00:00:01", "00:00:00:00:00:00"):
        assert read_link(df.ethernet(b"", 0x0800, src=group_or_zero))[-1] is True
    assert read_link(b"short") == LinkFault("eth-truncated", None, None)
    assert read_link("text") == LinkFault("not-bytes", None, None)  # type: ignore[arg-type]
    qinq = df.ethernet(b"", 0x0800, tags=[(0x88A8, 7), (0x8100, 9)])
    assert read_link(qinq) == LinkFault("eth-too-many-tags", df.DEVICE_MAC, 7)


def test_udp_carries_port_dependent_faults_unapplied() -> None:
    good = df.ipv4(df.udp(b"x", 1000, 53), src="10.0.0.1", dst="10.0.0.2")
    assert read_udp(good, 0x0800, 0) == (1000, 53, 28, 29, 4, 0, None)
    assert ip_addresses(good, 4, 0) == ("10.0.0.1", "10.0.0.2")
    long_udp = df.ipv4(df.udp(b"x", 1000, 53, length=99))
    assert read_udp(long_udp, 0x0800, 0)[-1] == "udp-length"
    first_fragment = df.ipv4(df.udp(b"x", 1000, 53), flags_frag=0x2000)
    assert read_udp(first_fragment, 0x0800, 0)[-1] == "ip-fragment"
    v6 = df.ipv6(df.fragment_header(17) + df.udp(b"", 546, 547), next_header=44)
    assert read_udp(v6, 0x86DD, 0)[-1] == "ip-fragment"
    assert ip_addresses(v6, 6, 0) == ("fe80::5eff:fe10:1", "ff02::1:2")


def test_not_udp_outcomes() -> None:
    assert read_udp(b"", 0x88CC, 0) is NOT_IP
    assert read_udp(df.ipv4(b"\0" * 20, proto=6), 0x0800, 0) is NOT_UDP
    assert read_udp(df.ipv4(df.udp(b"", 1, 2), flags_frag=5), 0x0800, 0) is FRAGMENT_TAIL
    assert {k.kind for k in (NOT_IP, NOT_UDP, FRAGMENT_TAIL)} == NOT_UDP_KINDS
