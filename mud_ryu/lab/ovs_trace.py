"""What Open vSwitch says back, as data: ``ofproto/trace`` output turned into a verdict, and the error
every lab OVS helper raises.

:func:`parse_trace` reads the last ``Datapath actions:`` line, with datapath port numbers mapped back
to OpenFlow ports. A trace that has no such line (a syntax error, a missing port) raises
:class:`OvsError`, never reads as a drop: a cross-check against the simulator must not pass because
OVS refused the question. Pure text handling; the daemons are :mod:`mud_ryu.lab.ovs`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OFPP_LOCAL = 0xFFFFFFFE
_TOKEN_RE = re.compile(r"[^,()]+|[(),]")


class OvsError(RuntimeError):
    """``reason``: ``not_sandboxed``, ``start_failed``, ``command_failed``, ``add_flows_failed``,
    ``trace_error``, ``unknown_port``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class TraceVerdict:
    """``outputs``: OpenFlow ports (``OFPP_LOCAL`` for the bridge port); ``other``: datapath
    actions that are neither outputs nor controller copies (none are expected from mud_ryu)."""

    outputs: frozenset[int]
    to_controller: bool
    other: tuple[str, ...]
    datapath_actions: str

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.to_controller and not self.other

    def to_json(self) -> dict[str, Any]:
        return {
            "outputs": sorted(self.outputs),
            "to_controller": self.to_controller,
            "other": list(self.other),
            "datapath_actions": self.datapath_actions,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TraceVerdict:
        return cls(
            frozenset(data["outputs"]), bool(data["to_controller"]), tuple(data["other"]), str(data["datapath_actions"])
        )


def _split_top(actions: str) -> list[str]:
    """Split a datapath action list on the commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for tok in _TOKEN_RE.findall(actions):
        if tok == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += tok == "("
        depth -= tok == ")"
        cur += tok
    if cur.strip():
        parts.append(cur.strip())
    return parts


def parse_trace(text: str, dp_to_of: Mapping[int, int]) -> TraceVerdict:
    lines = [ln for ln in text.splitlines() if ln.startswith("Datapath actions:")]
    if not lines:
        raise OvsError("trace_error", f"no 'Datapath actions:' line in trace: {text.strip()[-500:]}")
    actions = lines[-1].partition(":")[2].strip()
    outputs: set[int] = set()
    to_controller = False
    other: list[str] = []
    for act in _split_top(actions):
        if act == "drop":
            continue
        if act.isdigit():
            dp = int(act)
            if dp not in dp_to_of:
                raise OvsError("unknown_port", f"datapath port {dp} not on the bridge ({actions})")
            outputs.add(dp_to_of[dp])
        elif act.startswith("userspace(") and "controller(" in act:
            to_controller = True
        else:
            other.append(act)
    return TraceVerdict(frozenset(outputs), to_controller, tuple(other), actions)
