"""Changes reach members (issue 18): each new profile version the owners sign enters the
group's stream; members check it against the group's root key and apply it (a relay
added is joined and read, a removed one is read no more), and refuse one a relay made."""

from __future__ import annotations

import asyncio
import copy

import pytest
from nacl.signing import SigningKey

from chatrelay import client, group
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.checker import relay_name, shown_members
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2

from hostile import HostileRelay, delivery
from realparts import start_relay


async def until(check, what: str, tries: int = 400) -> None:
    """Bounded: 400 looks, 50 ms apart."""
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never came: {what}")


async def test_a_member_reads_a_relay_added_after_it_joined_and_keeps_reading_when_the_first_stops(
        ray_session, tmp_path):
    from chatrelay.cluster import up

    first = await asyncio.to_thread(start_relay, tmp_path / "first")
    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        owned = await client.create_group([first.link], "Grows", GroupKind.CHANNEL)
        member = await client.join(owned.link, "m")
        follower = copy.deepcopy(member)  # the same member, reading with --follow
        await client.post(owned, "one")
        received, changes, skipped = [], [], []

        async def follow() -> None:
            async for p in client.follow(follower, on_change=changes.append, on_skip=skipped.append):
                received.append(p.text)
        stream = asyncio.create_task(follow())
        await until(lambda: received == ["one"], "the first post")

        entry = await client.add_relay(owned, second.link)
        await until(lambda: changes, "the profile with the second relay")
        assert [(c.profile.version, c.added, c.removed) for c in changes] == [(3, (second.link,), ())]
        assert [(e.relay_link, e.address) for e in follower.relays] == [
            (first.link, owned.relays[0].address), (second.link, entry.address)]

        await client.post(owned, "two")
        await until(lambda: received == ["one", "two"], "the post after the change")
        read = await client.read_all(member)  # never followed: learns of the second relay now
        assert [p.text for p in read] == ["one", "two"]
        assert [c.added for c in read.changes] == [(second.link,)]
        assert [e.state for e in member.relays] == ["joined", "joined"]

        await asyncio.to_thread(up.stop, first, ray_shutdown=False)
        acks = await client.post(owned, "three")  # only the second relay takes it now
        assert [s.item for s in acks.skipped] == [f"relay {relay_name(owned.relays[0])}"]
        await until(lambda: received == ["one", "two", "three"], "the post through the second relay")
        read = await client.read_all(member)  # the second relay holds what came after it was added
        assert [p.text for p in read] == ["two", "three"]
        assert [(s.item, s.reason) for s in read.skipped] == [
            (f"relay {relay_name(member.relays[0])}", Reason.UNAVAILABLE)]
        stream.cancel()
    finally:
        for relay in (first, second):
            await asyncio.to_thread(up.stop, relay, ray_shutdown=False)


async def test_a_profile_change_reaches_members_and_late_joiners_get_the_current_one(relay):
    owned = await client.create_group([relay.link], "Before", GroupKind.GROUP)
    early = await client.join(owned.link, "early")
    assert (await client.set_profile(owned, name="After", description="renamed",
                                     join=JoinPolicy.APPROVAL, direct_messages=True)).version == 3
    assert await client.set_profile(owned, name="After") == client.Published(3)  # nothing changes: nothing is sent
    read = await client.read_all(early)
    [change] = read.changes
    assert (str(change), early.name) == ("profile v3: 'After'", "After")
    profile = group.verify_profile(env.decode(unb64(early.profile))).profile
    assert (profile.version, profile.description, profile.settings.join, profile.settings.direct_messages) == (
        3, "renamed", JoinPolicy.APPROVAL.pb, True)
    late = await client.join(owned.link, "late")
    assert (late.name, late.status) == ("After", "pending")  # the link data holds version 3 too
    with pytest.raises(ChatRelayError) as info:
        await client.set_profile(owned, name="x" * 101)
    assert (info.value.reason, info.value.message) == (Reason.BAD_PROFILE, "profile name must be 1 to 100 characters")
    kinds = [relay_pb2.OwnerCommandBody.FromString(e.command.body).kind for _, e in await client.service_log(owned)]
    assert kinds.count(relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE) == 2  # activation, then the change


@pytest.fixture
async def hostile():
    relay = await HostileRelay().start()
    yield relay
    await relay.stop()


async def test_a_profile_a_relay_made_or_replayed_is_refused_by_members(relay, hostile):
    """A relay cannot change a group: a profile it signed itself, one whose owner chain it
    rewrote, or an older version it replays, changes nothing for a member; the first two
    are skipped with their reason."""
    owned = await client.create_group([relay.link], "Genuine", GroupKind.CHANNEL)
    member = await client.join(owned.link, "m")
    current = group.verify_profile(env.decode(unb64(owned.profile)))
    older = current.envelope
    await client.set_profile(owned, name="Newer")
    own_key = SigningKey.generate()  # the relay's own key: not in the chain
    by_relay = group.next_version(own_key, group.verify_profile(env.decode(unb64(owned.profile))), name="Relay's")
    chain = group.verify_profile(env.decode(unb64(owned.profile))).profile
    rewritten = copy.deepcopy(chain)
    rewritten.version, rewritten.name = chain.version + 1, "Rewritten"
    rewritten.owners[0].owner_key = bytes(own_key.verify_key)  # its key where the owner's was
    forged_chain = group.sign_profile(own_key, rewritten)
    hostile.deliveries = [delivery(1, older), delivery(2, by_relay), delivery(3, forged_chain)]
    through = hostile.serving(member)
    read = await client.read_all(through)
    assert (read.changes, through.name, through.profile) == ([], "Genuine", member.profile)
    assert [(s.item.split(" at ")[0], s.reason, s.message) for s in read.skipped] == [
        ("item 2", Reason.UNKNOWN_SIGNER, "profile is signed by a key that is neither root nor owner"),
        ("item 3", Reason.BAD_OWNER_CHAIN, "owner 0 is not signed by the root or an earlier owner"),
    ]


async def test_an_approved_member_joins_an_added_relay_with_its_approval_and_nobody_else_can(relay, ray_session,
                                                                                         tmp_path):
    """In a group that takes members by approval, a member the owners approved at the
    first relay is a member at one they add later, with the approval it has; a join that
    carries someone else's approval, or one the joiner signed itself, is refused."""
    from chatrelay import members
    from chatrelay.cluster import up
    from chatrelay.members import MemberIdentity

    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        owned = await client.create_group([relay.link], "Approved", GroupKind.GROUP, JoinPolicy.APPROVAL)
        bob = await client.join(owned.link, "Bob")
        [waiting] = await client.pending(owned)
        await client.decide(owned, waiting.request_id.hex(), approve=True)
        entry = await client.add_relay(owned, second.link)
        await client.post(bob, "hello")  # through the first relay only: he is not at the second yet
        read = await client.read_all(bob)
        assert ([p.text for p in read], read.skipped, [e.state for e in bob.relays]) == (
            ["hello"], [], ["joined", "joined"])
        acks = await client.post(bob, "on both")
        assert (len(acks), acks.skipped) == (2, [])

        eve = MemberIdentity.generate()  # never approved
        profile = group.verify_profile(env.decode(unb64(owned.profile)))
        [shown] = await shown_members(client.reader_key(bob), bob.relays[0],
                                                    member=bytes(client.reader_key(bob).verify_key))
        body = relay_pb2.OwnerCommandBody(group_address=owned.relays[0].address, command_id=b"x",
                                          kind=relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN,
                                          member=eve.public.sign_key)
        own = env.sign_message(eve.signing_key, env.Domain.OWNER_COMMAND, body)  # by her own key
        for approval, said in (
            (shown.approval, "the approval in the join does not check out: its approval admits another member"),
            (own, "the approval in the join does not check out: its approval is not signed by an owner of the group"),
        ):
            request = relay_pb2.JoinRequest(envelope=members.join_request(
                eve, profile.group_id, entry.address, profile.profile.intake_key, "Eve", approval=approval))
            async with client.RelayClient(entry.target) as c:
                with pytest.raises(ChatRelayError) as info:
                    await c.call("Join", request)
            assert (info.value.reason, info.value.message) == (Reason.NOT_ALLOWED, said)
    finally:
        await asyncio.to_thread(up.stop, second, ray_shutdown=False)


async def test_a_member_by_invite_joins_an_added_relay_with_its_invite(relay, ray_session, tmp_path):
    """In a group that takes members by invite only, the member joins a relay added later
    with the proof of the invite it joined with."""
    from chatrelay.cluster import up

    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        owned = await client.create_group([relay.link], "By invite", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
        member = await client.join(client.make_invite(owned), "Invited")
        await client.add_relay(owned, second.link)
        read = await client.read_all(member)
        assert (read.skipped, [e.state for e in member.relays]) == ([], ["joined", "joined"])
        acks = await client.post(member, "through both")
        assert (len(acks), acks.skipped) == (2, [])
    finally:
        await asyncio.to_thread(up.stop, second, ray_shutdown=False)
