"""Hypothesis strategies for FlowRule records (any field value the renderers must encode)."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from mud_ryu.compiler.flowrule import FlowRule, MatchValue, Output, make_match
from mud_ryu.compiler.pipeline import TABLES

_INT_WIDTHS = {
    "in_port": 32,
    "metadata": 64,
    "eth_type": 16,
    "ip_dscp": 6,
    "ip_ecn": 2,
    "ip_proto": 8,
    "tcp_src": 16,
    "tcp_dst": 16,
    "udp_src": 16,
    "udp_dst": 16,
    "icmpv4_type": 8,
    "icmpv4_code": 8,
    "icmpv6_type": 8,
    "icmpv6_code": 8,
    "ipv6_flabel": 20,
    "arp_op": 16,
    "tcp_flags": 12,
}
_MASKABLE = {"metadata", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "ipv6_flabel", "tcp_flags"}


def _int_value(name: str) -> st.SearchStrategy[MatchValue]:
    top = (1 << _INT_WIDTHS[name]) - 1
    plain = st.integers(0, top)
    if name not in _MASKABLE:
        return plain
    masked = st.tuples(st.integers(0, top), st.integers(1, top)).map(lambda vm: (vm[0] & vm[1], vm[1]))
    return st.one_of(plain, masked)


_mac = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
_v4 = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
_v6 = st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i)))
_v4_net = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 31)).map(
    lambda t: (
        str(ipaddress.IPv4Network((t[0], t[1]), strict=False).network_address),
        str(ipaddress.IPv4Network((0, t[1])).netmask),
    )
)
_v6_net = st.tuples(st.integers(0, 2**128 - 1), st.integers(1, 127)).map(
    lambda t: (
        str(ipaddress.IPv6Network((t[0], t[1]), strict=False).network_address),
        str(ipaddress.IPv6Network((0, t[1])).netmask),
    )
)
FIELD_VALUES: dict[str, st.SearchStrategy[MatchValue]] = {name: _int_value(name) for name in _INT_WIDTHS}
FIELD_VALUES.update(
    eth_src=st.one_of(_mac, st.tuples(_mac, _mac)),
    eth_dst=st.one_of(_mac, st.tuples(_mac, _mac)),
    ipv4_src=st.one_of(_v4, _v4_net),
    ipv4_dst=st.one_of(_v4, _v4_net),
    arp_spa=_v4,
    arp_tpa=_v4,
    arp_sha=_mac,
    ipv6_nd_target=_v6,
    ipv6_src=st.one_of(_v6, _v6_net),
    ipv6_dst=st.one_of(_v6, _v6_net),
)


@st.composite
def flow_rules(draw: st.DrawFn) -> FlowRule:
    index = draw(st.integers(0, len(TABLES) - 1))
    table = TABLES[index]
    names = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=8))
    match = make_match(**{n: draw(FIELD_VALUES[n]) for n in names})
    later = [t.name for t in TABLES[index + 1 :]]
    goto = draw(st.one_of(st.none(), st.sampled_from(later))) if later else None
    ports = st.one_of(st.integers(1, 0xFFFFFF00), st.sampled_from(["IN_PORT", "FLOOD", "ALL", "CONTROLLER"]))
    actions = draw(st.lists(st.builds(Output, ports, st.integers(0, 0xFFFF)), max_size=3))
    return FlowRule(
        table=table.name,
        priority=draw(st.integers(0, 0xFFFF)),
        match=match,
        cookie=draw(st.integers(0, 2**64 - 1)),
        actions=tuple(actions),
        goto=goto,
        write_metadata=draw(st.one_of(st.none(), st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)))),
        meter=draw(st.one_of(st.none(), st.integers(1, 0xFFFF0000))),
        idle_timeout=draw(st.integers(0, 0xFFFF)),
        hard_timeout=draw(st.integers(0, 0xFFFF)),
    )
