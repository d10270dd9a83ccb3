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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from mud_ryu.errors import ReasonError
from mud_ryu.fetch_types import Validators
from mud_ryu.refresh import MAX_CACHE_VALIDITY_H, MIN_CACHE_VALIDITY_H, FailureRecord, clamp_validity, expiry
from mud_ryu.signature import Signer

CACHE_REASONS: frozenset[str] = frozenset({"corrupt-entry", "corrupt-database", "schema-too-new", "unavailable"})
SCHEMA_VERSION = 1
APPLICATION_ID = 0x4D554443  # "MUDC": tells our database apart from any other SQLite file at the same path
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BODY_BYTES = 1 << 20  # the fetcher's cap too (THREATS.md R7)
_T = TypeVar("_T")
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
}
_ENTRY_COLUMNS = (
    "url, body, sha256, signature, signer, etag, last_modified, cache_validity_h, fetched_at, validated_at, expires_at"
)
_FAILURE_COLUMNS = "url, failures, first_failure_at, last_failure_at, last_reason, next_attempt_at"


class CacheError(ReasonError):
    """The cache cannot give a trustworthy answer; ``reason`` is one of CACHE_REASONS."""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One verified MUD file as cached. ``fetched_at``: when this content was first obtained and verified;
    ``validated_at``: the last successful fetch or 304; ``expires_at``: when it must be revalidated."""

    url: str
    body: bytes
    sha256: str  # lower-case hex SHA-256 of body
    signature: bytes | None
    signer: Signer | None
    validators: Validators
    cache_validity_h: int
    fetched_at: float
    validated_at: float
    expires_at: float

    def __post_init__(self) -> None:
        # Checked on every construction, which includes every read from disk: an entry that exists is sound.
        if not isinstance(self.url, str) or not self.url:
            raise ValueError("cache entry needs a URL")
        if not isinstance(self.body, bytes) or hashlib.sha256(self.body).hexdigest() != self.sha256:
            raise ValueError("body does not hash to sha256")
        if self.signature is not None and not isinstance(self.signature, bytes):
            raise ValueError("signature must be bytes or None")
        if self.signer is not None and not isinstance(self.signer, Signer):
            raise ValueError("signer must be a Signer or None")
        if not isinstance(self.validators, Validators):
            raise ValueError("validators must be Validators")
        if (
            isinstance(self.cache_validity_h, bool)
            or not isinstance(self.cache_validity_h, int)
            or not MIN_CACHE_VALIDITY_H <= self.cache_validity_h <= MAX_CACHE_VALIDITY_H
        ):
            raise ValueError(f"cache_validity_h out of range: {self.cache_validity_h!r}")
        expiry(self.fetched_at, self.cache_validity_h)  # checks fetched_at is a finite time
        if expiry(self.validated_at, self.cache_validity_h) < self.expires_at or self.expires_at < self.validated_at:
            raise ValueError("expires_at must lie within cache_validity_h after validated_at")

    @classmethod
    def create(
        cls,
        url: str,
        body: bytes,
        signature: bytes | None,
        signer: Signer | None,
        validators: Validators,
        cache_validity_h: int | None,
        now: float,
    ) -> CacheEntry:
        """A freshly fetched and verified file: hash computed, validity clamped to 1..168 h, expiry from now."""
        hours = clamp_validity(cache_validity_h)
        return cls(
            url=url,
            body=body,
            sha256=hashlib.sha256(body).hexdigest(),
            signature=signature,
            signer=signer,
            validators=validators,
            cache_validity_h=hours,
            fetched_at=now,
            validated_at=now,
            expires_at=expiry(now, hours),
        )

    def renewed(self, validators: Validators, now: float) -> CacheEntry:
        """The same content confirmed again at ``now`` (a 304): expiry restarts from now. A 304 may omit the
        validators (RFC 9110 s15.4.5 only says SHOULD), so a missing one keeps the remembered value."""
        merged = Validators(
            etag=validators.etag if validators.etag is not None else self.validators.etag,
            last_modified=validators.last_modified
            if validators.last_modified is not None
            else self.validators.last_modified,
        )
        return replace(self, validators=merged, validated_at=now, expires_at=expiry(now, self.cache_validity_h))


def _signer_json(signer: Signer | None) -> str | None:
    if signer is None:
        return None
    return json.dumps({"ca_key_id": signer.ca_key_id, "subject_chain": list(signer.subject_chain)}, sort_keys=True)


def _signer_from_json(text: object) -> Signer | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("signer column is not text")
    data = json.loads(text)
    if not isinstance(data, dict) or set(data) != {"ca_key_id", "subject_chain"}:
        raise ValueError("signer JSON has the wrong keys")
    key_id, chain = data["ca_key_id"], data["subject_chain"]
    if not isinstance(key_id, str) or not isinstance(chain, list) or not chain:
        raise ValueError("signer JSON has the wrong types")
    if not all(isinstance(s, str) for s in chain):
        raise ValueError("signer subject chain holds a non-string")
    return Signer(ca_key_id=key_id, subject_chain=tuple(chain))


def _optional_text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("text column holds a non-text value")
    return value


def _entry_from_row(row: tuple[Any, ...]) -> CacheEntry:
    url, body, sha, signature, signer, etag, last_modified, hours, fetched, validated, expires = row
    return CacheEntry(
        url=url,
        body=body,
        sha256=sha,
        signature=signature,
        signer=_signer_from_json(signer),
        validators=Validators(etag=_optional_text(etag), last_modified=_optional_text(last_modified)),
        cache_validity_h=hours,
        fetched_at=fetched,
        validated_at=validated,
        expires_at=expires,
    )


def _failure_from_row(row: tuple[Any, ...]) -> FailureRecord:
    url, failures, first, last, reason, next_at = row
    return FailureRecord(url, failures, first, last, reason, next_at)


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _as_cache_error(exc: sqlite3.Error, path: Path) -> CacheError:
    """Corruption and "not a database" are ``corrupt-database``; anything else (locked, read-only, disk full,
    I/O error) is ``unavailable``: the file may be sound, so it must never be moved aside for it."""
    reason = "corrupt-database" if _is_corruption(exc) else "unavailable"
    return CacheError(reason, f"{path}: {type(exc).__name__}: {exc}")


def _make_private_dirs(directory: Path) -> None:
    """Create every missing directory on the way to ``directory`` with mode 0700 (``mkdir(parents=True)`` gives
    the intermediate ones the umask default); existing directories are left as the operator set them."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        try:
            _make_private_dirs(p.parent)
            if not p.exists():
                # Create it ourselves so the mode is 0600 from the first byte; SQLite gives its -wal and -shm
                # files the mode of the database file.
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            conn = sqlite3.connect(p, timeout=10.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError("unavailable", f"{p}: {exc}") from exc
        try:
            _prepare(conn, p)
        except BaseException:
            conn.close()
            raise
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
        _move_aside(p)
        return cls.open(p, max_entries=max_entries, max_body_bytes=max_body_bytes), "corrupt-database"

    @property
    def path(self) -> Path:
        return self._path

    # ---- MUD files -----------------------------------------------------------------------------------------

    def get(self, url: str) -> CacheEntry | None:
        """The cached entry of ``url``, checked; a corrupt row is deleted and ``corrupt-entry`` raised."""
        with self._locked() as conn:
            row = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM mud_entry WHERE url = ?", (url,)).fetchone()
            if row is None:
                return None
            return self._decode_or_drop(conn, "mud_entry", url, _entry_from_row, row)

    def put(self, entry: CacheEntry) -> None:
        """Store ``entry`` (replacing any entry of its URL) and evict the least recently validated entries
        beyond ``max_entries``. When the stored body has the same SHA-256, its ``fetched_at`` is kept: that
        field means when this content was first obtained."""
        if not isinstance(entry, CacheEntry):
            raise TypeError("put() takes a CacheEntry")
        if len(entry.body) > self.max_body_bytes:
            raise ValueError(f"MUD file of {len(entry.body)} bytes exceeds the cache cap of {self.max_body_bytes}")
        values = (
            entry.url,
            entry.body,
            entry.sha256,
            entry.signature,
            _signer_json(entry.signer),
            entry.validators.etag,
            entry.validators.last_modified,
            entry.cache_validity_h,
            entry.fetched_at,
            entry.validated_at,
            entry.expires_at,
        )
        with self._locked() as conn, _transaction(conn):
            conn.execute(
                f"INSERT INTO mud_entry ({_ENTRY_COLUMNS}) VALUES ({', '.join('?' * len(values))}) "
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
            row = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM mud_entry WHERE url = ?", (url,)).fetchone()
            if row is None:
                return None
            renewed = self._decode_or_drop(conn, "mud_entry", url, _entry_from_row, row).renewed(validators, now)
            with _transaction(conn):
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

    def delete(self, url: str) -> bool:
        """Forget the cached file of ``url``; True if there was one."""
        with self._locked() as conn, _transaction(conn):
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
            row = conn.execute(f"SELECT {_FAILURE_COLUMNS} FROM fetch_failure WHERE url = ?", (url,)).fetchone()
            if row is None:
                return None
            return self._decode_or_drop(conn, "fetch_failure", url, _failure_from_row, row)

    def put_failure(self, record: FailureRecord) -> None:
        """Store the failure record of its URL; the oldest records beyond ``max_entries`` are dropped (attackers
        can mint failing URLs; forgetting one only allows an earlier retry)."""
        values = (
            record.url,
            record.failures,
            record.first_failure_at,
            record.last_failure_at,
            record.last_reason,
            record.next_attempt_at,
        )
        with self._locked() as conn, _transaction(conn):
            conn.execute(f"INSERT OR REPLACE INTO fetch_failure ({_FAILURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", values)
            _evict(conn, "fetch_failure", "last_failure_at", record.url, self.max_entries)

    def clear_failure(self, url: str) -> bool:
        """Forget the failure record of ``url`` (after a success); True if there was one."""
        with self._locked() as conn, _transaction(conn):
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
                raise _as_cache_error(exc, self._path) from exc

    def _decode_or_drop(
        self, conn: sqlite3.Connection, table: str, url: str, decode: Callable[[tuple[Any, ...]], _T], row: Any
    ) -> _T:
        try:
            return decode(row)
        except (ValueError, TypeError, RecursionError) as exc:
            # The bad row must never be served again; the evidence is in the raised message and the log.
            with _transaction(conn):
                conn.execute(f"DELETE FROM {table} WHERE url = ?", (url,))
            raise CacheError("corrupt-entry", f"{table} row of {url!r} dropped: {exc}") from exc


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; IMMEDIATE takes the write lock up front so a read-then-write cannot be raced by
    another process sharing the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _evict(conn: sqlite3.Connection, table: str, age_column: str, keep_url: str, limit: int) -> None:
    count = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    if count > limit:
        conn.execute(
            f"DELETE FROM {table} WHERE url IN (SELECT url FROM {table} WHERE url != ? "
            f"ORDER BY {age_column}, url LIMIT ?)",
            (keep_url, count - limit),
        )


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Durability settings, an integrity check and the schema version, or the matching CacheError."""
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise CacheError("unavailable", f"{path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise CacheError("corrupt-database", f"{path}: integrity check: {'; '.join(map(str, problems[:5]))}")
        # Read the version under the write lock: two processes creating the same new file must not both
        # run the migrations.
        with _transaction(conn):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = int(conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise CacheError("schema-too-new", f"{path}: schema version {version}; code knows {SCHEMA_VERSION}")
            if app_id != (APPLICATION_ID if version else 0) or (version == 0 and tables):
                raise CacheError("corrupt-database", f"{path}: an SQLite database, but not a mud_ryu cache")
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
    except sqlite3.Error as exc:
        raise _as_cache_error(exc, path) from exc


def _move_aside(path: Path) -> Path:
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
