"""The durable MUD cache: round trips, persistence, bounds, tamper and corruption handling, threads, kill -9."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mud_ryu.fetch.cache import CACHE_REASONS, SCHEMA_VERSION, CacheEntry, CacheError, MudCache
from mud_ryu.fetch.refresh import FailureRecord, record_failure
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.types import Validators

T0 = 1_700_000_000.0
HOUR = 3600.0
SIGNER = Signer("0a1b2c3d", ("CN=signer,O=Maker", "CN=Maker Root CA,O=Maker"))


def url(i: int | str) -> str:
    return f"https://mud.example.com/device-{i}.json"


def entry(i: int | str = 0, body: bytes | None = None, now: float = T0, signer: Signer | None = SIGNER) -> CacheEntry:
    data = body if body is not None else b'{"ietf-mud:mud": {"n": "%s"}}' % str(i).encode()
    return CacheEntry.create(url(i), data, b"\x30\x80sig", signer, Validators('"v1"', "Tue, 01 Jan 2030"), 24, now)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mud.db"


# ---- entries --------------------------------------------------------------------------------------------------


def test_create_hashes_clamps_and_sets_expiry() -> None:
    e = CacheEntry.create(url(1), b"abc", None, None, Validators(), 500, T0)
    assert e.sha256 == hashlib.sha256(b"abc").hexdigest()
    assert e.cache_validity_h == 168
    assert (e.fetched_at, e.validated_at, e.expires_at) == (T0, T0, T0 + 168 * HOUR)
    assert CacheEntry.create(url(1), b"abc", None, None, Validators(), None, T0).cache_validity_h == 48


def test_entry_refuses_inconsistent_fields() -> None:
    e = entry()
    with pytest.raises(ValueError):
        CacheEntry(e.url, b"other", e.sha256, None, None, Validators(), 24, T0, T0, T0 + HOUR)
    with pytest.raises(ValueError):
        CacheEntry(e.url, e.body, e.sha256, None, None, Validators(), 24, T0, T0, T0 + 25 * HOUR)
    with pytest.raises(ValueError):
        CacheEntry(e.url, e.body, e.sha256, None, None, Validators(), 0, T0, T0, T0)


@pytest.mark.parametrize("signer", [None, SIGNER])
def test_round_trip(db: Path, signer: Signer | None) -> None:
    e = entry(1, signer=signer)
    with MudCache.open(db) as cache:
        assert cache.get(e.url) is None
        cache.put(e)
        assert cache.get(e.url) == e
        assert cache.urls() == [e.url]
        assert len(cache) == 1


def test_unsigned_entry_without_signature(db: Path) -> None:
    e = CacheEntry.create(url(2), b"{}", None, None, Validators(), None, T0)
    with MudCache.open(db) as cache:
        cache.put(e)
        assert cache.get(e.url) == e


def test_persists_across_close_and_reopen(db: Path) -> None:
    entries = [entry(i, now=T0 + i) for i in range(5)]
    cache = MudCache.open(db)
    for e in entries:
        cache.put(e)
    cache.put_failure(record_failure(None, url("bad"), "tls-failed", T0))
    cache.close()
    with pytest.raises(CacheError) as closed:
        cache.get(entries[0].url)
    assert closed.value.reason == "unavailable"
    with MudCache.open(db) as again:
        assert [again.get(e.url) for e in entries] == entries
        rec = again.failure(url("bad"))
        assert rec is not None and rec.last_reason == "tls-failed"


def test_files_are_private(db: Path) -> None:
    MudCache.open(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_put_replaces_and_keeps_first_fetch_time_of_same_content(db: Path) -> None:
    with MudCache.open(db) as cache:
        first = entry(1, body=b"same", now=T0)
        cache.put(first)
        cache.put(entry(1, body=b"same", now=T0 + 50 * HOUR))
        same = cache.get(url(1))
        assert same is not None and same.fetched_at == T0 and same.validated_at == T0 + 50 * HOUR
        cache.put(entry(1, body=b"changed", now=T0 + 60 * HOUR))
        changed = cache.get(url(1))
        assert changed is not None and changed.body == b"changed" and changed.fetched_at == T0 + 60 * HOUR
        assert cache.urls() == [url(1)]


def test_renew_extends_expiry_and_merges_validators(db: Path) -> None:
    with MudCache.open(db) as cache:
        assert cache.renew(url(1), Validators(), T0) is None
        e = entry(1)
        cache.put(e)
        later = T0 + 30 * HOUR
        renewed = cache.renew(e.url, Validators(etag='"v2"'), later)
        assert renewed is not None
        assert (renewed.fetched_at, renewed.validated_at, renewed.expires_at) == (T0, later, later + 24 * HOUR)
        assert renewed.validators == Validators('"v2"', e.validators.last_modified)
        assert (renewed.body, renewed.signer, renewed.signature) == (e.body, e.signer, e.signature)
        assert cache.get(e.url) == renewed


def test_delete_and_due(db: Path) -> None:
    with MudCache.open(db) as cache:
        for i in range(3):
            cache.put(entry(i, now=T0 + i * HOUR))  # expiries at T0 + 24 h, 25 h, 26 h
        assert cache.due(T0 + 24.5 * HOUR) == [url(0)]
        assert cache.due(T0 + 30 * HOUR, limit=2) == [url(0), url(1)]
        assert cache.delete(url(0)) and not cache.delete(url(0))
        assert cache.urls() == [url(1), url(2)]


# ---- failure records ------------------------------------------------------------------------------------------


def test_failure_records(db: Path) -> None:
    with MudCache.open(db) as cache:
        assert cache.failure(url(1)) is None
        first = record_failure(None, url(1), "connect-failed", T0)
        cache.put_failure(first)
        assert cache.failure(url(1)) == first
        second = record_failure(first, url(1), "deadline", T0 + 60)
        cache.put_failure(second)
        assert cache.failure(url(1)) == second
        assert cache.clear_failure(url(1)) and cache.failure(url(1)) is None
        assert not cache.clear_failure(url(1))


def test_failure_records_are_bounded(db: Path) -> None:
    with MudCache.open(db, max_entries=3) as cache:
        for i in range(6):
            cache.put_failure(record_failure(None, url(i), "bad-status", T0 + i))
        assert [cache.failure(url(i)) is not None for i in range(6)] == [False] * 3 + [True] * 3


# ---- bounds ---------------------------------------------------------------------------------------------------


def test_eviction_drops_least_recently_validated(db: Path) -> None:
    with MudCache.open(db, max_entries=3) as cache:
        for i in range(3):
            cache.put(entry(i, now=T0 + i))
        cache.renew(url(0), Validators(), T0 + 100)  # 0 is now the most recently validated
        cache.put(entry(3, now=T0 + 3))
        assert cache.urls() == [url(0), url(2), url(3)]
        cache.put(entry(4, now=T0 - 1000))  # the entry just put is never its own victim
        assert url(4) in cache.urls() and len(cache) == 3


def test_oversized_body_refused(db: Path) -> None:
    with MudCache.open(db) as cache:
        cache.put(entry(1, body=b"x" * (1 << 20)))
        with pytest.raises(ValueError, match="exceeds"):
            cache.put(entry(2, body=b"x" * ((1 << 20) + 1)))
        assert cache.urls() == [url(1)]


# ---- tampering and corruption ---------------------------------------------------------------------------------


def _raw(db: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(sql, params)
    conn.close()


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("UPDATE mud_entry SET body = ? WHERE url = ?", (b'{"allow": "everything"}', url(1))),
        ("UPDATE mud_entry SET sha256 = ? WHERE url = ?", ("0" * 64, url(1))),
        ("UPDATE mud_entry SET signer = ? WHERE url = ?", ('{"ca_key_id": 1}', url(1))),
        ("UPDATE mud_entry SET signer = ? WHERE url = ?", ("[" * 100_000, url(1))),
        ("UPDATE mud_entry SET cache_validity_h = ? WHERE url = ?", (9999, url(1))),
        ("UPDATE mud_entry SET expires_at = expires_at + 1e9 WHERE url = ?", (url(1),)),
    ],
)
def test_tampered_row_is_never_served_and_is_dropped(db: Path, sql: str, params: tuple[object, ...]) -> None:
    with MudCache.open(db) as cache:
        cache.put(entry(1))
        cache.put(entry(2))
        _raw(db, sql, params)
        with pytest.raises(CacheError) as err:
            cache.get(url(1))
        assert err.value.reason == "corrupt-entry"
        assert cache.get(url(1)) is None  # deleted, not served on a second try
        assert cache.get(url(2)) == entry(2)  # the rest is untouched


def test_tampered_row_not_renewed(db: Path) -> None:
    with MudCache.open(db) as cache:
        cache.put(entry(1))
        _raw(db, "UPDATE mud_entry SET body = ? WHERE url = ?", (b"evil", url(1)))
        with pytest.raises(CacheError, match="corrupt-entry"):
            cache.renew(url(1), Validators(), T0 + HOUR)
        assert cache.get(url(1)) is None


def test_tampered_failure_record_dropped(db: Path) -> None:
    with MudCache.open(db) as cache:
        cache.put_failure(record_failure(None, url(1), "deadline", T0))
        _raw(db, "UPDATE fetch_failure SET failures = 0 WHERE url = ?", (url(1),))
        with pytest.raises(CacheError, match="corrupt-entry"):
            cache.failure(url(1))
        assert cache.failure(url(1)) is None


def test_garbage_file_is_corrupt_and_recovery_keeps_evidence(db: Path) -> None:
    db.parent.mkdir()
    garbage = b"this is not an SQLite database\n" * 200
    db.write_bytes(garbage)
    with pytest.raises(CacheError) as err:
        MudCache.open(db)
    assert err.value.reason == "corrupt-database"
    cache, reason = MudCache.open_or_recover(db)
    with cache:
        assert reason == "corrupt-database"
        assert (db.parent / "mud.db.corrupt-1").read_bytes() == garbage
        assert cache.urls() == []
        cache.put(entry(1))
    db.write_bytes(garbage)  # a second incident does not overwrite the first one's evidence
    cache, reason = MudCache.open_or_recover(db)
    cache.close()
    assert reason == "corrupt-database"
    assert (db.parent / "mud.db.corrupt-1").read_bytes() == garbage
    assert (db.parent / "mud.db.corrupt-2").read_bytes() == garbage


def test_sound_database_is_not_recovered(db: Path) -> None:
    with MudCache.open(db) as cache:
        cache.put(entry(1))
    cache, reason = MudCache.open_or_recover(db)
    with cache:
        assert reason is None and cache.get(url(1)) == entry(1)
    assert not list(db.parent.glob("*.corrupt-*"))


def test_damaged_pages_are_corrupt_database(db: Path) -> None:
    with MudCache.open(db) as cache:
        for i in range(50):
            cache.put(entry(i, body=bytes([i]) * 3000))
    data = bytearray(db.read_bytes())
    page = 4096
    for off in range(2 * page, len(data) - page, page):  # keep the header page, smash every other page header
        data[off : off + 16] = b"\xff" * 16
    db.write_bytes(bytes(data))
    with pytest.raises(CacheError) as err:
        MudCache.open(db)
    assert err.value.reason == "corrupt-database"


def test_foreign_sqlite_database_is_not_ours(db: Path) -> None:
    db.parent.mkdir()
    _raw(db, "CREATE TABLE other (x)")
    with pytest.raises(CacheError, match="not a mud_ryu cache"):
        MudCache.open(db)


def test_schema_too_new_is_refused_and_left_alone(db: Path) -> None:
    with MudCache.open(db) as cache:
        cache.put(entry(1))
    _raw(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = db.read_bytes()
    for opener in (MudCache.open, MudCache.open_or_recover):
        with pytest.raises(CacheError) as err:
            opener(db)
        assert err.value.reason == "schema-too-new"
    assert db.read_bytes() == before
    assert not list(db.parent.glob("*.corrupt-*"))


def test_unopenable_path_is_unavailable_not_corrupt(db: Path) -> None:
    db.mkdir(parents=True)  # a directory where the file should be: SQLite cannot open it, nothing is corrupt
    with pytest.raises(CacheError) as err:
        MudCache.open_or_recover(db)
    assert err.value.reason == "unavailable"
    assert db.is_dir() and not list(db.parent.glob("*.corrupt-*"))


def test_reasons_are_stable() -> None:
    assert {"corrupt-entry", "corrupt-database", "schema-too-new", "unavailable"} == CACHE_REASONS


# ---- concurrency and crashes ----------------------------------------------------------------------------------


def test_eight_threads_share_one_cache(db: Path) -> None:
    errors: list[BaseException] = []
    with MudCache.open(db, max_entries=1000) as cache:

        def work(t: int) -> None:
            try:
                rec: FailureRecord | None = None
                for i in range(40):
                    e = entry(f"{t}-{i}", now=T0 + i)
                    cache.put(e)
                    assert cache.get(e.url) == e
                    cache.put(entry("shared", body=b"%d-%d" % (t, i), now=T0 + i))
                    assert cache.renew(e.url, Validators(etag=f'"{t}"'), T0 + 100 + i) is not None
                    rec = record_failure(rec, url(f"f{t}"), "busy", T0 + i)
                    cache.put_failure(rec)
                    shared = cache.get(url("shared"))
                    assert shared is not None and shared.sha256 == hashlib.sha256(shared.body).hexdigest()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert len(cache) == 8 * 40 + 1
        assert all((rec := cache.failure(url(f"f{t}"))) is not None and rec.failures == 40 for t in range(8))


_WRITER = """
import sys
from mud_ryu.fetch.types import Validators
from mud_ryu.fetch.cache import CacheEntry, MudCache
from mud_ryu.fetch.signature import Signer
cache = MudCache.open(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 100_000):
    body = (b"%d:" % i) * (1 + i % 4000)
    cache.put(CacheEntry.create("https://mud.example.com/c%d.json" % i, body, b"sig", Signer("aa", ("CN=x",)),
                                Validators(etag='"%d"' % i), 24, 1.7e9 + i))
    print(i, flush=True)
"""


def test_kill_9_mid_write_loses_no_committed_entry(db: Path) -> None:
    MudCache.open(db).close()
    acknowledged: list[int] = []
    for round_no in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db), str(round_no * 1_000_000)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        try:
            for _ in range(40 + 17 * round_no):  # the child keeps writing while we read: killed mid-put
                line = child.stdout.readline()
                assert line, "writer died before it was killed"
                acknowledged.append(int(line))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        with MudCache.open(db) as cache:  # open runs an integrity check
            for i in acknowledged:
                got = cache.get(f"https://mud.example.com/c{i}.json")
                assert got is not None and got.body == (b"%d:" % i) * (1 + i % 4000)
            for u in cache.urls():  # whatever else made it in is whole
                assert cache.get(u) is not None


def test_concurrent_first_opens_create_the_schema_once(db: Path) -> None:
    # Separate connections (as separate processes would have) racing to create the same new file.
    barrier = threading.Barrier(8)
    results: list[BaseException | MudCache] = []

    def opener() -> None:
        barrier.wait()
        try:
            results.append(MudCache.open(db))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    caches = [r for r in results if isinstance(r, MudCache)]
    assert len(caches) == 8, results
    caches[0].put(entry(1))
    assert all(c.get(url(1)) == entry(1) for c in caches)
    for c in caches:
        c.close()


def test_a_cache_of_schema_1_migrates_and_keeps_its_entries(db: Path) -> None:
    legacy_signer = '{"ca_key_id": "0a1b2c3d", "subject_chain": ["CN=signer,O=Maker", "CN=Maker Root CA,O=Maker"]}'
    with MudCache.open(db) as cache:
        cache.put(entry(1))
    _raw(db, "DROP TABLE set_aside")  # what schema 1 had: no evidence table
    _raw(db, "UPDATE mud_entry SET signer = ?", (legacy_signer,))  # and the signer's JSON of then
    _raw(db, "PRAGMA user_version = 1")
    with MudCache.open(db) as cache:
        kept = cache.get(url(1))
        assert kept is not None and kept.body == entry(1).body
        assert kept.signer == Signer(SIGNER.ca_key_id, SIGNER.subject_chain)  # informative only; never compared
        assert cache.set_aside(url(1), "signature:missing", T0) and cache.get(url(1)) is None
        assert [(u, r) for u, _, r, _ in cache.set_aside_entries()] == [(url(1), "signature:missing")]
    assert SCHEMA_VERSION == 2
