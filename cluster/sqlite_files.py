"""Opening the embedded SQLite files, which several processes of one node share.

Switching a new file to WAL and creating its schema can meet another process doing the
same at that moment; SQLite then says "database is locked" without waiting, so opening
retries for a bounded time.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
from typing import Callable

from chatrelay.actors.calls import StoreUnavailable
from chatrelay.retry import Backoff

OPEN_TIMEOUT_S = 30.0
FILE_MODE = 0o600
OPENING = Backoff(first_s=0.01, max_s=0.5, within_s=OPEN_TIMEOUT_S)


def busy(exc: BaseException) -> bool:
    """SQLite's word that another process holds the lock for longer than we waited."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def told(exc: BaseException) -> BaseException:
    """What a caller is told of an embedded store's error inside a write: a full disk, or
    a lock another process held past the wait, as StoreUnavailable saying which (the
    transaction is rolled back: nothing of the request was written); anything else as
    it is."""
    if isinstance(exc, sqlite3.OperationalError):
        if "full" in str(exc):
            return StoreUnavailable("the store's disk is full; nothing of the request was written")
        if busy(exc):
            return StoreUnavailable("the store is locked by another process; nothing of the request was written")
    return exc


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection):
    """A write transaction: committed at the end of the block, else rolled back, a full
    disk or a long-held lock coming out as StoreUnavailable (`told`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            conn.execute("ROLLBACK")
        said = told(exc)
        if said is exc:
            raise
        raise said from exc


def open_shared(path: pathlib.Path, schema: str | Callable[[sqlite3.Connection], None],
                busy_timeout_s: float = OPEN_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to the file at `path`, its schema made: `schema` is a script, or a
    function that brings the file's schema up to date (`store_schema.migrate_sqlite`)."""
    # Made readable by the relay's user only, whatever the umask; SQLite gives its -wal
    # and -shm files the mode of the database file. Only a file that is not there yet is
    # opened here: closing a descriptor of a file lets go of every POSIX lock the process
    # holds on it, those of its SQLite connections too, and without them another
    # process's close deletes the WAL under them (their commits then go to a deleted file).
    if not os.path.exists(path):
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
