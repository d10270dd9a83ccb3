"""DNS-learned bindings across a controller restart (THREATS.md R11): the store, the table's restore rules, and the
enforcer reconciling a switch that still holds the flows of an address a device was given."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mud_ryu.dns.bind import DnsBindings, DnsBindSettings
from mud_ryu.dns.store import DnsStore, DnsStoreError
from mud_ryu.enforcer.core import FlowUpdate
from tests.enforcer_lab import BULB, NOW, UPLINK, Lab
from tests.test_enforcer_dns import NAME, RESOLVER, URL, _answer, _cloudy, _query, _to

# ---- the store ------------------------------------------------------------------------------------------------


def test_store_round_trip_writes_only_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "dns.sqlite3"
    store = DnsStore.open(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert store.save({"a.example": {"192.0.2.1": 100.0, "192.0.2.2": 200.0}}) == 2
    assert store.save({"a.example": {"192.0.2.1": 100.0, "192.0.2.2": 200.0}}) == 0  # nothing changed: no write
    assert store.save({"a.example": {"192.0.2.1": 150.0}}) == 2  # one extended, one gone
    store.close()
    again = DnsStore.open(path)
    assert again.load() == [("a.example", "192.0.2.1", 150.0)]
    assert again.save({"a.example": {"192.0.2.1": 150.0}}) == 0  # what was loaded counts as saved
    again.close()


def test_store_refuses_a_foreign_database_and_skips_malformed_rows(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.sqlite3"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(DnsStoreError) as refused:
        DnsStore.open(foreign)
    assert refused.value.reason == "corrupt-database"
    path = tmp_path / "dns.sqlite3"
    DnsStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO binding VALUES ('a.example', '192.0.2.1', 1e309)")  # infinity: never restored
    conn.execute("INSERT INTO binding VALUES ('b.example', '192.0.2.2', 500.0)")
    conn.commit()
    conn.close()
    assert DnsStore.open(path).load() == [("b.example", "192.0.2.2", 500.0)]


def test_store_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dns.sqlite3"
    DnsStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DnsStoreError) as refused:
        DnsStore.open(path)
    assert refused.value.reason == "schema-too-new"


# ---- the table's restore rules ----------------------------------------------------------------------------------


def _table(**settings: float) -> DnsBindings:
    table = DnsBindings(DnsBindSettings(resolvers=frozenset({RESOLVER}), **settings))  # type: ignore[arg-type]
    table.watch("https://mud.test/x.json", ["a.example", "b.example"])
    return table


def test_restore_brings_back_watched_bindings_until_their_saved_expiry_only() -> None:
    table = _table(ttl_floor_s=60.0, ttl_ceiling_s=3600.0, max_addresses_per_name=2)
    update = table.restore(
        [
            ("a.example", "192.0.2.1", NOW + 5),  # 5 s left: comes back with 5 s, not the 60 s floor
            ("A.Example.", "192.0.2.2", NOW + 86_400),  # any spelling; capped at the ceiling
            ("a.example", "192.0.2.3", NOW + 100),  # over the per-name cap
            ("b.example", "192.0.2.9", NOW - 1),  # expired while the controller was down
            ("c.example", "192.0.2.4", NOW + 100),  # no profile watches it any more
            ("b.example", "127.0.0.1", NOW + 100),  # never bindable
            ("b.example", "not an address", NOW + 100),
        ],
        NOW,
    )
    assert dict(update.added) == {"a.example": frozenset({"192.0.2.1", "192.0.2.2"})}
    assert dict(table.expiries()["a.example"]) == {"192.0.2.1": NOW + 5, "192.0.2.2": NOW + 3600}
    assert table.counters()["restored"] == 2
    assert table.expire(NOW + 5).removed == {"a.example": frozenset({"192.0.2.1"})}


# ---- the enforcer: a restart keeps the flows of addresses devices were given --------------------------------------


def _bound_lab(state: Path, *, persist: bool) -> Lab:
    lab = Lab(state, dns_servers=(RESOLVER,), persist_dns=persist)
    lab.connect()
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, _cloudy())
    lab.apply(lab.enforcer.dns_seen(_query(), NOW, ingress=UPLINK))
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 300), NOW, ingress=UPLINK))
    assert _to(lab, "198.51.100.7")
    lab.enforcer.save_dns(NOW, force=True)
    return lab


def _restart(before: Lab, state: Path, *, persist: bool) -> tuple[Lab, list[FlowUpdate]]:
    before.store.close()
    if before.dns_store is not None:
        before.dns_store.close()
    after = Lab(state, dns_servers=(RESOLVER,), persist_dns=persist)
    after.sim = before.sim  # the switch still holds everything
    return after, [e for e in after.connect() if isinstance(e, FlowUpdate)]


def test_a_restart_keeps_the_flows_of_a_dns_learned_address(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lab = _bound_lab(state, persist=True)
    table = lab.sim.table_hash()
    restarted, updates = _restart(lab, state, persist=True)
    assert all(not u.deletes and not u.stale and not u.adds for u in updates)  # R11: nothing deleted or re-added
    assert restarted.sim.table_hash() == table
    assert _to(restarted, "198.51.100.7")
    # ... and the binding still ends at its TTL, as it would have without the restart.
    restarted.apply(restarted.enforcer.dns_expire(NOW + 301))
    assert not _to(restarted, "198.51.100.7")


def test_without_the_store_a_restart_deletes_them(tmp_path: Path) -> None:
    """The behaviour the store exists to prevent (and the proof the test above can fail)."""
    state = tmp_path / "state"
    lab = _bound_lab(state, persist=False)
    restarted, updates = _restart(lab, state, persist=False)
    assert any(u.deletes or u.stale for u in updates)
    assert not _to(restarted, "198.51.100.7")


def test_an_unreadable_store_restores_nothing_and_the_enforcer_still_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lab = _bound_lab(state, persist=True)
    assert lab.dns_store is not None
    lab.dns_store.close()  # every read now fails: the enforcer must start without the bindings (fail closed)
    lab.store.close()
    again = Lab(state, dns_servers=(RESOLVER,))
    again.enforcer.dns_events.restore(lab.dns_store, NOW)
    assert again.enforcer.dns.expiries() == {}
    assert NAME in again.enforcer.dns.watched()
    assert os.path.exists(state / "dns-bindings.sqlite3")
