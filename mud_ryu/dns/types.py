"""The values of the DNS binding table (:mod:`mud_ryu.dns.bind`): its settings, its results, and the
rules for names and addresses that every path into the table applies.

Kept apart from the table so that the table reads as its algorithm: what a name or an address must be
to be bound is decided here once (a hostile zone must not open the device's own host or link), and the
result types say how the caller applies a change (make-before-break, see :class:`Update`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

IGNORE_REASONS: frozenset[str] = frozenset(
    {"not-resolver", "unsolicited", "wrong-txid", "wrong-client", "wrong-port", "rcode", "not-watched", "no-addresses"}
)
COUNTERS: frozenset[str] = IGNORE_REASONS | frozenset(
    {
        "queries",  # queries recorded as outstanding
        "queries-not-resolver",  # queries to other servers: not recorded
        "outstanding-evicted",
        "answers-merged",
        "seeds-merged",
        "restored",  # bindings saved before a controller restart, bound again
        "addresses-added",
        "addresses-extended",
        "address-cap",
        "address-refused",
        "expired",
        "names-refused",
    }
)

_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")


def normalize_name(name: str) -> str | None:
    """The key a DNS name is bound under (lower case, no trailing dot), or None when not a host name."""
    if not isinstance(name, str):
        return None
    value = name.lower()
    value = value[:-1] if value.endswith(".") else value
    if not value or len(value) > 253 or not value.isascii():
        return None
    return value if all(_LABEL.match(label) for label in value.split(".")) else None


def check_seconds(value: float, name: str) -> None:
    """Refuse a time or duration that is not a finite number (a bool, NaN, inf, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")


def bindable(address: str) -> bool:
    """Whether an answer may bind ``address`` (canonical text) to a name: a unicast, routable-scope address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or ip.is_reserved)


@dataclass(frozen=True, slots=True)
class DnsBindSettings:
    """Limits of the binding table; ``resolvers`` are the only servers whose answers count."""

    resolvers: frozenset[str] = frozenset()
    ttl_floor_s: float = 60.0
    ttl_ceiling_s: float = 86400.0
    max_addresses_per_name: int = 16
    max_names: int = 10_000
    query_timeout_s: float = 10.0
    max_outstanding: int = 4096
    max_outstanding_per_client: int = 32

    def __post_init__(self) -> None:
        # canonical text, so "2001:DB8::0:53" and the scanner's "2001:db8::53" compare equal
        object.__setattr__(self, "resolvers", frozenset(str(ipaddress.ip_address(r)) for r in self.resolvers))
        for name in ("ttl_floor_s", "ttl_ceiling_s", "query_timeout_s"):
            check_seconds(getattr(self, name), name)
        if not 0 < self.ttl_floor_s <= self.ttl_ceiling_s:
            raise ValueError("TTL clamp needs 0 < ttl_floor_s <= ttl_ceiling_s")
        if self.query_timeout_s <= 0:
            raise ValueError("query_timeout_s must be positive")
        for name in ("max_addresses_per_name", "max_names", "max_outstanding", "max_outstanding_per_client"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    def clamp_ttl(self, ttl: float) -> float:
        return max(self.ttl_floor_s, min(self.ttl_ceiling_s, ttl))


def _frozen_sets(mapping: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({k: frozenset(v) for k, v in sorted(mapping.items()) if v})


@dataclass(frozen=True)
class Update:
    """What changed: addresses bound (``added``) and unbound (``removed``) per name.

    Apply ``added`` before ``removed`` (with a barrier between): an address moving from one name to
    another is then allowed under the new name before it stops being allowed under the old one.
    """

    added: Mapping[str, frozenset[str]] = field(default_factory=dict)
    removed: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "added", _frozen_sets(self.added))
        object.__setattr__(self, "removed", _frozen_sets(self.removed))

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed

    def names(self) -> frozenset[str]:
        """The names whose address sets changed (the ACEs to recompile)."""
        return frozenset(self.added) | frozenset(self.removed)

    def then(self, later: Update) -> Update:
        """The net effect of this update followed by ``later`` (an add undone by a removal cancels out)."""
        names = self.names() | later.names()
        empty: frozenset[str] = frozenset()
        added, removed = {}, {}
        for n in names:
            a1, r1 = self.added.get(n, empty), self.removed.get(n, empty)
            a2, r2 = later.added.get(n, empty), later.removed.get(n, empty)
            added[n], removed[n] = (a1 - r2) | (a2 - r1), (r1 - a2) | (r2 - a1)
        return Update(added, removed)


@dataclass(frozen=True, slots=True)
class Ignored:
    """An answer or seed that changed nothing; ``reason`` comes from IGNORE_REASONS."""

    reason: str


@dataclass(frozen=True, slots=True)
class WatchResult:
    """``update`` unbinds the names no owner watches any more; ``refused`` are names not watched
    (not a host name, or beyond ``max_names``)."""

    update: Update
    refused: frozenset[str]
