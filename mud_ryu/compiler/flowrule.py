"""Neutral flow-rule records: what the compiler produces and every back end consumes.

A :class:`FlowRule` says what one OpenFlow 1.3 flow entry holds, independent of Ryu: the
Ryu-object renderer (``ofmsg``), the fast wire encoder, the ``ovs-ofctl`` text renderer and
the test simulator all read the same records, so they cannot drift apart.

Match fields use Ryu's ``OFPMatch`` keyword names and value forms (``"aa:bb:.."`` MACs,
dotted or colon IP strings, ints for everything else); a masked field is ``(value, mask)``.
"""

from __future__ import annotations

from dataclasses import dataclass

MatchValue = int | str | tuple[int, int] | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Output:
    """Apply-action ``OUTPUT``. ``port`` is an OpenFlow port number or one of the reserved
    names ``IN_PORT``, ``FLOOD``, ``ALL``, ``CONTROLLER``."""

    port: int | str
    max_len: int = 0xFFFF  # OFPCML_NO_BUFFER for CONTROLLER: the whole frame, no buffer id


@dataclass(frozen=True, slots=True)
class FlowRule:
    """One flow entry. No actions and no ``goto`` means drop.

    ``match`` is a tuple of ``(field, value)`` pairs sorted by field name, so equal rules
    compare and hash equal (used for de-duplication and idempotence checks).
    """

    table: str
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    cookie: int
    actions: tuple[Output, ...] = ()
    goto: str | None = None
    write_metadata: tuple[int, int] | None = None
    meter: int | None = None
    idle_timeout: int = 0
    hard_timeout: int = 0

    @property
    def is_drop(self) -> bool:
        return not self.actions and self.goto is None

    def match_dict(self) -> dict[str, MatchValue]:
        return dict(self.match)


def make_match(**fields: MatchValue | None) -> tuple[tuple[str, MatchValue], ...]:
    """Build a canonical match tuple, leaving out fields whose value is ``None``."""
    return tuple(sorted((k, v) for k, v in fields.items() if v is not None))
