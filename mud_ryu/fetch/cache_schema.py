"""The SQLite file under the MUD cache: creating it privately, checking it is ours and sound, migrating it, and
moving a corrupt one aside.

Kept apart from :mod:`mud_ryu.fetch.cache` (the cache's operations) because this is the part that decides whether the
bytes on disk may be trusted at all (THREATS.md R2, R3), and that decision must not be blurred by query code:

* Every failure is classified into a stable reason: ``corrupt-database`` only for what SQLite itself calls
  corruption or "not a database", or for a database that is not a mud_ryu cache (wrong ``application_id``, or
  foreign tables in a file without our version); ``schema-too-new`` for a file a newer release wrote (never
  downgrade it); ``unavailable`` for everything else (locked, read-only, disk full), whose data may be sound and
  so must never be moved aside.
* WAL + ``synchronous=FULL`` are set and ``quick_check`` run on every open, before any row is read.
* Moving aside keeps the evidence: link+unlink never overwrites an earlier ``<path>.corrupt-<n>``, and the
  directory is fsynced so the rename survives a crash.

:class:`CacheError` and :data:`CACHE_REASONS` live here because this layer raises most of them; the cache module
re-exports both, which is where callers import them from.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from mud_ryu.errors import ReasonError
from mud_ryu.storage.sqlite import open_versioned, write_transaction

CACHE_REASONS: frozenset[str] = frozenset({"corrupt-entry", "corrupt-database", "schema-too-new", "unavailable"})
SCHEMA_VERSION = 2
APPLICATION_ID = 0x4D554443  # "MUDC": tells our database apart from any other SQLite file at the same path
# Primary SQLite result codes that mean "the bytes on disk are not a sound database of ours".
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26

# Migration n takes a database at user_version n to n + 1; 0 is an empty file. STRICT tables make SQLite itself
# refuse a value of the wrong type, a second line of defence behind the decoder.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        """CREATE TABLE mud_entry (
            url TEXT PRIMARY KEY,
            body BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            signature BLOB,
            signer TEXT,
            etag TEXT,
            last_modified TEXT,
            cache_validity_h INTEGER NOT NULL,
            fetched_at REAL NOT NULL,
            validated_at REAL NOT NULL,
            expires_at REAL NOT NULL
        ) STRICT""",
        "CREATE INDEX mud_entry_by_validated ON mud_entry (validated_at)",
        "CREATE INDEX mud_entry_by_expiry ON mud_entry (expires_at)",
        """CREATE TABLE fetch_failure (
            url TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            first_failure_at REAL NOT NULL,
            last_failure_at REAL NOT NULL,
            last_reason TEXT NOT NULL,
            next_attempt_at REAL NOT NULL
        ) STRICT""",
        "CREATE INDEX fetch_failure_by_last ON fetch_failure (last_failure_at)",
        f"PRAGMA application_id = {APPLICATION_ID}",
    ),
    # Entries that stopped satisfying the signature policy in force (unsigned under "required", a signature that
    # no longer verifies) are set aside here, not served: evidence for the operator of what was on disk.
    1: (
        """CREATE TABLE set_aside (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            body BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            signature BLOB,
            signer TEXT,
            reason TEXT NOT NULL,
            set_aside_at REAL NOT NULL
        ) STRICT""",
    ),
}


class CacheError(ReasonError):
    """The cache cannot give a trustworthy answer; ``reason`` is one of CACHE_REASONS."""


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def as_cache_error(exc: sqlite3.Error, path: Path) -> CacheError:
    """Corruption and "not a database" are ``corrupt-database``; anything else (locked, read-only, disk full,
    I/O error) is ``unavailable``: the file may be sound, so it must never be moved aside for it."""
    reason = "corrupt-database" if _is_corruption(exc) else "unavailable"
    return CacheError(reason, f"{path}: {type(exc).__name__}: {exc}")


transaction = write_transaction  # the cache's writers use it under this name


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the checked, migrated cache file at ``path`` (creating it if needed: directories 0700,
    file 0600), or the matching CacheError. The connection is in autocommit mode: writers use
    :func:`transaction`. It may be used from any thread; the caller serialises access."""
    return open_versioned(
        path, what="cache", schema_version=SCHEMA_VERSION, application_id=APPLICATION_ID, migrations=_MIGRATIONS,
        full_check=False, error=CacheError, classify=lambda exc: as_cache_error(exc, path),
    )  # fmt: skip


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_aside(path: Path) -> Path:
    """Rename a corrupt database (and its -wal/-shm, which must not be replayed into a new file) to the first
    free ``<path>.corrupt-<n>``. link+unlink never overwrites earlier evidence, even if two processes race."""
    n = 1
    while True:
        target = path.with_name(f"{path.name}.corrupt-{n}")
        try:
            os.link(path, target)
            break
        except FileExistsError:
            n += 1
    os.unlink(path)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    _fsync_dir(path.parent)
    return target
