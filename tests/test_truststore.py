"""The durable trust store: round trips, one-transaction commits, history only grows, corrupt stores, kill -9."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from mud_ryu.fetch.signature import Signer
from mud_ryu.policy.store import SCHEMA_VERSION, STORE_REASONS, TrustStore, TrustStoreError
from mud_ryu.policy.table import step
from mud_ryu.policy.types import Accepted, Approve, DeviceId, Event, Pending, TrustRecord, TrustState, Verdict
from tests.update_helpers import ID, NEW_HOME, OTHER_HOST, ROOT, S1, S2, TOFU, V2, ann, gated, run, trusted, ver

REPO = Path(__file__).resolve().parents[1]


def reason_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(TrustStoreError) as info:
        call()
    assert info.value.reason in STORE_REASONS
    return info.value.reason


def rich_record() -> TrustRecord:
    """A record with every field set: big change (canonical != current), a pending approval, a decision."""
    outs = run([ver(ROOT, "d2", S1, 5.0, NEW_HOME), ann(OTHER_HOST, 6.0)], record=trusted())
    return outs[-1].record


def test_round_trip_and_decision_log(tmp_path: Path) -> None:
    records = [trusted(), trusted(signer=None), rich_record()]
    with TrustStore.open(tmp_path / "state") as store:
        for i, rec in enumerate(records):
            rec = dataclasses.replace(rec, identity=DeviceId(1, i, f"02:00:00:00:00:0{i}"))
            assert rec.last_decision is not None
            store.commit(rec, rec.last_decision)
            assert store.get(rec.identity) == rec
    with TrustStore.open(tmp_path / "state") as store:
        assert [r.identity.port for r in store.records()] == [0, 1, 2]
        assert store.get(DeviceId(1, 2, "02:00:00:00:00:02")) == dataclasses.replace(
            records[2], identity=DeviceId(1, 2, "02:00:00:00:00:02")
        )
        assert store.load(DeviceId(9, 9, "02:00:00:00:00:09")) == TrustRecord(DeviceId(9, 9, "02:00:00:00:00:09"))
        logged = store.decisions()
        assert [entry.decision for entry in logged] == [r.last_decision for r in records]
        assert [e.seq for e in logged] == sorted(e.seq for e in logged)
        assert [e.decision.reason_code for e in store.decisions(DeviceId(1, 2, "02:00:00:00:00:02"))] == ["other-host"]
        assert store.integrity_check() == ["ok"]
    mode = os.stat(tmp_path / "state").st_mode & 0o777, os.stat(tmp_path / "state" / "trust.sqlite3").st_mode & 0o777
    assert mode == (0o700, 0o600)


D3 = "d3" * 32  # an approval's digest is stored, and read back only as SHA-256 hex


def test_every_step_of_a_life_is_stored_as_the_policy_returned_it(tmp_path: Path) -> None:
    events: list[Event] = [
        *(ann(ROOT, 0.0), ver(ROOT, "d1", S1, 1.0), ann(V2, 1000.0), ver(V2, "d2", S1, 1001.0)),
        *(ann(OTHER_HOST, 1002.0), Approve(gated(OTHER_HOST), D3, 1003.0), ver(OTHER_HOST, D3, S2, 1004.0)),
    ]
    with TrustStore.open(tmp_path) as store:
        rec = store.load(ID)
        for event in events:
            out = step(TOFU, rec, event)
            store.commit(out.record, out.decision)
            rec = out.record
            assert store.get(ID) == rec
        assert [a.url for a in rec.history] == [ROOT, V2, OTHER_HOST] and rec.signer == S2
        assert len(store.decisions(ID)) == len(events)


def test_history_only_grows(tmp_path: Path) -> None:
    rec = run([ann(V2, 1000.0), ver(V2, "d2", S1, 1001.0)], record=trusted())[-1].record
    with TrustStore.open(tmp_path) as store:
        assert rec.last_decision is not None
        store.commit(rec, rec.last_decision)
        shorter = dataclasses.replace(rec, history=rec.history[:1])
        edited = dataclasses.replace(rec, history=(rec.history[0], Accepted(V2, "other", 1001.0)))
        for bad in (shorter, edited, trusted()):
            assert reason_of(lambda bad=bad: store.commit(bad, rec.last_decision)) == "history-rewrite"
        assert store.get(ID) == rec  # the refused commit changed nothing, the decision was not logged either
        assert len(store.decisions(ID)) == 1


def test_decision_log_is_bounded(tmp_path: Path) -> None:
    rec = trusted()
    assert rec.last_decision is not None
    with TrustStore.open(tmp_path, max_log_rows=1000) as store:
        for _ in range(3000):
            store.commit(rec, rec.last_decision)
        assert 1000 <= len(store.decisions(limit=10_000)) < 1000 + 1024


# ---- corrupt, foreign, too new, tampered -----------------------------------------------------------------------


def test_garbage_file_is_corrupt_and_left_in_place(tmp_path: Path) -> None:
    (tmp_path / "trust.sqlite3").write_bytes(b"not a database at all" * 100)
    assert reason_of(lambda: TrustStore.open(tmp_path)) == "corrupt-database"
    assert (tmp_path / "trust.sqlite3").read_bytes().startswith(b"not a database")  # evidence kept


def test_damaged_pages_are_corrupt(tmp_path: Path) -> None:
    with TrustStore.open(tmp_path) as store:
        for port in range(200):
            rec = dataclasses.replace(trusted(), identity=DeviceId(1, port, "02:00:00:00:00:01"))
            assert rec.last_decision is not None
            store.commit(rec, rec.last_decision)
    path = tmp_path / "trust.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data) - page, 3 * page):
        data[offset + 10 : offset + 200] = os.urandom(190)
    path.write_bytes(bytes(data))
    assert reason_of(lambda: TrustStore.open(tmp_path)) == "corrupt-database"


def test_foreign_database_and_newer_schema(tmp_path: Path) -> None:
    foreign = tmp_path / "a"
    foreign.mkdir()
    conn = sqlite3.connect(foreign / "trust.sqlite3")
    conn.execute("CREATE TABLE x (y)")
    conn.commit()
    conn.close()
    assert reason_of(lambda: TrustStore.open(foreign)) == "corrupt-database"
    newer = tmp_path / "b"
    TrustStore.open(newer).close()
    conn = sqlite3.connect(newer / "trust.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    assert reason_of(lambda: TrustStore.open(newer)) == "schema-too-new"


def test_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert reason_of(lambda: TrustStore.open(tmp_path / "file")) == "unavailable"
    store = TrustStore.open(tmp_path / "ok")
    store.close()
    assert reason_of(lambda: store.get(ID)) == "unavailable"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE device SET state = 'trusted-forever'",
        'UPDATE device SET signer = \'{"ca_key_id": "aa"}\'',
        "UPDATE device SET signer = 'not json'",
        'UPDATE device SET canonical = \'{"url": "https://x.example/../a", "host": "x.example", '
        '"port": 443, "segments": ["..", "a"]}\'',
        'UPDATE device SET pending = \'{"url": "u", "status": "granted", "reason": "approved", "at": 1}\'',
        "UPDATE device SET history_len = 5",
        "DELETE FROM url_history",
        "UPDATE url_history SET seq = seq + 5",
        "UPDATE device SET current_url = 'https://elsewhere.example/a.json'",
        'UPDATE device SET last_decision = \'{"verdict": "apply"}\'',
        "UPDATE device SET canonical = NULL",
        'UPDATE device SET changed_at = NULL, last_decision = \'{"verdict": "apply", "reason": "whatever", '
        '"rule_id": "x", "message": "", "url": null, "at": 0}\'',
    ],
)
def test_a_tampered_record_is_refused_never_guessed(tmp_path: Path, sql: str) -> None:
    rec = rich_record()
    with TrustStore.open(tmp_path) as store:
        assert rec.last_decision is not None
        store.commit(rec, rec.last_decision)
    conn = sqlite3.connect(tmp_path / "trust.sqlite3")
    conn.execute(sql)
    conn.commit()
    conn.close()
    with TrustStore.open(tmp_path) as store:
        assert reason_of(lambda: store.get(ID)) == "corrupt-record"
        assert reason_of(store.records) == "corrupt-record"


def test_strict_tables_refuse_wrong_types(tmp_path: Path) -> None:
    TrustStore.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "trust.sqlite3")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO url_history VALUES ('one', 2, 'm', 0, 'u', 's', 1.0)")
    conn.close()


# ---- kill -9 while enrolling devices and applying changes ---------------------------------------------------------

_WRITER = """
import sys
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.signature import Signer
from mud_ryu.policy.store import TrustStore
from mud_ryu.policy.table import step
from mud_ryu.policy.types import Announced, DeviceId, PolicySettings, Verified
from mud_ryu.fetch.urlgate import check_mud_url

store, start = TrustStore.open(sys.argv[1]), int(sys.argv[2])
policy = PolicySettings(min_change_interval_s=0.0)
signer = Signer("aa11", ("CN=toaster.example", "CN=Maker CA"), "a1" * 32)
now = 0.0
for n in range(start, start + 100_000):
    device = DeviceId(1, n % 50, "02:00:00:00:%02x:%02x" % (n // 256 % 256, n % 256))
    rec = store.load(device)
    for rev in range(4):  # first use, then small changes: each APPLY is committed before it is acknowledged
        url = check_mud_url("https://mud.example.com/dev%d/rev%d.json" % (n, rev))
        for event in (Announced(url, now), Verified(url, "%d-%d" % (n, rev), signer, url, now + 1)):
            out = step(policy, rec, event)
            store.commit(out.record, out.decision)
            rec = out.record
            now += 2
        print(n, rev, flush=True)
"""


def test_kill_9_loses_no_pin_and_leaves_consistent_records(tmp_path: Path) -> None:
    TrustStore.open(tmp_path).close()
    acknowledged: dict[tuple[int, int], int] = {}  # (n, port) -> highest acknowledged revision
    rng = random.Random(8520)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_no in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(round_no * 1000)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        try:
            for _ in range(rng.randint(5, 120)):  # the child keeps writing while we read: killed mid-commit
                line = child.stdout.readline()
                assert line, "writer died before it was killed"
                n, rev = map(int, line.split())
                acknowledged[(n, n % 50)] = rev
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        with TrustStore.open(tmp_path) as store:  # open runs the full integrity check
            assert store.integrity_check() == ["ok"]
            records = {(int(r.identity.mac.replace(":", "")[-4:], 16), r.identity.port): r for r in store.records()}
            for key, rev in acknowledged.items():  # no acknowledged pin or URL is lost
                rec = records[key]
                assert rec.signer == Signer("aa11", ("CN=toaster.example", "CN=Maker CA"), "a1" * 32)
                assert len(rec.history) >= rev + 1
            for rec in records.values():  # whatever else made it in is whole
                if rec.state is TrustState.TRUSTED:
                    assert rec.signer is not None and rec.current_url == rec.history[-1].url
                    assert rec.root_url == rec.history[0].url
                assert [a.url[-9:] for a in rec.history] == [f"rev{i}.json" for i in range(len(rec.history))]
                if rec.pending is not None:
                    assert isinstance(rec.pending, Pending) and rec.pending.status == "fetching"
                assert rec.last_decision is not None and rec.last_decision.verdict in (Verdict.FETCH, Verdict.APPLY)


def _legacy_row(store_dir: Path, identity: DeviceId, key_id: str) -> None:
    """Rewrite a stored pin in the form stored before CAs were named by their SPKI (key id and subjects only)."""
    conn = sqlite3.connect(store_dir / "trust.sqlite3")
    with conn:
        legacy = json.dumps({"ca_key_id": key_id, "subjects": ["CN=toaster.example,O=Maker", "CN=Maker CA"]})
        conn.execute("UPDATE device SET signer = ? WHERE dpid = ? AND port = ? AND mac = ?",
                     (legacy, identity.dpid, identity.port, identity.mac))
    conn.close()


def test_legacy_pins_migrate_to_the_one_anchor_with_their_key_id(tmp_path: Path) -> None:
    rec = trusted()
    other = dataclasses.replace(trusted(), identity=DeviceId(1, 9, "02:00:00:00:00:09"))
    with TrustStore.open(tmp_path) as store:
        store.commit(rec, rec.last_decision)  # type: ignore[arg-type]
        store.commit(other, other.last_decision)  # type: ignore[arg-type]
    _legacy_row(tmp_path, rec.identity, "aa11")
    _legacy_row(tmp_path, other.identity, "cc33")
    with TrustStore.open(tmp_path) as store:
        legacy = store.load(rec.identity).signer
        assert legacy is not None and legacy.ca_spki is None and legacy.subject_chain == S1.subject_chain
        result = store.migrate_legacy_pins({"aa11": frozenset({"a1" * 32}), "cc33": frozenset({"c1" * 32, "c2" * 32})})
        assert result.migrated == (rec.identity,) and result.unresolved == (other.identity,)
        assert store.load(rec.identity).signer == dataclasses.replace(S1, alt_names=())
        assert store.load(other.identity).signer.ca_spki is None  # type: ignore[union-attr]
        history = store.load(rec.identity).history
        again = store.migrate_legacy_pins({"aa11": frozenset({"a1" * 32})})
        assert again.migrated == () and store.load(rec.identity).history == history


def test_pin_migration_alerts_for_pins_no_single_anchor_resolves(tmp_path: Path) -> None:
    from mud_ryu.enforcer import pin_migration
    from tests import sigvectors as sv

    ca = sv.make_ca()
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    rogue = sv.make_ca("Rogue CA", ski=ski)
    rec = trusted()
    with TrustStore.open(tmp_path) as store:
        store.commit(rec, rec.last_decision)  # type: ignore[arg-type]
    _legacy_row(tmp_path, rec.identity, ski.hex())
    with TrustStore.open(tmp_path) as store:
        result, alerts = pin_migration.migrate(store, [ca.cert, rogue.cert])  # the key id is ambiguous
        assert result.unresolved == (rec.identity,)
        assert [(a.code, a.mac) for a in alerts] == [("pin-unresolved", rec.identity.mac)]
        result, alerts = pin_migration.migrate(store, [ca.cert])
        assert result.migrated == (rec.identity,) and alerts == []
        assert store.load(rec.identity).signer.ca_spki == pin_migration.spki_sha256(ca.cert)  # type: ignore[union-attr]


def test_one_corrupt_record_does_not_stop_the_pin_migration(tmp_path: Path) -> None:
    rec = trusted()
    other = dataclasses.replace(trusted(), identity=DeviceId(1, 9, "02:00:00:00:00:09"))
    with TrustStore.open(tmp_path) as store:
        store.commit(rec, rec.last_decision)  # type: ignore[arg-type]
        store.commit(other, other.last_decision)  # type: ignore[arg-type]
    _legacy_row(tmp_path, rec.identity, "aa11")
    _legacy_row(tmp_path, other.identity, "aa11")
    conn = sqlite3.connect(tmp_path / "trust.sqlite3")
    with conn:
        conn.execute("UPDATE device SET canonical = 'not json' WHERE port = 9")
    conn.close()
    with TrustStore.open(tmp_path) as store:
        result = store.migrate_legacy_pins({"aa11": frozenset({"a1" * 32})})
        assert result.migrated == (rec.identity,) and result.unresolved == (other.identity,)
