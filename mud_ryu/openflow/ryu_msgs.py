"""FlowRule -> Ryu OpenFlow 1.3 message objects (built with ``datapath=None``).

The core builds messages; the app attaches its datapath and sends them (one function sends).
Instruction order here is the order :mod:`mud_ryu.openflow.wire` encodes, so the two renderers produce
byte-identical FLOW_MODs (tested): meter, apply-actions, write-metadata, goto-table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mud_ryu.compat import ofproto, parser
from mud_ryu.compiler.flowrule import FlowRule, Output
from mud_ryu.compiler.pipeline import table_id

RESERVED_PORTS: dict[str, int] = {
    "IN_PORT": ofproto.OFPP_IN_PORT,
    "FLOOD": ofproto.OFPP_FLOOD,
    "ALL": ofproto.OFPP_ALL,
    "CONTROLLER": ofproto.OFPP_CONTROLLER,
    "LOCAL": ofproto.OFPP_LOCAL,
}


def port_number(port: int | str) -> int:
    if isinstance(port, int):
        return port
    try:
        return RESERVED_PORTS[port]
    except KeyError:
        raise ValueError(f"unknown reserved port {port!r}") from None


def _action(out: Output) -> Any:
    return parser.OFPActionOutput(port_number(out.port), out.max_len)


def instructions(rule: FlowRule) -> list[Any]:
    out: list[Any] = []
    if rule.meter is not None:
        out.append(parser.OFPInstructionMeter(rule.meter))
    if rule.actions:
        out.append(parser.OFPInstructionActions(ofproto.OFPIT_APPLY_ACTIONS, [_action(a) for a in rule.actions]))
    if rule.write_metadata is not None:
        out.append(parser.OFPInstructionWriteMetadata(*rule.write_metadata))
    if rule.goto is not None:
        out.append(parser.OFPInstructionGotoTable(table_id(rule.goto)))
    return out


def flow_mod(rule: FlowRule, command: int | None = None) -> Any:
    """An OFPFlowMod (ADD by default) for ``rule``; ``datapath`` is None until the app sends it."""
    return parser.OFPFlowMod(
        datapath=None,
        cookie=rule.cookie,
        cookie_mask=0,
        table_id=table_id(rule.table),
        command=ofproto.OFPFC_ADD if command is None else command,
        idle_timeout=rule.idle_timeout,
        hard_timeout=rule.hard_timeout,
        priority=rule.priority,
        buffer_id=ofproto.OFP_NO_BUFFER,
        out_port=ofproto.OFPP_ANY,
        out_group=ofproto.OFPG_ANY,
        flags=0,
        match=parser.OFPMatch(**rule.match_dict()),
        instructions=instructions(rule),
    )


def flow_mods(rules: Iterable[FlowRule]) -> list[Any]:
    return [flow_mod(r) for r in rules]


def delete_by_cookie(cookie: int, cookie_mask: int, table: str | None = None) -> Any:
    """Delete every flow whose cookie matches under the mask (all tables unless ``table``)."""
    return parser.OFPFlowMod(
        datapath=None,
        cookie=cookie,
        cookie_mask=cookie_mask,
        table_id=ofproto.OFPTT_ALL if table is None else table_id(table),
        command=ofproto.OFPFC_DELETE,
        priority=0,
        buffer_id=ofproto.OFP_NO_BUFFER,
        out_port=ofproto.OFPP_ANY,
        out_group=ofproto.OFPG_ANY,
        match=parser.OFPMatch(),
        instructions=[],
    )


def delete_strict(rule: FlowRule) -> Any:
    """Delete exactly this entry (same table, priority and match)."""
    return flow_mod(rule, ofproto.OFPFC_DELETE_STRICT)


def barrier() -> Any:
    return parser.OFPBarrierRequest(None)


class _WireDatapath:
    """The two attributes Ryu's ``serialize`` reads, for serialising without a switch."""

    ofproto = ofproto
    ofproto_parser = parser


def serialize(msg: Any, xid: int = 0) -> bytes:
    """Ryu's own wire form of ``msg`` (used by tests and benchmarks as the reference)."""
    original = msg.datapath
    msg.datapath = _WireDatapath()
    try:
        if msg.xid is None:
            msg.set_xid(xid)
        msg.serialize()
    finally:
        msg.datapath = original
    return bytes(msg.buf)
