"""Switching a SQLite database to WAL mode when several connections open it at once.

Changing the journal mode needs an exclusive lock, and SQLite answers SQLITE_BUSY at once there instead of
waiting through the busy handler, so two processes opening a fresh state file together could make one of them
fail to start (seen in CI, 1 of 8 racing opens). The switch is retried a bounded number of times.
"""

from __future__ import annotations

import sqlite3
import time

ATTEMPTS = 100
PAUSE_S = 0.01


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
