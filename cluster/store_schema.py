"""The store's schema, in versions: the embedded SQLite and PostgreSQL each have the same
steps in their own dialect. A store is brought to the newest version when a relay opens
it, in one transaction under a lock (SQLite's write lock; a PostgreSQL advisory lock), so
relays that start together apply each step once; a store at a newer version than this
relay knows is refused (`SchemaTooNew`), before anything is read or written.

Version 1 is the message log (records, stream heads, keys of trimmed records); version 2
adds the member store (members, invite uses) and the groups' fencing epochs; version 3
the revocation of invite codes.
"""

from __future__ import annotations

import sqlite3
import time

from chatrelay.errors import ChatRelayError, Reason

SQLITE = (
    """
    CREATE TABLE IF NOT EXISTS records (
        stream TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, key BLOB, data BLOB NOT NULL,
        PRIMARY KEY (stream, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (stream, key) WHERE key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS heads (
        stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, trimmed_through INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS trimmed_keys (
        stream TEXT NOT NULL, key BLOB NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (stream, key)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS trimmed_keys_ts ON trimmed_keys (ts)
    """,
    """
    CREATE TABLE fences (owner TEXT PRIMARY KEY, epoch INTEGER NOT NULL);
    CREATE TABLE members (
        grp TEXT NOT NULL, key BLOB NOT NULL, status TEXT NOT NULL, name TEXT NOT NULL,
        request_id BLOB NOT NULL, joined_ms INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (grp, key)
    ) WITHOUT ROWID;
    CREATE INDEX members_name ON members (grp, name);
    CREATE INDEX members_request ON members (grp, request_id);
    CREATE INDEX members_waiting ON members (grp, status, joined_ms);
    CREATE TABLE invite_uses (grp TEXT NOT NULL, key BLOB NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (grp, key))
        WITHOUT ROWID
    """,
    """
    ALTER TABLE invite_uses ADD COLUMN revoked_ms INTEGER NOT NULL DEFAULT 0
    """,
)

POSTGRES = (
    """
    CREATE TABLE IF NOT EXISTS records (
        stream text NOT NULL, seq bigint NOT NULL, ts bigint NOT NULL, key bytea, data bytea NOT NULL,
        PRIMARY KEY (stream, seq)
    );
    CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (stream, key) WHERE key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS heads (
        stream text PRIMARY KEY, last_seq bigint NOT NULL, trimmed_through bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS trimmed_keys (
        stream text NOT NULL, key bytea NOT NULL, seq bigint NOT NULL, ts bigint NOT NULL,
        PRIMARY KEY (stream, key)
    );
    CREATE INDEX IF NOT EXISTS trimmed_keys_ts ON trimmed_keys (ts)
    """,
    """
    CREATE TABLE fences (owner text PRIMARY KEY, epoch bigint NOT NULL);
    CREATE TABLE members (
        grp text NOT NULL, key bytea NOT NULL, status text NOT NULL, name text NOT NULL,
        request_id bytea NOT NULL, joined_ms bigint NOT NULL, data bytea NOT NULL,
        PRIMARY KEY (grp, key)
    );
    CREATE INDEX members_name ON members (grp, name);
    CREATE INDEX members_request ON members (grp, request_id);
    CREATE INDEX members_waiting ON members (grp, status, joined_ms);
    CREATE TABLE invite_uses (grp text NOT NULL, key bytea NOT NULL, used bigint NOT NULL, PRIMARY KEY (grp, key))
    """,
    """
    ALTER TABLE invite_uses ADD COLUMN revoked_ms bigint NOT NULL DEFAULT 0
    """,
)
assert len(SQLITE) == len(POSTGRES), "each version in both dialects"
VERSION = len(SQLITE)  # the newest this relay knows
VERSIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_versions (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)"
PG_LOCK = 0x63686174  # the advisory lock held while the schema changes ("chat")


class SchemaTooNew(ChatRelayError):
    def __init__(self, found: int, where: str) -> None:
        super().__init__(Reason.REFUSED, (
            f"the store {where} has schema version {found}, newer than this chatrelay knows ({VERSION}): "
            "upgrade chatrelay on every node before starting it against this store"
        ))
        self.found = found


def _steps(current: int, where: str) -> range:
    if current > VERSION:
        raise SchemaTooNew(current, where)
    return range(current, VERSION)


def migrate_sqlite(conn: sqlite3.Connection, where: str) -> None:
    """Bring an embedded store to VERSION (its write lock held: one process at a time)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(VERSIONS_TABLE)
        [current] = conn.execute("SELECT coalesce(max(version), 0) FROM schema_versions").fetchone()
        for step in _steps(current, where):
            for statement in filter(str.strip, SQLITE[step].split(";")):  # executescript would commit first
                conn.execute(statement)
            conn.execute("INSERT INTO schema_versions VALUES (?, ?)", (step + 1, int(time.time() * 1000)))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            conn.execute("ROLLBACK")
        raise


async def migrate_postgres(conn, schema: str) -> None:
    """Bring one schema of a PostgreSQL store to VERSION, under an advisory lock held to the
    end of the transaction: relays that start together wait for each other."""
    where = f"(PostgreSQL schema {schema})"
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_LOCK)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS \"{schema}\"")
        await conn.execute(f"SET LOCAL search_path TO \"{schema}\"")
        await conn.execute(VERSIONS_TABLE)
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_versions")
        for step in _steps(current, where):
            await conn.execute(POSTGRES[step])
            await conn.execute("INSERT INTO schema_versions VALUES ($1, $2)", step + 1, int(time.time() * 1000))
