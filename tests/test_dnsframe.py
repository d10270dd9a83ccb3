"""scan_dns: queries and answers over IPv4/IPv6 (tagged or not), CNAME chains, compression, and one
frame per refusal reason and per not-DNS kind; hypothesis checks totality and the builder round trip."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.dns.frame import (
    MAX_ANSWERS,
    MAX_CNAME_DEPTH,
    MAX_POINTER_HOPS,
    NOT_DNS_KINDS,
    REASONS,
    AddressRecord,
    DnsAnswer,
    DnsQuery,
    DnsScan,
    MalformedDns,
    NotDns,
    read_name,
    scan_dns,
)
from tests import discovery_frames as df
from tests import dns_frames as f

NAME = "cloud.example.com"


def answer(frame: bytes) -> DnsAnswer:
    result = scan_dns(frame)
    assert isinstance(result, DnsAnswer), result
    return result


def ans(*records: bytes, qname: str = NAME, qtype: int = f.A, rcode: int = 0) -> bytes:
    return f.answer_frame(f.response(qname, records, qtype, rcode=rcode))


# ---- what a well-formed message says -------------------------------------------------------------


def test_query_v4() -> None:
    assert scan_dns(f.query_frame(f.query("Cloud.Example.COM.", f.AAAA, txid=7))) == DnsQuery(
        f.DEVICE_MAC, f.DEVICE_IP, f.CLIENT_PORT, f.RESOLVER_IP, None, 7, NAME, f.AAAA
    )


def test_query_v6_tagged_bytearray() -> None:
    frame = f.query_frame(client_ip=f.DEVICE_IP6, resolver_ip=f.RESOLVER_IP6, vlan=12)
    assert scan_dns(bytearray(frame)) == DnsQuery(
        f.DEVICE_MAC, f.DEVICE_IP6, f.CLIENT_PORT, f.RESOLVER_IP6, 12, f.TXID, NAME, f.A
    )
    assert scan_dns(memoryview(frame)) == scan_dns(frame)


def test_answer_identities_are_reversed() -> None:
    frame = f.answer_frame(client_ip=f.DEVICE_IP6, resolver_ip=f.RESOLVER_IP6, dport=5555, vlan=3)
    got = answer(frame)
    assert (got.client_mac, got.client_ip, got.client_port, got.resolver_ip, got.vlan) == (
        f.DEVICE_MAC, f.DEVICE_IP6, 5555, f.RESOLVER_IP6, 3,
    )  # fmt: skip
    assert (got.txid, got.rcode, got.qname, got.qtype, got.chain) == (f.TXID, 0, NAME, f.A, (NAME,))
    assert got.addresses == (AddressRecord("198.51.100.7", 300),)


def test_a_and_aaaa_sorted_deduplicated_lower_ttl_kept() -> None:
    got = answer(
        ans(
            f.a(NAME, "198.51.100.9", 50),
            f.aaaa(NAME, "2001:DB8:0:0::1", 70),
            f.a(f.pointer(12), "198.51.100.7", 80),
            f.a(NAME, "198.51.100.9", 40),
        )
    )
    assert got.addresses == (
        AddressRecord("198.51.100.7", 80),
        AddressRecord("198.51.100.9", 40),
        AddressRecord("2001:db8::1", 70),
    )


def test_cname_chain_minimum_ttl_and_case() -> None:
    got = answer(
        ans(
            f.cname(f.pointer(12), "Edge.CDN.example.net", 600),
            f.cname("edge.cdn.example.net", "e1.cdn.example.net", 30),
            f.a("e1.cdn.example.net", "203.0.113.1", 120),
            f.a("e1.cdn.example.net", "203.0.113.2", 10),
        )
    )
    assert got.chain == (NAME, "edge.cdn.example.net", "e1.cdn.example.net")
    assert got.addresses == (AddressRecord("203.0.113.1", 30), AddressRecord("203.0.113.2", 10))


def test_records_off_the_chain_and_other_sections_are_not_reported() -> None:
    body = f.message(
        [f.question(NAME)],
        [f.a("evil.example.org", "203.0.113.66"), f.a(NAME, "203.0.113.5"), f.rr(NAME, f.TXT, b"\x02hi")],
        flags=f.QR,
        authority=[f.rr("example.com", f.NS, f.name("ns.example.com"))],
        additional=[f.a("ns.example.com", "203.0.113.77"), f.rr("", f.OPT, b"", rclass=1232)],
    )
    got = answer(f.answer_frame(body))
    assert got.addresses == (AddressRecord("203.0.113.5", 300),)
    assert got.other_records == 1


def test_cname_target_compressed_into_earlier_name() -> None:
    # question at 12: "www" at 12, "example" at 16, "com" at 24; the CNAME target "cdn" + ptr(16)
    target = f.labels(b"cdn") + f.pointer(16)
    got = answer(ans(f.cname(f.pointer(12), target), f.a(target, "192.0.2.99"), qname="www.example.com"))
    assert got.chain == ("www.example.com", "cdn.example.com")
    assert got.addresses == (AddressRecord("192.0.2.99", 300),)


def test_nxdomain_and_nodata() -> None:
    got = answer(ans(rcode=3))
    assert (got.rcode, got.addresses, got.chain) == (3, (), (NAME,))
    assert answer(ans(f.cname(NAME, "x.example.net"))).addresses == ()


def test_ttl_with_top_bit_is_zero() -> None:
    assert answer(ans(f.a(NAME, "192.0.2.1", 0x80000001))).addresses == (AddressRecord("192.0.2.1", 0),)


def test_underscore_and_root_names() -> None:
    assert isinstance(scan_dns(f.query_frame(f.query("_sip._udp.example.com", 33))), DnsQuery)
    q = scan_dns(f.query_frame(f.query("", f.NS)))
    assert isinstance(q, DnsQuery) and q.qname == ""


def test_max_depth_chain_is_accepted() -> None:
    names = [NAME] + [f"c{i}.example.net" for i in range(MAX_CNAME_DEPTH)]
    records = [f.cname(names[i], names[i + 1]) for i in range(MAX_CNAME_DEPTH)] + [f.a(names[-1], "192.0.2.1")]
    assert answer(ans(*records)).chain == tuple(names)


def test_pointer_hop_cap_is_inclusive() -> None:
    assert answer(_pointer_chain_frame(MAX_POINTER_HOPS)).addresses == (AddressRecord("192.0.2.1", 300),)


def test_max_answers_accepted() -> None:
    records = [f.a(f.pointer(12), f"10.0.{i // 256}.{i % 256}") for i in range(MAX_ANSWERS)]
    assert len(answer(ans(*records)).addresses) == MAX_ANSWERS


# ---- one frame per reason and per kind ---------------------------------------------------------------


def _v4_raw(udp_payload: bytes, **kw: object) -> bytes:
    return df.ethernet(df.ipv4(udp_payload, src=f.DEVICE_IP, dst=f.RESOLVER_IP, **kw), 0x0800)  # type: ignore[arg-type]


def _v6_raw(udp_seg: bytes, ext: bytes = b"", first: int = 17, **kw: object) -> bytes:
    packet = df.ipv6(ext + udp_seg, next_header=first, **kw)  # type: ignore[arg-type]
    return df.ethernet(packet, 0x86DD)


def _pointer_chain_frame(hops: int) -> bytes:
    """An answer whose second record's owner is reached through ``hops`` pointers, each two octets
    below the previous one: the chain is stored as the RDATA of a skipped TXT record, and its lowest
    pointer targets the question name. Pointers always descend, so only the hop cap stops the walk."""
    q = f.question(NAME)
    rdata_at = 12 + len(q) + 2 + 10  # after the TXT record's owner (a pointer) and its fixed fields
    chain = f.pointer(12) + b"".join(f.pointer(rdata_at + 2 * (i - 1)) for i in range(1, hops - 1))
    last = rdata_at + len(chain) - 2
    records = [f.rr(f.pointer(12), f.TXT, chain), f.a(f.pointer(last), "192.0.2.1")]
    return f.answer_frame(f.message([q], records, flags=f.QR))


QSEG = df.udp(f.query(), f.CLIENT_PORT, 53)
LONG = "a" * 63
POINTER_CHAIN = b"".join(f.pointer(12 + 2 * i) for i in range(20))  # each hop two octets lower

MALFORMED: list[tuple[str, bytes]] = [
    ("eth-truncated", b"\x00" * 13),
    ("eth-truncated", f.query_frame()[:12] + b"\x81\x00\x00"),
    ("eth-too-many-tags", df.ethernet(b"", 0x0800, tags=[(0x88A8, 5), (0x8100, 6)])),
    ("eth-bad-source", f.query_frame(mac="01:00:5e:00:00:01")),
    ("eth-bad-source", f.answer_frame().replace(df.mac(f.ROUTER_MAC), b"\0" * 6)),
    ("ipv4-truncated", df.ethernet(b"\x45" + b"\0" * 10, 0x0800)),
    ("ipv4-truncated", _v4_raw(QSEG, total_length=400)),
    ("ipv4-header", _v4_raw(QSEG, version=5)),
    ("ipv4-header", _v4_raw(QSEG, total_length=10)),
    ("ipv4-checksum", _v4_raw(QSEG, bad_checksum=True)),
    ("ipv6-truncated", df.ethernet(b"\x60" + b"\0" * 20, 0x86DD)),
    ("ipv6-truncated", _v6_raw(QSEG, payload_length=400)),
    ("ipv6-truncated", _v6_raw(b"", ext=df.ext_header(17)[:4], first=0)),
    ("ipv6-truncated", _v6_raw(b"", ext=bytes([17, 5]) + b"\0" * 6, first=0)),
    ("ipv6-header", _v6_raw(QSEG, version=4)),
    ("ipv6-ext-limit", _v6_raw(QSEG, ext=b"".join(df.ext_header(60) for _ in range(8)) + df.ext_header(17), first=60)),
    ("ip-fragment", _v4_raw(QSEG, flags_frag=0x2000)),
    ("ip-fragment", _v6_raw(QSEG, ext=df.fragment_header(17, 0, more=True), first=44)),
    ("udp-truncated", _v4_raw(QSEG[:6])),
    ("udp-length", _v4_raw(df.udp(f.query(), f.CLIENT_PORT, 53, length=9))),
    ("dns-port-mismatch", f.query_frame(dport=5353, sport=53)),
    ("dns-port-mismatch", f.answer_frame(sport=5353, dport=53)),
    ("dns-truncated", f.query_frame(f.query()[:11])),
    ("dns-truncated", f.query_frame(f.query()[:-3])),
    ("dns-truncated", f.query_frame(f.query()[:-5])),
    ("dns-truncated", f.query_frame(f.message([b"\x05cloud"]))),
    ("dns-truncated", f.query_frame(f.message([b"\xc0"]))),
    ("dns-truncated", f.answer_frame(f.response(NAME, [f.a(NAME, "192.0.2.1")])[:-4])),
    ("dns-truncated", f.answer_frame(f.response(NAME, [f.a(NAME, "192.0.2.1")])[:-12])),
    ("dns-truncated", f.answer_frame(f.message([f.question(NAME)], flags=f.QR, counts=(1, 1, 0, 0)))),
    ("dns-tc", f.answer_frame(f.message([f.question(NAME)], flags=f.QR | f.TC))),
    ("dns-qdcount", f.query_frame(f.message([]))),
    ("dns-qdcount", f.query_frame(f.message([f.question(NAME), f.question(NAME)]))),
    ("dns-too-many-answers", ans(*[f.a(f.pointer(12), "192.0.2.1")] * (MAX_ANSWERS + 1))),
    ("dns-label-type", f.query_frame(f.message([b"\x40abc\x00" + b"\0\1\0\1"]))),
    ("dns-label-type", f.query_frame(f.message([b"\x80abc\x00" + b"\0\1\0\1"]))),
    ("dns-label-chars", f.query_frame(f.query("bad name.example"))),
    ("dns-label-chars", f.query_frame(f.query("*.example.com"))),
    ("dns-label-chars", f.query_frame(f.message([f.labels("caf\u00e9".encode()) + b"\0\0\1\0\1"]))),
    ("dns-label-chars", f.query_frame(f.message([f.labels(b"a.b") + b"\0\0\1\0\1"]))),
    ("dns-name-too-long", f.query_frame(f.query(".".join([LONG] * 4)))),
    ("dns-pointer-bad", f.query_frame(f.message([f.pointer(4) + b"\0\1\0\1"]))),
    ("dns-pointer-loop", f.query_frame(f.message([f.pointer(12) + b"\0\1\0\1"]))),
    ("dns-pointer-loop", f.query_frame(f.message([f.labels(b"a") + f.pointer(12) + b"\0\1\0\1"]))),
    ("dns-pointer-loop", f.query_frame(f.message([f.pointer(40) + b"\0\1\0\1" + b"\0" * 40]))),
    ("dns-pointer-limit", _pointer_chain_frame(MAX_POINTER_HOPS + 1)),
    ("dns-rr-class", ans(f.rr(NAME, f.A, b"\1\2\3\4", rclass=3))),
    ("dns-rdata-length", ans(f.rr(NAME, f.A, b"\1\2\3"))),
    ("dns-rdata-length", ans(f.rr(NAME, f.AAAA, b"\1" * 4))),
    ("dns-rdata-length", ans(f.rr(NAME, f.CNAME, f.name("x.example.net") + b"\0"))),
    ("dns-rdata-length", ans(f.rr(NAME, f.CNAME, f.labels(b"x", b"example")))),
    ("dns-cname-conflict", ans(f.cname(NAME, "a.example.net"), f.cname(NAME, "b.example.net"))),
    ("dns-cname-conflict", ans(f.cname(NAME, "a.example.net"), f.a(NAME, "192.0.2.1"))),
    ("dns-cname-loop", ans(f.cname(NAME, "a.example.net"), f.cname("a.example.net", NAME))),
    ("dns-cname-loop", ans(f.cname(NAME, NAME))),
    (
        "dns-cname-depth",
        ans(*[f.cname(([NAME] + [f"c{i}.x" for i in range(9)])[i], f"c{i}.x") for i in range(MAX_CNAME_DEPTH + 1)]),
    ),
]


MALFORMED.append(("not-bytes", "not a frame"))  # type: ignore[arg-type]

NOT_DNS: list[tuple[str, bytes]] = [
    ("ethertype", df.ethernet(b"\0" * 40, 0x0806)),
    ("ip-protocol", _v4_raw(QSEG, proto=6)),
    ("ip-protocol", _v6_raw(QSEG, first=6)),
    ("udp-port", f.query_frame(dport=5353)),
    ("udp-port", _v6_raw(df.udp(b"", 546, 547))),
    ("ip-fragment-tail", _v4_raw(QSEG, flags_frag=0x0010)),
    ("ip-fragment-tail", _v6_raw(QSEG, ext=df.fragment_header(17, 3), first=44)),
    ("dns-opcode", f.query_frame(f.message([f.question(NAME)], flags=5 << 11))),
    ("dns-class", f.query_frame(f.message([f.question("version.bind", f.TXT, qclass=3)]))),
]


@pytest.mark.parametrize(("reason", "frame"), MALFORMED, ids=[r for r, _ in MALFORMED])
def test_malformed(reason: str, frame: bytes) -> None:
    result = scan_dns(frame)
    assert isinstance(result, MalformedDns) and result.reason == reason, result


def test_every_reason_is_reached() -> None:
    assert {r for r, _ in MALFORMED} == REASONS


@pytest.mark.parametrize(("kind", "frame"), NOT_DNS, ids=[k for k, _ in NOT_DNS])
def test_not_dns(kind: str, frame: bytes) -> None:
    assert scan_dns(frame) == NotDns(kind)


def test_every_kind_is_reached() -> None:
    assert {k for k, _ in NOT_DNS} == NOT_DNS_KINDS


def test_malformed_carries_source_and_vlan() -> None:
    assert scan_dns(f.query_frame(f.query()[:5], vlan=9)) == MalformedDns("dns-truncated", f.DEVICE_MAC, 9)


def test_pointer_loop_through_a_label_run_is_refused() -> None:
    # "a" then a pointer back to "a": strictly below the pointer, yet a loop; refused at the second hop.
    body = f.message([f.question(NAME)], [f.labels(b"a") + f.pointer(12 + len(f.question(NAME)))], flags=f.QR)
    result = scan_dns(f.answer_frame(body))
    assert isinstance(result, MalformedDns) and result.reason == "dns-pointer-loop"


# ---- hypothesis ---------------------------------------------------------------------------------------

BASES = [
    f.query_frame(),
    f.query_frame(client_ip=f.DEVICE_IP6, resolver_ip=f.RESOLVER_IP6, vlan=4),
    ans(
        f.cname(f.pointer(12), "edge.example.net", 60),
        f.a("edge.example.net", "192.0.2.1"),
        f.aaaa(f.pointer(12), "::1"),
    ),
    f.answer_frame(
        f.response(NAME, [f.a(f.pointer(12), "192.0.2.7")]), client_ip=f.DEVICE_IP6, resolver_ip=f.RESOLVER_IP6
    ),
]


def _check(result: DnsScan) -> None:
    assert isinstance(result, DnsQuery | DnsAnswer | MalformedDns | NotDns)
    if isinstance(result, MalformedDns):
        assert result.reason in REASONS
    if isinstance(result, NotDns):
        assert result.kind in NOT_DNS_KINDS
    if isinstance(result, DnsAnswer):
        assert 1 <= len(result.chain) <= MAX_CNAME_DEPTH + 1 and len(result.addresses) <= MAX_ANSWERS
        for name in result.chain:
            assert name == name.lower() and not name.endswith(".") and name.isascii()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check(scan_dns(data))
    _check(scan_dns(BASES[0][:14] + data))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(BASES), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_frames_never_raise(base: bytes, edits: list[tuple[int, int]]) -> None:
    frame = bytearray(base)
    for pos, value in edits:
        frame[pos % len(frame)] = value
    _check(scan_dns(bytes(frame)))
    _check(scan_dns(bytes(frame[: edits[0][0] % len(frame)])))


labels_st = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
names_st = st.lists(labels_st, min_size=1, max_size=5).map(".".join)
v4 = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
v6 = st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(names_st, min_size=1, max_size=MAX_CNAME_DEPTH + 1, unique=True),
    st.lists(st.tuples(st.one_of(v4, v6), st.integers(0, 2**31 - 1)), max_size=10, unique_by=lambda x: x[0]),
    st.lists(st.integers(0, 2**31 - 1), min_size=MAX_CNAME_DEPTH, max_size=MAX_CNAME_DEPTH),
    st.integers(0, 0xFFFF),
    st.booleans(),
)
def test_round_trip(
    chain: list[str], addrs: list[tuple[str, int]], cname_ttls: list[int], txid: int, compress: bool
) -> None:
    records = [
        f.cname(f.pointer(12) if compress and i == 0 else chain[i], chain[i + 1], cname_ttls[i])
        for i in range(len(chain) - 1)
    ]
    for addr, ttl in addrs:
        records.append(f.a(chain[-1], addr, ttl) if ":" not in addr else f.aaaa(chain[-1], addr, ttl))
    got = answer(f.answer_frame(f.response(chain[0], records, txid=txid)))
    floor = min(cname_ttls[: len(chain) - 1], default=2**32)
    assert got.chain == tuple(chain) and got.txid == txid
    want = sorted(
        (AddressRecord(str(ipaddress.ip_address(x)), min(t, floor)) for x, t in addrs), key=lambda r: r.address
    )
    assert got.addresses == tuple(want)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BASES[2:]), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4))
def test_name_cache_changes_no_result(base: bytes, edits: list[tuple[int, int]]) -> None:
    # every offset of a (mutated) message read in order with a shared cache, and each one without it
    body = bytearray(base[42:])  # past Ethernet + IPv4 + UDP (the IPv6 frame keeps some header: any bytes do)
    for pos, value in edits:
        body[pos % len(body)] = value
    data = bytes(body)
    cache: dict[int, tuple[str, int, int]] = {}
    for pos in range(12, len(data)):
        assert read_name(data, 0, len(data), pos, cache) == read_name(data, 0, len(data), pos)


def test_name_length_limit_through_a_cached_suffix() -> None:
    qname = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 59])  # 253 wire octets
    fits = ans(f.a(f.labels(b"x") + f.pointer(12), "192.0.2.1"), qname=qname)  # 255 octets
    assert answer(fits).other_records == 1
    too_long = scan_dns(ans(f.a(f.labels(b"xy") + f.pointer(12), "192.0.2.1"), qname=qname))  # 256 octets
    assert isinstance(too_long, MalformedDns) and too_long.reason == "dns-name-too-long"
