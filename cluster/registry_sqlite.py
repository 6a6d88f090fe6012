"""Embedded registry on SQLite, for the single-node default.

Follows etcd's model (actors/registry.py) closely enough that one conformance suite
covers both. Several processes of one node (shards, gateway) may open the same file:
writes take SQLite's write lock, lease expiry is enforced by whoever writes or watches,
and watches poll a change table. All SQLite calls run on one worker thread per
instance, never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib
import secrets
import sqlite3
import time
from typing import AsyncIterator

from chatrelay.cluster.sqlite_files import OPEN_TIMEOUT_S, busy, open_shared
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.actors.registry import (
    Compare, Delete, Entry, EventKind, Get, Op, Put, TxnResult, WatchEvent, prefix_end,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL,
    value BLOB NOT NULL, PRIMARY KEY (rev, seq)
);
INSERT OR IGNORE INTO meta VALUES ('revision', 1);
"""
KEEP_EVENTS = 100_000  # change history kept for watchers that fall behind
POLL_SECONDS = 0.05


class SqliteRegistry:
    def __init__(self, path: str | pathlib.Path, busy_timeout_s: float = OPEN_TIMEOUT_S) -> None:
        self.path = pathlib.Path(path)
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another process's lock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="registry")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._pool.submit(self._open).result()

    def __str__(self) -> str:
        return f"embedded registry at {self.path}"

    # ---- plumbing -------------------------------------------------------------------

    def _open(self) -> None:
        self._conn = open_shared(self.path, SCHEMA, self.busy_timeout_s)

    async def _run(self, fn, *args):
        if self._closed:
            raise RuntimeError("registry is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except sqlite3.OperationalError as exc:
            if not busy(exc):
                raise
            # Another process of this node holds the file's lock: callers try again, as
            # while etcd is unreachable.
            raise ChatRelayError(Reason.UNAVAILABLE, "the relay's registry is busy (database is locked); retry") from None

    def _write(self, fn, *args):
        """Run fn(conn, revision) in a write transaction; bumps the revision if fn wrote."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rev = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
            writer = _Writer(conn, rev + 1)
            writer.expire(time.time())
            result = fn(writer, *args)
            if writer.changed:
                conn.execute("UPDATE meta SET value=? WHERE name='revision'", (writer.rev,))
                if writer.rev % 1000 == 0:
                    conn.execute("DELETE FROM events WHERE rev <= ?", (writer.rev - KEEP_EVENTS,))
            conn.execute("COMMIT")
            return result, writer.rev if writer.changed else rev
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ---- Registry -------------------------------------------------------------------

    async def get(self, key: bytes) -> Entry | None:
        def read():
            return _entry(self._conn.execute(
                "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key=?", (key,)
            ).fetchone())
        await self._expire_if_due()
        return await self._run(read)

    async def get_prefix(self, prefix: bytes) -> list[Entry]:
        def read():
            rows = self._conn.execute(
                "SELECT key, value, create_rev, mod_rev, version, lease FROM kv "
                "WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix_end(prefix)),
            ).fetchall()
            return [_entry(r) for r in rows]
        await self._expire_if_due()
        return await self._run(read)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        _, rev = await self._run(self._write, lambda w: w.put(key, value, lease))
        return rev

    async def delete(self, key: bytes) -> bool:
        deleted, _ = await self._run(self._write, lambda w: w.delete(key))
        return deleted

    async def transaction(
        self, compare: list[Compare], success: list[Op], failure: list[Op] | None = None
    ) -> TxnResult:
        def txn(w: _Writer):
            ok = all(c.holds(w.get(c.key)) for c in compare)
            gets = []
            for op in success if ok else (failure or []):
                if isinstance(op, Put):
                    w.put(op.key, op.value, op.lease)
                elif isinstance(op, Delete):
                    w.delete(op.key)
                elif isinstance(op, Get):
                    gets.append(w.get(op.key))
                else:
                    raise TypeError(f"not a registry operation: {op!r}")
            return ok, tuple(gets)

        (ok, gets), rev = await self._run(self._write, txn)
        return TxnResult(succeeded=ok, gets=gets, revision=rev)

    async def lease_grant(self, ttl: int) -> int:
        if ttl < 1:
            raise ValueError("lease ttl must be at least 1 second")
        def grant(w: _Writer):
            # A random id, never the next number: SQLite would give a revoked lease's id
            # again, and its old holder's renewals would then keep the new one alive.
            while True:
                lease = secrets.randbelow(2**63 - 1) + 1
                if w.conn.execute("SELECT 1 FROM leases WHERE id=?", (lease,)).fetchone() is None:
                    break
            w.conn.execute("INSERT INTO leases (id, ttl, expires) VALUES (?, ?, ?)", (lease, ttl, time.time() + ttl))
            return lease
        lease, _ = await self._run(self._write, grant)
        return lease

    async def lease_refresh(self, lease: int) -> None:
        def refresh(w: _Writer):
            cur = w.conn.execute(
                "UPDATE leases SET expires = ? + ttl WHERE id = ?", (time.time(), lease)
            )
            if cur.rowcount == 0:
                raise LookupError(f"lease {lease} not found or expired")
        await self._run(self._write, refresh)

    async def lease_revoke(self, lease: int) -> None:
        await self._run(self._write, lambda w: w.revoke(lease))

    async def watch_prefix(self, prefix: bytes, start_revision: int = 0) -> AsyncIterator[WatchEvent]:
        end = prefix_end(prefix)
        if start_revision:
            after = start_revision - 1
        else:
            after = await self._run(
                lambda: self._conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
            )

        def poll(after):
            return self._conn.execute(
                "SELECT rev, kind, key, value FROM events WHERE rev > ? AND key >= ? AND key < ? "
                "ORDER BY rev, seq LIMIT 1000", (after, prefix, end),
            ).fetchall()

        while not self._closed:
            await self._expire_if_due()
            rows = await self._run(poll, after)
            for rev, kind, key, value in rows:
                after = rev
                yield WatchEvent(kind=EventKind(kind), key=key, value=value, revision=rev)
            if not rows:
                await asyncio.sleep(POLL_SECONDS)

    async def close(self) -> None:
        if self._closed:
            return
        await self._run(self._conn.close)
        self._closed = True
        self._pool.shutdown(wait=True)

    async def _expire_if_due(self) -> None:
        def due():
            return self._conn.execute(
                "SELECT 1 FROM leases WHERE expires < ? LIMIT 1", (time.time(),)
            ).fetchone() is not None
        if await self._run(due):
            await self._run(self._write, lambda w: None)  # _write expires first


class _Writer:
    """Writes of one transaction, all at one revision."""

    def __init__(self, conn: sqlite3.Connection, rev: int) -> None:
        self.conn = conn
        self.rev = rev
        self.changed = False
        self._seq = 0

    def _event(self, kind: EventKind, key: bytes, value: bytes) -> None:
        self.changed = True
        self._seq += 1
        self.conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)", (self.rev, self._seq, kind.value, key, value)
        )

    def get(self, key: bytes) -> Entry | None:
        return _entry(self.conn.execute(
            "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key=?", (key,)
        ).fetchone())

    def put(self, key: bytes, value: bytes, lease: int) -> None:
        if lease and self.conn.execute("SELECT 1 FROM leases WHERE id=?", (lease,)).fetchone() is None:
            raise LookupError(f"lease {lease} not found or expired")
        old = self.get(key)
        if old is None:
            self.conn.execute(
                "INSERT INTO kv VALUES (?, ?, ?, ?, 1, ?)", (key, value, self.rev, self.rev, lease)
            )
        else:
            self.conn.execute(
                "UPDATE kv SET value=?, mod_rev=?, version=version+1, lease=? WHERE key=?",
                (value, self.rev, lease, key),
            )
        self._event(EventKind.PUT, key, value)

    def delete(self, key: bytes) -> bool:
        if self.conn.execute("DELETE FROM kv WHERE key=?", (key,)).rowcount == 0:
            return False
        self._event(EventKind.DELETE, key, b"")
        return True

    def revoke(self, lease: int) -> None:
        for (key,) in self.conn.execute("SELECT key FROM kv WHERE lease=?", (lease,)).fetchall():
            self.delete(key)
        self.conn.execute("DELETE FROM leases WHERE id=?", (lease,))

    def expire(self, now: float) -> None:
        for (lease,) in self.conn.execute("SELECT id FROM leases WHERE expires < ?", (now,)).fetchall():
            self.revoke(lease)


def _entry(row) -> Entry | None:
    if row is None:
        return None
    key, value, create_rev, mod_rev, version, lease = row
    return Entry(bytes(key), bytes(value), create_rev, mod_rev, version, lease)
