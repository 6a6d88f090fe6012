"""The message log on PostgreSQL, through asyncpg (issue 17): the interface of
`chatrelay.actors.message_log`, for relays whose shards move between machines.

Appends of many streams wait their turn and commit together in one transaction (group
commit, as the embedded log does, through the gateway's `Coalescer`); `append` returns
only after the commit, so an ack sent after it is never lost. Sequence numbers stay
gapless per stream: a stream's head row is locked for the transaction. A `schema` keeps
one relay's tables (or one test's) apart from another's on the same server; its version
is brought up to date at first use (`cluster/store_schema.py`). An append with a `Fence`
is checked against its group's epoch in the same transaction (`cluster/postgres.py`).
"""

from __future__ import annotations

import time

from chatrelay.actors.message_log import Appended, Fence, Fenced, LogRecord
from chatrelay.cluster import postgres
from chatrelay.cluster.coalescer import Coalescer
from chatrelay.cluster.message_log_sqlite import KEEP_TRIMMED_KEYS_MS, MAX_BATCH

class PostgresMessageLog:
    def __init__(self, dsn: str, schema: str = "chatrelay", pool_size: int = 4,
                 statement_timeout_ms: int = postgres.STATEMENT_TIMEOUT_MS) -> None:
        self.pool = postgres.Pool(dsn, schema, pool_size, statement_timeout_ms)
        self.schema = schema
        self._appends = Coalescer(self._commit, batch=MAX_BATCH)
        self.commits = 0  # transactions committed: group commit at work

    def __str__(self) -> str:
        return f"message log in schema {self.schema} of PostgreSQL"

    async def _ready(self):
        return await self.pool.ready()

    # ---- appends: group commit ----------------------------------------------------------

    async def append(
        self, stream: str, records: list[bytes], keys: list[bytes | None] | None = None,
        fence: Fence | None = None,
    ) -> Appended:
        """Durable when it returns. Records with a key already in the stream (or trimmed
        from it within a day) are not appended again; their first seq is returned, marked
        as a duplicate. Refused with `Fenced`, nothing stored, when `fence` is no longer
        its group's epoch."""
        keys = list(keys) if keys is not None else [None] * len(records)
        if len(keys) != len(records):
            raise ValueError("one key (or None) per record")
        if not records:
            return Appended(seqs=(), duplicates=())
        await self._ready()
        return await self._appends("log", (stream, list(records), keys, fence))

    @postgres.translated
    async def _commit(self, lane, items: list) -> list[Appended]:
        async with (await self._ready()).acquire() as conn:
            async with conn.transaction():
                heads: dict[str, int] = {}
                results = []
                for item in items:
                    try:
                        await postgres.check_fence(conn, item[3])
                    except Fenced as exc:  # this one is refused, the others go on
                        results.append(exc)
                        continue
                    results.append(await self._apply(conn, item, heads))
                await conn.executemany(
                    "UPDATE heads SET last_seq = $2 WHERE stream = $1", list(heads.items()))
        self.commits += 1
        return results

    @staticmethod
    async def _apply(conn, item, heads: dict[str, int]) -> Appended:
        stream, records, keys, _ = item
        if stream not in heads:
            await conn.execute("INSERT INTO heads (stream, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING", stream)
            heads[stream] = await conn.fetchval("SELECT last_seq FROM heads WHERE stream = $1 FOR UPDATE", stream)
        wanted = [k for k in keys if k is not None]
        known = dict(await conn.fetch(
            "SELECT key, seq FROM records WHERE stream = $1 AND key = any($2::bytea[]) "
            "UNION SELECT key, seq FROM trimmed_keys WHERE stream = $1 AND key = any($2::bytea[])",
            stream, wanted)) if wanted else {}
        now = int(time.time() * 1000)
        seqs, dups, rows = [], [], []
        for data, key in zip(records, keys):
            if key is not None and key in known:
                seqs.append(known[key])
                dups.append(True)
                continue
            heads[stream] += 1
            rows.append((stream, heads[stream], now, key, data))
            if key is not None:
                known[key] = heads[stream]  # the same key twice in one append lands once
            seqs.append(heads[stream])
            dups.append(False)
        if rows:
            await conn.executemany("INSERT INTO records (stream, seq, ts, key, data) VALUES ($1, $2, $3, $4, $5)", rows)
        return Appended(seqs=tuple(seqs), duplicates=tuple(dups))

    # ---- reads ------------------------------------------------------------------------

    async def _fetch(self, sql: str, *args) -> list:
        return await self.pool.fetch(sql, *args)

    @postgres.translated
    async def read(self, stream: str, after_seq: int = 0, limit: int = 500) -> list[LogRecord]:
        rows = await self._fetch(
            "SELECT seq, data, ts, key FROM records WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            stream, after_seq, limit)
        return [LogRecord(r["seq"], bytes(r["data"]), r["ts"], r["key"]) for r in rows]

    @postgres.translated
    async def read_before(self, stream: str, before_seq: int = 0, limit: int = 100) -> list[LogRecord]:
        """The `limit` records just before `before_seq` (0: the newest), oldest first."""
        bound = before_seq if before_seq > 0 else 2**62
        rows = await self._fetch(
            "SELECT seq, data, ts, key FROM records WHERE stream = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            stream, bound, limit)
        return [LogRecord(r["seq"], bytes(r["data"]), r["ts"], r["key"]) for r in reversed(rows)]

    @postgres.translated
    async def find(self, stream: str, keys: list[bytes]) -> dict[bytes, int]:
        if not keys:
            return {}
        rows = await self._fetch(
            "SELECT key, seq FROM records WHERE stream = $1 AND key = any($2::bytea[]) "
            "UNION SELECT key, seq FROM trimmed_keys WHERE stream = $1 AND key = any($2::bytea[])",
            stream, list(keys))
        return {bytes(r["key"]): r["seq"] for r in rows}

    @postgres.translated
    async def last_seq(self, stream: str) -> int:
        rows = await self._fetch("SELECT last_seq FROM heads WHERE stream = $1", stream)
        return rows[0]["last_seq"] if rows else 0

    @postgres.translated
    async def usage(self, stream: str, after_seq: int = 0) -> tuple[int, int]:
        [row] = await self._fetch(
            "SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS size FROM records WHERE stream = $1 AND seq > $2",
            stream, after_seq)
        return row["n"], row["size"]

    @postgres.translated
    async def trim(self, stream: str, through_seq: int) -> int:
        """Drop records up to `through_seq`; sequence numbers are never reused, and the
        keys of the dropped records are kept for a day (a record sent again is known)."""
        async with (await self._ready()).acquire() as conn:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO trimmed_keys (stream, key, seq, ts) SELECT stream, key, seq, ts FROM records "
                    "WHERE stream = $1 AND seq <= $2 AND key IS NOT NULL ON CONFLICT DO NOTHING", stream, through_seq)
                await conn.execute("DELETE FROM trimmed_keys WHERE ts < $1",
                                   int(time.time() * 1000) - KEEP_TRIMMED_KEYS_MS)
                deleted = await conn.execute("DELETE FROM records WHERE stream = $1 AND seq <= $2", stream, through_seq)
                await conn.execute(
                    "UPDATE heads SET trimmed_through = greatest(trimmed_through, $2) WHERE stream = $1",
                    stream, through_seq)
        return int(deleted.split()[-1])  # "DELETE n"

    @postgres.translated
    async def erase(self, stream: str, keys: list[bytes]) -> int:
        """Drop the records with these keys (a deleted post); their keys are kept as a
        trimmed record's are, so the same record sent again is known."""
        if not keys:
            return 0
        async with (await self._ready()).acquire() as conn:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO trimmed_keys (stream, key, seq, ts) SELECT stream, key, seq, ts FROM records "
                    "WHERE stream = $1 AND key = ANY($2::bytea[]) ON CONFLICT DO NOTHING", stream, keys)
                deleted = await conn.execute(
                    "DELETE FROM records WHERE stream = $1 AND key = ANY($2::bytea[])", stream, keys)
        return int(deleted.split()[-1])

    async def claim(self, owner: str) -> int:
        return await postgres.claim(self.pool, owner)

    async def close(self) -> None:
        self._appends.close()
        await self.pool.close()
