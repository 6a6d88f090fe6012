"""MemberStore conformance: the same tests against every backend (the `store` fixture in
conftest.py opens each, with its message log); a new backend passes these before it is
used. Fencing is the message log's claim: a write whose fence is no longer its group's
epoch is refused, and nothing of it stored."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.actors.message_log import Fence, Fenced
from chatrelay.actors.records import MemberRecord, MemberStatus


def member(name: str, status=MemberStatus.MEMBER, joined_ms=1, request_id=b"") -> MemberRecord:
    return MemberRecord(box_key=b"b" * 32, display_name=name, status=status, joined_ms=joined_ms,
                        request_id=request_id, join=b"signed join of " + name.encode())


async def claimed(log, group: str) -> Fence:
    return Fence(group, await log.claim(group))


async def test_members_are_kept_per_group_with_their_status(store):
    log, members = store
    fence = await claimed(log, "g")
    await members.put("g", b"k1", member("Ann"), fence)
    await members.put("g", b"k2", member("Ben", MemberStatus.PENDING), fence)
    await members.put("other", b"k1", member("Zed"), await claimed(log, "other"))
    assert await members.statuses("g") == {b"k1": MemberStatus.MEMBER, b"k2": MemberStatus.PENDING}
    assert await members.get("g", b"k1") == member("Ann")
    assert await members.get("g", b"k3") is None and await members.statuses("none") == {}


async def test_a_put_replaces_and_a_delete_says_whether_there_was_one(store):
    log, members = store
    fence = await claimed(log, "g")
    await members.put("g", b"k", member("Ann", MemberStatus.PENDING), fence)
    approved = member("Ann")
    approved.approval = b"the owner's approval"
    await members.put("g", b"k", approved, fence)
    assert (await members.get("g", b"k")).approval == b"the owner's approval"
    assert await members.delete("g", b"k", fence) is True
    assert await members.delete("g", b"k", fence) is False
    assert await members.statuses("g") == {}


async def test_find_by_name_request_and_status_oldest_first(store):
    log, members = store
    fence = await claimed(log, "g")
    await members.put("g", b"k3", member("Eve", MemberStatus.PENDING, 30, b"r3"), fence)
    await members.put("g", b"k1", member("Eve", MemberStatus.PENDING, 10, b"r1"), fence)
    await members.put("g", b"k2", member("Ann", MemberStatus.MEMBER, 20, b"r2"), fence)
    assert [k for k, _ in await members.find("g", name="Eve")] == [b"k1", b"k3"]
    assert [k for k, _ in await members.find("g", status=MemberStatus.PENDING, limit=1)] == [b"k1"]
    assert [k for k, _ in await members.find("g", request_id=b"r2")] == [b"k2"]
    assert await members.find("g", request_id=b"r2", status=MemberStatus.PENDING) == []
    assert [m.display_name for _, m in await members.find("g")] == ["Eve", "Ann", "Eve"]


async def test_an_invite_is_used_as_often_as_granted_and_no_more(store):
    log, members = store
    fence = await claimed(log, "g")
    assert [await members.use_invite("g", b"inv", 2, fence) for _ in range(3)] == [True, True, False]
    assert await members.use_invite("g", b"once", 1, fence) is True
    assert await members.use_invite("g", b"none", 0, fence) is False
    assert await members.use_invite("other", b"inv", 1, await claimed(log, "other")) is True  # per group


async def test_a_revoked_invite_counts_no_more_uses_and_keeps_its_count(store):
    log, members = store
    fence = await claimed(log, "g")
    assert await members.use_invite("g", b"inv", 5, fence) is True
    await members.revoke_invite("g", b"inv", 1000, fence)
    await members.revoke_invite("g", b"inv", 2000, fence)  # again: the first time stays
    await members.revoke_invite("g", b"unused", 3000, fence)  # never used: revoked all the same
    assert await members.use_invite("g", b"inv", 5, fence) is False
    assert await members.use_invite("g", b"unused", 5, fence) is False
    assert await members.use_invite("g", b"other", 5, fence) is True
    assert await members.invite_uses("g") == [(b"inv", 1, 1000), (b"other", 1, 0), (b"unused", 0, 3000)]
    assert await members.invite_uses("elsewhere") == []
    assert await members.invite_uses("g", b"unused") == [(b"unused", 0, 3000)]
    assert await members.invite_uses("g", b"never") == []
    await claimed(log, "g")  # another shard loads the group: this fence is old
    with pytest.raises(Fenced):
        await members.revoke_invite("g", b"other", 4000, fence)
    assert [u.revoked_ms for u in await members.invite_uses("g")] == [1000, 0, 3000]


async def test_concurrent_uses_of_a_single_use_invite_let_one_through(store):
    log, members = store
    fence = await claimed(log, "g")
    results = await asyncio.gather(*(members.use_invite("g", b"inv", 1, fence) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_a_write_with_an_old_fence_is_refused_and_stores_nothing(store):
    log, members = store
    old = await claimed(log, "g")
    await members.put("g", b"k1", member("Ann"), old)
    new = await claimed(log, "g")  # another shard loads the group
    assert new.epoch == old.epoch + 1
    for write in (members.put("g", b"k2", member("Ben"), old), members.delete("g", b"k1", old),
                  members.use_invite("g", b"inv", 5, old)):
        with pytest.raises(Fenced) as caught:
            await write
        assert (caught.value.fence, caught.value.current) == (old, new.epoch)
    assert await members.statuses("g") == {b"k1": MemberStatus.MEMBER}
    assert await members.use_invite("g", b"inv", 1, new) is True  # the old one counted nothing
    await members.put("g", b"k2", member("Ben"), new)
    assert set(await members.statuses("g")) == {b"k1", b"k2"}


async def test_a_fence_never_claimed_is_refused(store):
    log, members = store
    with pytest.raises(Fenced):
        await members.put("g", b"k", member("Ann"), Fence("g", 1))
    assert await members.statuses("g") == {}
