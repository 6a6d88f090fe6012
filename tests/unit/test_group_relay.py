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
from chatrelay.actors.group_relay import GroupRelay
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.records import GroupRecord, GroupState
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import relay_pb2


async def active_group(ctx, name="g", kind=GroupKind.CHANNEL):
    secrets, signed = group.create_group(kind, name)
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
    assert len(await ctx.members.statuses(relay.address)) == 1
    await relay.stop()


async def group_with_member(ctx):
    """An active group (not a channel) and one of its members' keys."""
    from chatrelay.actors.records import MemberRecord, MemberStatus

    secrets, relay = await active_group(ctx, "g", GroupKind.GROUP)
    member = SigningKey.generate()
    key = bytes(member.verify_key)
    record = MemberRecord(box_key=bytes(32), display_name="m", status=MemberStatus.MEMBER, joined_ms=1)
    await ctx.members.put(relay.address, key, record, await relay.fence())
    relay.members[key] = MemberStatus.MEMBER
    return secrets, relay, member


async def test_a_post_sent_again_counts_against_no_rate_and_gets_its_seq(ctx):
    relay_ctx = dataclasses.replace(ctx, limits=RelayLimits(mailbox_size=1024, post_limit=3))
    secrets, relay, member = await group_with_member(relay_ctx)
    first = members.sign_post(member, secrets.group_id, b"first")
    acks = [await relay.post(first) for _ in range(10)]  # a replayed post, ten times
    assert {a.seq for a in acks} == {1}
    assert [(await relay.post(members.sign_post(member, secrets.group_id, b"p%d" % i))).seq for i in range(2)] == [2, 3]
    with pytest.raises(ChatRelayError) as caught:
        await relay.post(members.sign_post(member, secrets.group_id, b"one too many"))
    assert caught.value.reason is Reason.RATE_LIMITED
    assert caught.value.message.startswith("at most 3 posts per 60 s; retry in ")
    assert (await relay.post(first)).seq == 1  # and one it holds is still answered
    await relay.stop()


async def test_a_new_post_signed_outside_the_freshness_window_is_stale(ctx):
    import time

    secrets, relay = await active_group(ctx)
    now_ms = int(time.time() * 1000)
    for client_ts in (now_ms - 301_000, now_ms + 301_000):
        with pytest.raises(ChatRelayError) as caught:
            await relay.post(members.sign_post(secrets.owner_key, secrets.group_id, b"old", client_ts=client_ts))
        assert (caught.value.reason, caught.value.message) == (
            Reason.STALE, "post was signed more than 300 s from now; check the clock")
    held = members.sign_post(secrets.owner_key, secrets.group_id, b"held", client_ts=now_ms - 20_000)
    assert (await relay.post(held)).seq == 1
    relay.ctx = dataclasses.replace(relay.ctx, limits=RelayLimits(freshness_s=10))  # the window is a setting
    late = members.sign_post(secrets.owner_key, secrets.group_id, b"late", client_ts=now_ms - 20_000)
    with pytest.raises(ChatRelayError) as caught:
        await relay.post(late)
    assert caught.value.message == "post was signed more than 10 s from now; check the clock"
    assert (await relay.post(held)).seq == 1  # held already: answered, however old
    await relay.stop()


async def test_members_an_earlier_version_kept_in_the_registry_move_to_the_store(ctx):
    """Before the member store, each member was a registry key: a relay upgraded in place
    moves them to the store when it loads the group, and keeps no such key."""
    from chatrelay.actors.records import MemberRecord, MemberStatus

    secrets, signed = group.create_group(GroupKind.GROUP, "upgraded")
    record = GroupRecord(group_id=secrets.group_id, address="addr-upgraded", state=GroupState.ACTIVE,
                         registration_key=bytes(32), profile=env.encode(signed))
    await ctx.registry.put(records.group_key(secrets.group_id), record.dumps())
    kept = {bytes([i]) * 32: MemberRecord(box_key=bytes(32), display_name=f"m{i}", status=status, joined_ms=i)
            for i, status in enumerate([MemberStatus.MEMBER, MemberStatus.MEMBER, MemberStatus.PENDING])}
    for key, member in kept.items():
        await ctx.registry.put(records.member_key(record.address, key), member.dumps())
    relay = GroupRelay(ctx, record, 1)
    await relay.start()
    assert relay.members == {key: member.status for key, member in kept.items()}
    assert await ctx.members.statuses(record.address) == relay.members
    assert await ctx.members.get(record.address, bytes([2]) * 32) == kept[bytes([2]) * 32]
    assert await ctx.registry.get_prefix(records.member_prefix(record.address)) == []
    await relay.stop()


async def test_invite_uses_an_earlier_version_counted_in_the_registry_still_count(ctx):
    from chatrelay import invites, links
    from chatrelay.members import MemberIdentity

    secrets, relay = await active_group(ctx, "invites", GroupKind.GROUP)
    intake = relay.profile.profile.intake_key
    link = links.group_link(secrets, env.decode(relay.record.profile), ["relay.example:7223"]).link
    code = invites.make_invite(secrets, link, uses=2)
    await ctx.registry.put(records.invite_key(relay.address, code.invite_key), b"1")  # one use, counted there

    def join_with_invite(name):
        member = MemberIdentity.generate()
        proof = invites.prove(code, member.public.sign_key)
        return members.join_request(member, secrets.group_id, relay.address, intake, name, invite=proof)
    assert (await relay.join(join_with_invite("second"))).status == relay_pb2.JOIN_STATUS_ACCEPTED
    with pytest.raises(ChatRelayError) as caught:
        await relay.join(join_with_invite("third"))
    assert (caught.value.reason, caught.value.message) == (Reason.BAD_INVITE, "this invite has been used up")
    await relay.stop()


async def test_a_first_write_after_a_move_checks_the_members_the_store_holds(ctx):
    """A load that has not written yet may hold an old view of the members (another shard
    served the group meanwhile): its first write claims the group and reads them again
    before it checks anything, so a member admitted there posts here."""
    from chatrelay.members import MemberIdentity

    secrets, here = await active_group(ctx, "moved", GroupKind.GROUP)
    entry = await ctx.registry.get(records.group_key(secrets.group_id))
    there = GroupRelay(ctx, here.record, entry.mod_revision)  # the shard that served it meanwhile
    await there.start()
    member = MemberIdentity.generate()
    intake = here.profile.profile.intake_key
    join = members.join_request(member, secrets.group_id, here.address, intake, "Ann")
    assert (await there.join(join)).status == relay_pb2.JOIN_STATUS_ACCEPTED
    assert not here.is_member(member.public.sign_key)  # what it loaded
    ack = await here.post(members.sign_post(member.signing_key, secrets.group_id, b"hello"))
    assert ack.seq == 1 and here.is_member(member.public.sign_key)
    await there.stop()
    await here.stop()


async def test_a_takedown_holds_joins_and_its_notice_is_written_once_whatever_fails(ctx):
    """Joins held while the group was pending wait while it is taken down, and are
    admitted at the restore. The owners' notice goes first: a takedown whose record
    could not be saved, asked again, finds its notice and writes no second one."""
    from chatrelay.members import MemberIdentity

    secrets, signed = group.create_group(GroupKind.GROUP, "held")
    record = GroupRecord(group_id=secrets.group_id, address="addr-held", state=GroupState.PENDING,
                         registration_key=bytes(32), profile=env.encode(signed))
    await ctx.registry.put(records.group_key(secrets.group_id), record.dumps())
    entry = await ctx.registry.get(records.group_key(secrets.group_id))
    relay = GroupRelay(ctx, record, entry.mod_revision)
    await relay.start()
    intake = group.verify_profile(signed).profile.intake_key
    join = members.join_request(MemberIdentity.generate(), secrets.group_id, relay.address, intake, "early")
    assert (await relay.join(join)).status == relay_pb2.JOIN_STATUS_HELD

    from chatrelay.actors.calls import StoreUnavailable
    from chatrelay.actors.registry import TxnResult

    real_append, real_transaction = ctx.log.append, ctx.registry.transaction

    async def store_down_once(*args, **kwargs):
        ctx.log.append = real_append
        raise StoreUnavailable("PostgreSQL is restarting or shutting down")

    async def record_changed_once(*args, **kwargs):
        ctx.registry.transaction = real_transaction
        return TxnResult(succeeded=False, gets=(), revision=0)
    ctx.log.append = store_down_once  # the notice cannot be written: nothing is taken down
    with pytest.raises(ChatRelayError) as caught:
        await relay.take_down("for a test")
    assert caught.value.reason is Reason.UNAVAILABLE and relay.record.taken_down == ""
    ctx.registry.transaction = record_changed_once  # the notice is written, the record is not
    with pytest.raises(ChatRelayError) as caught:
        await relay.take_down("for a test")
    assert caught.value.reason is Reason.BUSY and relay.record.taken_down == ""
    assert await relay.take_down("for a test") == "for a test"
    notices = [e.notice for e in await relay.service_log(0) if e.HasField("notice")]
    assert [(n.kind, n.text) for n in notices] == [("taken_down", "for a test")]

    relay.record = dataclasses.replace(relay.record, state=GroupState.ACTIVE)  # as an activation does
    assert await relay._drain_held() == 0 and relay.members == {}  # held while taken down
    assert await relay.take_down(None) == ""
    await relay.mailbox.wait_idle()  # the restore schedules the held joins
    assert len(relay.members) == 1
    await relay.stop()
