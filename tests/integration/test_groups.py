"""Registration, group management and several relays (DESIGN.md sections 5 to 7)."""

from __future__ import annotations

import asyncio

import pytest
from nacl.signing import SigningKey

from chatrelay import client, group, links, members
from chatrelay import envelope as env
from chatrelay.actors import records
from chatrelay.cluster.registry_sqlite import SqliteRegistry
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.members import MemberIdentity
from chatrelay.actors.message_log import Fence
from chatrelay.state import unb64
from chatrelay.v1 import core_pb2, relay_pb2

from realparts import follow_into, start_relay


def registry_of(relay) -> SqliteRegistry:
    return SqliteRegistry(f"{relay.config.data_dir}/registry.db")


def store_of(relay):
    """The relay's embedded store, opened beside it (as an operator could)."""
    from chatrelay.cluster.member_store_sqlite import SqliteMemberStore
    from chatrelay.cluster.message_log_sqlite import SqliteMessageLog

    path = f"{relay.config.data_dir}/messages.db"
    return SqliteMessageLog(path), SqliteMemberStore(path)


@pytest.fixture(scope="module")
def etcd_relay(ray_session, etcd_server, tmp_path_factory):
    from chatrelay.cluster import up

    running = start_relay(tmp_path_factory.mktemp("etcd-relay"), etcd=etcd_server.url)
    yield running
    up.stop(running, ray_shutdown=False)


@pytest.fixture(params=["embedded", "etcd"])
def either_relay(request):
    """A relay on the embedded registry, then one on etcd (set up outside the event loop)."""
    return request.getfixturevalue("relay" if request.param == "embedded" else "etcd_relay")


async def test_100_concurrent_registrations_leave_one_address_and_one_record(either_relay):
    """On the embedded registry and on etcd alike."""
    from chatrelay.cluster.storage import open_registry

    relay = either_relay
    info = await client.relay_info(relay.link)
    secrets, signed = group.create_group(GroupKind.GROUP, "Popular")

    async def register():
        async with client.RelayClient(info.target) as c:
            return await client.register(c, info, signed, secrets.group_id)

    results = await asyncio.gather(*(register() for _ in range(100)))
    assert len({address for address, _ in results}) == 1
    registry = open_registry(relay.config)  # the relay's own registry, whichever it is
    try:
        groups = [e for e in await registry.get_prefix(b"groups/") if secrets.group_id.hex().encode() in e.key]
        placements = await registry.get_prefix(records.placement_key(results[0][0]))
    finally:
        await registry.close()
    assert len(groups) == 1 and len(placements) == 1


async def test_joins_held_while_pending_are_all_admitted_once_after_a_restart(ray_session, tmp_path):
    from chatrelay.cluster import up

    data = tmp_path / "held"
    first = await asyncio.to_thread(start_relay, data)
    info = await client.relay_info(first.link)
    secrets, signed = group.create_group(GroupKind.GROUP, "Early birds")
    async with client.RelayClient(info.target) as c:
        address, state = await client.register(c, info, signed, secrets.group_id)
    assert state == relay_pb2.GROUP_STATE_PENDING
    profile = group.verify_profile(signed)
    joiners = [MemberIdentity.generate() for _ in range(20)]

    async def join(member):
        request = members.join_request(member, secrets.group_id, address, profile.profile.intake_key, "early")
        async with client.RelayClient(info.target) as c:
            return await c.call("Join", relay_pb2.JoinRequest(envelope=request))

    answers = await asyncio.gather(*(join(m) for m in joiners))
    assert {a.status for a in answers} == {relay_pb2.JOIN_STATUS_HELD}
    await join(joiners[0])  # sent twice: still admitted once

    await asyncio.to_thread(up.stop, first, ray_shutdown=False)
    second = await asyncio.to_thread(start_relay, data)  # same data dir: a restart
    try:
        target = second.target
        refs = [core_pb2.RelayRef(relay_key=info.relay_key, relay_link=second.link, group_address=address)]
        updated = group.next_version(secrets.owner_key, profile, relays=refs)
        async with client.RelayClient(target) as c:
            response = await client.owner_command(
                c, secrets.owner_key, address, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, profile=updated
            )
        assert response.state == relay_pb2.GROUP_STATE_ACTIVE
        registry = registry_of(second)
        log, store = store_of(second)
        try:
            for _ in range(100):  # the worker admits them after activation, the repeat last
                admitted = await store.statuses(address)
                cursor = await registry.get(records.held_cursor_key(address))
                if len(admitted) == 20 and cursor is not None and int(cursor.value) == 21:
                    break
                await asyncio.sleep(0.1)
        finally:
            await registry.close()
            await store.close()
            await log.close()
        assert len(admitted) == 20  # each joiner once, the repeated join too
        assert int(cursor.value) == 21  # 21 held requests, all processed
        member = joiners[5]
        credential = client.credential(member.signing_key, address)
        async with client.RelayClient(target) as c:
            history = await c.call("History", relay_pb2.HistoryRequest(credential=credential))
        assert list(history.deliveries) == []  # a member now: reading is allowed
    finally:
        await asyncio.to_thread(up.stop, second, ray_shutdown=False)


async def test_members_post_in_groups_within_the_rate_limit(relay):
    owned = await client.create_group([relay.link], "Chat", GroupKind.GROUP)
    alice = await client.join(owned.link, "alice")
    for i in range(15):
        await client.post(alice, f"a{i}")
    with pytest.raises(ChatRelayError) as info:
        await client.post(alice, "one too many")
    assert info.value.reason is Reason.RATE_LIMITED
    assert info.value.message.startswith("at most 15 posts per 60 s; retry in ")
    await client.post(owned, "owners are not limited")
    stranger = SigningKey.generate()
    async with client.RelayClient(relay.target) as c:
        with pytest.raises(ChatRelayError) as info:
            await c.post(owned.relays[0].address, members.sign_post(stranger, bytes.fromhex(owned.group_id), b"x"))
    assert (info.value.reason, info.value.message) == (Reason.NOT_MEMBER, "post author is not a member of this group")
    texts = [p.text for p in await client.read_all(alice)]
    assert texts == [f"a{i}" for i in range(15)] + ["owners are not limited"]



async def test_an_approval_names_the_member_it_admits(relay):
    """Members check who the owners let in by the key an approval names: the relay takes
    no approval that names no member, or another one than the request's."""
    from chatrelay.owner import owner_command

    owned = await client.create_group([relay.link], "Named", GroupKind.GROUP, JoinPolicy.APPROVAL)
    await client.join(owned.link, "Bob")
    [waiting] = await client.pending(owned)
    key = SigningKey(unb64(owned.owner_seed))
    async with client.RelayClient(relay.target) as c:
        for member in (b"", bytes(SigningKey.generate().verify_key)):
            with pytest.raises(ChatRelayError) as info:
                await owner_command(c, key, owned.relays[0].address, relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN,
                                    request_id=waiting.request_id, member=member)
            assert (info.value.reason, info.value.message) == (
                Reason.MALFORMED, "an approval must name the key of the member it admits")
    assert await client.pending(owned) == [waiting]

async def test_a_burst_of_concurrent_posts_takes_turns_and_every_one_lands_once(relay):
    """80 posts at once to one channel: the gateway has one call of the channel's posts
    going at a time (`--post-in-flight` 1), and posts that wait go on together in the
    next; each is acked with its own seq, none is lost and a follower gets every one once."""
    owned = await client.create_group([relay.link], "Burst", GroupKind.CHANNEL)
    member = await client.join(owned.link, "reader")
    received: list[str] = []
    reader = asyncio.create_task(follow_into(member, received, 80))
    key, group_id = SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id)
    async with client.RelayClient(relay.target) as c:
        acks = await asyncio.gather(*(
            c.post(owned.relays[0].address, members.sign_post(key, group_id, f"b{i}".encode())) for i in range(80)
        ))
    assert sorted(a.seq for a in acks) == list(range(1, 81))
    await asyncio.wait_for(reader, 60)
    assert sorted(received) == sorted(f"b{i}" for i in range(80))
    by_seq = {a.seq: a.message_id for a in acks}
    assert [p.seq for p in await client.read_all(member)] == list(range(1, 81))
    assert len(set(by_seq.values())) == 80


async def test_approval_groups_wait_for_the_owners(relay):
    owned = await client.create_group([relay.link], "Club", GroupKind.GROUP, JoinPolicy.APPROVAL)
    bob = await client.join(owned.link, "Bob")
    eve = await client.join(owned.link, "Eve")
    assert bob.status == eve.status == "pending"
    waiting = {p.display_name: p for p in await client.pending(owned)}
    assert set(waiting) == {"Bob", "Eve"}
    with pytest.raises(ChatRelayError) as info:
        await client.read_all(bob)
    assert info.value.reason is Reason.NOT_MEMBER
    await client.decide(owned, str(waiting["Bob"]).split()[0], approve=True)
    await client.decide(owned, str(waiting["Eve"]).split()[0], approve=False)
    await client.post(owned, "welcome")
    assert [p.text for p in await client.read_all(bob)] == ["welcome"]
    with pytest.raises(ChatRelayError) as info:
        await client.read_all(eve)
    assert info.value.reason is Reason.NOT_MEMBER
    assert await client.pending(owned) == []
    with pytest.raises(ChatRelayError) as info:
        await client.decide(owned, str(waiting["Eve"]).split()[0], approve=True)
    assert info.value.message == "no pending join request with this id"


async def test_suspend_and_resume_each_logged_once(relay):
    owned = await client.create_group([relay.link], "Pause", GroupKind.CHANNEL)
    await client.suspend(owned)
    with pytest.raises(ChatRelayError) as info:
        await client.join(owned.link, "late")
    assert (info.value.reason, info.value.message) == (Reason.REFUSED, "the owners have suspended new members for now")
    # The same command sent twice (a retry after a lost answer) is applied once.
    key = SigningKey(unb64(owned.owner_seed))
    entry = owned.relays[0]
    async with client.RelayClient(entry.target) as c:
        first = await client.owner_command(c, key, entry.address, relay_pb2.OWNER_COMMAND_KIND_RESUME, command_id=b"resume-1")
        again = await client.owner_command(c, key, entry.address, relay_pb2.OWNER_COMMAND_KIND_RESUME, command_id=b"resume-1")
    assert not first.applied_before and again.applied_before and again.log_seq == first.log_seq
    assert (await client.join(owned.link, "late")).status == "member"
    logged = [e for _, e in await client.service_log(owned)]
    kinds = [relay_pb2.OwnerCommandBody.FromString(e.command.body).kind for e in logged if not e.HasField("notice")]
    assert kinds == [
        relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE,
        relay_pb2.OWNER_COMMAND_KIND_SUSPEND,
        relay_pb2.OWNER_COMMAND_KIND_RESUME,
    ]
    assert [e.notice.kind for e in logged if e.HasField("notice")] == ["join_refused"]  # the join while suspended


async def test_only_owners_read_the_service_log(relay):
    owned = await client.create_group([relay.link], "Private log", GroupKind.CHANNEL)
    member = await client.join(owned.link, "m")
    fake = client.OwnedGroup(**{**owned.__dict__, "owner_seed": member.sign_seed})
    with pytest.raises(ChatRelayError) as info:
        await client.service_log(fake)
    assert (info.value.reason, info.value.message) == (Reason.UNKNOWN_SIGNER, "only owners of the group may read this")


async def test_two_relays_keep_delivering_when_one_stops(relay, ray_session, tmp_path):
    from chatrelay.cluster import up

    other = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        owned = await client.create_group([relay.link, other.link], "Redundant", GroupKind.CHANNEL)
        assert len(owned.relays) == 2 and {e.state for e in owned.relays} == {"active"}
        from chatrelay.links import ShortLink

        both = ShortLink.parse(owned.link)  # each relay's host, pinned to that relay's TLS key
        assert both.endpoints() == [(relay.address, relay.pin), (other.address, other.pin)]
        member = await client.join(owned.link, "m")
        assert len(member.relays) == 2
        received: list[str] = []
        task = asyncio.create_task(follow_into(member, received, 10, max_reconnects=2))
        for i in range(5):
            acks = await client.post(owned, f"p{i}")
            assert len(acks) == 2
        await asyncio.to_thread(up.stop, other, ray_shutdown=False)
        other = None
        for i in range(5, 10):
            await client.post(owned, f"p{i}")
        await asyncio.wait_for(task, timeout=60)
        assert received == [f"p{i}" for i in range(10)]  # each once, in order
        assert [p.text for p in await client.read_all(member)] == [f"p{i}" for i in range(10)]
    finally:
        if other is not None:
            await asyncio.to_thread(up.stop, other, ray_shutdown=False)


async def test_relay_add_is_idempotent(relay, ray_session, tmp_path):
    from chatrelay.cluster import up

    other = await asyncio.to_thread(start_relay, tmp_path / "added")
    try:
        owned = await client.create_group([relay.link], "Growing", GroupKind.GROUP)
        first = await client.add_relay(owned, other.link)
        again = await client.add_relay(owned, other.link)
        assert first.address == again.address and len(owned.relays) == 2
        profile = group.verify_profile(env.decode(unb64(owned.profile)))
        assert profile.version == 3 and len(profile.profile.relays) == 2
        member = await client.join(owned.link, "m")  # the stored link data names both relays
        assert {e.address for e in member.relays} == {e.address for e in owned.relays}
    finally:
        await asyncio.to_thread(up.stop, other, ray_shutdown=False)


# ---- a relay that tampers is caught by the client --------------------------------------


async def test_tampered_post_is_caught(relay):
    owned = await client.create_group([relay.link], "Signed", GroupKind.CHANNEL)
    member = await client.join(owned.link, "m")
    await client.post(owned, "genuine")
    checker = client.PostChecker(member)
    credential = client.credential(SigningKey(unb64(member.sign_seed)), member.relays[0].address)
    async with client.RelayClient(relay.target) as c:
        delivery = (await c.call("History", relay_pb2.HistoryRequest(credential=credential))).deliveries[0]
    altered = relay_pb2.Delivery()
    altered.CopyFrom(delivery)
    body = core_pb2.PostBody.FromString(altered.post.body)
    body.body = b"forged"
    altered.post.body = body.SerializeToString()
    with pytest.raises(ChatRelayError) as info:
        await checker.check(altered, member.relays[0])
    assert info.value.reason is Reason.BAD_SIGNATURE
    relay_signed = relay_pb2.Delivery(seq=9, post=members.sign_post(SigningKey.generate(), bytes.fromhex(owned.group_id), b"x"))
    with pytest.raises(ChatRelayError) as info:
        await checker.check(relay_signed, member.relays[0])  # validly signed, but not by an owner
    assert info.value.reason is Reason.UNKNOWN_SIGNER


async def test_tampered_link_data_and_relay_list_are_caught(relay):
    owned = await client.create_group([relay.link], "Linked", GroupKind.CHANNEL)
    link = links.ShortLink.parse(owned.link)
    key = records.link_key(links.derive(link.link_key).lookup_id)
    registry = registry_of(relay)
    try:
        import json

        stored = await registry.get(key)
        record = json.loads(stored.value)
        from chatrelay import codec

        data = bytearray(codec.unb64url(record["data"], "data"))
        data[-1] ^= 1  # the relay alters a byte of what it stores
        await registry.put(key, json.dumps({**record, "data": codec.b64url(bytes(data))}).encode())
        with pytest.raises(ChatRelayError) as info:
            await client.join(owned.link, "m")
        assert info.value.reason is Reason.LINK_DECRYPT_FAILED

        # A relay that learned the link swaps the relay list for its own, signing itself.
        plain = links.decrypt(link.link_key, codec.unb64url(record["data"], "data"))
        mutable = core_pb2.LinkMutable.FromString(plain.mutable.body)
        profile = core_pb2.Profile.FromString(mutable.group_profile.body)
        profile.relays[0].group_address = "attacker"
        profile.version += 1
        evil = SigningKey.generate()
        mutable.group_profile.CopyFrom(group.sign_profile(evil, profile))
        plain.mutable.CopyFrom(env.sign_message(evil, env.Domain.LINK, mutable))
        await registry.put(key, json.dumps({**record, "data": codec.b64url(links.encrypt(link.link_key, plain))}).encode())
        with pytest.raises(ChatRelayError) as info:
            await client.join(owned.link, "m")
        assert info.value.reason is Reason.UNKNOWN_SIGNER
    finally:
        await registry.close()


async def test_swapped_member_key_is_caught_by_the_owner(relay):
    owned = await client.create_group([relay.link], "Keys", GroupKind.GROUP, JoinPolicy.APPROVAL)
    await client.join(owned.link, "Bob")
    entry = owned.relays[0]
    log, store = store_of(relay)
    try:
        [(_, record)] = await store.find(entry.address, status=records.MemberStatus.PENDING)
        real = core_pb2.JoinBody.FromString(env.decode(record.join).body)
        # The relay makes its own member key, keeps Bob's sealed announcement, and signs.
        relay_member = MemberIdentity.generate()
        forged = core_pb2.JoinBody()
        forged.CopyFrom(real)
        forged.keys.CopyFrom(relay_member.public)
        record.join = env.encode(env.sign_message(relay_member.signing_key, env.Domain.JOIN, forged))
        fence = Fence(entry.address, await log.claim(entry.address))  # the operator's own write
        await store.put(entry.address, relay_member.public.sign_key, record, fence)
    finally:
        await store.close()
        await log.close()
    # Shards cache members: restart them so they serve what the store now holds.
    import ray

    for shard in relay.shards:
        ray.kill(shard, no_restart=False)
    for _ in range(100):
        waiting = await client.pending(owned)
        if waiting.skipped:  # caught: skipped with its reason, and only the real Bob listed (issue 16)
            assert [p.sign_key for p in waiting] == [real.keys.sign_key]
            assert [(s.reason, s.message) for s in waiting.skipped] == [
                (Reason.UNKNOWN_SIGNER, "join request keys differ from what the member sealed to the owners")]
            return
        assert len(waiting) == 1  # before the restart took effect: Bob alone
        await asyncio.sleep(0.1)
    pytest.fail("the swapped key was not caught")


async def test_operator_policy_refuses_with_a_reason_the_owner_sees(ray_session, tmp_path):
    from chatrelay.cluster import up

    deny = tmp_path / "deny.txt"
    listed_secrets, listed = group.create_group(GroupKind.GROUP, "Listed")
    deny.write_text(listed_secrets.group_id.hex() + "\n")
    strict = await asyncio.to_thread(
        start_relay, tmp_path / "strict", max_groups=2, deny_names="casino", deny_groups=deny
    )
    try:
        with pytest.raises(ChatRelayError) as info:
            await client.create_group([strict.link], "Best Casino", GroupKind.GROUP)
        assert (info.value.reason, info.value.message) == (Reason.REFUSED, "this relay does not serve groups with such names")
        info_ = await client.relay_info(strict.link)
        async with client.RelayClient(info_.target) as c:
            with pytest.raises(ChatRelayError) as info:
                await client.register(c, info_, listed, listed_secrets.group_id)
        assert info.value.message == "this relay does not serve this group"
        await client.create_group([strict.link], "one", GroupKind.GROUP)
        second = await client.create_group([strict.link], "two", GroupKind.GROUP)
        await client.add_relay(second, strict.link)  # a group it has already is not a new one
        with pytest.raises(ChatRelayError) as info:
            await client.create_group([strict.link], "three", GroupKind.GROUP)
        assert info.value.message == "this relay serves at most 2 groups and is full"
    finally:
        await asyncio.to_thread(up.stop, strict, ray_shutdown=False)


async def test_invite_codes_pass_invite_only_gates_once(relay):
    owned = await client.create_group([relay.link], "Invited", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
    with pytest.raises(ChatRelayError) as info:
        await client.join(owned.link, "gatecrasher")
    assert (info.value.reason, info.value.message) == (Reason.NOT_ALLOWED, "this group takes members by invite only")

    code = client.make_invite(owned)  # single use, made offline
    member = await client.join(code, "guest")
    assert member.status == "member"
    with pytest.raises(ChatRelayError) as info:
        await client.join(code, "second guest")
    assert (info.value.reason, info.value.message) == (Reason.BAD_INVITE, "this invite has been used up")

    # Both uses racing: exactly one wins.
    racing = client.make_invite(owned)
    results = await asyncio.gather(*(client.join(racing, f"r{i}") for i in range(2)), return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    [loser] = [r for r in results if isinstance(r, BaseException)]
    assert loser.reason is Reason.BAD_INVITE

    three = client.make_invite(owned, uses=3)
    for i in range(3):
        await client.join(three, f"t{i}")
    with pytest.raises(ChatRelayError):
        await client.join(three, "t3")


async def test_expired_and_forged_invites_are_refused(relay):
    from chatrelay import invites
    from chatrelay.links import ShortLink

    owned = await client.create_group([relay.link], "Expiring", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
    secrets = group.OwnerSecrets(
        group_id=bytes.fromhex(owned.group_id), owner_id=unb64(owned.owner_id),
        owner_seed=unb64(owned.owner_seed), intake_secret=unb64(owned.intake_secret),
    )
    expired = invites.make_invite(secrets, ShortLink.parse(owned.link), expires_at=1).render()
    with pytest.raises(ChatRelayError) as info:
        await client.join(expired, "late")
    assert (info.value.reason, info.value.message) == (Reason.INVITE_EXPIRED, "invite has expired")
    stranger = group.OwnerSecrets(
        group_id=secrets.group_id, owner_id=bytes(16), owner_seed=bytes(SigningKey.generate()),
        intake_secret=secrets.intake_secret,
    )
    forged = invites.make_invite(stranger, ShortLink.parse(owned.link)).render()
    with pytest.raises(ChatRelayError) as info:
        await client.join(forged, "forger")
    assert info.value.message == "invite grant is not signed by an owner of the group"


async def test_approval_groups_admit_invitees_while_owners_are_offline(relay):
    owned = await client.create_group([relay.link], "Gated", GroupKind.GROUP, JoinPolicy.APPROVAL)
    assert (await client.join(client.make_invite(owned), "vip")).status == "member"
    assert (await client.join(owned.link, "walk-in")).status == "pending"


async def test_remove_relay_and_delete_group(relay, ray_session, tmp_path):
    from chatrelay.cluster import up

    other = await asyncio.to_thread(start_relay, tmp_path / "leaving")
    try:
        owned = await client.create_group([relay.link, other.link], "Shrinking", GroupKind.CHANNEL)
        leaving = next(e for e in owned.relays if e.relay_link == other.link)
        await client.remove_relay(owned, other.link)
        assert [e.relay_link for e in owned.relays] == [relay.link]
        async with client.RelayClient(leaving.target) as c:
            with pytest.raises(ChatRelayError) as info:
                await c.post(leaving.address, members.sign_post(
                    SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id), b"x"))
        assert (info.value.reason, info.value.message) == (Reason.NOT_ACTIVE, "group is removed, not active")
        member = await client.join(owned.link, "m")  # the link now names one relay
        assert [e.address for e in member.relays] == [owned.relays[0].address]
        with pytest.raises(ChatRelayError) as info:
            await client.remove_relay(owned, relay.link)
        assert info.value.message == "a group keeps at least one relay; delete the group instead"

        await client.post(owned, "last words")
        await client.delete_group(owned)
        with pytest.raises(ChatRelayError) as info:
            await client.post(owned, "after")
        assert info.value.reason is Reason.NOT_ACTIVE
        kinds = [relay_pb2.OwnerCommandBody.FromString(e.command.body).kind for _, e in await client.service_log(owned)]
        assert kinds[-1] == relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP
    finally:
        await asyncio.to_thread(up.stop, other, ray_shutdown=False)



async def test_a_relay_removed_from_a_group_ends_its_streams_and_serves_it_no_more(relay, ray_session, tmp_path):
    """Removal is immediate (issue 16): a stream open on the removed relay ends at once
    with the reason, the relay serves the group's history to nobody, and a reader of
    both relays goes on with the other."""
    import copy

    from chatrelay.cluster import up

    other = await asyncio.to_thread(start_relay, tmp_path / "leaving")
    try:
        owned = await client.create_group([relay.link, other.link], "Leaving", GroupKind.CHANNEL)
        member = await client.join(owned.link, "m")
        await client.post(owned, "before")
        on_leaving = copy.deepcopy(member)
        on_leaving.relays = [e for e in on_leaving.relays if e.relay_link == other.link]
        received = []

        async def follow():
            async for p in client.follow(on_leaving, max_reconnects=0):
                received.append(p.text)
        stream = asyncio.create_task(follow())
        for _ in range(200):  # bounded: until the stream delivered the post
            if received:
                break
            await asyncio.sleep(0.05)
        assert received == ["before"]
        await client.remove_relay(owned, other.link)
        with pytest.raises(ChatRelayError) as info:
            await asyncio.wait_for(stream, 60)  # a bound on a hang, not a measure
        assert (info.value.reason, info.value.message) == (Reason.NOT_ACTIVE, "group is removed, not active")
        with pytest.raises(ChatRelayError) as info:
            await client.read_all(on_leaving)
        assert (info.value.reason, info.value.message) == (Reason.NOT_ACTIVE, "group is removed, not active")
        posts = await client.read_all(member)  # the relay it reads first has the profile without the other
        assert [p.text for p in posts] == ["before"]
        assert (posts.skipped, [c.removed for c in posts.changes]) == ([], [(other.link,)])
        assert [e.relay_link for e in member.relays] == [relay.link]
    finally:
        await asyncio.to_thread(up.stop, other, ray_shutdown=False)


async def test_a_removed_member_s_streams_end_at_once_and_it_reads_no_more(relay):
    """Removal is immediate (issue 16): the owners remove Ann; her open stream ends with
    `not_a_member` (it would have gone on before), she reads and posts nothing more, and
    Ben's stream goes on."""
    owned = await client.create_group([relay.link], "Club", GroupKind.GROUP)
    ann, ben = await client.join(owned.link, "Ann"), await client.join(owned.link, "Ben")
    await client.post(owned, "one")
    received = {"ann": [], "ben": []}

    async def follow(name, who):
        async for p in client.follow(who, max_reconnects=0):
            received[name].append(p.text)
    streams = {name: asyncio.create_task(follow(name, who)) for name, who in (("ann", ann), ("ben", ben))}
    try:
        for _ in range(200):  # bounded: until both streams delivered the first post
            if received["ann"] and received["ben"]:
                break
            await asyncio.sleep(0.05)
        assert received == {"ann": ["one"], "ben": ["one"]}
        await client.remove_member(owned, bytes(client.reader_key(ann).verify_key))
        with pytest.raises(ChatRelayError) as info:
            await asyncio.wait_for(streams["ann"], 60)  # a bound on a hang, not a measure
        assert (info.value.reason, info.value.message) == (Reason.NOT_MEMBER, "removed from this group by its owners or moderators")
        with pytest.raises(ChatRelayError) as info:
            await client.read_all(ann)
        assert (info.value.reason, info.value.message) == (Reason.NOT_MEMBER, "reader is not a member of this group")
        with pytest.raises(ChatRelayError) as info:
            await client.post(ann, "still here?")
        assert info.value.reason is Reason.NOT_MEMBER
        await client.post(owned, "two")
        for _ in range(200):
            if len(received["ben"]) == 2:
                break
            await asyncio.sleep(0.05)
        assert received["ben"] == ["one", "two"] and not streams["ben"].done()
        with pytest.raises(ChatRelayError) as info:  # once is enough
            await client.remove_member(owned, bytes(client.reader_key(ann).verify_key))
        assert (info.value.reason, info.value.message) == (Reason.NOT_MEMBER, "no member with this key in the group")
    finally:
        for task in streams.values():
            task.cancel()

async def test_a_captured_link_store_replayed_after_an_update_is_refused_and_changes_nothing(relay):
    """Issue 15: replaying a StoreLink captured at profile version 2, after version 3 was
    stored, rolled the link's profile back; now the same bytes are refused as replayed,
    and version 2 signed anew (an owner's out-of-date device) as stale."""
    import os
    import time

    from chatrelay.links import ShortLink

    owned = await client.create_group([relay.link], "Versions", GroupKind.CHANNEL)
    secrets = owned.secrets()
    link = ShortLink.parse(owned.link)
    v2 = group.verify_profile(env.decode(unb64(owned.profile)))
    bundle2 = links.group_link(secrets, v2.envelope, link.hosts)

    def store_request(bundle):
        body = relay_pb2.StoreLinkBody(lookup_id=bundle.lookup_id, ciphertext=bundle.ciphertext,
                                       nonce=os.urandom(16), timestamp=int(time.time()), version=bundle.version)
        return relay_pb2.StoreLinkRequest(envelope=env.sign_message(secrets.owner_key, env.Domain.LINK_STORE, body))

    captured = store_request(bundle2)  # as an observer of the owner's store would keep it
    bundle3 = links.group_link(secrets, group.next_version(secrets.owner_key, v2), link.hosts)
    async with client.RelayClient(relay.target) as c:
        assert (await c.call("StoreLink", captured)).created is False  # the owner's own version 2 again
        assert await c.store_link(secrets.owner_key, bundle3) is False
        with pytest.raises(ChatRelayError) as replayed:
            await c.call("StoreLink", captured)
        with pytest.raises(ChatRelayError) as caught:
            await c.call("StoreLink", store_request(bundle2))
    assert replayed.value.reason is Reason.REPLAYED
    assert (caught.value.reason, caught.value.message) == (
        Reason.STALE, "link data version 2 is older than the stored version 3")
    assert (await client.resolve_link(link)).profile.version == 3
