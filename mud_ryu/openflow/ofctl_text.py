"""FlowRule -> ``ovs-ofctl -O OpenFlow13 add-flows BR -`` lines.

For humans (``mud-ryu compile``) and for loading a lab switch without a controller. OVS's
field names differ from Ryu's for a few fields (``nw_src`` for ``ipv4_src``, ``ipv6_label``,
``icmp_type`` for ICMPv4); masked values are written ``value/mask`` and TCP flags as
``+syn-ack``. Fields are written in OXM order, like the wire encoder, so lines are stable.
"""

from __future__ import annotations

from collections.abc import Iterable

from mud_ryu.compiler.flowrule import FlowRule, MatchValue, Output
from mud_ryu.compiler.pipeline import table_id
from mud_ryu.openflow.wire import field_sort_key

OVS_NAMES = {
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "ipv6_flabel": "ipv6_label",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
    "ipv6_nd_target": "nd_target",
}
HEX_FIELDS = frozenset({"metadata", "eth_type", "vlan_vid", "ipv6_flabel"})
TCP_FLAG_NAMES = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns")
RESERVED_OUTPUTS = {"IN_PORT": "in_port", "FLOOD": "flood", "ALL": "all", "LOCAL": "local"}


def _tcp_flags(value: MatchValue) -> str:
    pair = value if isinstance(value, tuple) else (value, 0xFFF)
    bits, mask = pair
    if not isinstance(bits, int) or not isinstance(mask, int):
        raise ValueError(f"tcp_flags must be integers, not {value!r}")
    if mask & ~0x1FF:
        return f"0x{bits:03x}/0x{mask:03x}"
    return "".join(("+" if bits & (1 << i) else "-") + name for i, name in enumerate(TCP_FLAG_NAMES) if mask & (1 << i))


def _value(name: str, value: MatchValue) -> str:
    if name == "tcp_flags":
        return _tcp_flags(value)
    if isinstance(value, tuple):
        v, m = value
        if isinstance(v, int) and isinstance(m, int):
            return f"0x{v & m:x}/0x{m:x}"
        return f"{v}/{m}"
    if isinstance(value, int):
        return f"0x{value:x}" if name in HEX_FIELDS else str(value)
    return value


def _output(out: Output) -> str:
    if isinstance(out.port, int):
        return f"output:{out.port}"
    if out.port == "CONTROLLER":
        return f"CONTROLLER:{out.max_len}"
    return RESERVED_OUTPUTS[out.port]


def render_flow(rule: FlowRule) -> str:
    parts = [f"table={table_id(rule.table)}", f"priority={rule.priority}", f"cookie=0x{rule.cookie:x}"]
    if rule.idle_timeout:
        parts.append(f"idle_timeout={rule.idle_timeout}")
    if rule.hard_timeout:
        parts.append(f"hard_timeout={rule.hard_timeout}")
    for name, value in sorted(rule.match, key=lambda kv: field_sort_key(kv[0])):
        parts.append(f"{OVS_NAMES.get(name, name)}={_value(name, value)}")
    acts: list[str] = []
    if rule.meter is not None:
        acts.append(f"meter:{rule.meter}")
    acts.extend(_output(a) for a in rule.actions)
    if rule.write_metadata is not None:
        acts.append("write_metadata:0x{:x}/0x{:x}".format(*rule.write_metadata))
    if rule.goto is not None:
        acts.append(f"goto_table:{table_id(rule.goto)}")
    parts.append("actions=" + (",".join(acts) if acts else "drop"))
    return ",".join(parts)


def render_flows(rules: Iterable[FlowRule]) -> str:
    """One line per rule, newline-terminated: loadable by ``ovs-ofctl -O OpenFlow13 add-flows BR -``."""
    return "".join(render_flow(r) + "\n" for r in rules)
