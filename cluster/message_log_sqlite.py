"""The embedded message log (the interface is `chatrelay.actors.message_log`).

`SqliteMessageLog` is the single-machine default: WAL mode, one
writer thread that commits the appends of many streams in one transaction (group
commit), reads on a thread of their own. `append` returns only after the commit, so an
ack sent after it is never lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib
import queue
import sqlite3
import threading
import time

from chatrelay.cluster.coalescer import settle
from chatrelay.actors.message_log import Appended, Fence, Fenced, LogRecord
from chatrelay.cluster.sqlite_files import open_shared, told, transaction
from chatrelay.cluster.store_schema import migrate_sqlite

MAX_BATCH = 512  # appends committed together at most


# The keys of trimmed records are kept this long (milliseconds), so a record sent again
# within it is still known: the longest freshness window a relay may be set to.
KEEP_TRIMMED_KEYS_MS = 86_400_000


class _Append:
    __slots__ = ("stream", "records", "keys", "fence", "future", "loop")

    def __init__(self, stream, records, keys, fence, future, loop):
        self.stream, self.records, self.keys, self.fence = stream, records, keys, fence
        self.future, self.loop = future, loop


def schema(path: pathlib.Path):
    """The store's schema, brought up to date when a connection opens the file."""
    return lambda conn: migrate_sqlite(conn, f"at {path}")


def current_epoch(conn: sqlite3.Connection, owner: str) -> int:
    row = conn.execute("SELECT epoch FROM fences WHERE owner=?", (owner,)).fetchone()
    return row[0] if row else 0


def check_fence(conn: sqlite3.Connection, fence: Fence | None) -> None:
    """Inside a write transaction: refuse it if `fence` is not its group's epoch now."""
    if fence is not None:
        current = current_epoch(conn, fence.owner)
        if current != fence.epoch:
            raise Fenced(fence, current)


class SqliteMessageLog:
    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self._closed = False
        self.commits = 0  # transactions committed by the writer: group commit at work
        ready = threading.Event()
        self._open_error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, args=(ready,), name="message-log-writer", daemon=True)
        self._writer.start()
        if not ready.wait(60) or self._open_error is not None:
            raise RuntimeError(f"cannot open the message log at {self.path}: {self._open_error}")
        self._reads = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="message-log-read")
        self._read_conn: sqlite3.Connection | None = None
        self._reads.submit(self._open_reader).result()

    def __str__(self) -> str:
        return f"message log at {self.path}"

    def _open_reader(self) -> None:
        self._read_conn = open_shared(self.path, schema(self.path))

    # ---- writer -----------------------------------------------------------------------

    def _write_loop(self, ready: threading.Event) -> None:
        try:
            conn = open_shared(self.path, schema(self.path))
        except BaseException as exc:
            self._open_error = exc
            ready.set()
            return
        ready.set()
        while True:
            first = self._pending.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._pending.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Append]) -> None:
        results: list = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            heads: dict[str, int] = {}
            for item in batch:
                try:
                    check_fence(conn, item.fence)
                except Fenced as exc:  # this one is refused, the others go on
                    results.append(exc)
                    continue
                results.append(self._apply(conn, item, heads))
            for stream, last in heads.items():
                conn.execute(
                    "INSERT INTO heads (stream, last_seq) VALUES (?, ?) "
                    "ON CONFLICT(stream) DO UPDATE SET last_seq = excluded.last_seq",
                    (stream, last),
                )
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # the whole batch fails together; nothing was acked
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            results = [told(exc)] * len(batch)
        for item, result in zip(batch, results):
            item.loop.call_soon_threadsafe(settle, item.future, result)

    @staticmethod
    def _apply(conn: sqlite3.Connection, item: _Append, heads: dict[str, int]) -> Appended:
        stream = item.stream
        if stream not in heads:
            row = conn.execute("SELECT last_seq FROM heads WHERE stream=?", (stream,)).fetchone()
            heads[stream] = row[0] if row else 0
        now = int(time.time() * 1000)
        seqs, dups = [], []
        for data, key in zip(item.records, item.keys):
            if key is not None:
                row = conn.execute(
                    "SELECT seq FROM records WHERE stream=? AND key=?", (stream, key)
                ).fetchone() or conn.execute(
                    "SELECT seq FROM trimmed_keys WHERE stream=? AND key=?", (stream, key)
                ).fetchone()
                if row is not None:
                    seqs.append(row[0])
                    dups.append(True)
                    continue
            heads[stream] += 1
            conn.execute(
                "INSERT INTO records (stream, seq, ts, key, data) VALUES (?, ?, ?, ?, ?)",
                (stream, heads[stream], now, key, data),
            )
            seqs.append(heads[stream])
            dups.append(False)
        return Appended(seqs=tuple(seqs), duplicates=tuple(dups))

    # ---- MessageLog -------------------------------------------------------------------

    async def append(
        self, stream: str, records: list[bytes], keys: list[bytes | None] | None = None,
        fence: Fence | None = None,
    ) -> Appended:
        """Durable when it returns. Records with a key already in the stream are not
        appended again; their first seq is returned, marked as a duplicate. Refused with
        `Fenced`, nothing stored, when `fence` is no longer its group's epoch."""
        if self._closed:
            raise RuntimeError("message log is closed")
        keys = list(keys) if keys is not None else [None] * len(records)
        if len(keys) != len(records):
            raise ValueError("one key (or None) per record")
        if not records:
            return Appended(seqs=(), duplicates=())
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.put(_Append(stream, list(records), keys, fence, future, loop))
        return await future

    async def _read(self, sql: str, args: tuple) -> list[tuple]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, lambda: self._read_conn.execute(sql, args).fetchall())

    async def read(self, stream: str, after_seq: int = 0, limit: int = 500) -> list[LogRecord]:
        rows = await self._read(
            "SELECT seq, data, ts, key FROM records WHERE stream=? AND seq>? ORDER BY seq LIMIT ?",
            (stream, after_seq, limit),
        )
        return [LogRecord(seq, bytes(data), ts, key) for seq, data, ts, key in rows]

    async def read_before(self, stream: str, before_seq: int = 0, limit: int = 100) -> list[LogRecord]:
        """The `limit` records just before `before_seq` (0: the newest), oldest first."""
        bound = before_seq if before_seq > 0 else 2**62
        rows = await self._read(
            "SELECT seq, data, ts, key FROM records WHERE stream=? AND seq<? ORDER BY seq DESC LIMIT ?",
            (stream, bound, limit),
        )
        return [LogRecord(seq, bytes(data), ts, key) for seq, data, ts, key in reversed(rows)]

    async def find(self, stream: str, keys: list[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound on parameters, with room
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._read(
                f"SELECT key, seq FROM records WHERE stream=? AND key IN ({marks}) "
                f"UNION SELECT key, seq FROM trimmed_keys WHERE stream=? AND key IN ({marks})",
                (stream, *chunk, stream, *chunk),
            )
            found.update((bytes(key), seq) for key, seq in rows)
        return found

    async def last_seq(self, stream: str) -> int:
        rows = await self._read("SELECT last_seq FROM heads WHERE stream=?", (stream,))
        return rows[0][0] if rows else 0

    async def usage(self, stream: str, after_seq: int = 0) -> tuple[int, int]:
        rows = await self._read(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM records WHERE stream=? AND seq>?",
            (stream, after_seq),
        )
        return rows[0][0], rows[0][1]

    async def trim(self, stream: str, through_seq: int) -> int:
        """Drop records up to `through_seq`; sequence numbers are never reused."""
        def run() -> int:
            conn = self._read_conn
            with transaction(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO trimmed_keys (stream, key, seq, ts) SELECT stream, key, seq, ts "
                    "FROM records WHERE stream=? AND seq<=? AND key IS NOT NULL", (stream, through_seq),
                )
                conn.execute(
                    "DELETE FROM trimmed_keys WHERE ts < ?", (int(time.time() * 1000) - KEEP_TRIMMED_KEYS_MS,)
                )
                count = conn.execute(
                    "DELETE FROM records WHERE stream=? AND seq<=?", (stream, through_seq)
                ).rowcount
                conn.execute(
                    "UPDATE heads SET trimmed_through=MAX(trimmed_through, ?) WHERE stream=?",
                    (through_seq, stream),
                )
            return count
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, run)

    async def erase(self, stream: str, keys: list[bytes]) -> int:
        """Drop the records with these keys (a deleted post); their keys are kept as a
        trimmed record's are, so the same record sent again is known."""
        def run() -> int:
            marks = ",".join("?" * len(keys))
            with transaction(self._read_conn) as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO trimmed_keys (stream, key, seq, ts) SELECT stream, key, seq, ts "
                    f"FROM records WHERE stream=? AND key IN ({marks})", (stream, *keys))
                return conn.execute(f"DELETE FROM records WHERE stream=? AND key IN ({marks})", (stream, *keys)).rowcount
        if not keys:
            return 0
        return await asyncio.get_running_loop().run_in_executor(self._reads, run)

    async def claim(self, owner: str) -> int:
        def run() -> int:
            with transaction(self._read_conn) as conn:
                [epoch] = conn.execute(
                    "INSERT INTO fences (owner, epoch) VALUES (?, 1) "
                    "ON CONFLICT(owner) DO UPDATE SET epoch = epoch + 1 RETURNING epoch", (owner,)).fetchone()
            return epoch
        return await asyncio.get_running_loop().run_in_executor(self._reads, run)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join, 30)
        await asyncio.get_running_loop().run_in_executor(self._reads, self._read_conn.close)
        self._reads.shutdown(wait=True)
