"""Opening the embedded SQLite files, which several processes of one node share.

Switching a new file to WAL and creating its schema can meet another process doing the
same at that moment; SQLite then says "database is locked" without waiting, so opening
retries for a bounded time.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from typing import Callable

from chatrelay.retry import Backoff

OPEN_TIMEOUT_S = 30.0
FILE_MODE = 0o600
OPENING = Backoff(first_s=0.01, max_s=0.5, within_s=OPEN_TIMEOUT_S)


def busy(exc: BaseException) -> bool:
    """SQLite's word that another process holds the lock for longer than we waited."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def open_shared(path: pathlib.Path, schema: str | Callable[[sqlite3.Connection], None],
                busy_timeout_s: float = OPEN_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to the file at `path`, its schema made: `schema` is a script, or a
    function that brings the file's schema up to date (`store_schema.migrate_sqlite`)."""
    # Made readable by the relay's user only, whatever the umask; SQLite gives its -wal
    # and -shm files the mode of the database file.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))

    def once() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an ack promises durability
            if callable(schema):
                schema(conn)
            else:
                conn.executescript(schema)
            return conn
        except BaseException:
            conn.close()
            raise
    return OPENING.run_sync(once, busy)
