"""What the PostgreSQL backends share (the message log, the member store): a schema of
one relay on a server, a pool opened at first use after the schema is brought up to date
(`store_schema.migrate_postgres`), and the fencing check inside a write transaction."""

from __future__ import annotations

import asyncio
import functools
import re

import asyncpg

from chatrelay.actors.calls import StoreUnavailable
from chatrelay.actors.message_log import Fence, Fenced
from chatrelay.cluster.store_schema import migrate_postgres

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
STATEMENT_TIMEOUT_MS = 30_000  # a statement that takes longer is cancelled, its transaction rolled back


# What the server answers while it cannot do a request, none of which wrote anything: the
# connection lost, the server restarting or shutting down, a statement past its timeout,
# the disk full, a transaction rolled back for a conflict.
TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
             asyncpg.InsufficientResourcesError, asyncpg.TransactionRollbackError)


def describe(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.QueryCanceledError):
        return "a statement ran past the store's statement timeout; nothing of the request was written"
    if isinstance(exc, asyncpg.DiskFullError):
        return "the store's disk is full; nothing of the request was written"
    if isinstance(exc, (asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)):
        return "PostgreSQL is restarting or shutting down"
    return f"PostgreSQL: {type(exc).__name__}"


def translated(fn):
    """A backend method whose transient server errors come out as StoreUnavailable
    (which callers answer UNAVAILABLE, with a retry hint), saying what happened."""
    @functools.wraps(fn)
    async def call(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except TRANSIENT as exc:
            raise StoreUnavailable(describe(exc)) from exc
    return call


def check_schema(schema: str) -> str:
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema name must be lower-case letters, digits and _, got {schema!r}")
    return schema


class Pool:
    """Connections to one schema of a PostgreSQL server, opened at first use."""

    def __init__(self, dsn: str, schema: str, size: int = 4, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> None:
        self.dsn, self.schema, self.size = dsn, check_schema(schema), size
        self.statement_timeout_ms = statement_timeout_ms
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self.closed = False

    async def ready(self) -> asyncpg.Pool:
        if self.closed:
            raise RuntimeError("the store is closed")
        async with self._opening:
            if self._pool is None:
                setup = await asyncpg.connect(self.dsn)
                try:
                    await migrate_postgres(setup, self.schema)
                finally:
                    await setup.close()
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.size,
                    server_settings={"search_path": f'"{self.schema}"', "statement_timeout": str(self.statement_timeout_ms)})
        return self._pool

    async def fetch(self, sql: str, *args) -> list:
        return await (await self.ready()).fetch(sql, *args)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._pool is not None:
            await self._pool.close()


async def check_fence(conn, fence: Fence | None) -> None:
    """Inside a write transaction: refuse it if `fence` is not its group's epoch now. The
    row is locked for share until the commit, so a claim waits for this write to finish."""
    if fence is not None:
        current = await conn.fetchval("SELECT epoch FROM fences WHERE owner = $1 FOR SHARE", fence.owner) or 0
        if current != fence.epoch:
            raise Fenced(fence, current)


@translated
async def claim(pool: Pool, owner: str) -> int:
    return await (await pool.ready()).fetchval(
        "INSERT INTO fences (owner, epoch) VALUES ($1, 1) "
        "ON CONFLICT (owner) DO UPDATE SET epoch = fences.epoch + 1 RETURNING epoch", owner)
