"""The DNS queries devices have sent to a configured resolver and not yet had answered: which answers
the binding table (:mod:`mud_ryu.dns.bind`) may believe.

An answer counts only if it comes from a configured resolver and matches an outstanding query seen
within ``query_timeout_s``: same client MAC, IP and port, same resolver, txid, question name and
type. A matched query is consumed, so one query lets in one answer (an attacker racing the resolver
gets at most the one slot the device opened, and only with the txid). The reason an answer is not
let in is one of ``not-resolver``, ``unsolicited`` (nobody asked), ``wrong-txid`` (this client asked,
under another txid) or ``wrong-client`` (another client asked this).

Bounded globally (``max_outstanding``) and per client MAC (``max_outstanding_per_client``), the
oldest evicted first, so one chatty device cannot push the queries of others out of the table.
Pure: ``now`` is an argument; counts go into the caller's counter map.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from mud_ryu.dns.frame import DnsAnswer, DnsQuery
from mud_ryu.dns.types import DnsBindSettings

_Client = tuple[str, str, int]  # MAC, IP, port
_Question = tuple[str, str, int]  # resolver, qname, qtype
_Key = tuple[_Client, _Question, int]  # ..., txid


class OutstandingQueries:
    """Outstanding queries, oldest first. Not thread-safe: owned by one DnsBindings.

    ``counters`` is the owner's counter map: ``queries``, ``queries-not-resolver`` and
    ``outstanding-evicted`` are counted into it (the owner reports all its counters together).
    """

    def __init__(self, settings: DnsBindSettings, counters: dict[str, int]) -> None:
        self._settings = settings
        self._counters = counters
        self._pending: OrderedDict[_Key, float] = OrderedDict()  # outstanding query -> seen at
        self._per_client: dict[str, OrderedDict[_Key, None]] = {}  # client MAC -> its outstanding keys
        self._questions: dict[_Question, int] = {}  # outstanding count per question (for wrong-client)

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, q: DnsQuery, now: float) -> bool:
        """Record ``q`` as outstanding; False when it goes to a server that is not a configured resolver."""
        if q.resolver_ip not in self._settings.resolvers:
            self._counters["queries-not-resolver"] += 1
            return False
        key: _Key = ((q.client_mac, q.client_ip, q.client_port), (q.resolver_ip, q.qname, q.qtype), q.txid)
        if key in self._pending:  # a retransmission: restart its window
            self._forget(key)
        own = self._per_client.setdefault(q.client_mac, OrderedDict())
        while len(own) >= self._settings.max_outstanding_per_client:
            self._forget(next(iter(own)), evicted=True)
        while len(self._pending) >= self._settings.max_outstanding:
            self._forget(next(iter(self._pending)), evicted=True)
        own = self._per_client.setdefault(q.client_mac, OrderedDict())
        self._pending[key] = now
        own[key] = None
        self._questions[key[1]] = self._questions.get(key[1], 0) + 1
        self._counters["queries"] += 1
        return True

    def take(self, a: DnsAnswer, now: float) -> str | None:
        """Consume the query ``a`` answers and return None, or say why ``a`` is not let in."""
        if a.resolver_ip not in self._settings.resolvers:
            return "not-resolver"
        client, question = (a.client_mac, a.client_ip, a.client_port), (a.resolver_ip, a.qname, a.qtype)
        key: _Key = (client, question, a.txid)
        seen = self._pending.get(key)
        if seen is None or now - seen > self._settings.query_timeout_s:
            return self._mismatch(client, question)
        self._forget(key)
        return None

    def purge(self, now: float) -> None:
        """Drop the queries older than ``query_timeout_s``."""
        timeout = self._settings.query_timeout_s
        while self._pending:
            key, seen = next(iter(self._pending.items()))
            if now - seen <= timeout:
                break
            self._forget(key)

    def _mismatch(self, client: _Client, question: _Question) -> str:
        own: Mapping[_Key, None] = self._per_client.get(client[0], {})
        if any(k[0] == client and k[1] == question for k in own):
            return "wrong-txid"
        return "wrong-client" if self._questions.get(question) else "unsolicited"

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
