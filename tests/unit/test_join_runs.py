"""Joins taken as runs: the joins next to each other in a group's mailbox are checked in
turn as if alone, and the new members' rows written in one transaction (the mailbox's
`batched` items, actors/mailbox.py; actors/joins.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from chatrelay import members
from chatrelay.actors.mailbox import Mailbox
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.records import MemberStatus
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.members import MemberIdentity
from chatrelay.v1 import relay_pb2

from test_group_relay import active_group


def spy_writes(ctx) -> list[list[bytes]]:
    """The member keys of each put_many the store is given (the store itself does them)."""
    writes: list[list[bytes]] = []
    put_many = ctx.members.put_many

    async def counted(group, rows, fence):
        writes.append([key for key, _ in rows])
        return await put_many(group, rows, fence)
    ctx.members.put_many = counted
    return writes


def join_of(relay, name: str, identity: MemberIdentity | None = None):
    identity = identity or MemberIdentity.generate()
    return members.join_request(identity, relay.record.group_id, relay.address,
                                relay.profile.profile.intake_key, name)


@pytest.fixture
def roomy(ctx):
    return dataclasses.replace(ctx, limits=RelayLimits(mailbox_size=1024))


async def test_joins_waiting_together_are_written_in_one_transaction(roomy):
    writes = spy_writes(roomy)
    _, relay = await active_group(roomy)
    joins = [join_of(relay, f"m{i}") for i in range(40)]
    answers = await asyncio.gather(*(relay.join(j) for j in joins))
    assert {a.status for a in answers} == {relay_pb2.JOIN_STATUS_ACCEPTED}
    assert [len(w) for w in writes] == [40]
    stored = await roomy.members.statuses(relay.address)
    assert len(stored) == 40 and set(stored.values()) == {MemberStatus.MEMBER}
    assert relay.member_count() == 40
    await relay.stop()


async def test_the_same_join_twice_in_a_run_is_admitted_once_with_one_answer(roomy):
    writes = spy_writes(roomy)
    _, relay = await active_group(roomy)
    join = join_of(relay, "twice")
    other = join_of(relay, "other")
    first, again, third = await asyncio.gather(relay.join(join), relay.join(join), relay.join(other))
    assert first == again and first.status == relay_pb2.JOIN_STATUS_ACCEPTED
    assert third.status == relay_pb2.JOIN_STATUS_ACCEPTED
    assert [len(w) for w in writes] == [1, 1]  # the first written before the second is checked
    assert len(await roomy.members.statuses(relay.address)) == 2
    await relay.stop()


async def test_a_refused_join_in_a_run_leaves_the_others_admitted(roomy):
    _, relay = await active_group(roomy)
    _, elsewhere = await active_group(roomy, "elsewhere")
    stranger = join_of(elsewhere, "lost")  # signed for another group
    results = await asyncio.gather(relay.join(join_of(relay, "a")), relay.join(stranger),
                                   relay.join(join_of(relay, "b")), return_exceptions=True)
    assert results[0].status == results[2].status == relay_pb2.JOIN_STATUS_ACCEPTED
    assert isinstance(results[1], ChatRelayError)
    assert (results[1].reason, results[1].message) == (Reason.GROUP_MISMATCH, "join request is for another group")
    assert relay.member_count() == 2
    await relay.stop()
    await elsewhere.stop()


async def test_a_failed_write_refuses_the_whole_run_and_admits_nobody(roomy):
    _, relay = await active_group(roomy)
    put_many = roomy.members.put_many
    failing = [True]

    async def flaky(group, rows, fence):
        if failing.pop() if failing else False:
            raise ChatRelayError(Reason.UNAVAILABLE, "store unavailable: disk full")
        return await put_many(group, rows, fence)
    roomy.members.put_many = flaky
    joins = [join_of(relay, f"m{i}") for i in range(5)]
    results = await asyncio.gather(*(relay.join(j) for j in joins), return_exceptions=True)
    assert [(r.reason, r.message) for r in results] == [(Reason.UNAVAILABLE, "store unavailable: disk full")] * 5
    assert relay.member_count() == 0 and await roomy.members.statuses(relay.address) == {}
    again = await asyncio.gather(*(relay.join(j) for j in joins))  # sent again: admitted now
    assert {a.status for a in again} == {relay_pb2.JOIN_STATUS_ACCEPTED}
    assert relay.member_count() == 5
    await relay.stop()


async def test_a_run_is_only_requests_next_to_each_other_and_posts_do_not_split_it():
    seen: list = []

    async def taken(args):
        seen.append(("run", list(args)))
        return [a * 10 for a in args]

    async def call(x):
        seen.append(("call", x))
        return x

    async def append(envelopes):
        seen.append(("posts", list(envelopes)))
        return list(envelopes)

    box = Mailbox("m", 100, append)
    results = await asyncio.gather(
        box.batched(taken, 1), box.posts(["p"]), box.batched(taken, 2), box.call(call, "x"), box.batched(taken, 3),
    )
    assert results == [10, ["p"], 20, "x", 30]
    assert seen == [("run", [1, 2]), ("call", "x"), ("run", [3]), ("posts", ["p"])]


async def test_a_run_answered_with_the_wrong_count_fails_each_request():
    async def short(args):
        return args[:1]

    box = Mailbox("m", 100, None)
    results = await asyncio.gather(box.batched(short, 1), box.batched(short, 2), return_exceptions=True)
    assert [(r.reason, r.message) for r in results] == [
        (Reason.UNAVAILABLE, "relay error: RuntimeError: 1 results for 2 requests")] * 2
