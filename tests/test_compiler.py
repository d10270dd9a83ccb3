"""Unit tests of the flow compiler: one rule kind at a time, cookies and metadata."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mud_ryu.compiler.compile import (
    CompileError,
    build_switch,
    compile_profile,
    compile_switch,
    device_rules,
    pipeline_rules,
    profile_cookie_selectors,
    static_forward_rules,
)
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, DeviceSpec, NetworkContext
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import (
    ACE_STEP,
    DST_MANAGED_BIT,
    DST_MFG_MASK,
    DST_PROFILE_MASK,
    SRC_MANAGED_BIT,
    SRC_MFG_MASK,
    SRC_PROFILE_MASK,
    TABLES,
    Band,
    CookieKind,
    parse_cookie,
    verify_rule,
)
from mud_ryu.compiler.portmask import port_match_values, range_to_masks
from mud_ryu.mudfile.model import (
    Ace,
    Direction,
    EthMatch,
    Forwarding,
    IcmpMatch,
    IpMatch,
    Matches,
    MudMatch,
    PortMatch,
    TcpMatch,
    UdpMatch,
)
from tests.compiler_helpers import DEV_MAC, MUD_URL, acl, eq, mudfile, tcp_ace, udp_ace

PID = 7
DEV = DeviceSpec(DEV_MAC, device_port=3, uplink_port=9, device_id=42)
CTX = NetworkContext(dns={"api.example.com": ("192.0.2.10", "2001:db8::10")})


def md(rule: FlowRule) -> tuple[int, int]:
    value = rule.match_dict()["metadata"]
    assert isinstance(value, tuple) and isinstance(value[0], int) and isinstance(value[1], int)
    return value[0], value[1]


# --- port ranges -------------------------------------------------------------------------
@given(st.integers(0, 65535), st.integers(0, 65535))
def test_range_decomposition_covers_exactly_the_range(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    blocks = range_to_masks(lo, hi)
    assert len(blocks) <= 30
    covered = 0
    for value, mask in blocks:
        assert value & ~mask & 0xFFFF == 0
        size = (~mask & 0xFFFF) + 1
        assert lo <= value and value + size - 1 <= hi  # inside the range
        covered += size
    assert covered == hi - lo + 1  # and disjoint blocks inside it: exactly the range
    for probe in {lo, hi, max(0, lo - 1), min(65535, hi + 1), (lo + hi) // 2}:
        hit = sum(1 for v, m in blocks if probe & m == v)
        assert hit == (1 if lo <= probe <= hi else 0)


@pytest.mark.parametrize(
    ("pm", "expected"),
    [
        (PortMatch("eq", port=80), (80,)),
        (PortMatch("gte", port=0), (None,)),
        (PortMatch("lt", port=0), ()),
        (PortMatch("gt", port=65535), ()),
        (PortMatch("lte", port=1), ((0, 0xFFFE),)),
        (PortMatch("neq", port=0), (1, *((1 << i, (0xFFFF << i) & 0xFFFF) for i in range(1, 16)))),
        (PortMatch("range", lower=1024, upper=2047), ((1024, 0xFC00),)),
    ],
)
def test_port_operators(pm: PortMatch, expected: tuple[object, ...]) -> None:
    assert port_match_values(pm) == expected


# --- pipeline and device flows ------------------------------------------------------------
def test_pipeline_rules_miss_deny_bootstrap() -> None:
    rules = pipeline_rules()
    misses = [r for r in rules if r.priority == Band.MISS]
    assert {(r.table, r.goto) for r in misses} == {(t.name, t.next_table) for t in TABLES if t.next_table}
    denies = {r.table: r for r in rules if r.priority == Band.DEFAULT_DENY}
    assert denies["from_device"].is_drop and md(denies["from_device"]) == (SRC_MANAGED_BIT, SRC_MANAGED_BIT)
    assert denies["to_device"].is_drop and md(denies["to_device"]) == (DST_MANAGED_BIT, DST_MANAGED_BIT)
    boot = [r for r in rules if r.priority == Band.BOOTSTRAP]
    from_types = {r.match_dict().get("icmpv6_type") for r in boot if r.table == "from_device"}
    to_types = {r.match_dict().get("icmpv6_type") for r in boot if r.table == "to_device"}
    assert 134 not in from_types and 134 in to_types  # a device may not send router advertisements
    assert 133 in from_types and 133 not in to_types
    dhcp_from = {
        (r.match_dict().get("udp_src"), r.match_dict().get("udp_dst")) for r in boot if r.table == "from_device"
    }
    assert (68, 67) in dhcp_from and (546, 547) in dhcp_from and (67, 68) not in dhcp_from
    assert all(parse_cookie(r.cookie).kind == CookieKind.PIPELINE for r in rules)


def test_device_rules_three_flows_with_metadata_and_cookie() -> None:
    rules = device_rules(DEV, PID, 5)
    assert len(rules) == 3
    src, spoof, dst = rules
    assert src.match_dict() == {"in_port": 3, "eth_src": DEV_MAC}
    assert src.write_metadata is not None and src.write_metadata[0] & SRC_PROFILE_MASK == PID
    assert src.write_metadata[0] & SRC_MANAGED_BIT and (src.write_metadata[0] & SRC_MFG_MASK) >> 32 == 5
    assert spoof.match_dict() == {"eth_src": DEV_MAC} and spoof.is_drop
    assert src.priority > spoof.priority  # the device's own port wins over the anti-spoof drop
    assert dst.match_dict() == {"eth_dst": DEV_MAC} and dst.goto == "from_device"
    assert dst.write_metadata is not None and (dst.write_metadata[0] & DST_PROFILE_MASK) >> 16 == PID
    for r in rules:
        parts = parse_cookie(r.cookie)
        assert (parts.kind, parts.owner) == (CookieKind.DEVICE, 42)


@pytest.mark.parametrize(
    "dev",
    [DeviceSpec("zz:00:00:00:00:01", 1, 2), DeviceSpec("01:00:5e:00:00:01", 1, 2), DeviceSpec(DEV_MAC, 0, 2)],
)
def test_bad_device_rejected(dev: DeviceSpec) -> None:
    with pytest.raises(CompileError) as err:
        device_rules(dev, PID, 1)
    assert err.value.reason == "bad-device"


def test_static_forwarding() -> None:
    fwd = {r.priority: r for r in static_forward_rules(DEV)}
    assert [a.port for r in fwd.values() for a in r.actions] == [3, 3, 9]
    assert all(parse_cookie(r.cookie).kind == CookieKind.FORWARD for r in fwd.values())


# --- ACEs -----------------------------------------------------------------------------------
def test_ace_order_is_descending_priority_and_drop_has_no_goto() -> None:
    mud = mudfile(
        from_device=(
            acl(
                "a", tcp_ace("first", dst_port=eq(443)), tcp_ace("second", dst_port=eq(80), forwarding=Forwarding.DROP)
            ),
            acl("b", udp_ace("third", 123)),
        )
    )
    prof = compile_profile(mud, CTX, PID)
    by_port = {r.match_dict().get("tcp_dst", r.match_dict().get("udp_dst")): r for r in prof.rules}
    assert by_port[443].priority == Band.ACE_TOP - 1 and by_port[443].goto == "to_device"
    assert by_port[80].priority == Band.ACE_TOP - ACE_STEP - 1 and by_port[80].is_drop
    assert by_port[123].priority == Band.ACE_TOP - 2 * ACE_STEP - 1
    for r in prof.rules:
        verify_rule(r)
        assert md(r) == (PID | SRC_MANAGED_BIT, SRC_PROFILE_MASK | SRC_MANAGED_BIT)
        assert (parse_cookie(r.cookie).kind, parse_cookie(r.cookie).owner) == (CookieKind.PROFILE, PID)
    assert [c.flows for c in prof.ace_flows] == [1, 1, 1]


def test_to_device_rules_match_destination_profile() -> None:
    mud = mudfile(to_device=(acl("t", udp_ace("ntp", 123, to_device=True)),))
    (rule,) = compile_profile(mud, CTX, PID).rules
    assert rule.table == "to_device" and rule.goto == "forward"
    assert md(rule) == ((PID << 16) | DST_MANAGED_BIT, DST_PROFILE_MASK | DST_MANAGED_BIT)
    assert rule.match_dict()["udp_src"] == 123


@pytest.mark.parametrize(
    ("acl_dir", "initiated", "guard"),
    [
        (Direction.FROM_DEVICE, Direction.FROM_DEVICE, False),
        (Direction.FROM_DEVICE, Direction.TO_DEVICE, True),
        (Direction.TO_DEVICE, Direction.FROM_DEVICE, True),
        (Direction.TO_DEVICE, Direction.TO_DEVICE, False),
    ],
)
def test_direction_initiated_syn_guard(acl_dir: Direction, initiated: Direction, guard: bool) -> None:
    a = acl("x", tcp_ace("web", dst_port=eq(443), initiated=initiated))
    mud = mudfile(from_device=(a,)) if acl_dir is Direction.FROM_DEVICE else mudfile(to_device=(a,))
    rules = compile_profile(mud, CTX, PID).rules
    guards = [r for r in rules if "tcp_flags" in r.match_dict()]
    if not guard:
        assert not guards and len(rules) == 1
        return
    (g,) = guards
    (main,) = [r for r in rules if r is not g]
    assert g.is_drop and g.match_dict()["tcp_flags"] == (0x002, 0x012)
    assert g.priority == main.priority + 1
    assert {k: v for k, v in g.match if k != "tcp_flags"} == main.match_dict()


def test_drop_ace_gets_no_syn_guard() -> None:
    a = acl("x", tcp_ace("web", dst_port=eq(443), initiated=Direction.TO_DEVICE, forwarding=Forwarding.DROP))
    (rule,) = compile_profile(mudfile(from_device=(a,)), CTX, PID).rules
    assert rule.is_drop and "tcp_flags" not in rule.match_dict()


def test_match_fields() -> None:
    ip = IpMatch(4, protocol=17, dscp=10, ecn=1, src_network="10.1.0.0/16", dst_network="192.0.2.7/32")
    eth = EthMatch(src_mac="00:00:5E:00:53:01", dst_mac="01:00:5e:00:00:00", dst_mac_mask="ff:ff:ff:00:00:00")
    ace = Ace(
        "m",
        Matches(eth=eth, ipv4=ip, udp=UdpMatch(src_port=PortMatch("range", lower=4096, upper=8191))),
        Forwarding.ACCEPT,
    )
    (rule,) = compile_profile(mudfile(from_device=(acl("a", ace),)), CTX, PID).rules
    m = rule.match_dict()
    assert m["eth_src"] == DEV_MAC and m["eth_dst"] == ("01:00:5e:00:00:00", "ff:ff:ff:00:00:00")
    assert m["eth_type"] == 0x0800 and m["ip_proto"] == 17 and m["ip_dscp"] == 10 and m["ip_ecn"] == 1
    assert m["ipv4_src"] == ("10.1.0.0", "255.255.0.0") and m["ipv4_dst"] == "192.0.2.7"
    assert m["udp_src"] == (4096, 0xF000)


def test_icmp_by_family_and_flow_label() -> None:
    v6 = Ace(
        "p6", Matches(ipv6=IpMatch(6, protocol=58, flow_label=5), icmp=IcmpMatch(type=128, code=0)), Forwarding.ACCEPT
    )
    v4 = Ace("p4", Matches(ipv4=IpMatch(4), icmp=IcmpMatch(type=8)), Forwarding.ACCEPT)
    mud = mudfile(from_device=(acl("a6", v6, family=6), acl("a4", v4)))
    rules = compile_profile(mud, CTX, PID).rules
    m6, m4 = (r.match_dict() for r in rules)
    assert m6 == {**m6, "eth_type": 0x86DD, "ip_proto": 58, "icmpv6_type": 128, "icmpv6_code": 0, "ipv6_flabel": 5}
    assert m4 == {**m4, "eth_type": 0x0800, "ip_proto": 1, "icmpv4_type": 8}


@pytest.mark.parametrize(
    ("matches", "reason"),
    [
        (Matches(ipv4=IpMatch(4, unsupported=("ttl",))), "unsupported-match"),
        (Matches(ipv4=IpMatch(4), tcp=TcpMatch(unsupported=("flags",))), "unsupported-match"),
        (Matches(udp=UdpMatch(unsupported=("length",))), "unsupported-match"),
        (Matches(ipv4=IpMatch(4, protocol=17), tcp=TcpMatch()), "conflicting-match"),
        (Matches(eth=EthMatch(ethertype=0x86DD), ipv4=IpMatch(4)), "conflicting-match"),
        (Matches(ipv4=IpMatch(4, flow_label=1)), "conflicting-match"),
    ],
)
def test_unenforceable_matches_are_refused(matches: Matches, reason: str) -> None:
    mud = mudfile(from_device=(acl("a", Ace("bad", matches, Forwarding.ACCEPT)),))
    with pytest.raises(CompileError) as err:
        compile_profile(mud, CTX, PID)
    assert err.value.reason == reason and err.value.path == "from-device/a/bad"


# --- address sets ---------------------------------------------------------------------------
def test_dns_name_expands_per_family_with_address_set_cookie() -> None:
    mud = mudfile(from_device=(acl("a", tcp_ace("api", dst_dnsname="api.example.com", dst_port=eq(443))),))
    prof = compile_profile(mud, CTX, PID)
    (rule,) = prof.rules
    assert rule.match_dict()["ipv4_dst"] == "192.0.2.10"  # IPv6 member filtered out of an IPv4 ACL
    parts = parse_cookie(rule.cookie)
    assert (parts.kind, parts.owner, parts.sub) == (CookieKind.ADDRESS_SET, PID, 1)
    assert prof.address_sets[0].keys == ("dns:api.example.com",)
    (sel,) = profile_cookie_selectors(PID, sub=1)
    assert rule.cookie & sel[1] == sel[0]
    assert any(rule.cookie & m == c for c, m in profile_cookie_selectors(PID))


def test_unresolved_name_accept_emits_nothing_and_warns() -> None:
    mud = mudfile(from_device=(acl("a", tcp_ace("api", dst_dnsname="unknown.example", dst_port=eq(443))),))
    prof = compile_profile(mud, CTX, PID)
    assert prof.rules == ()
    assert {"unresolved-address-set", "empty-ace"} <= {w.reason for w in prof.warnings}
    assert prof.ace_flows[0].flows == 0


def test_cross_product_of_two_sets() -> None:
    ctx = NetworkContext(
        dns={"a.example": ("192.0.2.1", "192.0.2.2")},
        local_networks=("10.0.0.0/8", "192.0.2.0/24"),
    )
    ace = Ace(
        "x",
        Matches(
            ipv4=IpMatch(4, src_dnsname="a.example", dst_network="198.51.100.0/24"), mud=MudMatch(local_networks=True)
        ),
        Forwarding.ACCEPT,
    )
    # to-device: remote side is the source: a.example AND local-networks -> the two /32s
    rules = compile_profile(mudfile(to_device=(acl("a", ace),)), ctx, PID).rules
    assert sorted(r.match_dict()["ipv4_src"] for r in rules) == ["192.0.2.1", "192.0.2.2"]
    assert {r.match_dict()["ipv4_dst"] for r in rules} == {("198.51.100.0", "255.255.255.0")}


def test_controller_and_my_controller_on_remote_side_both_families() -> None:
    ctx = NetworkContext(
        controllers={"https://ctl.example/c": ("192.0.2.5", "2001:db8::5")},
        my_controller={MUD_URL: ("192.0.2.6",)},
    )
    aces = (
        Ace("c", Matches(mud=MudMatch(controller="https://ctl.example/c")), Forwarding.ACCEPT),
        Ace("m", Matches(mud=MudMatch(my_controller=True)), Forwarding.ACCEPT),
    )
    mud = mudfile(from_device=(acl("mixed", *aces, family=0),))  # "ipv0-acl-type": no family fixed
    rules = compile_profile(mud, ctx, PID).rules
    dsts = {r.match_dict().get("ipv4_dst", r.match_dict().get("ipv6_dst")) for r in rules}
    assert dsts == {"192.0.2.5", "2001:db8::5", "192.0.2.6"}


def test_manufacturer_and_model_become_metadata() -> None:
    ctx = NetworkContext(
        manufacturer_ids={"other.example": 12, "things.example.com": 3}, profile_ids={"https://other.example/m": 9}
    )
    aces_from = (
        Ace("mfg", Matches(mud=MudMatch(manufacturer="other.example")), Forwarding.ACCEPT),
        Ace("same", Matches(mud=MudMatch(same_manufacturer=True)), Forwarding.ACCEPT),
        Ace("model", Matches(mud=MudMatch(model="https://other.example/m")), Forwarding.ACCEPT),
    )
    aces_to = (Ace("mfg", Matches(mud=MudMatch(manufacturer="other.example")), Forwarding.ACCEPT),)
    mud = mudfile(from_device=(acl("f", *aces_from),), to_device=(acl("t", *aces_to),))
    rules = compile_profile(mud, ctx, PID).rules
    f_mfg, f_same, f_model, t_mfg = (md(r) for r in rules)
    own = PID | SRC_MANAGED_BIT
    assert f_mfg == (
        own | (12 << 44) | DST_MANAGED_BIT,
        SRC_PROFILE_MASK | SRC_MANAGED_BIT | DST_MFG_MASK | DST_MANAGED_BIT,
    )
    assert f_same[0] == own | (3 << 44) | DST_MANAGED_BIT
    assert f_model[0] == own | (9 << 16) | DST_MANAGED_BIT and f_model[1] & DST_PROFILE_MASK == DST_PROFILE_MASK
    assert t_mfg[0] == (PID << 16) | DST_MANAGED_BIT | (12 << 32) | SRC_MANAGED_BIT


def test_unknown_manufacturer_emits_nothing() -> None:
    ace = Ace("mfg", Matches(mud=MudMatch(manufacturer="nobody.example")), Forwarding.ACCEPT)
    prof = compile_profile(mudfile(from_device=(acl("f", ace),)), CTX, PID)
    assert prof.rules == () and prof.warnings[0].reason == "unknown-manufacturer"


# --- defaults -------------------------------------------------------------------------------
def test_rfc8520_defaults_after_aces_and_only_when_configured() -> None:
    mud = mudfile(from_device=(acl("a", udp_ace("no-dns", 53, forwarding=Forwarding.DROP)),))
    assert [w.reason for w in compile_profile(mud, CTX, PID).warnings] == ["no-default-servers"] * 2
    assert all(r.priority > Band.DEFAULTS for r in compile_profile(mud, CTX, PID).rules)
    ctx = NetworkContext(
        controllers={DNS_CONTROLLER_URN: ("192.0.2.53", "2001:db8::53"), NTP_CONTROLLER_URN: ("192.0.2.123",)}
    )
    rules = compile_profile(mud, ctx, PID).rules
    defaults = [r for r in rules if r.priority == Band.DEFAULTS]
    assert len(defaults) == 6  # (2 DNS + 1 NTP servers) x 2 directions
    drop = next(r for r in rules if r.is_drop)
    assert drop.priority > Band.DEFAULTS  # the MUD drop ACE overrides the default
    assert {r.match_dict().get("udp_dst") for r in defaults if r.table == "from_device"} == {53, 123}
    assert {r.match_dict().get("udp_src") for r in defaults if r.table == "to_device"} == {53, 123}


def test_compile_switch_is_complete_and_verified() -> None:
    mud = mudfile(from_device=(acl("a", tcp_ace("api", dst_dnsname="api.example.com", dst_port=eq(443))),))
    rules = compile_switch(mud, DEV, CTX)
    assert len(rules) == len(pipeline_rules()) + 3 + 1 + 3
    assert len({(r.table, r.priority, r.match) for r in rules}) == len(rules)
    for r in rules:
        verify_rule(r)
    sw = build_switch(mud, DEV, NetworkContext(profile_ids={MUD_URL: 77}))
    assert sw.profile.profile_id == 77


def test_profile_id_range_checked() -> None:
    with pytest.raises(CompileError):
        compile_profile(mudfile(), CTX, 1)  # 1 is the quarantine profile
