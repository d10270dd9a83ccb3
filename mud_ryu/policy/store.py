"""The durable trust store of the MUD URL update policy: per-device records, signer pins, URL history, decisions.

Why its own SQLite file (THREATS.md R2, R3): this is what makes a restart never reset trust. Hence

* WAL + ``synchronous=FULL``, STRICT tables, ``application_id`` and ``user_version`` migrations; a full
  ``PRAGMA integrity_check`` on every open, before a row is read.
* "Write BEFORE widening" is the API's shape: :meth:`TrustStore.commit` stores the new record, its new history
  entries and the decision in ONE transaction; the enforcer calls it with the policy's :class:`Outcome` and only
  then installs a wider policy. A crash before the commit leaves the old record (the device keeps its old, narrower
  policy); after it, the record is complete.
* History only grows: a commit whose history does not extend the stored one is refused (``history-rewrite``), so
  a bug upstream cannot erase the evidence the rollback rule needs.
* A store that is corrupt, foreign, too new or unreadable raises :class:`TrustStoreError` with a stable reason and
  is never moved aside or rebuilt here: the enforcer must fail closed and alert (new URLs for known MACs refused,
  existing flows untouched). Recovery is an operator decision.

Reason codes (stable): corrupt-database, corrupt-record, schema-too-new, unavailable, history-rewrite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from mud_ryu.policy.store_codec import (
    DEVICE_COLUMNS,
    STORE_REASONS,
    TrustStoreError,
    decision_fields,
    decision_from_fields,
    history_from_rows,
    identity_key,
    record_from_row,
    record_to_row,
    signer_to_json,
)
from mud_ryu.policy.types import Decision, DeviceId, TrustRecord
from mud_ryu.storage.sqlite import open_versioned, write_transaction

__all__ = ["SCHEMA_VERSION", "STORE_REASONS", "LoggedDecision", "PinMigration", "TrustStore", "TrustStoreError"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4D554454  # "MUDT": our trust store, not the MUD cache ("MUDC") or any other SQLite file
DEFAULT_MAX_LOG_ROWS = 100_000
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        """CREATE TABLE device (
            dpid INTEGER NOT NULL, port INTEGER NOT NULL, mac TEXT NOT NULL,
            state TEXT NOT NULL,
            root_url TEXT, canonical TEXT, current_url TEXT, current_sha256 TEXT,
            signer TEXT,
            pending TEXT, last_decision TEXT, changed_at REAL,
            history_len INTEGER NOT NULL,
            PRIMARY KEY (dpid, port, mac)
        ) STRICT""",
        """CREATE TABLE url_history (
            dpid INTEGER NOT NULL, port INTEGER NOT NULL, mac TEXT NOT NULL, seq INTEGER NOT NULL,
            url TEXT NOT NULL, sha256 TEXT NOT NULL, at REAL NOT NULL,
            PRIMARY KEY (dpid, port, mac, seq)
        ) STRICT""",
        """CREATE TABLE decision_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            dpid INTEGER NOT NULL, port INTEGER NOT NULL, mac TEXT NOT NULL,
            decision TEXT NOT NULL
        ) STRICT""",
        "CREATE INDEX decision_by_device ON decision_log (dpid, port, mac, id)",
        f"PRAGMA application_id = {APPLICATION_ID}",
    ),
}
_KEY = "dpid = ? AND port = ? AND mac = ?"


def _error(exc: sqlite3.Error, path: Path) -> TrustStoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    corrupt = isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return TrustStoreError("corrupt-database" if corrupt else "unavailable", f"{path}: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One decision-log entry: which device, what was decided (``seq`` grows with every commit)."""

    seq: int
    identity: DeviceId
    decision: Decision


class TrustStore:
    """One controller's trust state in one SQLite file; one connection behind a lock (thread-safe)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, max_log_rows: int) -> None:
        """Use :meth:`open`; this only wires up an already checked connection."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._lock = threading.Lock()
        self._max_log_rows = max_log_rows

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str], *, max_log_rows: int = DEFAULT_MAX_LOG_ROWS) -> TrustStore:
        """Open (creating if needed: directory 0700, file 0600) ``<state_dir>/trust.sqlite3`` and check it."""
        if max_log_rows < 1:
            raise ValueError("max_log_rows must be positive")
        path = Path(state_dir) / "trust.sqlite3"
        conn = open_versioned(
            path, what="trust store", schema_version=SCHEMA_VERSION, application_id=APPLICATION_ID,
            migrations=_MIGRATIONS, full_check=True, error=TrustStoreError, classify=lambda exc: _error(exc, path),
        )  # fmt: skip
        return cls(conn, path, max_log_rows)

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> TrustStore:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise TrustStoreError("unavailable", f"{self._path}: the store is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise _error(exc, self._path) from exc

    # ---- reading -------------------------------------------------------------------------------------------

    def get(self, identity: DeviceId) -> TrustRecord | None:
        """The stored record of ``identity``, checked, or None if the device was never committed."""
        with self._locked() as conn:
            row = conn.execute(f"SELECT {DEVICE_COLUMNS} FROM device WHERE {_KEY}", identity_key(identity)).fetchone()
            return None if row is None else _load(conn, row)

    def load(self, identity: DeviceId) -> TrustRecord:
        """The stored record, or the empty record of a device never seen (what the policy starts from)."""
        found = self.get(identity)
        return TrustRecord(identity) if found is None else found

    def records(self) -> list[TrustRecord]:
        with self._locked() as conn:
            rows = conn.execute(f"SELECT {DEVICE_COLUMNS} FROM device ORDER BY dpid, port, mac").fetchall()
            return [_load(conn, row) for row in rows]

    def decisions(self, identity: DeviceId | None = None, limit: int = 100) -> list[LoggedDecision]:
        """The newest ``limit`` logged decisions (of one device, or all), oldest first."""
        with self._locked() as conn:
            params: tuple[object, ...] = ()
            if identity is None:
                sql = "SELECT id, dpid, port, mac, decision FROM decision_log"
            else:
                sql = f"SELECT id, dpid, port, mac, decision FROM decision_log WHERE {_KEY}"
                params = identity_key(identity)
            rows = conn.execute(f"{sql} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        out: list[LoggedDecision] = []
        for seq, dpid, port, mac, text in reversed(rows):
            try:
                data = json.loads(text)
            except ValueError:
                raise TrustStoreError("corrupt-record", f"decision {seq} is not JSON") from None
            out.append(LoggedDecision(seq, DeviceId(dpid, port, mac), decision_from_fields(data)))
        return out

    # ---- writing -------------------------------------------------------------------------------------------

    def commit(self, record: TrustRecord, decision: Decision) -> None:
        """Store ``record`` (with its new history entries) and log ``decision``, all in one transaction.

        Call it BEFORE acting on an APPLY: once it returns, the trust that justifies the wider policy is on disk.
        Raises ``history-rewrite`` when ``record.history`` does not extend the stored history."""
        self._commit_items([(record, decision)])

    def commit_many(self, items: Sequence[tuple[TrustRecord, Decision]]) -> None:
        """:meth:`commit` for many devices in one transaction (one fsync): all are on disk when it returns, or none
        (a failure of any rolls back every one). An answer for a URL many devices wait on commits them together."""
        self._commit_items(items)

    def _commit_items(self, items: Sequence[tuple[TrustRecord, Decision]]) -> None:
        if not items:
            return
        with self._locked() as conn, _transaction(conn):
            for record, decision in items:
                self._write(conn, record, decision)

    def _write(self, conn: sqlite3.Connection, record: TrustRecord, decision: Decision) -> None:
        key = identity_key(record.identity)
        stored = conn.execute(f"SELECT url, sha256, at FROM url_history WHERE {_KEY} ORDER BY seq", key).fetchall()
        prefix = [(a.url, a.sha256, a.at) for a in record.history[: len(stored)]]
        if len(stored) > len(record.history) or [tuple(r) for r in stored] != prefix:
            why = f"{record.identity}: the new history does not extend the stored one"
            raise TrustStoreError("history-rewrite", why)
        conn.executemany(
            "INSERT INTO url_history (dpid, port, mac, seq, url, sha256, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*key, seq, a.url, a.sha256, a.at) for seq, a in enumerate(record.history) if seq >= len(stored)],
        )
        conn.execute(
            f"INSERT OR REPLACE INTO device ({DEVICE_COLUMNS}) VALUES ({', '.join('?' * 13)})",
            record_to_row(record),
        )
        cur = conn.execute(
            "INSERT INTO decision_log (dpid, port, mac, decision) VALUES (?, ?, ?, ?)",
            (*key, json.dumps(decision_fields(decision), sort_keys=True, allow_nan=False)),
        )
        newest = cur.lastrowid or 0
        if newest > self._max_log_rows and newest % 1024 == 0:
            # Bounded log: prune in batches, so most commits do not pay for it.
            conn.execute("DELETE FROM decision_log WHERE id <= ?", (newest - self._max_log_rows,))

    def migrate_legacy_pins(self, anchors_by_key_id: Mapping[str, frozenset[str]]) -> PinMigration:
        """Give every pin stored before the CA's public key was recorded (a legacy pin: CA key id only) the SPKI
        digest of the one configured anchor with that key id, in one transaction. A key id that several anchors
        share (the very attack SPKI pinning stops) or that no configured anchor has is left as it is: a legacy pin
        matches no signer, so such a device keeps its policy until the signer must be compared, and then needs an
        operator. ``anchors_by_key_id``: hex key id -> SPKI digests of the configured anchors with it."""
        migrated: list[DeviceId] = []
        unresolved: list[DeviceId] = []
        with self._locked() as conn, _transaction(conn):
            # Only the rows still to migrate (no SPKI in the pin, or a pin that is not even JSON), so a start after
            # the migration reads no record; the others keep being checked when they are used.
            rows = conn.execute(
                f"SELECT {DEVICE_COLUMNS} FROM device WHERE signer IS NOT NULL AND "
                "(CASE WHEN json_valid(signer) THEN json_extract(signer, '$.ca_spki_sha256') END) IS NULL"
            ).fetchall()
            for row in rows:
                try:
                    record = _load(conn, row)
                except TrustStoreError:
                    # One unreadable record fails that device closed when it is used, as at run time; it must
                    # not stop the controller from starting for all the others.
                    with contextlib.suppress(TypeError, ValueError):
                        unresolved.append(DeviceId(*row[:3]))
                    continue
                pin = record.signer
                if pin is None or pin.ca_spki is not None:
                    continue
                candidates = anchors_by_key_id.get(pin.ca_key_id.lower(), frozenset())
                if len(candidates) != 1:
                    unresolved.append(record.identity)
                    continue
                (spki,) = candidates
                upgraded = signer_to_json(dataclasses.replace(pin, ca_spki=spki))
                conn.execute(f"UPDATE device SET signer = ? WHERE {_KEY}", (upgraded, *identity_key(record.identity)))
                migrated.append(record.identity)
        return PinMigration(tuple(migrated), tuple(unresolved))

    def forget(self, identity: DeviceId) -> bool:
        """An operator's "forget this device": its record and URL history go (the decision log keeps its past).
        The next announcement from it is a first use again."""
        key = identity_key(identity)
        with self._locked() as conn, _transaction(conn):
            conn.execute(f"DELETE FROM url_history WHERE {_KEY}", key)
            return conn.execute(f"DELETE FROM device WHERE {_KEY}", key).rowcount > 0

    def integrity_check(self) -> list[str]:
        """SQLite's full integrity check (["ok"] when sound)."""
        with self._locked() as conn:
            return [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]


@dataclass(frozen=True, slots=True)
class PinMigration:
    """What :meth:`TrustStore.migrate_legacy_pins` did: pins given their CA's SPKI, and pins it could not resolve."""

    migrated: tuple[DeviceId, ...]
    unresolved: tuple[DeviceId, ...]


def _load(conn: sqlite3.Connection, row: tuple[object, ...]) -> TrustRecord:
    key = row[:3]
    rows = conn.execute(f"SELECT seq, url, sha256, at FROM url_history WHERE {_KEY} ORDER BY seq", key).fetchall()
    history_len = row[-1]
    if isinstance(history_len, bool) or not isinstance(history_len, int):
        raise TrustStoreError("corrupt-record", f"{key}: history length is not an integer")
    return record_from_row(tuple(row), history_from_rows(rows, history_len, str(key)))


_transaction = write_transaction
