"""DnsBindings: each rule of the binding table on its own, then hypothesis properties over random
sequences of queries, answers, seeds, watches and expiries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.dns.bind import (
    COUNTERS,
    IGNORE_REASONS,
    DnsBindings,
    DnsBindSettings,
    Ignored,
    Update,
    bindable,
    normalize_name,
)
from mud_ryu.dns.frame import AddressRecord, DnsAnswer, DnsQuery, scan_dns
from tests import dns_frames as f

RESOLVER = "192.0.2.53"
NAME = "cloud.example.com"
T0 = 1_700_000_000.0
MAC, IP, PORT = f.DEVICE_MAC, f.DEVICE_IP, 40000


def q(
    qname: str = NAME, txid: int = 1, *, mac: str = MAC, port: int = PORT, resolver: str = RESOLVER, qtype: int = 1
) -> DnsQuery:
    return DnsQuery(mac, IP, port, resolver, None, txid, qname, qtype)


def ans(
    addrs: Sequence[tuple[str, int]] = (("198.51.100.7", 300),),
    *,
    chain: Sequence[str] = (NAME,),
    txid: int = 1,
    mac: str = MAC,
    port: int = PORT,
    resolver: str = RESOLVER,
    rcode: int = 0,
    qtype: int = 1,
) -> DnsAnswer:
    records = tuple(AddressRecord(a, t) for a, t in addrs)
    return DnsAnswer(mac, IP, port, resolver, None, txid, rcode, chain[0], qtype, tuple(chain), records)


def table(**kw: object) -> DnsBindings:
    b = DnsBindings(DnsBindSettings(resolvers=frozenset({RESOLVER}), **kw))  # type: ignore[arg-type]
    b.watch("profile-1", [NAME])
    return b


def solicit(b: DnsBindings, a: DnsAnswer, now: float = T0) -> Update | Ignored:
    assert b.query_seen(q(a.qname, a.txid, mac=a.client_mac, port=a.client_port, qtype=a.qtype), now)
    return b.answer_seen(a, now)


# ---- settings and helpers ------------------------------------------------------------------------


def test_settings_defaults_and_canonical_resolvers() -> None:
    s = DnsBindSettings(resolvers=frozenset({"2001:DB8:0::53"}))
    assert s.resolvers == frozenset({"2001:db8::53"})
    assert (s.ttl_floor_s, s.ttl_ceiling_s, s.max_addresses_per_name, s.max_names) == (60, 86400, 16, 10_000)
    assert (s.clamp_ttl(0), s.clamp_ttl(600), s.clamp_ttl(10**9)) == (60, 600, 86400)


@pytest.mark.parametrize(
    "kw",
    [
        {"ttl_floor_s": 0},
        {"ttl_floor_s": 100, "ttl_ceiling_s": 50},
        {"ttl_floor_s": math.nan},
        {"query_timeout_s": 0},
        {"max_addresses_per_name": 0},
        {"max_names": True},
        {"resolvers": frozenset({"resolver.example"})},
    ],
)
def test_bad_settings(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DnsBindSettings(**kw)  # type: ignore[arg-type]


def test_normalize_name() -> None:
    assert normalize_name("Cloud.Example.COM.") == NAME
    assert normalize_name("_svc.example") == "_svc.example"
    for bad in ("", ".", "a..b", "*.example.com", "caf\u00e9.example", "a" * 64 + ".com", "x." * 127 + "yy", "1.2 3"):
        assert normalize_name(bad) is None, bad


@pytest.mark.parametrize(
    "addr", ["0.0.0.0", "127.0.0.1", "224.0.0.251", "169.254.1.1", "240.0.0.1", "255.255.255.255", "::", "::1",
             "fe80::1", "ff02::1", "::ffff:127.0.0.1"],
)  # fmt: skip
def test_unbindable(addr: str) -> None:
    assert not bindable(addr)


def test_bindable() -> None:
    assert all(bindable(a) for a in ("198.51.100.7", "10.1.2.3", "2001:db8::1", "::ffff:198.51.100.7"))


def test_nan_time_is_refused() -> None:
    with pytest.raises(ValueError):
        table().expire(math.nan)
    with pytest.raises(ValueError):
        table().answer_seen(ans(), math.inf)


# ---- answers -----------------------------------------------------------------------------------


def test_solicited_answer_binds() -> None:
    b = table()
    got = solicit(b, ans([("198.51.100.9", 300), ("2001:db8::7", 300), ("198.51.100.10", 300)]))
    assert got == Update(added={NAME: frozenset({"198.51.100.9", "198.51.100.10", "2001:db8::7"})})
    assert b.current() == {NAME: ("198.51.100.9", "198.51.100.10", "2001:db8::7")}
    assert b.expiries()[NAME]["198.51.100.9"] == T0 + 300
    assert b.counters()["answers-merged"] == 1 and b.outstanding() == 0


def test_from_a_frame_end_to_end() -> None:
    b = table()
    query, answer = scan_dns(f.query_frame()), scan_dns(f.answer_frame())
    assert isinstance(query, DnsQuery) and isinstance(answer, DnsAnswer)
    assert b.query_seen(query, T0)
    assert b.answer_seen(answer, T0 + 0.01) == Update(added={NAME: frozenset({"198.51.100.7"})})


@pytest.mark.parametrize(("ttl", "lifetime"), [(0, 60), (5, 60), (600, 600), (2**31, 86400)])
def test_ttl_clamped(ttl: int, lifetime: float) -> None:
    b = table()
    solicit(b, ans([("198.51.100.7", ttl)]))
    assert b.expiries()[NAME]["198.51.100.7"] == T0 + lifetime


def test_not_from_a_resolver() -> None:
    b = table()
    b.query_seen(q(), T0)
    assert b.answer_seen(ans(resolver="203.0.113.53"), T0) == Ignored("not-resolver")
    assert b.current() == {} and b.counters()["not-resolver"] == 1


def test_empty_resolver_set_binds_nothing() -> None:
    b = DnsBindings()
    b.watch("p", [NAME])
    assert not b.query_seen(q(), T0)
    assert b.answer_seen(ans(), T0) == Ignored("not-resolver")


def test_query_to_other_server_is_not_recorded() -> None:
    b = table()
    assert not b.query_seen(q(resolver="8.8.8.8"), T0)
    assert b.outstanding() == 0 and b.counters()["queries-not-resolver"] == 1


def test_unsolicited_wrong_txid_wrong_client() -> None:
    b = table()
    assert b.answer_seen(ans(), T0) == Ignored("unsolicited")
    b.query_seen(q(txid=5), T0)
    assert b.answer_seen(ans(txid=6), T0) == Ignored("wrong-txid")
    assert b.answer_seen(ans(txid=5, port=40001), T0) == Ignored("wrong-client")
    assert b.answer_seen(ans(txid=5, mac="02:00:5e:10:00:02"), T0) == Ignored("wrong-client")
    assert b.answer_seen(ans(txid=5, qtype=28), T0) == Ignored("unsolicited")  # another question
    assert b.answer_seen(ans(txid=5, chain=("other.example.com",)), T0) == Ignored("unsolicited")
    assert isinstance(b.answer_seen(ans(txid=5), T0), Update)
    counts = b.counters()
    assert (counts["unsolicited"], counts["wrong-txid"], counts["wrong-client"]) == (3, 1, 2)


def test_query_window() -> None:
    b = table(query_timeout_s=5)
    b.query_seen(q(), T0)
    assert isinstance(b.answer_seen(ans(), T0 + 5), Update)
    b.query_seen(q(), T0)
    assert b.answer_seen(ans(), T0 + 5.01) == Ignored("unsolicited")


def test_one_query_lets_in_one_answer() -> None:
    b = table()
    assert isinstance(solicit(b, ans()), Update)
    assert b.answer_seen(ans([("203.0.113.66", 300)]), T0) == Ignored("unsolicited")
    assert b.current() == {NAME: ("198.51.100.7",)}


def test_retransmitted_query_restarts_its_window() -> None:
    b = table(query_timeout_s=5)
    b.query_seen(q(), T0)
    b.query_seen(q(), T0 + 4)
    assert b.outstanding() == 1
    assert isinstance(b.answer_seen(ans(), T0 + 8), Update)


def test_rcode_and_nodata_and_unwatched() -> None:
    b = table()
    solicit(b, ans())
    assert solicit(b, ans((), rcode=3), T0 + 1) == Ignored("rcode")
    assert solicit(b, ans(()), T0 + 1) == Ignored("no-addresses")
    assert solicit(b, ans([("127.0.0.1", 300)]), T0 + 1) == Ignored("no-addresses")
    assert solicit(b, ans(chain=("other.example.com",)), T0 + 1) == Ignored("not-watched")
    assert b.current() == {NAME: ("198.51.100.7",)}
    assert b.counters()["address-refused"] == 1


def test_cname_chain_binds_every_watched_name() -> None:
    b = table()
    b.watch("profile-2", ["edge.cdn.example.net"])
    chain = ("alias.example.org", NAME, "mid.example.net", "edge.cdn.example.net")
    got = solicit(b, ans([("203.0.113.1", 300)], chain=chain))
    assert got == Update(added={NAME: frozenset({"203.0.113.1"}), "edge.cdn.example.net": frozenset({"203.0.113.1"})})


def test_an_answer_never_removes_nor_shortens() -> None:
    b = table()
    solicit(b, ans([("198.51.100.1", 600), ("198.51.100.2", 600)]))
    got = solicit(b, ans([("198.51.100.2", 60), ("198.51.100.3", 60)], txid=2), T0 + 10)
    assert got == Update(added={NAME: frozenset({"198.51.100.3"})})
    exp = b.expiries()[NAME]
    assert exp == {"198.51.100.1": T0 + 600, "198.51.100.2": T0 + 600, "198.51.100.3": T0 + 70}
    solicit(b, ans([("198.51.100.3", 900)], txid=3), T0 + 20)
    assert b.expiries()[NAME]["198.51.100.3"] == T0 + 920
    assert b.counters()["addresses-extended"] == 1


def test_per_name_cap_keeps_holders_and_prefers_longest_lived_newcomers() -> None:
    b = table(max_addresses_per_name=3)
    solicit(b, ans([("198.51.100.1", 100), ("198.51.100.2", 100)]))
    got = solicit(b, ans([("198.51.100.9", 100), ("198.51.100.8", 500), ("198.51.100.7", 500)], txid=2))
    assert got == Update(added={NAME: frozenset({"198.51.100.7"})})  # one free slot: longest lived, lowest address
    got = solicit(b, ans([("198.51.100.5", 9999)], txid=3))
    assert got == Update()  # full: the holders stay
    assert b.current()[NAME] == ("198.51.100.1", "198.51.100.2", "198.51.100.7")
    assert b.counters()["address-cap"] == 3
    b.expire(T0 + 100)
    assert solicit(b, ans([("198.51.100.5", 60)], txid=4), T0 + 100) == Update(
        added={NAME: frozenset({"198.51.100.5"})}
    )


# ---- expiry ------------------------------------------------------------------------------------


def test_expire_and_next_expiry() -> None:
    b = table()
    assert b.next_expiry() is None and b.expire(T0) == Update()
    solicit(b, ans([("198.51.100.1", 100), ("198.51.100.2", 200)]))
    assert b.next_expiry() == T0 + 100
    assert b.expire(T0 + 99.9) == Update()
    assert b.expire(T0 + 100) == Update(removed={NAME: frozenset({"198.51.100.1"})})
    assert b.next_expiry() == T0 + 200
    solicit(b, ans([("198.51.100.2", 300)], txid=2), T0 + 150)  # extended to T0 + 450
    assert b.expire(T0 + 200) == Update() and b.next_expiry() == T0 + 450
    assert b.expire(T0 + 1000) == Update(removed={NAME: frozenset({"198.51.100.2"})})
    assert b.current() == {} and b.next_expiry() is None and b.counters()["expired"] == 2


def test_seed() -> None:
    b = table()
    got = b.seed("CLOUD.example.com.", ["198.51.100.7", "2001:DB8::0:1", "::1"], 30, T0)
    assert got == Update(added={NAME: frozenset({"198.51.100.7", "2001:db8::1"})})
    assert b.expiries()[NAME]["2001:db8::1"] == T0 + 60
    assert b.seed("unwatched.example", ["198.51.100.7"], 30, T0) == Ignored("not-watched")
    assert b.seed("bad name", ["198.51.100.7"], 30, T0) == Ignored("not-watched")
    with pytest.raises(ValueError):
        b.seed(NAME, ["not-an-address"], 30, T0)
    assert b.counters()["seeds-merged"] == 1


# ---- watching ----------------------------------------------------------------------------------


def test_watch_spellings_replace_and_shared_names() -> None:
    b = table()
    r = b.watch("profile-2", ["Cloud.Example.com.", "api.example.com", "not a name"])
    assert r.refused == frozenset({"not a name"}) and r.update == Update()
    b.seed(NAME, ["198.51.100.7"], 300, T0)
    b.seed("api.example.com", ["198.51.100.8"], 300, T0)
    assert b.current() == {
        NAME: ("198.51.100.7",),
        "Cloud.Example.com.": ("198.51.100.7",),
        "api.example.com": ("198.51.100.8",),
    }
    # profile-2 drops api.example.com: nobody else watches it, so it is unbound
    assert b.watch("profile-2", [NAME]).update == Update(removed={"api.example.com": frozenset({"198.51.100.8"})})
    assert b.unwatch("profile-2") == Update()  # profile-1 still watches NAME
    assert b.unwatch("profile-1") == Update(removed={NAME: frozenset({"198.51.100.7"})})
    assert b.watched() == frozenset() and b.current() == {} and b.next_expiry() is None
    assert b.unwatch("nobody") == Update()


def test_max_names() -> None:
    b = table(max_names=3)
    r = b.watch("p2", ["a.example", "b.example", "c.example", NAME])
    assert r.refused == frozenset({"c.example"}) and b.watched() == {NAME, "a.example", "b.example"}
    assert b.counters()["names-refused"] == 1


def test_rewatch_after_unwatch_starts_empty() -> None:
    b = table()
    solicit(b, ans())
    b.unwatch("profile-1")
    b.watch("profile-1", [NAME])
    assert b.current() == {}
    solicit(b, ans(txid=2), T0 + 1)
    assert b.next_expiry() == T0 + 301 and b.expire(T0 + 300) == Update()


# ---- outstanding bounds -------------------------------------------------------------------------


def test_outstanding_bounded_per_client_and_globally() -> None:
    b = table(max_outstanding_per_client=2, max_outstanding=3)
    for txid in range(3):
        b.query_seen(q(txid=txid), T0)
    assert b.outstanding() == 2 and b.answer_seen(ans(txid=0), T0) == Ignored("wrong-txid")
    b.query_seen(q(txid=9, mac="02:00:5e:10:00:02"), T0)
    b.query_seen(q(txid=8, mac="02:00:5e:10:00:03"), T0)
    assert b.outstanding() == 3 and b.counters()["outstanding-evicted"] == 2
    assert isinstance(b.answer_seen(ans(txid=8, mac="02:00:5e:10:00:03"), T0), Update)


# ---- Update --------------------------------------------------------------------------------------


def test_update_then_is_the_net_effect() -> None:
    x = frozenset({"198.51.100.1"})
    added, removed = Update(added={NAME: x}), Update(removed={NAME: x})
    assert added.then(removed) == Update() and removed.then(added) == Update()
    moved = Update(added={"b.example": x}).then(Update(removed={NAME: x}))
    assert moved == Update(added={"b.example": x}, removed={NAME: x}) and moved.names() == {NAME, "b.example"}
    assert Update(added={NAME: frozenset()}).empty


def test_counters_cover_every_reason() -> None:
    assert IGNORE_REASONS <= COUNTERS and set(table().counters()) == COUNTERS


# ---- properties --------------------------------------------------------------------------------

NAMES = [NAME, "edge.example.net", "other.example.org"]
RESOLVERS = [RESOLVER, "203.0.113.53"]
ADDRS = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "2001:db8::1", "2001:db8::2", "127.0.0.1", "203.0.113.9"]

TTLS = st.one_of(st.integers(0, 400), st.sampled_from([0, 2**31 - 1, 2**32 - 1]))
op_st = st.one_of(
    st.tuples(st.just("query"), st.sampled_from(NAMES), st.integers(0, 3), st.sampled_from(RESOLVERS)),
    st.tuples(
        st.just("answer"),
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True),
        st.integers(0, 3),
        st.sampled_from(RESOLVERS),
        st.lists(st.tuples(st.sampled_from(ADDRS), TTLS), max_size=6),
        st.sampled_from([0, 0, 0, 2, 3]),
        st.booleans(),  # solicited: the matching query is seen first
    ),
    st.tuples(st.just("seed"), st.sampled_from(NAMES), st.lists(st.sampled_from(ADDRS), max_size=4), TTLS),
    st.tuples(st.just("expire"), st.sampled_from([0.0, 100.0, 1000.0])),
    st.tuples(st.just("watch"), st.sampled_from(["p1", "p2"]), st.lists(st.sampled_from(NAMES), max_size=3)),
    st.tuples(st.just("unwatch"), st.sampled_from(["p1", "p2"])),
)


def _snapshot(b: DnsBindings) -> dict[str, dict[str, float]]:
    return {n: dict(t) for n, t in b.expiries().items()}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(op_st, st.sampled_from([0.0, 0.5, 30.0, 60.0, 61.0, 120.0, 400.0])), max_size=40),
    st.integers(1, 4),
)
def test_properties(ops: list[tuple[tuple[object, ...], float]], cap: int) -> None:
    s = DnsBindSettings(resolvers=frozenset({RESOLVER}), max_addresses_per_name=cap, max_names=2)
    b = DnsBindings(s)
    b.watch("p1", NAMES[:2])
    now = T0
    for op, step in ops:
        now += step
        before = _snapshot(b)
        kind = op[0]
        if kind == "query":
            _, qname, txid, resolver = op
            b.query_seen(q(str(qname), int(str(txid)), resolver=str(resolver)), now)
        elif kind == "answer":
            _, chain, txid, resolver, addrs, rcode, solicited = op
            a = ans(addrs, chain=chain, txid=txid, resolver=resolver, rcode=rcode)  # type: ignore[arg-type]
            if solicited:
                b.query_seen(q(a.qname, a.txid, resolver=a.resolver_ip), now)
                before = _snapshot(b)
            result = b.answer_seen(a, now)
            after = _snapshot(b)
            if resolver != RESOLVER:  # nothing from a non-resolver ever binds
                assert result == Ignored("not-resolver") and after == before
            if isinstance(result, Ignored):
                assert after == before and result.reason in IGNORE_REASONS
            _check_merge(s, before, after, now)
        elif kind == "seed":
            _, name, addrs, ttl = op
            b.seed(str(name), addrs, float(str(ttl)), now)  # type: ignore[arg-type]
            _check_merge(s, before, _snapshot(b), now)
        elif kind == "expire":
            now += float(str(op[1]))
            update = b.expire(now)
            after = _snapshot(b)
            assert all(t > now for table_ in after.values() for t in table_.values())
            assert not update.added
            nxt = b.next_expiry()
            assert nxt is None or nxt > now
        elif kind == "watch":
            b.watch(str(op[1]), op[2])  # type: ignore[arg-type]
        else:
            b.unwatch(str(op[1]))
        state = _snapshot(b)
        assert len(b.watched()) <= s.max_names and set(state) <= b.watched()
        assert all(0 < len(t) <= cap for t in state.values())
        assert b.outstanding() <= s.max_outstanding
        assert all(bindable(a) for t in state.values() for a in t)
        current = b.current()
        assert all(current[n] == tuple(sorted(t, key=lambda x: (":" in x, x))) for n, t in state.items())
    final = b.expire(now + s.ttl_ceiling_s)
    assert b.current() == {} and b.next_expiry() is None and not final.added


def _check_merge(
    s: DnsBindSettings, before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], now: float
) -> None:
    for name, table_ in before.items():  # an answer (or seed) never removes nor shortens
        for addr, until in table_.items():
            assert after[name][addr] >= until
    for name, table_ in after.items():  # what it added or extended lives within the TTL clamp
        for addr, until in table_.items():
            if before.get(name, {}).get(addr) != until:
                assert s.ttl_floor_s <= until - now <= s.ttl_ceiling_s


def test_settings_are_frozen() -> None:
    s = DnsBindSettings()
    with pytest.raises(AttributeError):
        s.max_names = 1  # type: ignore[misc]
    assert replace(s, max_names=5).max_names == 5
