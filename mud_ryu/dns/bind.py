"""Which addresses each watched DNS name stands for right now, learnt from the site resolver's answers.

The enforcer copies the DNS traffic of MUD devices to the controller; :mod:`mud_ryu.dns.frame` turns a
frame into a :class:`~mud_ryu.dns.frame.DnsQuery` or :class:`~mud_ryu.dns.frame.DnsAnswer`, and this
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

Layout: this module is the table (what is watched, merging, expiry, views); the outstanding queries
and the answer-acceptance checks are :mod:`mud_ryu.dns.queries`; settings, result types and the
name/address rules are :mod:`mud_ryu.dns.types` (all importable from here, as before).
"""

from __future__ import annotations

import heapq
import ipaddress
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from mud_ryu.dns.frame import DnsAnswer, DnsQuery
from mud_ryu.dns.queries import OutstandingQueries
from mud_ryu.dns.types import (
    COUNTERS,
    IGNORE_REASONS,
    DnsBindSettings,
    Ignored,
    Update,
    WatchResult,
    bindable,
    check_seconds,
    normalize_name,
)

# The settings, result types and name/address rules moved to dnsbind_types; importable from here as before.
__all__ = [
    "COUNTERS",
    "IGNORE_REASONS",
    "DnsBindSettings",
    "DnsBindings",
    "Ignored",
    "Update",
    "WatchResult",
    "bindable",
    "normalize_name",
]


class DnsBindings:
    """The binding table. Not thread-safe: the enforcer owns it from its single event loop."""

    def __init__(self, settings: DnsBindSettings | None = None) -> None:
        self.settings = settings if settings is not None else DnsBindSettings()
        self._owners: dict[str, dict[str, str]] = {}  # owner -> {spelling: normalized name}
        self._refs: dict[str, int] = {}  # normalized name -> number of owners watching it
        self._bound: dict[str, dict[str, float]] = {}  # name -> {address: expiry}
        self._heap: list[tuple[float, str, str]] = []  # (expiry, name, address); stale entries skipped
        self._live = 0  # number of (name, address) bindings
        # current() is read once per DNS update (the compile context) and used to sort every bound address of every
        # name: keep each name's sorted tuple until its set changes, and the whole view until anything it shows
        # changes (a name's set, or the spellings owners use). Views handed out are never mutated.
        self._ordered: dict[str, tuple[str, ...]] = {}  # name -> its addresses in view order (valid entries only)
        self._view: Mapping[str, tuple[str, ...]] | None = None  # the last current(); None: rebuild
        self._counters = dict.fromkeys(sorted(COUNTERS), 0)
        self._queries = OutstandingQueries(self.settings, self._counters)

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
        if self._owners.get(owner) != spellings:
            self._view = None  # the spellings current() is keyed by changed
        self._owners[owner] = spellings
        return WatchResult(self._release(previous - set(spellings.values())), frozenset(refused))

    def unwatch(self, owner: str) -> Update:
        """``owner`` uses no DNS names any more; names nobody else watches lose their addresses."""
        spellings = self._owners.pop(owner, {})
        if spellings:
            self._view = None
        return self._release(set(spellings.values()))

    def _release(self, names: set[str]) -> Update:
        removed: dict[str, frozenset[str]] = {}
        for norm in names:
            self._refs[norm] -= 1
            if self._refs[norm] == 0:
                del self._refs[norm]
                removed[norm] = frozenset(self._bound.pop(norm, {}))  # heap entries go stale
                self._live -= len(removed[norm])
                if removed[norm]:
                    self._changed(norm)
        return Update(removed=removed)

    def watched(self) -> frozenset[str]:
        return frozenset(self._refs)

    # ---- queries and answers ---------------------------------------------------------------------

    def query_seen(self, q: DnsQuery, now: float) -> bool:
        """Record ``q`` as outstanding; False when it goes to a server that is not a configured resolver."""
        check_seconds(now, "now")
        self._queries.purge(now)
        return self._queries.record(q, now)

    def answer_seen(self, a: DnsAnswer, now: float) -> Update | Ignored:
        """Merge what ``a`` says into the table, or say why it is ignored (see the module rules)."""
        check_seconds(now, "now")
        self._queries.purge(now)
        refused = self._queries.take(a, now)
        if refused is not None:
            return self._ignore(refused)
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
        check_seconds(now, "now")
        check_seconds(ttl, "ttl")
        norm = normalize_name(name)
        if norm is None or norm not in self._refs:
            return self._ignore("not-watched")
        records = [(str(ipaddress.ip_address(x)), ttl) for x in addresses]
        result = self._merge((norm,), records, now)
        if isinstance(result, Update):
            self._counters["seeds-merged"] += 1
        return result

    def restore(self, bindings: Iterable[tuple[str, str, float]], now: float) -> Update:
        """Bind again what was bound before a controller restart: ``(name, address, expiry)`` rows as
        :meth:`expiries` gave them. Each was accepted under the answer rules when learnt; it comes back until its
        saved expiry only (capped at ``now`` + the ceiling, no floor: a restart never lengthens a binding), for a
        watched name, a bindable address and within the per-name cap. Rows that fail any of these are dropped."""
        check_seconds(now, "now")
        added: dict[str, set[str]] = {}
        for name, address, expires_at in bindings:
            norm = normalize_name(name)
            try:
                text = str(ipaddress.ip_address(address))
            except ValueError:
                continue
            if norm is None or norm not in self._refs or not bindable(text) or not math.isfinite(expires_at):
                continue
            until = min(expires_at, now + self.settings.ttl_ceiling_s)
            table = self._bound.setdefault(norm, {})
            if until <= now or (text not in table and len(table) >= self.settings.max_addresses_per_name):
                if not table:
                    del self._bound[norm]
                continue
            if until <= table.get(text, -math.inf):
                continue
            if text not in table:
                added.setdefault(norm, set()).add(text)
                self._live += 1
                self._changed(norm)
            table[text] = until
            heapq.heappush(self._heap, (until, norm, text))
            self._counters["restored"] += 1
        self._compact()
        return Update(added={n: frozenset(a) for n, a in added.items()})

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
            if name in added:  # an extension changes an expiry, not the set current() shows
                self._changed(name)
            if not table:
                del self._bound[name]
        self._compact()
        return Update(added={n: frozenset(a) for n, a in added.items()})

    # ---- expiry ------------------------------------------------------------------------------------

    def expire(self, now: float) -> Update:
        """Unbind every address whose expiry is at or before ``now``."""
        check_seconds(now, "now")
        self._queries.purge(now)
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
            self._changed(name)
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
        # stays within a constant factor of the live bindings. The bindings themselves do not change, so
        # current()'s cache stays valid.
        if len(self._heap) > 2 * self._live + 1024:
            self._heap = [(u, n, a) for n, t in self._bound.items() for a, u in t.items()]
            heapq.heapify(self._heap)

    # ---- counters and views ------------------------------------------------------------------------

    def refuse(self, reason: str) -> Ignored:
        """Count an answer the caller refused before the table saw it (``wrong-port``: not from a trusted port)."""
        if reason not in IGNORE_REASONS:
            raise ValueError(f"unknown ignore reason {reason!r}")
        return self._ignore(reason)

    def _ignore(self, reason: str) -> Ignored:
        self._counters[reason] += 1
        return Ignored(reason)

    def _changed(self, name: str) -> None:
        """``name``'s address set changed: its sorted tuple and the view are stale."""
        self._ordered.pop(name, None)
        self._view = None

    def current(self) -> Mapping[str, tuple[str, ...]]:
        """Bound addresses per watched name, for ``NetworkContext.dns``: keyed by every spelling the
        owners used (and the normalized name), IPv4 first, each family by address; names without addresses
        are absent. The same (immutable) mapping until a name's address set or the owners' spellings change."""
        if self._view is None:
            out: dict[str, tuple[str, ...]] = {}
            for name, table in self._bound.items():
                addresses = self._ordered.get(name)
                if addresses is None:
                    addresses = self._ordered[name] = _view_order(table)
                out[name] = addresses
            for spellings in self._owners.values():
                for spelling, norm in spellings.items():
                    if norm in out:
                        out[spelling] = out[norm]
            self._view = MappingProxyType(dict(sorted(out.items())))
        return self._view

    def expiries(self) -> Mapping[str, Mapping[str, float]]:
        """A copy of the bindings with their expiry (observability, tests)."""
        return MappingProxyType({n: MappingProxyType(dict(t)) for n, t in sorted(self._bound.items())})

    def outstanding(self) -> int:
        return len(self._queries)

    def counters(self) -> Mapping[str, int]:
        return MappingProxyType(dict(self._counters))


def _view_order(addresses: Iterable[str]) -> tuple[str, ...]:
    """Addresses as :meth:`DnsBindings.current` lists them: IPv4 first, then IPv6, each by numeric value."""
    return tuple(sorted(addresses, key=lambda a: (":" in a, ipaddress.ip_address(a).packed)))
