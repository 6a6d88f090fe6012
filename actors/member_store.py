"""The member store: every group's members (joined, or waiting for the owners) and the
uses of its invite codes, kept beside the message log, not in the registry, so a channel
of any size costs the registry nothing per member.

`MemberStore` is the interface the relay logic needs; its backends live in `cluster/`
(`SqliteMemberStore`, `PostgresMemberStore`), each in the same database as its message
log, so a write carries the group's `Fence` and is refused like an append (`Fenced`).
A group relay keeps only its members' keys and statuses in memory (`statuses`); the
records (the signed join, the approval) are read when asked for.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from chatrelay.actors.message_log import Fence
from chatrelay.actors.records import MemberRecord, MemberStatus

FIND_LIMIT = 500  # records one `find` returns at most


class InviteUse(NamedTuple):
    key: bytes
    used: int
    revoked_ms: int  # 0: not revoked


@runtime_checkable
class MemberStore(Protocol):
    async def statuses(self, group: str) -> dict[bytes, MemberStatus]:
        """Every member of the group, key -> status: what a group relay holds in memory."""
        ...

    async def get(self, group: str, key: bytes) -> MemberRecord | None: ...

    async def find(self, group: str, *, name: str | None = None, request_id: bytes | None = None,
                   status: MemberStatus | None = None, limit: int = FIND_LIMIT) -> list[tuple[bytes, MemberRecord]]:
        """Members matching every criterion given, oldest join first."""
        ...

    async def put(self, group: str, key: bytes, record: MemberRecord, fence: Fence) -> None:
        """Add or replace one member."""
        ...

    async def put_many(self, group: str, rows: list[tuple[bytes, MemberRecord]], fence: Fence) -> None:
        """Add or replace several members (key, record) in one transaction: all or none."""
        ...

    async def delete(self, group: str, key: bytes, fence: Fence) -> bool:
        """Whether there was such a member."""
        ...

    async def use_invite(self, group: str, invite: bytes, uses: int, fence: Fence) -> bool:
        """Count one use of an invite code that may be used `uses` times: False (nothing
        counted) when it is used up or revoked."""
        ...

    async def revoke_invite(self, group: str, invite: bytes, at_ms: int, fence: Fence) -> None:
        """Refuse every later use of the code (its count kept); revoked again, the first
        time stays."""
        ...

    async def invite_uses(self, group: str, key: bytes | None = None, limit: int = FIND_LIMIT) -> list[InviteUse]:
        """The group's codes used or revoked here (or the one with `key`), most used first."""
        ...

    async def close(self) -> None: ...
