"""Evidence for RUNTIME.md's claim that the app needs its own scanners: frames this scanner reads
correctly that the framework's packet library (loaded through mud_ryu.compat's choice of Ryu or
os-ken) crashes on, misreads or accepts. If the library is ever fixed, these tests say so."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from mud_ryu import compat
from mud_ryu.discovery.scan import Announcement, Malformed, scan_frame
from tests import discovery_frames as df


def _lib(name: str) -> ModuleType:
    return importlib.import_module(f"{compat.FRAMEWORK}.lib.packet.{name}")


def ryu_dhcp_161(frame: bytes) -> list[bytes]:
    """The option-161 values the framework's DHCP parser reports (raises what the parser raises)."""
    pkt = _lib("packet").Packet(frame)
    msg = pkt.get_protocol(_lib("dhcp").dhcp)
    if msg is None or msg.options is None:
        return []
    return [o.value for o in msg.options.option_list if o.tag == 161]


def test_framework_parser_crashes_on_non_ascii_sname() -> None:
    frame = df.dhcpv4_frame(sname=b"\xff\xfe\x80")
    with pytest.raises(UnicodeDecodeError):
        ryu_dhcp_161(frame)
    assert isinstance(scan_frame(frame), Announcement)


def test_framework_parser_misses_url_after_pad() -> None:
    frame = df.dhcpv4_frame(b"\0" + df.v4_options())
    assert ryu_dhcp_161(frame) == []
    got = scan_frame(frame)
    assert isinstance(got, Announcement) and got.url == df.URL


def test_framework_parser_returns_split_161_in_pieces() -> None:
    url = df.URL.encode()
    frame = df.dhcpv4_frame(df.dhcp_option(161, url[:8]) + df.dhcp_option(161, url[8:]) + b"\xff")
    assert ryu_dhcp_161(frame) == [url[:8], url[8:]]
    got = scan_frame(frame)
    assert isinstance(got, Announcement) and got.url == df.URL


def test_framework_parser_accepts_a_wrong_magic_cookie() -> None:
    frame = df.dhcpv4_frame(cookie=b"abcd")
    assert ryu_dhcp_161(frame) == [df.URL.encode()]
    assert scan_frame(frame) == Malformed("dhcpv4", "dhcpv4-bad-cookie", df.DEVICE_MAC)


def test_framework_parser_drops_lldpdu_with_reserved_tlv() -> None:
    frame = df.lldp_frame(df.lldpdu([df.tlv(42, b"??")]))
    pkt = _lib("packet").Packet(frame)
    assert pkt.get_protocol(_lib("lldp").lldp) is None
    assert isinstance(scan_frame(frame), Announcement)
