"""Comparable identities of flow entries: what the controller wants vs what a switch reports it holds.

Reconciliation after a restart (THREATS.md R11) must recognise a wanted flow in a FLOW_STATS reply even though
the switch re-encodes it: OXM fields come back in the switch's order, an all-ones mask comes back as an exact
match, instructions in the specification's order. Both sides are therefore reduced to the same canonical form by
the same code: a wanted :class:`FlowRule` is rendered with the OpenFlow library and parsed back exactly as a
stats entry is parsed, then both are normalised here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mud_ryu.compat import ofproto, parser
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import table_id
from mud_ryu.openflow.ryu_msgs import instructions as rule_instructions

Field = tuple[str, object]


@dataclass(frozen=True, slots=True)
class FlowKey:
    """Where a flow sits (table, priority, match) and what it does (cookie, instructions)."""

    table_id: int
    priority: int
    match: frozenset[Field]
    cookie: int
    instructions: tuple[object, ...]

    @property
    def slot(self) -> tuple[int, int, frozenset[Field]]:
        """The switch's identity of an entry: adding a flow in the same slot replaces it."""
        return (self.table_id, self.priority, self.match)


def _all_ones(mask: object) -> bool:
    if isinstance(mask, int):
        return mask != 0 and (mask & (mask + 1)) == 0 and mask.bit_length() >= 8
    if isinstance(mask, str):
        return mask.lower() in ("ff:ff:ff:ff:ff:ff", "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    return False


def _normal_field(name: str, value: object) -> Field:
    if isinstance(value, tuple) and len(value) == 2 and _all_ones(value[1]):
        return (name, value[0])
    return (name, value)


def normal_match(fields: list[tuple[str, Any]]) -> frozenset[Field]:
    return frozenset(_normal_field(name, value) for name, value in fields)


def normal_instructions(insts: list[Any]) -> tuple[object, ...]:
    out: list[object] = []
    for inst in insts:
        if isinstance(inst, parser.OFPInstructionGotoTable):
            out.append(("goto", inst.table_id))
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            out.append(("metadata", inst.metadata, inst.metadata_mask))
        elif isinstance(inst, parser.OFPInstructionMeter):
            out.append(("meter", inst.meter_id))
        elif isinstance(inst, parser.OFPInstructionActions):
            actions = tuple(
                ("output", a.port, a.max_len if a.port == ofproto.OFPP_CONTROLLER else 0)
                if isinstance(a, parser.OFPActionOutput)
                else ("other", type(a).__name__)
                for a in inst.actions
            )
            out.append(("actions", inst.type, actions))
        else:
            out.append(("other", type(inst).__name__))
    return tuple(sorted(out, key=repr))


def _reparsed_match(rule: FlowRule) -> list[tuple[str, Any]]:
    buf = bytearray()
    parser.OFPMatch(**rule.match_dict()).serialize(buf, 0)
    return list(parser.OFPMatch.parser(bytes(buf), 0)._fields2)


def rule_key(rule: FlowRule) -> FlowKey:
    return FlowKey(
        table_id=table_id(rule.table),
        priority=rule.priority,
        match=normal_match(_reparsed_match(rule)),
        cookie=rule.cookie,
        instructions=normal_instructions(rule_instructions(rule)),
    )


def stats_key(entry: Any) -> FlowKey:
    """The key of one ``OFPFlowStats`` entry of a FLOW_STATS reply."""
    return FlowKey(
        table_id=int(entry.table_id),
        priority=int(entry.priority),
        match=normal_match(list(entry.match._fields2)),
        cookie=int(entry.cookie),
        instructions=normal_instructions(list(entry.instructions)),
    )
