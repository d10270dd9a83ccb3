"""DNS-learned bindings kept across a controller restart (THREATS.md R11: a restart deletes no valid flow).

An address a device was told by the site resolver stays allowed until its (clamped) TTL runs out. That state lived
only in the controller's memory, so after a restart the profiles compiled without it and reconciliation deleted
the flows of every DNS-named service a device was using, until the device happened to query again. This store
keeps ``(name, address, expiry)`` rows in ``dns-bindings.sqlite3`` next to the other state files; the enforcer
restores them at start (:meth:`~mud_ryu.dnsbind.DnsBindings.restore`: never past the saved expiry) before any
switch is reconciled.

Writes are a diff against what was last saved, in one transaction, and the app saves at most every few seconds
(a DNS answer can arrive many times a second; an fsync each would be the cost of every answer). What a crash can
lose is the last few seconds: an extension (the address then expires earlier, at its older expiry) or a new address
(its flows go at the restart until the device asks again): both fail closed, neither widens.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from mud_ryu.errors import ReasonError
from mud_ryu.sqlite_store import open_versioned, write_transaction

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4D554444  # "MUDD"
MAX_ROWS = 1 << 20  # a file with more rows than any table could hold is not ours to load
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        "CREATE TABLE binding (name TEXT NOT NULL, address TEXT NOT NULL, expires_at REAL NOT NULL, "
        "PRIMARY KEY (name, address)) STRICT, WITHOUT ROWID",
        f"PRAGMA application_id = {APPLICATION_ID}",
    ),
}

Binding = tuple[str, str, float]  # (normalised name, address, expiry in seconds since the epoch)


class DnsStoreError(ReasonError):
    """The binding store cannot be used; ``reason``: ``unavailable``, ``corrupt-database``, ``schema-too-new``."""


class DnsStore:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, str], float] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> DnsStore:
        p = Path(path)
        conn = open_versioned(
            p, what="DNS binding store", schema_version=SCHEMA_VERSION, application_id=APPLICATION_ID,
            migrations=_MIGRATIONS, full_check=False, error=DnsStoreError,
        )  # fmt: skip
        return cls(conn, p)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _sql(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._lock:
                yield self._conn
        except sqlite3.Error as exc:
            raise DnsStoreError("unavailable", f"{self._path}: {exc}") from exc

    def load(self) -> list[Binding]:
        """Every saved row whose values are well formed (a row that is not is skipped: the table restores what it
        can check, see :meth:`DnsBindings.restore`). What was loaded counts as saved."""
        with self._sql() as conn:
            rows = conn.execute("SELECT name, address, expires_at FROM binding LIMIT ?", (MAX_ROWS,)).fetchall()
        out: list[Binding] = []
        for name, address, expires_at in rows:
            well_formed = isinstance(name, str) and isinstance(address, str) and isinstance(expires_at, float)
            if well_formed and math.isfinite(expires_at):
                out.append((name, address, expires_at))
        self._saved = {(n, a): e for n, a, e in out}
        return out

    def save(self, bindings: Mapping[str, Mapping[str, float]]) -> int:
        """Make the file hold exactly ``bindings`` (name -> address -> expiry); returns the rows written or deleted
        (0: nothing changed, no transaction)."""
        wanted = {(name, address): until for name, table in bindings.items() for address, until in table.items()}
        gone = [key for key in self._saved if key not in wanted]
        changed = [(n, a, e) for (n, a), e in wanted.items() if self._saved.get((n, a)) != e]
        if not gone and not changed:
            return 0
        with self._sql() as conn, write_transaction(conn):
            conn.executemany("DELETE FROM binding WHERE name = ? AND address = ?", gone)
            conn.executemany(
                "INSERT INTO binding (name, address, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name, address) DO UPDATE SET expires_at = excluded.expires_at",
                changed,
            )
        self._saved = wanted
        return len(gone) + len(changed)
