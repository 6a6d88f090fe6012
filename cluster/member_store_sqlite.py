"""The member store in the embedded SQLite file of the message log (the interface is
`chatrelay.actors.member_store`): one connection on a thread of its own; each write a
transaction of its own, its group's fence checked inside it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib
import sqlite3

from chatrelay.actors.member_store import FIND_LIMIT, InviteUse
from chatrelay.actors.message_log import Fence
from chatrelay.actors.records import MemberRecord, MemberStatus
from chatrelay.cluster.message_log_sqlite import check_fence, schema
from chatrelay.cluster.sqlite_files import open_shared, transaction


class SqliteMemberStore:
    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="member-store")
        self._conn: sqlite3.Connection = self._thread.submit(open_shared, self.path, schema(self.path)).result()
        self._closed = False

    def __str__(self) -> str:
        return f"member store at {self.path}"

    async def _run(self, fn, *args):
        if self._closed:
            raise RuntimeError("member store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _query(self, sql: str, args: tuple) -> list[tuple]:
        return await self._run(lambda: self._conn.execute(sql, args).fetchall())

    async def _write(self, fence: Fence, fn):
        """fn(conn) in a transaction of its own, if `fence` is still its group's epoch."""
        def run():
            with transaction(self._conn) as conn:
                check_fence(conn, fence)
                return fn(conn)
        return await self._run(run)

    async def statuses(self, group: str) -> dict[bytes, MemberStatus]:
        rows = await self._query("SELECT key, status FROM members WHERE grp=?", (group,))
        return {bytes(key): MemberStatus(status) for key, status in rows}

    async def get(self, group: str, key: bytes) -> MemberRecord | None:
        rows = await self._query("SELECT data FROM members WHERE grp=? AND key=?", (group, key))
        return MemberRecord.loads(rows[0][0]) if rows else None

    async def find(self, group: str, *, name: str | None = None, request_id: bytes | None = None,
                   status: MemberStatus | None = None, limit: int = FIND_LIMIT) -> list[tuple[bytes, MemberRecord]]:
        where, args = ["grp=?"], [group]
        for column, value in (("name", name), ("request_id", request_id), ("status", status)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(str(value) if column == "status" else value)
        rows = await self._query(
            f"SELECT key, data FROM members WHERE {' AND '.join(where)} ORDER BY joined_ms, key LIMIT ?",
            (*args, min(limit, FIND_LIMIT)))
        return [(bytes(key), MemberRecord.loads(data)) for key, data in rows]

    async def put(self, group: str, key: bytes, record: MemberRecord, fence: Fence) -> None:
        await self.put_many(group, [(key, record)], fence)

    async def put_many(self, group: str, rows: list[tuple[bytes, MemberRecord]], fence: Fence) -> None:
        values = [(group, key, str(r.status), r.display_name, r.request_id, r.joined_ms, r.dumps()) for key, r in rows]
        await self._write(fence, lambda conn: conn.executemany(
            "INSERT OR REPLACE INTO members (grp, key, status, name, request_id, joined_ms, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", values))

    async def delete(self, group: str, key: bytes, fence: Fence) -> bool:
        return await self._write(fence, lambda conn: conn.execute(
            "DELETE FROM members WHERE grp=? AND key=?", (group, key)).rowcount > 0)

    async def use_invite(self, group: str, invite: bytes, uses: int, fence: Fence) -> bool:
        if uses < 1:
            return False
        def count(conn) -> bool:
            row = conn.execute("SELECT used, revoked_ms FROM invite_uses WHERE grp=? AND key=?",
                               (group, invite)).fetchone()
            used, revoked = row if row else (0, 0)
            if used >= uses or revoked:
                return False
            conn.execute("INSERT OR REPLACE INTO invite_uses (grp, key, used, revoked_ms) VALUES (?, ?, ?, 0)",
                         (group, invite, used + 1))
            return True
        return await self._write(fence, count)

    async def revoke_invite(self, group: str, invite: bytes, at_ms: int, fence: Fence) -> None:
        await self._write(fence, lambda conn: conn.execute(
            "INSERT INTO invite_uses (grp, key, used, revoked_ms) VALUES (?, ?, 0, ?) ON CONFLICT (grp, key) "
            "DO UPDATE SET revoked_ms = excluded.revoked_ms WHERE revoked_ms = 0", (group, invite, at_ms)))

    async def invite_uses(self, group: str, key: bytes | None = None, limit: int = FIND_LIMIT) -> list[InviteUse]:
        rows = await self._query("SELECT key, used, revoked_ms FROM invite_uses WHERE grp=? AND (? IS NULL OR key=?) "
                                 "ORDER BY used DESC, key LIMIT ?", (group, key, key, limit))
        return [InviteUse(bytes(key), used, revoked) for key, used, revoked in rows]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._thread, self._conn.close)
        self._thread.shutdown(wait=True)
