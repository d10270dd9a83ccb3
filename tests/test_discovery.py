"""scan_frame on valid announcements of each kind, every malformed case of THREATS.md rows 11-13, and the
details the app relies on (identity fields, VLAN, reason codes)."""

from __future__ import annotations

import pytest

from mud_ryu.discovery import dhcpv4 as dhcpv4_scan
from mud_ryu.discovery import dhcpv6 as dhcpv6_scan
from mud_ryu.discovery import lldp as lldp_scan
from mud_ryu.discovery import scan as discovery
from mud_ryu.discovery.scan import (
    NOT_DISCOVERY_KINDS,
    REASONS,
    Announcement,
    Malformed,
    NotDiscovery,
    NoUrl,
    scan_frame,
)
from tests import discovery_frames as df

CASES = df.cases()


@pytest.mark.parametrize(("name", "frame", "expected"), [c[:3] for c in CASES], ids=[c[0] for c in CASES])
def test_case_table(name: str, frame: bytes, expected: str) -> None:
    assert df.describe(scan_frame(frame)) == expected


def test_every_reason_is_reachable() -> None:
    reached = {df.describe(scan_frame(frame)).split("\t")[2] for _, frame, exp, _ in CASES if exp.startswith("malf")}
    reached.add(scan_frame("not a frame").reason)  # type: ignore[arg-type, union-attr]
    assert reached == set(REASONS)


def test_every_not_discovery_kind_is_reachable() -> None:
    kinds = {scan_frame(f).kind for _, f, exp, _ in CASES if exp.startswith("not-")}  # type: ignore[union-attr]
    assert kinds == set(NOT_DISCOVERY_KINDS)


def test_reason_sets_are_disjoint_and_namespaced() -> None:
    parts = [
        discovery.FRAME_REASONS,
        discovery.URL_REASONS,
        dhcpv4_scan.REASONS,
        dhcpv6_scan.REASONS,
        lldp_scan.REASONS,
    ]
    assert sum(len(p) for p in parts) == len(REASONS)
    assert all(r.startswith(("dhcpv6-",)) for r in dhcpv6_scan.REASONS)
    assert all(r.startswith("lldp-") for r in lldp_scan.REASONS)


def test_dhcpv4_identity_fields() -> None:
    got = scan_frame(df.dhcpv4_frame(df.v4_options(msg_type=3), vlan=42))
    assert got == Announcement("dhcpv4", df.DEVICE_MAC, 42, df.URL, msg_type=3, chaddr=df.DEVICE_MAC)


def test_dhcpv4_release_keeps_type_and_chaddr() -> None:
    got = scan_frame(df.dhcpv4_frame(df.v4_options(msg_type=7, url=None)))
    assert got == NoUrl("dhcpv4", df.DEVICE_MAC, None, msg_type=7, chaddr=df.DEVICE_MAC)


def test_chaddr_mismatch_names_the_frame_source() -> None:
    got = scan_frame(df.dhcpv4_frame(chaddr=df.OTHER_MAC))
    assert got == Malformed("dhcpv4", "chaddr-mismatch", df.DEVICE_MAC)


def test_dhcpv6_reports_duid_and_innermost_type() -> None:
    inner = df.dhcpv6(11)  # Information-request
    got = scan_frame(df.dhcpv6_frame(df.relay_forward(df.relay_forward(inner), 1), sport=547, vlan=9))
    assert isinstance(got, Announcement)
    assert (got.protocol, got.vlan, got.msg_type, got.relay_hops) == ("dhcpv6", 9, 11, 2)
    assert got.duid == df.DUID_LL.hex()


def test_dhcpv6_relay_options_are_not_the_clients() -> None:
    """A relay's own 112 next to the Relay Message is ignored: only the client's option counts."""
    extra = df.dhcpv6_option(112, b"https://relay.example.net/x")
    got = scan_frame(df.dhcpv6_frame(df.relay_forward(df.dhcpv6(url=None), extra=extra), sport=547))
    assert isinstance(got, NoUrl) and got.relay_hops == 1


def test_lldp_identity_and_ttl() -> None:
    got = scan_frame(df.lldp_frame(df.lldpdu(ttl=0)))
    assert isinstance(got, Announcement)
    assert got.chassis_id == "04" + df.DEVICE_MAC.replace(":", "") and got.port_id == b"\x05eth0".hex()
    assert got.ttl == 0


def test_lldp_url_of_255_octets_is_accepted() -> None:
    url = "https://mud.example.com/" + "a" * (255 - 24)
    got = scan_frame(df.lldp_frame(df.lldpdu(url=url)))
    assert isinstance(got, Announcement) and got.url == url


def test_lldp_mandatory_order_is_lenient() -> None:
    pdu = (
        df.tlv(3, b"\x00\x78")
        + df.tlv(2, b"\x05eth0")
        + df.tlv(1, b"\x04" + df.mac(df.DEVICE_MAC))
        + df.mud_tlv(df.URL)
    )
    assert isinstance(scan_frame(df.lldp_frame(pdu)), Announcement)


def test_other_iana_subtype_is_not_a_mud_url() -> None:
    pdu = df.lldpdu([df.tlv(127, b"\x00\x00\x5e\x02" + b"https://x.example/y")], url=None)
    assert isinstance(scan_frame(df.lldp_frame(pdu)), NoUrl)


def test_priority_tag_reports_vid_zero() -> None:
    got = scan_frame(df.ethernet(df.lldpdu(), 0x88CC, tags=[(0x8100, 0x6000)]))
    assert isinstance(got, Announcement) and got.vlan == 0


def test_8021ad_single_tag_is_accepted() -> None:
    frame = df.ethernet(df.ipv4(df.udp(df.dhcpv4(df.v4_options()), 68, 67)), 0x0800, tags=[(0x88A8, 100)])
    got = scan_frame(frame)
    assert isinstance(got, Announcement) and got.vlan == 100


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_inputs(kind: type[bytearray] | type[memoryview]) -> None:
    """Ryu delivers packet-in data as a bytearray."""
    assert scan_frame(kind(df.dhcpv4_frame())) == scan_frame(df.dhcpv4_frame())


def test_ethernet_padding_after_ip_is_ignored() -> None:
    assert isinstance(scan_frame(df.dhcpv4_frame() + b"\0" * 18), Announcement)


def test_ipv4_options_are_skipped() -> None:
    frame = df.ethernet(df.ipv4(df.udp(df.dhcpv4(df.v4_options()), 68, 67), options=b"\x94\x04\x00\x00"), 0x0800)
    assert isinstance(scan_frame(frame), Announcement)


def test_overload_sname_only() -> None:
    opts = df.dhcp_option(53, b"\x01") + df.dhcp_option(52, b"\x02") + b"\xff"
    got = scan_frame(df.dhcpv4_frame(opts, sname=df.dhcp_option(161, df.URL.encode()) + b"\xff"))
    assert isinstance(got, Announcement) and got.url == df.URL


def test_without_overload_file_options_are_not_read() -> None:
    opts = df.dhcp_option(53, b"\x01") + b"\xff"
    got = scan_frame(df.dhcpv4_frame(opts, file=df.dhcp_option(161, df.URL.encode()) + b"\xff"))
    assert isinstance(got, NoUrl)


def test_overload_field_may_end_without_end_option() -> None:
    opts = df.dhcp_option(52, b"\x01") + b"\xff"
    url = b"https://mud.example.com/" + b"f" * (126 - 24)
    got = scan_frame(df.dhcpv4_frame(opts, file=df.dhcp_option(161, url)))  # exactly fills 128 octets
    assert isinstance(got, Announcement) and got.url == url.decode()


def test_same_url_twice_is_several_urls() -> None:
    u = df.dhcp_option(161, df.URL.encode())
    got = scan_frame(df.dhcpv4_frame(df.dhcp_option(53, b"\x01") + u + u + b"\xff"))
    assert got == Malformed("dhcpv4", "dhcpv4-several-urls", df.DEVICE_MAC)


def test_non_ethernet_ethertype_below_0600_is_not_discovery() -> None:
    assert scan_frame(df.ethernet(b"\xaa\xaa\x03" + b"\0" * 40, 0x002B)) == NotDiscovery("ethertype")


@pytest.mark.parametrize("n", range(15))
def test_short_frames(n: int) -> None:
    result = scan_frame(df.dhcpv4_frame()[:n])
    assert isinstance(result, Malformed)


@pytest.mark.parametrize("extra", [0, 1])
def test_dhcpv4_option_budget_edge(extra: int) -> None:
    """53 + 161 + END-free fillers: exactly MAX_OPTIONS instances pass, one more is refused."""
    fill = b"\x0c\x00" * (dhcpv4_scan.MAX_OPTIONS - 2 + extra)
    got = scan_frame(df.dhcpv4_frame(df.v4_options(extra=[fill])))
    assert isinstance(got, Announcement) if not extra else got.reason == "dhcpv4-too-many-options"  # type: ignore[union-attr]


def test_dhcpv4_pad_runs_count_against_the_budget() -> None:
    """Alternating PAD and option would double the loop's work; each PAD run costs a unit."""
    fill = b"\x0c\x00\x00" * (dhcpv4_scan.MAX_OPTIONS // 2)
    got = scan_frame(df.dhcpv4_frame(df.v4_options(extra=[fill])))
    assert isinstance(got, Malformed) and got.reason == "dhcpv4-too-many-options"
    long_run = b"\x00" * 600  # one run, however long, is one unit
    assert isinstance(scan_frame(df.dhcpv4_frame(long_run + df.v4_options())), Announcement)


@pytest.mark.parametrize("extra", [0, 1])
def test_dhcpv6_option_budget_spans_relay_levels(extra: int) -> None:
    inner = df.dhcpv6(1, df.dhcpv6_option(1, df.DUID_LL) + df.dhcpv6_option(112, df.URL.encode()))
    # 4 Relay-Forward levels hold one Relay Message option each, the client 2 options: 6 units
    filler = df.dhcpv6_option(20, b"") * (dhcpv6_scan.MAX_OPTIONS - 6 + extra)
    msg = df.relay_forward(inner[:4] + filler + inner[4:], 0)
    for hop in range(1, 4):
        msg = df.relay_forward(msg, hop)
    got = scan_frame(df.dhcpv6_frame(msg, sport=547))
    assert isinstance(got, Announcement) if not extra else got.reason == "dhcpv6-too-many-options"  # type: ignore[union-attr]


@pytest.mark.parametrize("extra", [0, 1])
def test_lldp_tlv_budget_edge(extra: int) -> None:
    pdu = df.lldpdu([df.tlv(8, b"")] * (lldp_scan.MAX_TLVS - 4 + extra))
    got = scan_frame(df.lldp_frame(pdu))
    assert isinstance(got, Announcement) if not extra else got.reason == "lldp-too-many-tlvs"  # type: ignore[union-attr]


def test_group_source_outside_discovery_is_not_discovery() -> None:
    assert scan_frame(df.ethernet(b"\0" * 28, 0x0806, src="01:00:5e:00:00:01")) == NotDiscovery("ethertype")
