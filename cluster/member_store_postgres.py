"""The member store on PostgreSQL (the interface is `chatrelay.actors.member_store`), in
the schema of the relay's message log: each write a transaction of its own, its group's
fence checked inside it (`cluster/postgres.py`)."""

from __future__ import annotations

from chatrelay.actors.member_store import FIND_LIMIT, InviteUse
from chatrelay.actors.message_log import Fence
from chatrelay.actors.records import MemberRecord, MemberStatus
from chatrelay.cluster import postgres


class PostgresMemberStore:
    def __init__(self, dsn: str, schema: str = "chatrelay", pool_size: int = 2) -> None:
        self.pool = postgres.Pool(dsn, schema, pool_size)
        self.schema = schema

    def __str__(self) -> str:
        return f"member store in schema {self.schema} of PostgreSQL"

    @postgres.translated
    async def _write(self, fence: Fence, sql: str, *args):
        async with (await self.pool.ready()).acquire() as conn:
            async with conn.transaction():
                await postgres.check_fence(conn, fence)
                return await conn.fetchval(sql, *args)

    @postgres.translated
    async def statuses(self, group: str) -> dict[bytes, MemberStatus]:
        rows = await self.pool.fetch("SELECT key, status FROM members WHERE grp = $1", group)
        return {bytes(r["key"]): MemberStatus(r["status"]) for r in rows}

    @postgres.translated
    async def get(self, group: str, key: bytes) -> MemberRecord | None:
        rows = await self.pool.fetch("SELECT data FROM members WHERE grp = $1 AND key = $2", group, key)
        return MemberRecord.loads(bytes(rows[0]["data"])) if rows else None

    @postgres.translated
    async def find(self, group: str, *, name: str | None = None, request_id: bytes | None = None,
                   status: MemberStatus | None = None, limit: int = FIND_LIMIT) -> list[tuple[bytes, MemberRecord]]:
        where, args = ["grp = $1"], [group]
        for column, value in (("name", name), ("request_id", request_id), ("status", status)):
            if value is not None:
                args.append(str(value) if column == "status" else value)
                where.append(f"{column} = ${len(args)}")
        args.append(min(limit, FIND_LIMIT))
        rows = await self.pool.fetch(
            f"SELECT key, data FROM members WHERE {' AND '.join(where)} ORDER BY joined_ms, key LIMIT ${len(args)}",
            *args)
        return [(bytes(r["key"]), MemberRecord.loads(bytes(r["data"]))) for r in rows]

    async def put(self, group: str, key: bytes, record: MemberRecord, fence: Fence) -> None:
        await self.put_many(group, [(key, record)], fence)

    @postgres.translated
    async def put_many(self, group: str, rows: list[tuple[bytes, MemberRecord]], fence: Fence) -> None:
        values = [(group, key, str(r.status), r.display_name, r.request_id, r.joined_ms, r.dumps()) for key, r in rows]
        async with (await self.pool.ready()).acquire() as conn:
            async with conn.transaction():
                await postgres.check_fence(conn, fence)
                await conn.executemany(
                    "INSERT INTO members (grp, key, status, name, request_id, joined_ms, data) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (grp, key) DO UPDATE SET status = excluded.status, "
                    "name = excluded.name, request_id = excluded.request_id, joined_ms = excluded.joined_ms, "
                    "data = excluded.data", values)

    async def delete(self, group: str, key: bytes, fence: Fence) -> bool:
        deleted = await self._write(fence, "DELETE FROM members WHERE grp = $1 AND key = $2 RETURNING 1", group, key)
        return deleted is not None

    async def use_invite(self, group: str, invite: bytes, uses: int, fence: Fence) -> bool:
        if uses < 1:
            return False
        counted = await self._write(
            fence,
            "INSERT INTO invite_uses AS u (grp, key, used) VALUES ($1, $2, 1) "
            "ON CONFLICT (grp, key) DO UPDATE SET used = u.used + 1 WHERE u.used < $3 AND u.revoked_ms = 0 "
            "RETURNING used",
            group, invite, uses)
        return counted is not None and counted <= uses

    async def revoke_invite(self, group: str, invite: bytes, at_ms: int, fence: Fence) -> None:
        await self._write(
            fence,
            "INSERT INTO invite_uses AS u (grp, key, used, revoked_ms) VALUES ($1, $2, 0, $3) "
            "ON CONFLICT (grp, key) DO UPDATE SET revoked_ms = excluded.revoked_ms WHERE u.revoked_ms = 0",
            group, invite, at_ms)

    @postgres.translated
    async def invite_uses(self, group: str, key: bytes | None = None, limit: int = FIND_LIMIT) -> list[InviteUse]:
        rows = await self.pool.fetch(
            "SELECT key, used, revoked_ms FROM invite_uses WHERE grp = $1 AND ($2::bytea IS NULL OR key = $2) "
            "ORDER BY used DESC, key LIMIT $3", group, key, limit)
        return [InviteUse(bytes(r["key"]), r["used"], r["revoked_ms"]) for r in rows]

    async def close(self) -> None:
        await self.pool.close()
