"""The durable cache of verified MUD files and of the negative cache of failing URLs (SQLite, stdlib).

This is trust data (THREATS.md R2, R3): what the enforcer falls back to when a refresh fails. Hence:

* WAL + ``synchronous=FULL``: a committed ``put`` survives a crash or power loss; a crash mid-write leaves
  the previous state. Every write is one ``BEGIN IMMEDIATE`` transaction.
* Nothing is served unchecked: each row's body must hash to its stored SHA-256 and every column must decode to
  the expected type and range, else the row is deleted and ``CacheError("corrupt-entry")`` raised. A file that is
  not our SQLite database raises ``CacheError("corrupt-database")``; :meth:`MudCache.open_or_recover` moves it
  aside (evidence is kept) and starts empty, which means "no verified file", i.e. quarantine, never wider.
* The signer is stored as JSON, never pickled: a store that can be edited must not become code execution.
* Bounded: at most ``max_entries`` files (the least recently validated are evicted) and failure records, each
  body at most ``max_body_bytes``; file names never come from URLs (THREATS.md row 18).
* One connection behind a lock, so a worker pool can share one cache object.

Reason codes (stable): corrupt-entry, corrupt-database, schema-too-new, unavailable.

This module holds the cache's operations. Opening, checking, migrating and recovering the file are in
:mod:`mud_ryu.fetch.cache_schema`; :class:`CacheEntry` and the row decoders are in :mod:`mud_ryu.fetch.cache_entry`.
Callers import the public names from here, so those splits can change without touching them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from mud_ryu.fetch.cache_entry import (
    ENTRY_COLUMNS,
    FAILURE_COLUMNS,
    CacheEntry,
    entry_from_row,
    entry_to_row,
    failure_from_row,
    failure_to_row,
)
from mud_ryu.fetch.cache_schema import (
    CACHE_REASONS,
    SCHEMA_VERSION,
    CacheError,
    as_cache_error,
    connect,
    move_aside,
    transaction,
)
from mud_ryu.fetch.refresh import FailureRecord
from mud_ryu.fetch.types import Validators

__all__ = [
    "CACHE_REASONS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "SCHEMA_VERSION",
    "CacheEntry",
    "CacheError",
    "MudCache",
]

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BODY_BYTES = 1 << 20  # the fetcher's cap too (THREATS.md R7)
MAX_SET_ASIDE = 256  # evidence rows kept: bounded, since an attacker's server can make entries fail
_T = TypeVar("_T")


class MudCache:
    """Verified MUD files and failure records of one controller, in one SQLite file. Thread-safe."""

    def __init__(self, conn: sqlite3.Connection, path: Path, max_entries: int, max_body_bytes: int) -> None:
        """Use :meth:`open` or :meth:`open_or_recover`; this only wires up an already checked connection."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.max_body_bytes = max_body_bytes

    # ---- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> MudCache:
        """Open (creating if needed: directories 0700, file 0600) and check the cache at ``path``."""
        if max_entries < 1 or max_body_bytes < 1:
            raise ValueError("max_entries and max_body_bytes must be positive")
        p = Path(path)
        conn = connect(p)
        return cls(conn, p, max_entries, max_body_bytes)

    @classmethod
    def open_or_recover(
        cls,
        path: str | os.PathLike[str],
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> tuple[MudCache, str | None]:
        """Open the cache; if the file is corrupt, move it (with its -wal/-shm) aside to ``<path>.corrupt-<n>``
        and start an empty cache. Returns the cache and the reason it was recovered (None if it was sound).

        Only ``corrupt-database`` is recovered: ``schema-too-new`` (a newer release wrote it: never downgrade)
        and ``unavailable`` (locked, unreadable: the data may be fine) are raised to the caller."""
        try:
            return cls.open(path, max_entries=max_entries, max_body_bytes=max_body_bytes), None
        except CacheError as exc:
            if exc.reason != "corrupt-database":
                raise
        p = Path(path)
        move_aside(p)
        return cls.open(p, max_entries=max_entries, max_body_bytes=max_body_bytes), "corrupt-database"

    @property
    def path(self) -> Path:
        return self._path

    # ---- MUD files -----------------------------------------------------------------------------------------

    def get(self, url: str) -> CacheEntry | None:
        """The cached entry of ``url``, checked; a corrupt row is deleted and ``corrupt-entry`` raised."""
        with self._locked() as conn:
            row = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM mud_entry WHERE url = ?", (url,)).fetchone()
            if row is None:
                return None
            return self._decode_or_drop(conn, "mud_entry", url, entry_from_row, row)

    def put(self, entry: CacheEntry) -> None:
        """Store ``entry`` (replacing any entry of its URL) and evict the least recently validated entries
        beyond ``max_entries``. When the stored body has the same SHA-256, its ``fetched_at`` is kept: that
        field means when this content was first obtained."""
        if not isinstance(entry, CacheEntry):
            raise TypeError("put() takes a CacheEntry")
        if len(entry.body) > self.max_body_bytes:
            raise ValueError(f"MUD file of {len(entry.body)} bytes exceeds the cache cap of {self.max_body_bytes}")
        values = entry_to_row(entry)
        with self._locked() as conn, transaction(conn):
            conn.execute(
                f"INSERT INTO mud_entry ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * len(values))}) "
                "ON CONFLICT (url) DO UPDATE SET body = excluded.body, signature = excluded.signature, "
                "signer = excluded.signer, etag = excluded.etag, last_modified = excluded.last_modified, "
                "cache_validity_h = excluded.cache_validity_h, validated_at = excluded.validated_at, "
                "expires_at = excluded.expires_at, fetched_at = CASE WHEN mud_entry.sha256 = excluded.sha256 "
                "THEN mud_entry.fetched_at ELSE excluded.fetched_at END, sha256 = excluded.sha256",
                values,
            )
            _evict(conn, "mud_entry", "validated_at", entry.url, self.max_entries)

    def renew(self, url: str, validators: Validators, now: float) -> CacheEntry | None:
        """The 304 path: mark the cached content as confirmed at ``now`` (expiry restarts from now). Returns the
        renewed entry, or None when nothing is cached for ``url`` (then a full fetch is needed)."""
        with self._locked() as conn:
            row = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM mud_entry WHERE url = ?", (url,)).fetchone()
            if row is None:
                return None
            renewed = self._decode_or_drop(conn, "mud_entry", url, entry_from_row, row).renewed(validators, now)
            with transaction(conn):
                # Only if the row still holds the content the 304 confirmed: another process sharing the file
                # may have replaced it meanwhile, and a 304 must never extend content it did not vouch for.
                changed = conn.execute(
                    "UPDATE mud_entry SET etag = ?, last_modified = ?, validated_at = ?, expires_at = ? "
                    "WHERE url = ? AND sha256 = ?",
                    (
                        renewed.validators.etag,
                        renewed.validators.last_modified,
                        now,
                        renewed.expires_at,
                        url,
                        renewed.sha256,
                    ),
                ).rowcount
            return renewed if changed else None

    def set_aside(self, url: str, reason: str, now: float) -> bool:
        """Stop serving the entry of ``url`` and keep it as evidence (``reason``: why it fails the policy in force);
        the newest ``MAX_SET_ASIDE`` are kept. True if there was an entry."""
        with self._locked() as conn, transaction(conn):
            moved = conn.execute(
                "INSERT INTO set_aside (url, body, sha256, signature, signer, reason, set_aside_at) "
                "SELECT url, body, sha256, signature, signer, ?, ? FROM mud_entry WHERE url = ?",
                (reason[:200], now, url),
            ).rowcount
            conn.execute("DELETE FROM mud_entry WHERE url = ?", (url,))
            conn.execute(
                "DELETE FROM set_aside WHERE id <= (SELECT max(id) FROM set_aside) - ?", (MAX_SET_ASIDE,)
            )
            return moved > 0

    def set_aside_entries(self, limit: int = 100) -> list[tuple[str, str, str, float]]:
        """The newest entries set aside: (url, sha256, reason, when), newest first."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT url, sha256, reason, set_aside_at FROM set_aside ORDER BY id DESC LIMIT ?", (limit,)
            )
            return [(str(u), str(s), str(r), float(t)) for u, s, r, t in rows]

    def delete(self, url: str) -> bool:
        """Forget the cached file of ``url``; True if there was one."""
        with self._locked() as conn, transaction(conn):
            return conn.execute("DELETE FROM mud_entry WHERE url = ?", (url,)).rowcount > 0

    def urls(self) -> list[str]:
        """Every cached URL, sorted."""
        with self._locked() as conn:
            return [r[0] for r in conn.execute("SELECT url FROM mud_entry ORDER BY url")]

    def due(self, now: float, limit: int = 100) -> list[str]:
        """Up to ``limit`` URLs whose entry is stale at ``now``, the longest expired first (refresh scheduler)."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT url FROM mud_entry WHERE expires_at <= ? ORDER BY expires_at, url LIMIT ?", (now, limit)
            )
            return [r[0] for r in rows]

    def __len__(self) -> int:
        with self._locked() as conn:
            count = conn.execute("SELECT count(*) FROM mud_entry").fetchone()[0]
            return int(count)

    # ---- negative cache ------------------------------------------------------------------------------------

    def failure(self, url: str) -> FailureRecord | None:
        """The failure record of ``url``, checked like an entry (a corrupt one is dropped: ``corrupt-entry``)."""
        with self._locked() as conn:
            row = conn.execute(f"SELECT {FAILURE_COLUMNS} FROM fetch_failure WHERE url = ?", (url,)).fetchone()
            if row is None:
                return None
            return self._decode_or_drop(conn, "fetch_failure", url, failure_from_row, row)

    def put_failure(self, record: FailureRecord) -> None:
        """Store the failure record of its URL; the oldest records beyond ``max_entries`` are dropped (attackers
        can mint failing URLs; forgetting one only allows an earlier retry)."""
        values = failure_to_row(record)
        with self._locked() as conn, transaction(conn):
            conn.execute(f"INSERT OR REPLACE INTO fetch_failure ({FAILURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", values)
            _evict(conn, "fetch_failure", "last_failure_at", record.url, self.max_entries)

    def clear_failure(self, url: str) -> bool:
        """Forget the failure record of ``url`` (after a success); True if there was one."""
        with self._locked() as conn, transaction(conn):
            return conn.execute("DELETE FROM fetch_failure WHERE url = ?", (url,)).rowcount > 0

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> MudCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- internals -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise CacheError("unavailable", f"{self._path}: the cache is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise as_cache_error(exc, self._path) from exc

    def _decode_or_drop(
        self, conn: sqlite3.Connection, table: str, url: str, decode: Callable[[tuple[Any, ...]], _T], row: Any
    ) -> _T:
        try:
            return decode(row)
        except (ValueError, TypeError, RecursionError) as exc:
            # The bad row must never be served again; the evidence is in the raised message and the log.
            with transaction(conn):
                conn.execute(f"DELETE FROM {table} WHERE url = ?", (url,))
            raise CacheError("corrupt-entry", f"{table} row of {url!r} dropped: {exc}") from exc


def _evict(conn: sqlite3.Connection, table: str, age_column: str, keep_url: str, limit: int) -> None:
    """Drop the oldest rows of ``table`` beyond ``limit`` (the bound on disk use an attacker minting URLs could
    otherwise grow), never ``keep_url``: the row the caller just wrote."""
    count = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    if count > limit:
        conn.execute(
            f"DELETE FROM {table} WHERE url IN (SELECT url FROM {table} WHERE url != ? "
            f"ORDER BY {age_column}, url LIMIT ?)",
            (keep_url, count - limit),
        )
