"""GroupRelay as a plain class (no Ray): mailbox bounds, isolation between groups and
serial order inside one, on the embedded registry and log in a temporary folder."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import group, members
from chatrelay.actors import records
from chatrelay.actors.group_relay import GroupRelay, RelayContext
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.records import GroupRecord, GroupState
from chatrelay.cluster.message_log_sqlite import SqliteMessageLog
from chatrelay.cluster.registry_sqlite import SqliteRegistry
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import relay_pb2


@pytest.fixture
async def ctx(tmp_path):
    registry = SqliteRegistry(tmp_path / "registry.db")
    log = SqliteMessageLog(tmp_path / "messages.db")
    yield RelayContext(identity=SigningKey.generate(), registry=registry, log=log, limits=RelayLimits(mailbox_size=4))
    await log.close()
    await registry.close()


async def active_group(ctx, name="g"):
    secrets, signed = group.create_group(GroupKind.CHANNEL, name)
    address = f"addr-{name}"
    record = GroupRecord(
        group_id=secrets.group_id, address=address, state=GroupState.ACTIVE,
        registration_key=bytes(32), profile=env.encode(signed),
    )
    await ctx.registry.put(records.group_key(secrets.group_id), record.dumps())
    entry = await ctx.registry.get(records.group_key(secrets.group_id))
    relay = GroupRelay(ctx, record, entry.mod_revision)
    await relay.start()
    return secrets, relay


async def test_a_full_mailbox_refuses_only_its_own_group(ctx):
    secrets, busy = await active_group(ctx, "busy")
    other_secrets, quiet = await active_group(ctx, "quiet")
    gate = asyncio.Event()

    async def blocked():
        await gate.wait()

    # The worker takes the first item and waits on the gate; four more fill the mailbox.
    first = asyncio.create_task(busy.call(blocked))
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(busy.call(blocked)) for _ in range(4)]
    await asyncio.sleep(0.05)
    with pytest.raises(ChatRelayError) as info:
        await busy.post(members.sign_post(secrets.owner_key, secrets.group_id, b"one more"))
    assert (info.value.reason, info.value.message) == (Reason.BUSY, "this group's mailbox is full; retry in a moment")
    ack = await asyncio.wait_for(
        quiet.post(members.sign_post(other_secrets.owner_key, other_secrets.group_id, b"unaffected")), 10
    )
    assert ack.seq == 1
    gate.set()
    await asyncio.gather(first, *queued)
    await busy.stop()
    await quiet.stop()


async def test_posts_in_one_group_get_gapless_sequence_in_order(ctx):
    secrets, relay = await active_group(dataclasses.replace(ctx, limits=RelayLimits(mailbox_size=1024)))
    posts = [members.sign_post(secrets.owner_key, secrets.group_id, f"p{i}".encode()) for i in range(50)]
    acks = await asyncio.gather(*(relay.post(p) for p in posts))
    assert sorted(a.seq for a in acks) == list(range(1, 51))
    again = await relay.post(posts[7])  # the same post again: the same place, not a new one
    assert again.seq == acks[7].seq
    deliveries = await relay.read(0)
    assert [d.seq for d in deliveries] == list(range(1, 51))
    assert {members.message_id(d.post) for d in deliveries} == {a.message_id for a in acks}
    await relay.stop()


async def test_read_waits_for_the_next_post(ctx):
    secrets, relay = await active_group(ctx)
    waiter = asyncio.create_task(relay.read(0, wait_s=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await relay.post(members.sign_post(secrets.owner_key, secrets.group_id, b"wake"))
    [delivery] = await asyncio.wait_for(waiter, 5)
    assert delivery.seq == 1
    assert await relay.read(1, wait_s=0.05) == []
    await relay.stop()


class Unreachable:
    """A registry whose writes fail, as etcd's do while it is down, until `back`."""

    def __init__(self, registry) -> None:
        self.registry = registry
        self.down = True

    async def put(self, key, value, lease=0):
        if self.down:
            raise ChatRelayError(Reason.UNAVAILABLE, "the relay's registry is unavailable (ConnectionFailedError); retry")
        return await self.registry.put(key, value, lease)

    def __getattr__(self, name):
        return getattr(self.registry, name)


async def test_a_held_join_stays_held_while_the_registry_is_unreachable(ctx):
    from chatrelay.members import MemberIdentity

    secrets, signed = group.create_group(GroupKind.GROUP, "early")
    record = GroupRecord(
        group_id=secrets.group_id, address="addr-early", state=GroupState.PENDING,
        registration_key=bytes(32), profile=env.encode(signed),
    )
    await ctx.registry.put(records.group_key(secrets.group_id), record.dumps())
    registry = Unreachable(ctx.registry)
    relay = GroupRelay(dataclasses.replace(ctx, registry=registry), record, 1)
    await relay.start()
    intake = group.verify_profile(signed).profile.intake_key
    join = members.join_request(MemberIdentity.generate(), secrets.group_id, relay.address, intake, "early")
    assert (await relay.join(join)).status == relay_pb2.JOIN_STATUS_HELD
    relay.record = dataclasses.replace(record, state=GroupState.ACTIVE)  # as an activation does

    with pytest.raises(ChatRelayError) as info:
        await relay._drain_held()
    assert info.value.reason is Reason.UNAVAILABLE
    assert relay.held_refused == []  # not decided, so not refused
    assert await ctx.registry.get(records.held_cursor_key(relay.address)) is None

    registry.down = False
    assert await relay._drain_held() == 1
    assert relay.held_refused == []
    assert len(await ctx.registry.get_prefix(records.member_prefix(relay.address))) == 1
    await relay.stop()
