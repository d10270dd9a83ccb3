"""Durable enforcer state: device records, the ids baked into flow cookies and metadata, verified MUD bytes.

Why durable: after a controller restart (or kill -9) the switches still hold flows whose cookies and metadata
carry profile, manufacturer and device ids. Reconciliation can only leave those flows alone (THREATS.md R11) if
the restarted controller computes *the same* flows: the same ids for the same URLs and MACs, and the same verified
MUD files to compile. So ids are allocated once and stored, and the verified bytes of every file in force are
kept by hash. SQLite with WAL and ``synchronous=FULL`` (R2), one connection guarded by a lock.

The operator's ``my-controller`` entries live here too: they decide what compiled profiles allow, so a restart
must compile with the same entries. Each is checked again on read (:mod:`mud_ryu.enforcer.my_controller`); a row that no
longer passes is corruption and fails closed (StoreError), never a widening.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mud_ryu.compiler.context import FIRST_MFG_ID, FIRST_PROFILE_ID
from mud_ryu.compiler.pipeline import MAX_MFG_ID, MAX_PROFILE_ID, OWNER_BITS
from mud_ryu.enforcer.my_controller import MyControllerRefused, check_entry
from mud_ryu.storage.sqlite import open_versioned

SCHEMA_VERSION = 2
# Stores written before schema versioning went through sqlite_store carry no application id; they are kept
# untagged (0) so every existing store still opens -- tagging them would refuse them as foreign files.
APPLICATION_ID = 0
MAX_DEVICE_ID = (1 << OWNER_BITS) - 1

# Migration n takes a store at user_version n to n + 1 (0: a new file). Version 1 is the original schema.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        "CREATE TABLE profile (url TEXT PRIMARY KEY, profile_id INTEGER NOT NULL UNIQUE) STRICT",
        "CREATE TABLE manufacturer (authority TEXT PRIMARY KEY, mfg_id INTEGER NOT NULL UNIQUE) STRICT",
        """CREATE TABLE device (
            mac TEXT PRIMARY KEY, device_id INTEGER NOT NULL UNIQUE, dpid INTEGER NOT NULL, port INTEGER NOT NULL,
            url TEXT, via TEXT NOT NULL, state TEXT NOT NULL, sha256 TEXT, reason TEXT NOT NULL,
            updated_at REAL NOT NULL) STRICT""",
        "CREATE TABLE body (sha256 TEXT PRIMARY KEY, body BLOB NOT NULL) STRICT",
    ),
    # The operator's my-controller entries: canonical MUD URL -> JSON list of canonical addresses/prefixes.
    1: ("CREATE TABLE my_controller (url TEXT PRIMARY KEY, addresses TEXT NOT NULL) STRICT",),
}


MAX_PENDING_ROWS = 4096  # rows written behind are flushed at the latest when this many wait
_SAVE_DEVICE = (
    "INSERT OR REPLACE INTO device (mac, device_id, dpid, port, url, via, state, sha256, reason, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class StoreError(RuntimeError):
    """The state store cannot be used; the enforcer must not start (fail closed, THREATS.md R3). Every SQLite failure
    of a running store (disk full, I/O error, a locked file) is raised as one too, so callers that must still narrow
    a device's flows when its row cannot be written (:mod:`mud_ryu.enforcer.operator`) have one exception to catch."""


def _store_error(reason: str, message: str) -> StoreError:
    return StoreError(f"{reason}: {message}")


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    mac: str
    device_id: int
    dpid: int
    port: int
    url: str | None  # the MUD URL in force (None: never announced one)
    via: str  # how the URL was learned: dhcpv4, dhcpv6, lldp, learned (no MUD)
    state: str  # quarantined, enforced, absent (port down/released; trust kept)
    sha256: str | None  # the verified file in force
    reason: str  # why the device is in this state ("" when enforced normally)
    updated_at: float


class DeviceStore:
    """Device rows, ids, bodies and my-controller entries. Device rows may be written behind (:meth:`defer_writes`):
    saved in memory and committed together by :meth:`flush`, one transaction for all the rows an event-loop turn
    changed -- a mass join saves two rows a device, and under eventlet every commit blocks the whole controller.
    Reads see the rows not yet flushed. What a crash loses is the last turn's rows: the trust store, committed
    before any wider policy is sent, decides at start who may be enforced (``Enforcer._trust_over_rows``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._deferred = False
        self._schedule: Callable[[], object] = lambda: None
        self._pending: dict[str, DeviceRecord] = {}  # rows saved, not yet flushed (write-behind only)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> DeviceStore:
        conn = open_versioned(
            Path(path), what="device store", schema_version=SCHEMA_VERSION, application_id=APPLICATION_ID,
            migrations=_MIGRATIONS, full_check=False, error=_store_error,
        )  # fmt: skip
        return cls(conn)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._conn.close()

    def defer_writes(self, schedule: Callable[[], object]) -> None:
        """From now on, device rows are written behind: saved in memory until :meth:`flush`, or until
        MAX_PENDING_ROWS are waiting. ``schedule`` is called when a first row starts waiting: the app spawns a
        flush there, which runs once the current event-loop turn yields (so one turn's rows share a commit)."""
        self._deferred = True
        self._schedule = schedule

    def flush(self) -> int:
        """Commit the rows written behind, in one transaction; returns how many. On a failure they stay waiting
        (the next flush tries again) and StoreError is raised."""
        if not self._pending:
            return 0
        rows = list(self._pending.values())
        with self._sql("device") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_SAVE_DEVICE, [_device_row(r) for r in rows])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        for rec in rows:
            if self._pending.get(rec.mac) is rec:
                del self._pending[rec.mac]
        return len(rows)

    @contextlib.contextmanager
    def _sql(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; an SQLite failure becomes ``StoreError("unavailable: ...")``."""
        try:
            with self._lock:
                yield self._conn
        except sqlite3.Error as exc:
            raise _store_error("unavailable", f"{what}: {type(exc).__name__}: {exc}") from exc

    def _allocate(self, table: str, key_col: str, id_col: str, key: str, first: int, last: int) -> int:
        with self._sql(table) as conn:
            row = conn.execute(f"SELECT {id_col} FROM {table} WHERE {key_col}=?", (key,)).fetchone()
            if row is not None:
                return int(row[0])
            top = conn.execute(f"SELECT MAX({id_col}) FROM {table}").fetchone()[0]
            new = first if top is None else int(top) + 1
            if new > last:
                raise StoreError(f"{table} id space exhausted")
            conn.execute(f"INSERT INTO {table} ({key_col}, {id_col}) VALUES (?, ?)", (key, new))
            return new

    def profile_id(self, url: str) -> int:
        return self._allocate("profile", "url", "profile_id", url, FIRST_PROFILE_ID, MAX_PROFILE_ID)

    def manufacturer_id(self, authority: str) -> int:
        return self._allocate("manufacturer", "authority", "mfg_id", authority.lower(), FIRST_MFG_ID, MAX_MFG_ID)

    def profile_ids(self) -> dict[str, int]:
        with self._sql("profile") as conn:
            return {str(u): int(i) for u, i in conn.execute("SELECT url, profile_id FROM profile")}

    def manufacturer_ids(self) -> dict[str, int]:
        with self._sql("manufacturer") as conn:
            return {str(a): int(i) for a, i in conn.execute("SELECT authority, mfg_id FROM manufacturer")}

    def device_id(self, mac: str) -> int:
        waiting = self._pending.get(mac)
        if waiting is not None:
            return waiting.device_id
        if self._pending and self._top() >= MAX_DEVICE_ID - 1:
            self.flush()  # near the top of the id space the gaps are searched in the table: it must hold every row
        with self._sql("device") as conn:
            row = conn.execute("SELECT device_id FROM device WHERE mac=?", (mac,)).fetchone()
            if row is not None:
                return int(row[0])
            # Device id 0 is never used: cookie owner 0 belongs to shared flows. The next id above the highest is an
            # index lookup; only once the top of the space is taken are the gaps (forgotten devices) searched. (Each
            # new MAC used to read every id: with MAC churn on a port, work that grew with every device ever seen.)
            top = conn.execute("SELECT MAX(device_id) FROM device").fetchone()[0]
            if self._pending:  # ids of rows not yet flushed are taken too
                top = max(int(top or 0), *(r.device_id for r in self._pending.values()))
            if top is None or int(top) < MAX_DEVICE_ID:
                return 1 if top is None else int(top) + 1
            gap = conn.execute(
                "SELECT MIN(d.device_id) + 1 FROM device d WHERE d.device_id < ? AND NOT EXISTS "
                "(SELECT 1 FROM device e WHERE e.device_id = d.device_id + 1)",
                (MAX_DEVICE_ID,),
            ).fetchone()[0]
            if not conn.execute("SELECT 1 FROM device WHERE device_id = 1").fetchone():
                return 1
        if gap is None:
            raise StoreError("device id space exhausted")
        return int(gap)

    def _top(self) -> int:
        """The highest device id taken, by a row stored or waiting (the table's and the waiting rows' maximum)."""
        with self._sql("device") as conn:
            top = conn.execute("SELECT MAX(device_id) FROM device").fetchone()[0]
        return max(int(top or 0), *(r.device_id for r in self._pending.values()))

    def save_device(self, rec: DeviceRecord, *, immediately: bool = False) -> None:
        """Save a device row: written behind when deferring (unless ``immediately``: an operator action that reports
        a failure to write it), else committed now. Every StoreError of a write behind surfaces at a flush."""
        if self._deferred and not immediately:
            first = not self._pending
            self._pending.pop(rec.mac, None)  # re-inserted last: a flush writes rows in the order they changed
            self._pending[rec.mac] = rec
            if len(self._pending) >= MAX_PENDING_ROWS:
                self.flush()
            elif first:
                self._schedule()
            return
        self._pending.pop(rec.mac, None)
        self.flush()  # what waited goes first
        with self._sql("device") as conn:
            conn.execute(_SAVE_DEVICE, _device_row(rec))

    def devices(self) -> list[DeviceRecord]:
        with self._sql("device") as conn:
            rows = conn.execute(
                "SELECT mac, device_id, dpid, port, url, via, state, sha256, reason, updated_at FROM device"
            ).fetchall()
        stored = {row[0]: DeviceRecord(*row) for row in rows}
        stored.update(self._pending)
        return list(stored.values())

    def forget(self, mac: str) -> None:
        self._pending.pop(mac, None)
        with self._sql("device") as conn:
            conn.execute("DELETE FROM device WHERE mac=?", (mac,))

    def save_body(self, sha256: str, body: bytes) -> None:
        with self._sql("body") as conn:
            conn.execute("INSERT OR IGNORE INTO body (sha256, body) VALUES (?, ?)", (sha256, body))

    def body(self, sha256: str) -> bytes | None:
        with self._sql("body") as conn:
            row = conn.execute("SELECT body FROM body WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    # ---- the operator's my-controller entries

    def my_controllers(self) -> dict[str, tuple[str, ...]]:
        """Every operator entry (canonical URL -> addresses); a row that fails the entry checks is corruption."""
        with self._sql("my_controller") as conn:
            rows = conn.execute("SELECT url, addresses FROM my_controller").fetchall()
        out: dict[str, tuple[str, ...]] = {}
        for url, raw in rows:
            try:
                canonical, addresses = check_entry(url, json.loads(raw))
            except (ValueError, RecursionError) as exc:  # MyControllerRefused and JSONDecodeError are ValueErrors
                raise StoreError(f"corrupt-record: my_controller entry for {str(url)[:200]!r}: {exc}") from None
            if canonical != url:
                raise StoreError(f"corrupt-record: my_controller entry {str(url)[:200]!r} is not canonical")
            out[canonical] = addresses
        return out

    def set_my_controller(self, url: str, addresses: tuple[str, ...]) -> None:
        """Store an entry; ``url`` and ``addresses`` must already be canonical (:func:`check_entry`)."""
        if check_entry(url, addresses) != (url, addresses):
            raise MyControllerRefused("bad-field", "the entry is not in canonical form")
        with self._sql("my_controller") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO my_controller (url, addresses) VALUES (?, ?)", (url, json.dumps(addresses))
            )

    def clear_my_controller(self, url: str) -> bool:
        """Remove the entry for ``url``; False when there was none."""
        with self._sql("my_controller") as conn:
            gone = conn.execute("DELETE FROM my_controller WHERE url=?", (url,)).rowcount
        return bool(gone)


def _device_row(rec: DeviceRecord) -> tuple[object, ...]:
    return (rec.mac, rec.device_id, rec.dpid, rec.port, rec.url, rec.via, rec.state, rec.sha256, rec.reason,
            rec.updated_at)  # fmt: skip

