"""The flow-table simulator on its own: every semantic the MUD tests rely on."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mud_ryu.compiler.flowrule import FlowRule, MatchValue, Output, make_match
from mud_ryu.compiler.pipeline import OWNER_MASK, CookieKind, cookie
from tests.ofsim import FlowTableSim, SimError, normalize_field
from tests.packets import ACK, SYN, SYN_ACK, Packet

DEV, PEER = "02:00:00:00:00:01", "02:00:00:00:00:02"


def rule(table: str = "classify_src", priority: int = 10, *, actions: tuple[Output, ...] = (),
         goto: str | None = None, wm: tuple[int, int] | None = None, ck: int = 0, **match: MatchValue) -> FlowRule:
    return FlowRule(table, priority, make_match(**match), ck, actions, goto, wm)


def tcp(dport: int = 80, flags: int = SYN, src: str = "10.0.0.1", dst: str = "10.0.0.2", in_port: int = 1) -> Packet:
    return Packet.tcp(in_port, DEV, PEER, src, dst, 40000, dport, flags)


def sim_with(*rules: FlowRule) -> FlowTableSim:
    sim = FlowTableSim(ports=frozenset({1, 2, 3}))
    sim.add_all(rules)
    return sim


def acl_sim(*rules: FlowRule) -> FlowTableSim:
    """Rules in from_device, reached through a classify_src miss entry."""
    return sim_with(rule(priority=0, goto="from_device"), *rules)


OUT2 = (Output(2),)


def test_empty_table_drops() -> None:
    v = sim_with().process(tcp())
    assert v.dropped and not v.path


def test_highest_priority_wins_and_drop_rule() -> None:
    sim = acl_sim(
        rule("from_device", 10, actions=OUT2), rule("from_device", 20, eth_type=0x0800, ip_proto=6, tcp_dst=22)
    )
    assert sim.process(tcp(80)).outputs == {2}
    v = sim.process(tcp(22))
    assert v.dropped and v.path[-1][1].priority == 20


def test_add_same_match_and_priority_replaces() -> None:
    sim = sim_with(rule(priority=10, actions=OUT2, eth_src=DEV))
    sim.add(rule(priority=10, actions=(Output(3),), eth_src=DEV, ck=7))
    assert len(sim) == 1 and sim.process(tcp()).outputs == {3}
    sim.add(rule(priority=11, actions=OUT2, eth_src=DEV))
    assert len(sim) == 2 and sim.process(tcp()).outputs == {2}


def test_equivalent_match_spellings_replace() -> None:
    sim = acl_sim(rule("from_device", 5, actions=OUT2, eth_type=0x0800, ipv4_dst=("10.0.0.0", "255.255.255.0")))
    sim.add(rule("from_device", 5, eth_type=0x0800, ipv4_dst="10.0.0.0/24"))
    assert len(sim) == 2 and sim.process(tcp()).dropped


def test_ties_are_deterministic_and_flagged() -> None:
    a = rule("from_device", 10, actions=OUT2, eth_src=DEV)
    b = rule("from_device", 10, actions=(Output(3),), eth_dst=PEER)
    v1, v2 = acl_sim(a, b).process(tcp()), acl_sim(b, a).process(tcp())
    assert v1.outputs == v2.outputs and len(v1.outputs) == 1
    assert v1.ties and set(v1.ties[0][1]) == {a, b}
    assert not acl_sim(a).process(tcp()).ties


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        ({"eth_src": ("02:00:00:00:00:00", "ff:ff:ff:00:00:00")}, DEV, "03:00:00:00:00:01"),
        ({"eth_src": ("01:00:00:00:00:00", "01:00:00:00:00:00")}, "01:00:5e:00:00:01", DEV),
    ],
)
def test_masked_mac(match: dict[str, MatchValue], hit: str, miss: str) -> None:
    sim = sim_with(FlowRule("classify_src", 10, tuple(sorted(match.items())), 0, OUT2))
    assert sim.is_output(Packet.tcp(1, hit, PEER, "1.1.1.1", "2.2.2.2", 1, 2), 2)
    assert not sim.is_output(Packet.tcp(1, miss, PEER, "1.1.1.1", "2.2.2.2", 1, 2), 2)


def test_ipv4_prefix_and_arbitrary_mask() -> None:
    sim = sim_with(
        rule("from_device", 20, actions=OUT2, eth_type=0x0800, ipv4_dst=("192.168.1.0", "255.255.255.0")),
        rule("from_device", 10, actions=(Output(3),), eth_type=0x0800, ipv4_dst=("0.0.0.5", "0.0.0.255")),
    )
    sim.add(rule(priority=0, goto="from_device"))
    assert sim.process(tcp(dst="192.168.1.77")).outputs == {2}
    assert sim.process(tcp(dst="192.168.2.5")).outputs == {3}
    assert sim.process(tcp(dst="192.168.2.6")).dropped


def test_ipv6_prefix_and_v4_rule_ignores_v6() -> None:
    sim = FlowTableSim(ports=frozenset({1, 2, 3}))
    sim.add(rule("from_device", 20, actions=OUT2, eth_type=0x86DD, ipv6_dst="2001:db8::/32"))
    sim.add(rule("from_device", 10, actions=(Output(3),), eth_type=0x0800))
    sim.add(rule(priority=0, goto="from_device"))
    assert sim.process(tcp(src="2001:db8::1", dst="2001:db8:ffff::9")).outputs == {2}
    assert sim.process(tcp(src="2001:db8::1", dst="2001:db9::9")).dropped
    assert sim.process(tcp(dst="10.9.9.9")).outputs == {3}


def test_masked_ports_and_prerequisites() -> None:
    sim = FlowTableSim(ports=frozenset({1, 2, 3}))
    sim.add(rule(priority=0, goto="from_device"))
    sim.add(rule("from_device", 10, actions=OUT2, eth_type=0x0800, ip_proto=6, tcp_dst=(0x1F00, 0xFF00)))
    assert sim.is_output(tcp(0x1F90), 2) and sim.is_output(tcp(0x1F00), 2)
    assert not sim.is_output(tcp(0x2000), 2)
    # the same port over UDP: tcp_dst does not apply to it
    assert sim.process(Packet.udp(1, DEV, PEER, "10.0.0.1", "10.0.0.2", 1, 0x1F90)).dropped


def test_tcp_flags_with_mask_block_syn_only() -> None:
    sim = FlowTableSim(ports=frozenset({1, 2, 3}))
    sim.add(rule(priority=0, goto="from_device"))
    sim.add(rule("from_device", 20, eth_type=0x0800, ip_proto=6, tcp_flags=(SYN, SYN_ACK)))
    sim.add(rule("from_device", 10, actions=OUT2, eth_type=0x0800, ip_proto=6))
    assert sim.process(tcp(flags=SYN)).dropped
    assert sim.is_output(tcp(flags=SYN_ACK), 2) and sim.is_output(tcp(flags=ACK), 2)


@pytest.mark.parametrize(
    "match",
    [
        {"eth_type": 0x0800, "tcp_dst": 80},  # no ip_proto
        {"ip_proto": 6, "tcp_dst": 80},  # no eth_type
        {"eth_type": 0x0800, "ip_proto": 17, "tcp_dst": 80},  # wrong ip_proto
        {"eth_type": 0x86DD, "ip_proto": 1, "icmpv4_type": 8},  # icmpv4 in IPv6
        {"eth_type": 0x86DD, "ipv4_dst": "10.0.0.1"},
        {"eth_type": 0x0800, "ip_proto": (6, 0xF), "tcp_dst": 80},  # masked prerequisite
        {"arp_op": 1},
    ],
)
def test_missing_prerequisite_is_refused(match: dict[str, MatchValue]) -> None:
    with pytest.raises(SimError) as err:
        sim_with(FlowRule("from_device", 10, tuple(sorted(match.items())), 0))
    assert err.value.reason == "bad_prereq"


def test_bad_wildcards_and_values_are_refused() -> None:
    with pytest.raises(SimError, match="bad_wildcards"):
        sim_with(rule("from_device", eth_type=0x0800, ipv4_dst=("10.0.0.1", "255.255.255.0")))
    with pytest.raises(SimError, match="bad_value"):
        sim_with(rule("from_device", eth_type=0x0800, ip_proto=6, tcp_dst=70000))
    with pytest.raises(SimError, match="bad_value"):
        sim_with(rule(eth_src="not-a-mac"))


def test_pipeline_declaration_is_enforced() -> None:
    with pytest.raises(SimError, match="bad_pipeline"):
        sim_with(rule("classify_src", eth_type=0x0800, ipv4_dst="10.0.0.1"))  # table does not match IP addresses
    with pytest.raises(SimError, match="bad_pipeline"):
        sim_with(rule("to_device", goto="from_device"))


def test_goto_and_write_metadata_with_mask() -> None:
    sim = sim_with(
        rule("classify_src", 10, eth_src=DEV, wm=(0x0000_0000_0000_0005, 0xFFFF), goto="classify_dst"),
        rule("classify_src", 0, goto="classify_dst"),
        rule("classify_dst", 10, eth_dst=PEER, wm=(0x0007_0000, 0xFFFF_0000), goto="from_device"),
        rule("classify_dst", 0, goto="from_device"),
        rule("from_device", 10, actions=OUT2, metadata=(0x0007_0005, 0xFFFF_FFFF)),
        rule("from_device", 5, actions=(Output(3),), metadata=(0x5, 0xFFFF)),
    )
    v = sim.process(tcp())
    assert v.outputs == {2} and v.metadata == 0x0007_0005
    assert [t for t, _ in v.path] == ["classify_src", "classify_dst", "from_device"]
    other = Packet.tcp(1, DEV, "02:00:00:00:00:09", "10.0.0.1", "10.0.0.9", 1, 2)
    assert sim.process(other).outputs == {3}
    stranger = Packet.tcp(1, "02:00:00:00:00:08", "02:00:00:00:00:09", "10.0.0.1", "10.0.0.9", 1, 2)
    assert sim.process(stranger).dropped


def test_write_metadata_value_outside_mask_is_refused() -> None:
    with pytest.raises(SimError, match="bad_metadata"):
        sim_with(rule(wm=(0x10, 0x0F), goto="classify_dst"))


def test_reserved_output_ports() -> None:
    assert sim_with(rule(actions=(Output("FLOOD"),))).process(tcp(in_port=1)).outputs == {2, 3}
    assert sim_with(rule(actions=(Output("ALL"),))).process(tcp(in_port=3)).outputs == {1, 2}
    assert sim_with(rule(actions=(Output("IN_PORT"),))).process(tcp(in_port=3)).outputs == {3}
    # an explicit output to the ingress port is not sent (only IN_PORT may do that)
    assert sim_with(rule(actions=(Output(1),))).process(tcp(in_port=1)).dropped
    v = sim_with(rule(actions=(Output("CONTROLLER"), Output(2)))).process(tcp())
    assert v.to_controller and v.outputs == {2} and not v.dropped
    v = sim_with(rule(actions=(Output("CONTROLLER"),))).process(tcp())
    assert v.to_controller and not v.forwarded and not v.dropped


def test_outputs_accumulate_across_tables() -> None:
    sim = sim_with(rule(actions=(Output("CONTROLLER"),), goto="forward"), rule("forward", 1, actions=OUT2))
    v = sim.process(tcp())
    assert v.to_controller and v.outputs == {2}


def test_delete_by_cookie_mask_only_touches_owner() -> None:
    p5, p6 = cookie(CookieKind.PROFILE, 5, generation=1), cookie(CookieKind.PROFILE, 6, generation=1)
    sim = sim_with(
        rule("from_device", 10, actions=OUT2, ck=p5, eth_type=0x0800),
        rule("from_device", 11, actions=OUT2, ck=p5 | 1, eth_type=0x86DD),
        rule("from_device", 12, actions=OUT2, ck=p6, eth_type=0x0800),
        rule("classify_src", 0, goto="from_device", ck=cookie(CookieKind.PIPELINE)),
    )
    assert sim.delete(cookie(CookieKind.PROFILE, 5, generation=9), OWNER_MASK) == 2
    assert {r.cookie for r in sim.rules()} == {p6, cookie(CookieKind.PIPELINE)}
    assert sim.delete(0, 0) == 2 and len(sim) == 0


def test_delete_non_strict_match_and_strict() -> None:
    sim = sim_with(
        rule("from_device", 10, eth_type=0x0800, ipv4_dst="10.0.0.0/8"),
        rule("from_device", 11, eth_type=0x0800, ipv4_dst="10.1.0.0/16"),
        rule("from_device", 12, eth_type=0x0800, ipv4_dst="11.0.0.0/8"),
        rule("from_device", 13, eth_type=0x86DD),
    )
    # non-strict: entries at least as specific as 10/8 (10/8 and 10.1/16), any priority
    assert sim.delete(table="from_device", match=make_match(eth_type=0x0800, ipv4_dst="10.0.0.0/8")) == 2
    assert sim.delete_strict("from_device", 99, make_match(eth_type=0x86DD)) == 0
    assert sim.delete_strict("from_device", 13, make_match(eth_type=0x86DD)) == 1
    assert [r.priority for r in sim.rules()] == [12]


def test_table_hash_ignores_order_and_sees_changes() -> None:
    rs = [rule(priority=p, actions=OUT2, eth_src=DEV) for p in range(5)]
    a, b = sim_with(*rs), sim_with(*reversed(rs))
    assert a.table_hash() == b.table_hash()
    b.add(rs[0])  # re-adding an identical rule is idempotent
    assert a.table_hash() == b.table_hash()
    b.add(rule(priority=0, actions=(Output(3),), eth_src=DEV))
    assert a.table_hash() != b.table_hash()


def test_packet_fields_follow_prerequisites() -> None:
    f = Packet.udp(1, DEV, PEER, "10.0.0.1", "10.0.0.2", 5, 53).oxm_fields()
    assert f["udp_dst"] == 53 and "tcp_dst" not in f and "ipv6_src" not in f
    f6 = Packet.icmp(1, DEV, PEER, "fe80::1", "fe80::2", 135).oxm_fields()
    assert f6["icmpv6_type"] == 135 and "icmpv4_type" not in f6 and f6["eth_type"] == 0x86DD
    arp = Packet.arp(1, DEV, PEER, "10.0.0.1", "10.0.0.2").oxm_fields()
    assert arp["arp_tpa"] == int(ipaddress.IPv4Address("10.0.0.2")) and "ip_proto" not in arp
    assert "tcp_flags=0x012" in tcp(flags=SYN_ACK).ovs_flow()
    assert ",tcp6," in ("," + tcp(src="::1", dst="::2").ovs_flow() + ",")


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**32 - 1))
def test_ipv4_prefix_matches_like_ipaddress(net_int: int, plen: int, addr_int: int) -> None:
    net = ipaddress.IPv4Network((net_int, plen), strict=False)
    sim = FlowTableSim(ports=frozenset({1, 2}))
    sim.add(rule(priority=0, goto="from_device"))
    sim.add(rule("from_device", 5, actions=OUT2, eth_type=0x0800, ipv4_src=str(net)))
    addr = ipaddress.IPv4Address(addr_int)
    assert sim.is_output(tcp(src=str(addr)), 2) == (addr in net)


def test_normalize_field_forms_agree() -> None:
    assert normalize_field("ipv6_src", "2001:db8::/32") == normalize_field(
        "ipv6_src", ("2001:db8::", "ffff:ffff::")
    )
    assert normalize_field("metadata", 5) == (5, 2**64 - 1)
