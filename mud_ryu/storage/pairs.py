"""A private SQLite file of ``(key, value, expiry)`` rows saved as a diff: what the DNS binding store and the DHCP
lease store share.

Each holds state the enforcer keeps in memory and must find again after a restart (THREATS.md R11), learned from
frames that can arrive many times a second: the app saves at most every few seconds, a diff against what was last
saved, in one transaction, instead of an fsync per frame. A subclass names its file's table, columns, application
id and error class; the schema is versioned through :func:`mud_ryu.storage.sqlite.open_versioned`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar, Self

from mud_ryu.errors import ReasonError
from mud_ryu.storage.sqlite import open_versioned, write_transaction

SCHEMA_VERSION = 1
MAX_ROWS = 1 << 20  # a file with more rows than any table could hold is not ours to load

Row = tuple[str, str, float]  # (key, value, expiry in seconds since the epoch)


class ExpiringPairStore:
    WHAT: ClassVar[str]  # for messages: "DNS binding store"
    TABLE: ClassVar[str]
    KEY: ClassVar[str]
    VALUE: ClassVar[str]
    APPLICATION_ID: ClassVar[int]
    ERROR: ClassVar[type[ReasonError]]  # reasons: unavailable, corrupt-database, schema-too-new

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, str], float] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        p = Path(path)
        migrations = {
            0: (
                f"CREATE TABLE {cls.TABLE} ({cls.KEY} TEXT NOT NULL, {cls.VALUE} TEXT NOT NULL, expires_at REAL NOT "
                f"NULL, PRIMARY KEY ({cls.KEY}, {cls.VALUE})) STRICT, WITHOUT ROWID",
                f"PRAGMA application_id = {cls.APPLICATION_ID}",
            ),
        }
        conn = open_versioned(
            p, what=cls.WHAT, schema_version=SCHEMA_VERSION, application_id=cls.APPLICATION_ID,
            migrations=migrations, full_check=False, error=cls.ERROR,
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
            raise self.ERROR("unavailable", f"{self._path}: {exc}") from exc

    def load(self) -> list[Row]:
        """Every saved row whose values are well formed (a row that is not is skipped: the caller restores what it
        can check). What was loaded counts as saved."""
        query = f"SELECT {self.KEY}, {self.VALUE}, expires_at FROM {self.TABLE} LIMIT ?"
        with self._sql() as conn:
            rows = conn.execute(query, (MAX_ROWS,)).fetchall()
        out: list[Row] = []
        for key, value, expires_at in rows:
            well_formed = isinstance(key, str) and isinstance(value, str) and isinstance(expires_at, float)
            if well_formed and math.isfinite(expires_at):
                out.append((key, value, expires_at))
        self._saved = {(k, v): e for k, v, e in out}
        return out

    def save(self, rows: Mapping[str, Mapping[str, float]]) -> int:
        """Make the file hold exactly ``rows`` (key -> value -> expiry, finite); returns the rows written or deleted
        (0: nothing changed, no transaction)."""
        wanted = {(key, value): until for key, table in rows.items() for value, until in table.items()}
        gone = [key for key in self._saved if key not in wanted]
        changed = [(k, v, e) for (k, v), e in wanted.items() if self._saved.get((k, v)) != e]
        if not gone and not changed:
            return 0
        with self._sql() as conn, write_transaction(conn):
            conn.executemany(f"DELETE FROM {self.TABLE} WHERE {self.KEY} = ? AND {self.VALUE} = ?", gone)
            conn.executemany(
                f"INSERT INTO {self.TABLE} ({self.KEY}, {self.VALUE}, expires_at) VALUES (?, ?, ?) "
                f"ON CONFLICT ({self.KEY}, {self.VALUE}) DO UPDATE SET expires_at = excluded.expires_at",
                changed,
            )
        self._saved = wanted
        return len(gone) + len(changed)
