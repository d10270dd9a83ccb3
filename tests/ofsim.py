"""A simulated OpenFlow 1.3 switch pipeline that reads :class:`FlowRule` records.

Tests ask it the question that matters ("does this packet from that port get out of this
port?") instead of comparing lists of flow-mods (DESIGN.md convention 10; the idea comes from
FAUCET's fakeoftable, the code does not). It is strict where a real switch would reject a
flow-mod, so compiler bugs surface here rather than on a switch:

* a match field without its prerequisite (``tcp_dst`` without ``ip_proto=6``) -> error;
* a masked value with bits outside its mask -> error (``OFPBMC_BAD_WILDCARDS``);
* a field the pipeline table does not declare, a goto backwards -> error (``verify_rule``).

Semantics modelled: ``OFPFC_ADD`` replaces an entry with the same table, priority and match;
non-strict and strict delete by cookie/mask and match; the highest priority wins, and equal
priority overlaps (undefined in OpenFlow) are resolved deterministically AND reported in
:attr:`Verdict.ties`; apply-actions outputs (an explicit output to the ingress port is
dropped, as OVS does; ``IN_PORT``, ``FLOOD``, ``ALL``, ``CONTROLLER`` are reserved ports),
``write_metadata`` with mask, ``goto_table``; no matching entry in a table drops the packet.
Meters and timeouts are recorded but not simulated.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mud_ryu.compiler.flowrule import FlowRule, MatchValue
from mud_ryu.compiler.pipeline import TABLE_BY_NAME, TABLES, PipelineError, verify_rule
from tests.packets import Packet, mac_to_int

OFPP_LOCAL = 0xFFFFFFFE

WIDTH: dict[str, int] = {
    "in_port": 32, "metadata": 64, "eth_src": 48, "eth_dst": 48, "eth_type": 16, "vlan_vid": 13,
    "ip_proto": 8, "ip_dscp": 6, "ip_ecn": 2, "ipv4_src": 32, "ipv4_dst": 32, "ipv6_src": 128,
    "ipv6_dst": 128, "ipv6_flabel": 20, "tcp_src": 16, "tcp_dst": 16, "udp_src": 16, "udp_dst": 16,
    "icmpv4_type": 8, "icmpv4_code": 8, "icmpv6_type": 8, "icmpv6_code": 8, "tcp_flags": 12,
    "arp_op": 16, "arp_spa": 32, "arp_tpa": 32, "arp_sha": 48, "ipv6_nd_target": 128,
}
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha"}
_V4_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}
_V6_FIELDS = {"ipv6_src", "ipv6_dst", "ipv6_nd_target"}
_ETH_IP = frozenset({0x0800, 0x86DD})

# field -> list of (prerequisite field, allowed exact values), from OpenFlow 1.3 table 12
PREREQS: dict[str, tuple[tuple[str, frozenset[int]], ...]] = {
    **{f: (("eth_type", frozenset({0x0800})),) for f in ("ipv4_src", "ipv4_dst")},
    **{f: (("eth_type", frozenset({0x86DD})),) for f in ("ipv6_src", "ipv6_dst", "ipv6_flabel")},
    **{f: (("eth_type", _ETH_IP),) for f in ("ip_proto", "ip_dscp", "ip_ecn")},
    **{f: (("ip_proto", frozenset({6})),) for f in ("tcp_src", "tcp_dst", "tcp_flags")},
    **{f: (("ip_proto", frozenset({17})),) for f in ("udp_src", "udp_dst")},
    **{f: (("ip_proto", frozenset({1})), ("eth_type", frozenset({0x0800})))
       for f in ("icmpv4_type", "icmpv4_code")},
    **{f: (("ip_proto", frozenset({58})), ("eth_type", frozenset({0x86DD})))
       for f in ("icmpv6_type", "icmpv6_code")},
    **{f: (("eth_type", frozenset({0x0806})),) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha")},
    "ipv6_nd_target": (("icmpv6_type", frozenset({135, 136})), ("ip_proto", frozenset({58})),
                       ("eth_type", frozenset({0x86DD}))),
}


class SimError(ValueError):
    """A flow-mod a switch would refuse. ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


NormMatch = tuple[tuple[str, int, int], ...]  # (field, value, mask), sorted by field


def _scalar(fname: str, value: int | str) -> int:
    if isinstance(value, int):
        return value
    try:
        if fname in _MAC_FIELDS:
            return mac_to_int(value)
        if fname in _V4_FIELDS:
            return int(ipaddress.IPv4Address(value))
        if fname in _V6_FIELDS:
            return int(ipaddress.IPv6Address(value))
    except ValueError as exc:
        raise SimError("bad_value", f"{fname}={value!r}: {exc}") from exc
    raise SimError("bad_value", f"{fname} takes an int, got {value!r}")


def normalize_field(fname: str, value: MatchValue) -> tuple[int, int]:
    """``(value, mask)`` as ints; an exact match has the all-ones mask."""
    if fname not in WIDTH:
        raise SimError("unknown_field", fname)
    full = (1 << WIDTH[fname]) - 1
    if isinstance(value, tuple):
        v, m = _scalar(fname, value[0]), _scalar(fname, value[1])
    elif isinstance(value, str) and "/" in value and fname in _V4_FIELDS | _V6_FIELDS:
        net = ipaddress.ip_network(value, strict=False)
        v, m = _scalar(fname, value.split("/")[0]), int(net.netmask)
    else:
        v, m = _scalar(fname, value), full
    if not (0 <= v <= full and 0 <= m <= full):
        raise SimError("bad_value", f"{fname}={value!r} does not fit {WIDTH[fname]} bits")
    if v & ~m:
        raise SimError("bad_wildcards", f"{fname}={value!r} has value bits outside its mask")
    return v, m


def normalize_match(match: Iterable[tuple[str, MatchValue]]) -> NormMatch:
    norm: dict[str, tuple[int, int]] = {}
    for fname, value in match:
        if fname in norm:
            raise SimError("dup_field", fname)
        norm[fname] = normalize_field(fname, value)
    for fname in norm:
        for pre, allowed in PREREQS.get(fname, ()):
            got = norm.get(pre)
            if got is None or got[1] != (1 << WIDTH[pre]) - 1 or got[0] not in allowed:
                raise SimError("bad_prereq", f"{fname} needs exact {pre} in {sorted(allowed)}")
    return tuple(sorted((f, v, m) for f, (v, m) in norm.items()))


def match_covers(general: NormMatch, specific: NormMatch) -> bool:
    """True when every packet ``specific`` matches is matched by ``general`` (non-strict delete)."""
    spec = {f: (v, m) for f, v, m in specific}
    for f, v, m in general:
        if f not in spec:
            return False
        sv, sm = spec[f]
        if m & ~sm or (sv & m) != v:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Entry:
    rule: FlowRule
    norm: NormMatch

    @property
    def key(self) -> tuple[int, NormMatch]:
        return (self.rule.priority, self.norm)

    def matches(self, fields: Mapping[str, int]) -> bool:
        for f, v, m in self.norm:
            got = fields.get(f)
            if got is None or (got & m) != v:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pipeline did with one packet. ``path`` lists the entry hit in each table;
    ``ties`` lists tables where more than one entry of the winning priority matched."""

    outputs: frozenset[int]
    to_controller: bool
    path: tuple[tuple[str, FlowRule], ...]
    ties: tuple[tuple[str, tuple[FlowRule, ...]], ...] = ()
    metadata: int = 0

    @property
    def forwarded(self) -> bool:
        return bool(self.outputs)

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.to_controller


@dataclass(slots=True)
class FlowTableSim:
    """The switch: one flow table per pipeline table. ``ports`` are the OpenFlow port numbers
    that exist (FLOOD/ALL go to all of them except the ingress port)."""

    ports: frozenset[int] = frozenset()
    _tables: dict[str, dict[tuple[int, NormMatch], Entry]] = field(default_factory=dict)
    _sorted: dict[str, list[Entry]] = field(default_factory=dict)

    # --- flow-mods ------------------------------------------------------------------------
    def add(self, rule: FlowRule) -> None:
        """OFPFC_ADD: an entry with the same table, priority and match is replaced."""
        try:
            verify_rule(rule)
        except PipelineError as exc:
            raise SimError("bad_pipeline", str(exc)) from exc
        if rule.write_metadata is not None:
            value, mask = rule.write_metadata
            if value & ~mask or not 0 <= mask < (1 << 64):
                raise SimError("bad_metadata", f"write_metadata {value:#x}/{mask:#x}")
        entry = Entry(rule, normalize_match(rule.match))
        self._tables.setdefault(rule.table, {})[entry.key] = entry
        self._sorted.pop(rule.table, None)

    def add_all(self, rules: Iterable[FlowRule]) -> None:
        for rule in rules:
            self.add(rule)

    def delete(
        self, cookie: int = 0, cookie_mask: int = 0, table: str | None = None,
        match: Iterable[tuple[str, MatchValue]] = (),
    ) -> int:
        """OFPFC_DELETE (non-strict): every entry (in ``table`` or all tables) whose cookie
        agrees under the mask and whose match is at least as specific as ``match``."""
        general = normalize_match(match)
        return self._remove(
            lambda e: (e.rule.cookie & cookie_mask) == (cookie & cookie_mask) and match_covers(general, e.norm),
            table,
        )

    def delete_strict(
        self, table: str, priority: int, match: Iterable[tuple[str, MatchValue]],
        cookie: int = 0, cookie_mask: int = 0,
    ) -> int:
        """OFPFC_DELETE_STRICT: the entry with exactly this priority and match."""
        norm = normalize_match(match)
        return self._remove(
            lambda e: e.key == (priority, norm) and (e.rule.cookie & cookie_mask) == (cookie & cookie_mask),
            table,
        )

    def _remove(self, pred: Callable[[Entry], bool], table: str | None) -> int:
        removed = 0
        for name in [table] if table is not None else list(self._tables):
            entries = self._tables.get(name, {})
            for key in [k for k, e in entries.items() if pred(e)]:
                del entries[key]
                removed += 1
            self._sorted.pop(name, None)
        return removed

    # --- inspection -----------------------------------------------------------------------
    def rules(self, table: str | None = None) -> list[FlowRule]:
        names = [table] if table is not None else [t.name for t in TABLES]
        return [e.rule for n in names for e in self._ordered(n)]

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

    def table_hash(self) -> str:
        """A hash of the table contents that ignores install order (idempotence checks)."""
        h = hashlib.sha256()
        for line in sorted(_canonical(e) for t in self._tables.values() for e in t.values()):
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()

    def _ordered(self, table: str) -> list[Entry]:
        cached = self._sorted.get(table)
        if cached is None:
            # highest priority first; equal priority in canonical order so ties are deterministic
            cached = sorted(self._tables.get(table, {}).values(), key=lambda e: (-e.rule.priority, _canonical(e)))
            self._sorted[table] = cached
        return cached

    # --- packets --------------------------------------------------------------------------
    def process(self, pkt: Packet) -> Verdict:
        fields = pkt.oxm_fields()
        metadata = 0
        outputs: set[int] = set()
        to_controller = False
        path: list[tuple[str, FlowRule]] = []
        ties: list[tuple[str, tuple[FlowRule, ...]]] = []
        table: str | None = TABLES[0].name
        while table is not None:
            fields["metadata"] = metadata
            hits = [e for e in self._ordered(table) if e.matches(fields)]
            if not hits:
                break  # OpenFlow 1.3: no table-miss entry -> drop
            best = hits[0]
            tied = tuple(e.rule for e in hits if e.rule.priority == best.rule.priority)
            if len(tied) > 1:
                ties.append((table, tied))
            rule = best.rule
            path.append((table, rule))
            for act in rule.actions:
                to_controller |= self._output(act.port, pkt.in_port, outputs)
            if rule.write_metadata is not None:
                value, mask = rule.write_metadata
                metadata = (metadata & ~mask) | (value & mask)
            table = rule.goto
            if table is not None and TABLE_BY_NAME[table].table_id <= TABLE_BY_NAME[rule.table].table_id:
                raise SimError("bad_goto", f"{rule.table} -> {table}")
        return Verdict(frozenset(outputs), to_controller, tuple(path), tuple(ties), metadata)

    def _output(self, port: int | str, in_port: int, outputs: set[int]) -> bool:
        if port == "CONTROLLER":
            return True
        if port == "IN_PORT":
            outputs.add(in_port)
        elif port in ("FLOOD", "ALL"):
            outputs.update(p for p in self.ports if p != in_port)
        elif isinstance(port, int):
            if port != in_port:  # OpenFlow: only IN_PORT may send a packet back where it came from
                outputs.add(port)
        else:
            raise SimError("bad_port", f"output to {port!r}")
        return False

    def is_output(self, pkt: Packet, port: int) -> bool:
        return port in self.process(pkt).outputs


def _canonical(e: Entry) -> str:
    r = e.rule
    acts = ",".join(f"{a.port}/{a.max_len}" for a in r.actions)
    wm = "" if r.write_metadata is None else f"{r.write_metadata[0]:#x}/{r.write_metadata[1]:#x}"
    match = ",".join(f"{f}={v:#x}/{m:#x}" for f, v, m in e.norm)
    return (f"{r.table}|{r.priority:05d}|{match}|{acts}|{r.goto}|{wm}|{r.cookie:#x}|{r.meter}|"
            f"{r.idle_timeout}|{r.hard_timeout}")
