"""Which addresses each watched DNS name stands for right now, learnt from the site resolver's answers.

The enforcer copies the DNS traffic of MUD devices to the controller; :mod:`mud_ryu.dnsframe` turns a
frame into a :class:`~mud_ryu.dnsframe.DnsQuery` or :class:`~mud_ryu.dnsframe.DnsAnswer`, and this
table decides what an answer may change. Pure: no clock (``now`` is an argument everywhere), no I/O.

Rules (THREATS.md row 16, draft-ietf-opsawg-mud-iot-dns-considerations section 3):

* Only answers from a configured resolver count (``not-resolver``); an empty resolver set binds
  nothing (fail closed). Each answer must match an outstanding query seen within
  ``query_timeout_s``: same client MAC, IP and port, same resolver, txid, question name and type
  (``unsolicited`` / ``wrong-txid`` / ``wrong-client``); a matched query is consumed, so one query
  lets in one answer. rcode != 0 changes nothing (``rcode``: an NXDOMAIN never removes).
* Only names some active profile watches are bound: the question name and every name of its CNAME
  chain that is watched get the final addresses (``not-watched`` when none is).
* An answer can only add an address or extend its expiry, never remove or shorten: removal happens
  only by expiry, so a device's open flows survive record rotation (R15 make-before-break).
* TTLs are clamped to [``ttl_floor_s``, ``ttl_ceiling_s``]: tiny TTLs would churn flows, huge ones
  would keep a stale address allowed for ever.
* Per-name cap: a full name keeps the addresses it holds (they may carry live connections) and
  refuses newcomers until some expire (counter ``address-cap``); newcomers competing for the free
  slots are taken longest-lived first, ties by address. Addresses that can never be a remote
  service (unspecified, loopback, multicast, link-local, reserved, and their IPv4-mapped forms) are
  refused (``address-refused``): a hostile zone must not open the device's own host or link.
* ``max_names`` distinct names may be watched; further names are refused (they keep no addresses,
  so their ACEs compile to no flows, never to a wildcard).
* Outstanding queries are bounded globally and per client MAC (the oldest is evicted), so one
  chatty device cannot push the queries of others out of the table.

:class:`Update` is designed for make-before-break: the caller installs ``added`` first, waits for a
barrier, then deletes ``removed``; :meth:`Update.then` composes two updates into their net effect.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mud_ryu.dnsframe import DnsAnswer, DnsQuery

IGNORE_REASONS: frozenset[str] = frozenset(
    {"not-resolver", "unsolicited", "wrong-txid", "wrong-client", "rcode", "not-watched", "no-addresses"}
)
COUNTERS: frozenset[str] = IGNORE_REASONS | frozenset(
    {
        "queries",  # queries recorded as outstanding
        "queries-not-resolver",  # queries to other servers: not recorded
        "outstanding-evicted",
        "answers-merged",
        "seeds-merged",
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


def _check_time(value: float, name: str) -> None:
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
            _check_time(getattr(self, name), name)
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


_Client = tuple[str, str, int]  # MAC, IP, port
_Question = tuple[str, str, int]  # resolver, qname, qtype
_Key = tuple[_Client, _Question, int]  # ..., txid


class DnsBindings:
    """The binding table. Not thread-safe: the enforcer owns it from its single event loop."""

    def __init__(self, settings: DnsBindSettings | None = None) -> None:
        self.settings = settings if settings is not None else DnsBindSettings()
        self._owners: dict[str, dict[str, str]] = {}  # owner -> {spelling: normalized name}
        self._refs: dict[str, int] = {}  # normalized name -> number of owners watching it
        self._bound: dict[str, dict[str, float]] = {}  # name -> {address: expiry}
        self._heap: list[tuple[float, str, str]] = []  # (expiry, name, address); stale entries skipped
        self._live = 0  # number of (name, address) bindings
        self._pending: OrderedDict[_Key, float] = OrderedDict()  # outstanding query -> seen at
        self._per_client: dict[str, OrderedDict[_Key, None]] = {}  # client MAC -> its outstanding keys
        self._questions: dict[_Question, int] = {}  # outstanding count per question (for wrong-client)
        self._counters = dict.fromkeys(sorted(COUNTERS), 0)

    # ---- what is watched ---------------------------------------------------------------------------

    def watch(self, owner: str, names: Iterable[str]) -> WatchResult:
        """Set the DNS names ``owner`` (a profile, a device) uses, replacing its previous set."""
        spellings: dict[str, str] = {}
        refused: set[str] = set()
        previous = set(self._owners.get(owner, {}).values())
        fresh: set[str] = set()  # names this call adds to the watched set (bounded by max_names)
        for spelling in sorted(set(names)):
            norm = normalize_name(spelling)
            if norm is not None and norm not in self._refs and norm not in fresh:
                if len(self._refs) + len(fresh) >= self.settings.max_names:
                    norm = None
                else:
                    fresh.add(norm)
            if norm is None:
                refused.add(spelling)
            else:
                spellings[spelling] = norm
        self._counters["names-refused"] += len(refused)
        for norm in set(spellings.values()) - previous:
            self._refs[norm] = self._refs.get(norm, 0) + 1
        self._owners[owner] = spellings
        return WatchResult(self._release(previous - set(spellings.values())), frozenset(refused))

    def unwatch(self, owner: str) -> Update:
        """``owner`` uses no DNS names any more; names nobody else watches lose their addresses."""
        return self._release(set(self._owners.pop(owner, {}).values()))

    def _release(self, names: set[str]) -> Update:
        removed: dict[str, frozenset[str]] = {}
        for norm in names:
            self._refs[norm] -= 1
            if self._refs[norm] == 0:
                del self._refs[norm]
                removed[norm] = frozenset(self._bound.pop(norm, {}))  # heap entries go stale
                self._live -= len(removed[norm])
        return Update(removed=removed)

    def watched(self) -> frozenset[str]:
        return frozenset(self._refs)

    # ---- queries and answers ---------------------------------------------------------------------

    def query_seen(self, q: DnsQuery, now: float) -> bool:
        """Record ``q`` as outstanding; False when it goes to a server that is not a configured resolver."""
        _check_time(now, "now")
        self._purge(now)
        if q.resolver_ip not in self.settings.resolvers:
            self._counters["queries-not-resolver"] += 1
            return False
        key: _Key = ((q.client_mac, q.client_ip, q.client_port), (q.resolver_ip, q.qname, q.qtype), q.txid)
        if key in self._pending:  # a retransmission: restart its window
            self._forget(key)
        own = self._per_client.setdefault(q.client_mac, OrderedDict())
        while len(own) >= self.settings.max_outstanding_per_client:
            self._forget(next(iter(own)), evicted=True)
        while len(self._pending) >= self.settings.max_outstanding:
            self._forget(next(iter(self._pending)), evicted=True)
        own = self._per_client.setdefault(q.client_mac, OrderedDict())
        self._pending[key] = now
        own[key] = None
        self._questions[key[1]] = self._questions.get(key[1], 0) + 1
        self._counters["queries"] += 1
        return True

    def answer_seen(self, a: DnsAnswer, now: float) -> Update | Ignored:
        """Merge what ``a`` says into the table, or say why it is ignored (see the module rules)."""
        _check_time(now, "now")
        self._purge(now)
        if a.resolver_ip not in self.settings.resolvers:
            return self._ignore("not-resolver")
        client, question = (a.client_mac, a.client_ip, a.client_port), (a.resolver_ip, a.qname, a.qtype)
        key: _Key = (client, question, a.txid)
        seen = self._pending.get(key)
        if seen is None or now - seen > self.settings.query_timeout_s:
            return self._ignore(self._mismatch(client, question))
        self._forget(key)
        if a.rcode != 0:
            return self._ignore("rcode")
        result = self._merge(a.chain, ((r.address, r.ttl) for r in a.addresses), now)
        if isinstance(result, Update):
            self._counters["answers-merged"] += 1
        return result

    def seed(self, name: str, addresses: Iterable[str], ttl: float, now: float) -> Update | Ignored:
        """Bind the result of the caller's own resolution of ``name`` through a configured resolver.

        No query/resolver check (the caller made the query); the other rules apply. Addresses that
        do not parse raise ValueError: they come from the caller's resolver library, not the wire.
        """
        _check_time(now, "now")
        _check_time(ttl, "ttl")
        norm = normalize_name(name)
        if norm is None or norm not in self._refs:
            return self._ignore("not-watched")
        records = [(str(ipaddress.ip_address(x)), ttl) for x in addresses]
        result = self._merge((norm,), records, now)
        if isinstance(result, Update):
            self._counters["seeds-merged"] += 1
        return result

    def _mismatch(self, client: _Client, question: _Question) -> str:
        own: Mapping[_Key, None] = self._per_client.get(client[0], {})
        if any(k[0] == client and k[1] == question for k in own):
            return "wrong-txid"
        return "wrong-client" if self._questions.get(question) else "unsolicited"

    def _merge(self, chain: Iterable[str], records: Iterable[tuple[str, float]], now: float) -> Update | Ignored:
        names = [n for n in dict.fromkeys(chain) if n in self._refs]
        if not names:
            return self._ignore("not-watched")
        expiry: dict[str, float] = {}
        for address, ttl in records:
            if not bindable(address):
                self._counters["address-refused"] += 1
                continue
            expiry[address] = max(expiry.get(address, -math.inf), now + self.settings.clamp_ttl(ttl))
        if not expiry:
            return self._ignore("no-addresses")
        added: dict[str, set[str]] = {}
        for name in names:
            table = self._bound.setdefault(name, {})
            newcomers: list[tuple[float, str]] = []
            for address, until in expiry.items():
                old = table.get(address)
                if old is None:
                    newcomers.append((until, address))
                elif until > old:  # extend only: an answer never shortens
                    table[address] = until
                    heapq.heappush(self._heap, (until, name, address))
                    self._counters["addresses-extended"] += 1
            newcomers.sort(key=lambda x: (-x[0], x[1]))
            room = max(0, self.settings.max_addresses_per_name - len(table))
            self._counters["address-cap"] += max(0, len(newcomers) - room)
            for until, address in newcomers[:room]:
                table[address] = until
                heapq.heappush(self._heap, (until, name, address))
                added.setdefault(name, set()).add(address)
            self._counters["addresses-added"] += min(room, len(newcomers))
            self._live += min(room, len(newcomers))
            if not table:
                del self._bound[name]
        self._compact()
        return Update(added={n: frozenset(a) for n, a in added.items()})

    # ---- expiry ------------------------------------------------------------------------------------

    def expire(self, now: float) -> Update:
        """Unbind every address whose expiry is at or before ``now``."""
        _check_time(now, "now")
        self._purge(now)
        removed: dict[str, set[str]] = {}
        while self._heap and self._heap[0][0] <= now:
            until, name, address = heapq.heappop(self._heap)
            table = self._bound.get(name)
            if table is None or table.get(address) != until:
                continue  # stale: extended, or the name was unwatched
            del table[address]
            if not table:
                del self._bound[name]
            removed.setdefault(name, set()).add(address)
            self._live -= 1
            self._counters["expired"] += 1
        return Update(removed={n: frozenset(a) for n, a in removed.items()})

    def next_expiry(self) -> float | None:
        """When ``expire`` next has something to do (None: nothing bound)."""
        while self._heap:
            until, name, address = self._heap[0]
            if self._bound.get(name, {}).get(address) == until:
                return until
            heapq.heappop(self._heap)
        return None

    def _compact(self) -> None:
        # Every extension pushes a new heap entry; rebuild once stale entries dominate, so the heap
        # stays within a constant factor of the live bindings.
        if len(self._heap) > 2 * self._live + 1024:
            self._heap = [(u, n, a) for n, t in self._bound.items() for a, u in t.items()]
            heapq.heapify(self._heap)

    # ---- outstanding queries -----------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        timeout = self.settings.query_timeout_s
        while self._pending:
            key, seen = next(iter(self._pending.items()))
            if now - seen <= timeout:
                break
            self._forget(key)

    def _forget(self, key: _Key, *, evicted: bool = False) -> None:
        del self._pending[key]
        own = self._per_client[key[0][0]]
        del own[key]
        if not own:
            del self._per_client[key[0][0]]
        self._questions[key[1]] -= 1
        if not self._questions[key[1]]:
            del self._questions[key[1]]
        if evicted:
            self._counters["outstanding-evicted"] += 1

    def _ignore(self, reason: str) -> Ignored:
        self._counters[reason] += 1
        return Ignored(reason)

    # ---- views -----------------------------------------------------------------------------------

    def current(self) -> Mapping[str, tuple[str, ...]]:
        """Bound addresses per watched name, for ``NetworkContext.dns``: keyed by every spelling the
        owners used (and the normalized name), addresses sorted; names without addresses are absent."""
        out: dict[str, tuple[str, ...]] = {}
        for name, table in self._bound.items():
            out[name] = tuple(sorted(table, key=lambda a: (":" in a, ipaddress.ip_address(a).packed)))
        for spellings in self._owners.values():
            for spelling, norm in spellings.items():
                if norm in out:
                    out[spelling] = out[norm]
        return MappingProxyType(dict(sorted(out.items())))

    def expiries(self) -> Mapping[str, Mapping[str, float]]:
        """A copy of the bindings with their expiry (observability, tests)."""
        return MappingProxyType({n: MappingProxyType(dict(t)) for n, t in sorted(self._bound.items())})

    def outstanding(self) -> int:
        return len(self._pending)

    def counters(self) -> Mapping[str, int]:
        return MappingProxyType(dict(self._counters))
