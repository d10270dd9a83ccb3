"""Durable enforcer state: device records, the ids baked into flow cookies and metadata, verified MUD bytes.

Why durable: after a controller restart (or kill -9) the switches still hold flows whose cookies and metadata
carry profile, manufacturer and device ids. Reconciliation can only leave those flows alone (THREATS.md R11) if
the restarted controller computes *the same* flows: the same ids for the same URLs and MACs, and the same verified
MUD files to compile. So ids are allocated once and stored, and the verified bytes of every file in force are
kept by hash. SQLite with WAL and ``synchronous=FULL`` (R2), one connection guarded by a lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from mud_ryu.context import FIRST_MFG_ID, FIRST_PROFILE_ID
from mud_ryu.pipeline import MAX_MFG_ID, MAX_PROFILE_ID, OWNER_BITS
from mud_ryu.sqlite_store import enable_wal

SCHEMA_VERSION = 1
MAX_DEVICE_ID = (1 << OWNER_BITS) - 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS profile (url TEXT PRIMARY KEY, profile_id INTEGER NOT NULL UNIQUE) STRICT",
    "CREATE TABLE IF NOT EXISTS manufacturer (authority TEXT PRIMARY KEY, mfg_id INTEGER NOT NULL UNIQUE) STRICT",
    """CREATE TABLE IF NOT EXISTS device (
        mac TEXT PRIMARY KEY, device_id INTEGER NOT NULL UNIQUE, dpid INTEGER NOT NULL, port INTEGER NOT NULL,
        url TEXT, via TEXT NOT NULL, state TEXT NOT NULL, sha256 TEXT, reason TEXT NOT NULL,
        updated_at REAL NOT NULL) STRICT""",
    "CREATE TABLE IF NOT EXISTS body (sha256 TEXT PRIMARY KEY, body BLOB NOT NULL) STRICT",
)


class StoreError(RuntimeError):
    """The state store cannot be used; the enforcer must not start (fail closed, THREATS.md R3)."""


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
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> DeviceStore:
        p = Path(path)
        try:
            p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not p.exists():  # 0600 from the first byte; SQLite gives -wal/-shm the database file's mode
                os.close(os.open(p, os.O_CREAT | os.O_RDWR, 0o600))
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False, timeout=10.0)
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{p}: schema version {version} is newer than this release ({SCHEMA_VERSION})")
            for ddl in _SCHEMA:
                conn.execute(ddl)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{p}: {exc}") from exc
        return cls(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _allocate(self, table: str, key_col: str, id_col: str, key: str, first: int, last: int) -> int:
        with self._lock:
            row = self._conn.execute(f"SELECT {id_col} FROM {table} WHERE {key_col}=?", (key,)).fetchone()
            if row is not None:
                return int(row[0])
            top = self._conn.execute(f"SELECT MAX({id_col}) FROM {table}").fetchone()[0]
            new = first if top is None else int(top) + 1
            if new > last:
                raise StoreError(f"{table} id space exhausted")
            self._conn.execute(f"INSERT INTO {table} ({key_col}, {id_col}) VALUES (?, ?)", (key, new))
            return new

    def profile_id(self, url: str) -> int:
        return self._allocate("profile", "url", "profile_id", url, FIRST_PROFILE_ID, MAX_PROFILE_ID)

    def manufacturer_id(self, authority: str) -> int:
        return self._allocate("manufacturer", "authority", "mfg_id", authority.lower(), FIRST_MFG_ID, MAX_MFG_ID)

    def profile_ids(self) -> dict[str, int]:
        with self._lock:
            return {str(u): int(i) for u, i in self._conn.execute("SELECT url, profile_id FROM profile")}

    def manufacturer_ids(self) -> dict[str, int]:
        with self._lock:
            return {str(a): int(i) for a, i in self._conn.execute("SELECT authority, mfg_id FROM manufacturer")}

    def device_id(self, mac: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT device_id FROM device WHERE mac=?", (mac,)).fetchone()
            if row is not None:
                return int(row[0])
            used = {int(r[0]) for r in self._conn.execute("SELECT device_id FROM device")}
        # Device id 0 is never used: cookie owner 0 belongs to shared flows.
        for candidate in range(1, MAX_DEVICE_ID + 1):
            if candidate not in used:
                return candidate
        raise StoreError("device id space exhausted")

    def save_device(self, rec: DeviceRecord) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO device (mac, device_id, dpid, port, url, via, state, sha256, reason,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.mac, rec.device_id, rec.dpid, rec.port, rec.url, rec.via, rec.state, rec.sha256, rec.reason,
                 rec.updated_at),
            )  # fmt: skip

    def devices(self) -> list[DeviceRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT mac, device_id, dpid, port, url, via, state, sha256, reason, updated_at FROM device"
            ).fetchall()
        return [DeviceRecord(*row) for row in rows]

    def forget(self, mac: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM device WHERE mac=?", (mac,))

    def save_body(self, sha256: str, body: bytes) -> None:
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO body (sha256, body) VALUES (?, ?)", (sha256, body))

    def body(self, sha256: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM body WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])
