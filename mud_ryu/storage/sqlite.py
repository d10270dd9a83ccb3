"""What mud_ryu's SQLite stores (the MUD cache, the trust store, the device and DNS binding stores) share: a private
file opened the same way, WAL mode under concurrent opens, IMMEDIATE write transactions, and opening a versioned,
application-tagged schema with its integrity checked.

Changing the journal mode needs an exclusive lock, and SQLite answers SQLITE_BUSY at once there instead of
waiting through the busy handler, so two processes opening a fresh state file together could make one of them
fail to start (seen in CI, 1 of 8 racing opens). The switch is retried a bounded number of times.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ATTEMPTS = 100
PAUSE_S = 0.01

StoreError = Callable[[str, str], Exception]  # (reason, message) -> the store's own ReasonError


def make_private_dirs(directory: Path) -> None:
    """Create every missing directory on the way to ``directory`` with mode 0700 (``mkdir(parents=True)`` gives
    the intermediate ones the umask default); existing directories are left as the operator set them."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)


def open_private(
    path: Path, prepare: Callable[[sqlite3.Connection], None], error: StoreError
) -> sqlite3.Connection:
    """A connection to the store file at ``path`` after ``prepare`` checked and migrated it (the connection is closed
    if that raises). Created private: missing directories 0700, the file 0600 from its first byte (SQLite gives its
    -wal and -shm files the database file's mode). Autocommit mode (writers use :func:`write_transaction`), usable
    from any thread (the caller serialises access). Failing to create or connect: ``error("unavailable", ...)``."""
    try:
        make_private_dirs(path.parent)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise error("unavailable", f"{path}: {exc}") from exc
    try:
        prepare(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def enable_wal(conn: sqlite3.Connection) -> str:
    """``PRAGMA journal_mode = WAL``, retried while the database is locked; returns the mode SQLite reports."""
    for attempt in range(ATTEMPTS):
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
            time.sleep(PAUSE_S)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; IMMEDIATE takes the write lock up front so a read-check-write cannot be raced by
    another process sharing the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_versioned(
    path: Path,
    *,
    what: str,
    schema_version: int,
    application_id: int,
    migrations: Mapping[int, tuple[str, ...]],
    full_check: bool,
    error: StoreError,
    classify: Callable[[sqlite3.Error], Exception] | None = None,
) -> sqlite3.Connection:
    """The one way a store file is opened: :func:`open_private`, then WAL + ``synchronous=FULL``, an integrity check
    (``integrity_check`` when ``full_check``, else the quicker ``quick_check``), then the schema: refuse a newer
    version or a foreign file (``what`` names the store), run pending ``migrations``. Raises ``error(reason,
    message)`` with ``unavailable``, ``corrupt-database`` or ``schema-too-new``; an SQLite error while preparing
    becomes ``classify(exc)`` (a store that tells corruption from unavailability), else ``error("unavailable")``."""

    def prepare(conn: sqlite3.Connection) -> None:
        try:
            mode = enable_wal(conn)
            if mode.lower() != "wal":
                raise error("unavailable", f"{path}: SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            check = "integrity_check" if full_check else "quick_check"
            problems = [str(r[0]) for r in conn.execute(f"PRAGMA {check}")]
            if problems != ["ok"]:
                raise error("corrupt-database", f"{path}: integrity check: {'; '.join(problems[:5])}")
            # Read the version under the write lock: two processes creating the same new file must not both migrate.
            with write_transaction(conn):
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
                tables = int(conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0])
                if version > schema_version:
                    raise error("schema-too-new", f"{path}: schema version {version}; this code knows {schema_version}")
                if app_id != (application_id if version else 0) or (version == 0 and tables):
                    raise error("corrupt-database", f"{path}: an SQLite database, but not a mud_ryu {what}")
                for step in range(version, schema_version):
                    for statement in migrations[step]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {step + 1}")
        except sqlite3.Error as exc:
            raise (classify(exc) if classify is not None else error("unavailable", f"{path}: {exc}")) from exc

    return open_private(path, prepare, error)
