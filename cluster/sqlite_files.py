"""Opening the embedded SQLite files, which several processes of one node share.

Switching a new file to WAL and creating its schema can meet another process doing the
same at that moment; SQLite then says "database is locked" without waiting, so opening
retries for a bounded time.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time

OPEN_TIMEOUT_S = 30.0


def open_shared(path: pathlib.Path, schema: str) -> sqlite3.Connection:
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    delay = 0.01
    while True:
        conn = sqlite3.connect(path, isolation_level=None, timeout=OPEN_TIMEOUT_S, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an ack promises durability
            conn.executescript(schema)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
