"""``DnsBindings.current()`` is cached (a name's sorted addresses until its set changes, the whole view until
anything it shows changes): after any sequence of watches, answers, seeds, expiries and unwatches it must equal a
fresh recomputation from the table's bindings and the spellings the owners were granted, and a view handed out
earlier must never change under its holder."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.dns.bind import DnsBindings, DnsBindSettings, normalize_name
from mud_ryu.dns.frame import AddressRecord, DnsAnswer, DnsQuery

RESOLVER = "192.0.2.53"
MAC, IP, PORT = "02:00:00:00:00:01", "10.0.0.1", 40000
T0 = 1_700_000_000.0
NAMES = ["a.example", "b.example", "c.example", "d.example"]
SPELLINGS = [*NAMES, "A.Example", "b.example.", "C.EXAMPLE."]  # several spellings of the same names
ADDRESSES = ["198.51.100.7", "198.51.100.10", "203.0.113.9", "2001:db8::7", "2001:db8::10", "127.0.0.1"]


def _oracle(b: DnsBindings, granted: Mapping[str, frozenset[str]]) -> list[tuple[str, tuple[str, ...]]]:
    """current() recomputed from scratch: every bound name and every granted spelling of it, addresses IPv4 first
    and by value, keys sorted."""
    out: dict[str, tuple[str, ...]] = {}
    for name, table in b.expiries().items():
        out[name] = tuple(sorted(table, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a))))
    for spellings in granted.values():
        for spelling in spellings:
            norm = normalize_name(spelling)
            if norm in out:
                out[spelling] = out[norm]
    return sorted(out.items())


def _answer(chain: Sequence[str], addresses: Sequence[tuple[str, int]], txid: int) -> DnsAnswer:
    records = tuple(AddressRecord(a, ttl) for a, ttl in addresses)
    return DnsAnswer(MAC, IP, PORT, RESOLVER, None, txid, 0, chain[0], 1, tuple(chain), records)


_records = st.lists(st.tuples(st.sampled_from(ADDRESSES), st.sampled_from([1, 60, 90, 600])), max_size=4)
_ops = st.one_of(
    st.tuples(st.just("watch"), st.sampled_from(["p1", "p2", "p3"]), st.lists(st.sampled_from(SPELLINGS), max_size=4)),
    st.tuples(st.just("unwatch"), st.sampled_from(["p1", "p2", "p3"])),
    st.tuples(st.just("answer"), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), _records, st.booleans()),
    st.tuples(st.just("seed"), st.sampled_from(SPELLINGS), _records),
    st.tuples(st.just("expire"), st.sampled_from([0.0, 30.0, 61.0, 100.0, 700.0])),
    st.tuples(st.just("read")),  # a read between changes: the next change must not alter what it returned
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ops, max_size=50), st.integers(1, 3), st.integers(1, 4))
def test_cached_view_equals_a_fresh_recomputation(ops: list[tuple[object, ...]], cap: int, max_names: int) -> None:
    b = DnsBindings(DnsBindSettings(resolvers=frozenset({RESOLVER}), max_addresses_per_name=cap, max_names=max_names))
    granted: dict[str, frozenset[str]] = {}  # owner -> the spellings watch() accepted
    handed_out: list[tuple[Mapping[str, tuple[str, ...]], list[tuple[str, tuple[str, ...]]]]] = []
    now, txid = T0, 0
    for op in ops:
        kind = op[0]
        if kind == "watch":
            owner, spellings = str(op[1]), [str(s) for s in op[2]]  # type: ignore[attr-defined]
            result = b.watch(owner, spellings)
            granted[owner] = frozenset(spellings) - result.refused
        elif kind == "unwatch":
            b.unwatch(str(op[1]))
            granted.pop(str(op[1]), None)
        elif kind == "answer":
            txid += 1
            chain, records = op[1], op[2]
            a = _answer(chain, records, txid)  # type: ignore[arg-type]
            if op[3]:  # solicited (else ignored: the view must not move)
                b.query_seen(DnsQuery(MAC, IP, PORT, RESOLVER, None, txid, a.qname, 1), now)
            b.answer_seen(a, now)
        elif kind == "seed":
            for address, ttl in op[2]:  # type: ignore[attr-defined]
                b.seed(str(op[1]), [address], float(ttl), now)
        elif kind == "expire":
            now += float(str(op[1]))
            b.expire(now)
        else:
            view = b.current()
            handed_out.append((view, list(view.items())))
        assert list(b.current().items()) == _oracle(b, granted)
        assert b.current() is b.current()  # unchanged table: the same view, no rebuild
        assert set(b._ordered) <= set(b.expiries())  # the cache holds no name that lost its addresses
    for view, items in handed_out:
        assert list(view.items()) == items  # a view once handed out is a snapshot
    b.expire(now + 86400 * 2)
    assert b.current() == {}


def test_an_extension_keeps_the_view_and_an_expiry_drops_it() -> None:
    b = DnsBindings(DnsBindSettings(resolvers=frozenset({RESOLVER})))
    b.watch("p", ["A.example"])
    b.seed("a.example", ["198.51.100.7"], 60, T0)
    first = b.current()
    assert dict(first) == {"A.example": ("198.51.100.7",), "a.example": ("198.51.100.7",)}
    b.seed("a.example", ["198.51.100.7"], 600, T0)  # extends the expiry only: the set shown is the same
    assert b.current() is first
    b.seed("a.example", ["2001:db8::1", "198.51.100.1"], 60, T0)
    assert b.current()["a.example"] == ("198.51.100.1", "198.51.100.7", "2001:db8::1")
    b.expire(T0 + 61)
    assert b.current()["a.example"] == ("198.51.100.7",) and first["a.example"] == ("198.51.100.7",)
    b.watch("p", ["a.example"])  # a spelling dropped: its key goes, the name stays
    assert dict(b.current()) == {"a.example": ("198.51.100.7",)}
    b.unwatch("p")
    assert b.current() == {}


def test_the_view_survives_heap_compaction() -> None:
    """Every extension pushes a heap entry; once stale entries dominate the heap is rebuilt (no binding changes)."""
    b = DnsBindings(DnsBindSettings(resolvers=frozenset({RESOLVER})))
    b.watch("p", NAMES)
    b.seed("a.example", ["198.51.100.7", "2001:db8::7"], 60, T0)
    b.seed("b.example", ["203.0.113.9"], 60, T0)
    expected = b.current()
    for k in range(1, 1200):  # 2 extensions per call: well past the compaction threshold (2 * live + 1024)
        b.seed("a.example", ["198.51.100.7", "2001:db8::7"], 60 + k, T0)
    assert b.current() is expected and len(b._heap) < 1024  # compacted, the view untouched
    b.expire(T0 + 61)
    assert dict(b.current()) == {"a.example": ("198.51.100.7", "2001:db8::7")}
    b.expire(T0 + 60 + 1200)
    assert b.current() == {} and b.next_expiry() is None
