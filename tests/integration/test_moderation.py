"""Moderation (issue 18), through the SDK against a running relay: owners name moderators;
owners and moderators delete posts and remove or ban members; the group's rules bind
members' posts. Relays check and apply; members check again, so what a relay forges, or
lets through against the rules, is refused with its reason."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from nacl.signing import SigningKey

from chatrelay import client, codec, group, members, moderation, moderators
from chatrelay import envelope as env
from chatrelay.direct import fingerprint
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.members import MemberIdentity
from chatrelay.checker import reader_key, relay_name, shown_members
from chatrelay.joining import join_relay
from chatrelay.state import unb64
from chatrelay.v1 import core_pb2, relay_pb2

from hostile import HostileRelay


def key_of(who) -> bytes:
    return bytes(reader_key(who).verify_key)


def profile_of(who) -> group.VerifiedProfile:
    return group.verify_profile(env.decode(unb64(who.profile)))


async def refused(coro) -> tuple[Reason, str]:
    with pytest.raises(ChatRelayError) as info:
        await coro
    return info.value.reason, info.value.message


async def history(relay_entry, who) -> list[str]:
    request = relay_pb2.HistoryRequest(credential=client.credential(reader_key(who), relay_entry.address), limit=500)
    async with client.RelayClient(relay_entry.target) as c:
        page = (await c.call("History", request)).deliveries
    return [core_pb2.PostBody.FromString(d.post.body).body.decode() for d in page
            if d.post.domain == env.Domain.POST.value]


@pytest.fixture
async def club(relay):
    owned = await client.create_group([relay.link], "Moderated", GroupKind.GROUP)
    people = {name: await client.join(owned.link, name) for name in ("Ann", "Ben", "Cat")}
    return owned, people


async def test_a_moderator_deletes_a_members_post_everywhere_and_members_hide_it(club):
    owned, people = club
    ann, ben, cat = people["Ann"], people["Ben"], people["Cat"]
    named = await moderators.set_role(owned, "Ann", "moderator")
    assert (named, named.skipped) == ([fingerprint(key_of(ann))], [])
    [welcome] = await client.post(owned, "welcome")
    [ack] = await client.post(ben, "spam")
    await client.read_all(ann)  # Ann learns she is a moderator (the profile in the stream)
    assert profile_of(ann).profile.moderators == [key_of(ann)]

    answers = await moderators.delete_post(ann, ack.seq, reason="spam")
    assert (len(answers), answers.skipped) == (1, [])
    assert await history(owned.relays[0], owned) == ["welcome"]  # the relay serves it no more
    read = await client.read_all(cat)
    assert [p.text for p in read] == ["welcome"]
    assert [str(c) for c in read.changes if isinstance(c, client.Moderated)] == [  # she never saw it
        f"post {codec.b64url(ack.message_id)[:12]} deleted by moderator {fingerprint(key_of(ann))}: spam"]
    assert await refused(moderators.delete_post(ann, welcome.seq)) == (Reason.NOT_ALLOWED, (
        "a moderator cannot delete an owner's or another moderator's post"))
    assert await refused(moderators.delete_post(cat, welcome.seq)) == (Reason.UNKNOWN_SIGNER, (
        "moderation is not signed by an owner or a moderator of the group"))
    assert await refused(moderators.delete_post(owned, ack.seq)) == (Reason.NOT_FOUND, f"no post #{ack.seq} in the group")


def _signed_post(who, text: str):
    return members.sign_post(reader_key(who), bytes.fromhex(who.group_id), text.encode())


async def test_a_removed_and_banned_member_s_stream_ends_it_cannot_join_again_and_its_posts_go(club):
    owned, people = club
    ann, ben, cat = people["Ann"], people["Ben"], people["Cat"]
    await moderators.set_role(owned, "Ann", "moderator")
    await client.post(ben, "ben's first")
    await client.post(cat, "cat's")
    received, ended = [], []

    async def follow() -> None:
        try:
            async for p in client.follow(ben, max_reconnects=0):
                received.append(p.text)
        except ChatRelayError as exc:
            ended.append((exc.reason, exc.message))
    stream = asyncio.create_task(follow())
    for _ in range(200):  # bounded: until the stream delivered both posts
        if len(received) == 2:
            break
        await asyncio.sleep(0.05)
    await client.read_all(ann)
    assert await refused(moderators.remove(ann, "Ann")) == (Reason.NOT_ALLOWED, (
        "a moderator cannot remove an owner or another moderator"))
    await moderators.remove(ann, "Ben", ban=True, delete_posts=True, reason="flooding")
    await asyncio.wait_for(stream, 60)  # a bound on a hang, not a measure
    assert ended == [(Reason.NOT_MEMBER, "removed from this group by its owners or moderators")]
    assert await history(owned.relays[0], owned) == ["cat's"]
    read = await client.read_all(cat)
    assert [p.text for p in read] == ["cat's"]
    assert [str(c) for c in read.changes if isinstance(c, client.Moderated)] == [
        f"member {fingerprint(key_of(ben))} banned with their posts by moderator {fingerprint(key_of(ann))}: flooding"]

    identity = MemberIdentity(sign_seed=unb64(ben.sign_seed), box_secret=unb64(ben.box_secret))
    profile = profile_of(owned)
    assert await refused(join_relay(identity, profile, profile.profile.relays[0], "Ben again")) == (
        Reason.BANNED, "this key is banned from the group")
    assert await refused(client.post(ben, "still here?")) == (Reason.NOT_MEMBER, "post author is not a member of this group")
    assert await refused(moderators.remove(owned, "Ben")) == (Reason.NOT_MEMBER, "no such member in this group")


async def test_the_rules_are_held_by_the_relay_with_their_reasons(club):
    owned, people = club
    cat = people["Cat"]
    assert await client.set_profile(owned, slow_mode_s=60, max_post_bytes=20, links=False) == client.Published(3, [])
    assert await refused(client.post(cat, "x" * 21)) == (Reason.TOO_LARGE, "post is 21 bytes; the group's rules allow at most 20")
    for text in ("at https://a.io", "www.a.io", "see a.io/x"):
        assert await refused(client.post(cat, text)) == (Reason.NOT_ALLOWED, "the group's rules allow no links in posts")
    await client.post(cat, "first")
    slow = await refused(client.post(cat, "second"))  # the wait is rounded up from the posts' signed times
    assert slow in [(Reason.RATE_LIMITED, f"the group's slow mode allows one post per 60 s; retry in {s} s")
                    for s in (59, 60)]
    await client.post(owned, "owners are free: https://example.org " + "y" * 30)
    assert [p.text for p in await client.read_all(people["Ann"])][-2:] == [
        "first", "owners are free: https://example.org " + "y" * 30]


@pytest.fixture
async def hostile():
    relay = await HostileRelay().start()
    yield relay
    await relay.stop()


async def test_what_a_relay_forges_or_lets_through_against_the_rules_is_refused_by_members(club, hostile):
    owned, people = club
    ann, ben, cat = people["Ann"], people["Ben"], people["Cat"]
    await client.set_profile(owned, slow_mode_s=60, max_post_bytes=20, links=False)
    await client.read_all(cat)  # Cat holds the version with the rules
    group_id = bytes.fromhex(owned.group_id)
    genuine = _signed_post(ben, "genuine")
    now_ms = int(time.time() * 1000)
    too_long = members.sign_post(reader_key(ben), group_id, b"z" * 21, client_ts=now_ms + 1000)
    a_link = members.sign_post(reader_key(ann), group_id, b"www.example.org", client_ts=now_ms + 2000)
    first = members.sign_post(reader_key(cat), group_id, b"one", client_ts=now_ms + 3000)
    too_soon = members.sign_post(reader_key(cat), group_id, b"two", client_ts=now_ms + 4000)
    by_relay = moderation.sign(SigningKey.generate(), group_id, core_pb2.MODERATION_KIND_DELETE_POST,
                               message_id=members.message_id(genuine))
    by_member = moderation.sign(reader_key(ann), group_id, core_pb2.MODERATION_KIND_REMOVE_MEMBER,
                                member=key_of(ben))  # Ann is no moderator
    items = [genuine, too_long, a_link, first, too_soon, by_relay, by_member]
    hostile.deliveries = [relay_pb2.Delivery(seq=i + 1, post=e, message_id=members.item_id(e), relay_ts=1)
                          for i, e in enumerate(items)]
    hostile.admissions = [await _shown(owned, who) for who in (ann, ben, cat)]
    read = await client.read_all(hostile.serving(cat))
    assert [p.text for p in read] == ["genuine", "one"]
    assert [(s.item.split(" at ")[0], s.reason, s.message) for s in read.skipped] == [
        ("post 2", Reason.TOO_LARGE, "post is 21 bytes; the group's rules allow at most 20"),
        ("post 3", Reason.NOT_ALLOWED, "the group's rules allow no links in posts"),
        ("post 5", Reason.RATE_LIMITED, "the group's slow mode allows one post per 60 s; retry in 59 s"),
        ("item 6", Reason.UNKNOWN_SIGNER, "moderation is not signed by an owner or a moderator of the group"),
        ("item 7", Reason.UNKNOWN_SIGNER, "moderation is not signed by an owner or a moderator of the group"),
    ]


async def _shown(owned, who) -> relay_pb2.MemberAdmission:
    request = relay_pb2.MemberKeysRequest(credential=client.credential(reader_key(owned), owned.relays[0].address),
                                          member=key_of(who))
    async with client.RelayClient(owned.relays[0].target) as c:
        [admission] = (await c.call("MemberKeys", request)).members
    return admission


async def test_owners_see_members_with_roles_and_exact_counts(club, relay):
    owned, people = club
    await moderators.set_role(owned, "Cat", "moderator")
    listed = await moderators.list_members(owned)
    assert [(m.display_name, m.role) for m in listed] == [("Ann", "member"), ("Ben", "member"), ("Cat", "moderator")]
    assert [(c.members, c.subscribers) for c in listed.counts] == [(3, 0)]
    streams = [asyncio.create_task(_drain(client.follow(people[n], max_reconnects=0))) for n in ("Ann", "Ben")]
    try:
        for _ in range(200):  # bounded: until both streams are open at the relay
            counts = (await moderators.list_members(owned)).counts
            if counts[0].subscribers == 2:
                break
            await asyncio.sleep(0.05)
        assert [(c.members, c.subscribers) for c in counts] == [(3, 2)]
    finally:
        for s in streams:
            s.cancel()
    [ann_post] = await client.post(people["Ann"], "by Ann")
    await moderators.set_role(owned, "Cat", "member")
    assert [m.role for m in await moderators.list_members(owned)] == ["member"] * 3
    assert await refused(moderators.delete_post(people["Cat"], ann_post.seq)) == (  # a moderator no more
        Reason.UNKNOWN_SIGNER, "moderation is not signed by an owner or a moderator of the group")
    assert await refused(moderators.set_role(owned, "Nobody", "moderator")) == (
        Reason.NOT_MEMBER, "no such member in this group")


async def _drain(stream) -> None:
    async for _ in stream:
        pass


async def test_a_report_reaches_the_owners_only_and_what_a_relay_makes_up_is_skipped(club, relay):
    """The relay keeps the report sealed: it holds neither the post's text nor the reason.
    The owners open it; one the relay makes up (sealed to the public intake key, signed by
    a key of its own) is skipped. Oversized, replayed or foreign reports are refused."""
    from nacl.public import PublicKey, SealedBox

    from chatrelay.cluster.message_log_sqlite import SqliteMessageLog
    from chatrelay.actors import records

    owned, people = club
    ann, ben = people["Ann"], people["Ben"]
    [ack] = await client.post(ben, "buy cheap pills")
    answers = await moderators.report(ann, ack.seq, "spam in the group")
    assert (len(answers), answers.skipped) == (1, [])
    [item] = await moderators.list_reports(owned)
    assert (item.reporter, item.author, item.seq, item.text, item.reason) == (
        key_of(ann), key_of(ben), ack.seq, "buy cheap pills", "spam in the group")
    assert str(item).startswith(f"{fingerprint(key_of(ann))} reported #{ack.seq} by {fingerprint(key_of(ben))}: spam")
    log = SqliteMessageLog(f"{relay.config.data_dir}/messages.db")
    try:
        [kept] = await log.read(records.report_stream(owned.relays[0].address))
    finally:
        await log.close()
    assert b"pills" not in kept.data and b"spam in the group" not in kept.data  # sealed to the owners

    entry = owned.relays[0]
    content = core_pb2.ReportContent(group_id=bytes.fromhex(owned.group_id), post=_signed_post(ben, "x"), seq=1,
                                     reason="made up")
    sealed = bytes(SealedBox(PublicKey(profile_of(owned).profile.intake_key)).encrypt(content.SerializeToString()))

    def body(signer, sealed_bytes=sealed, address=entry.address, at=None):
        return env.sign_message(signer, env.Domain.REPORT, relay_pb2.ReportBody(
            group_address=address, sealed=sealed_bytes, nonce=b"n" * 16, timestamp=at or int(time.time())))
    async with client.RelayClient(entry.target) as c:
        for envelope, said in (
            (body(SigningKey.generate()), (Reason.NOT_MEMBER, "report is not signed by a member of this group")),
            (body(reader_key(ann), b"z" * (20 * 1024 + 1)), (Reason.TOO_LARGE, "sealed report is 20481 bytes; at most 20480 allowed")),
            (body(reader_key(ann), b""), (Reason.MALFORMED, "a report carries what it reports, sealed to the owners")),
        ):
            assert await refused(c.call("Report", relay_pb2.ReportRequest(envelope=envelope))) == said
        # An hour old: the relay counts whole seconds by its own clock, a second later if one
        # turned between the signing and the check.
        reason, message = await refused(c.call("Report", relay_pb2.ReportRequest(
            envelope=body(reader_key(ann), at=int(time.time()) - 3600))))
        assert reason == Reason.STALE and re.fullmatch(
            r"report was signed 360[01] s from this relay's clock; at most 300 s are taken "
            r"\(a replay, or a clock that is off\)", message), message
        once = body(reader_key(ann), b"q" * 64)  # opens to nothing: skipped by the owners
        first = await c.call("Report", relay_pb2.ReportRequest(envelope=once))
        with pytest.raises(ChatRelayError) as info:  # the same signed report again: the gateway has it
            await c.call("Report", relay_pb2.ReportRequest(envelope=once))
        assert info.value.reason is Reason.REPLAYED
    listed = await moderators.list_reports(owned)
    assert [r.reason for r in listed] == ["spam in the group"]
    assert [(s.item.split(" at ")[0], s.reason, s.message) for s in listed.skipped] == [
        (f"report {first.seq}", Reason.MALFORMED, "report does not open with the owners' key")]
    assert await refused(moderators.report(ann, ack.seq, "r" * 501)) == (
        Reason.TOO_LARGE, "report reason is 501 characters; at most 500 allowed")


async def test_a_member_that_leaves_is_forgotten_and_its_stream_ends(club):
    owned, people = club
    cat = people["Cat"]
    await client.post(owned, "hi")
    answers = await moderators.leave(cat)
    assert (len(answers), answers.skipped) == (1, [])
    assert await refused(client.read_all(cat)) == (Reason.NOT_MEMBER, "reader is not a member of this group")
    assert await refused(moderators.leave(cat)) == (Reason.NOT_MEMBER, "leave request is not signed by a member of this group")
    assert [m.display_name for m in await moderators.list_members(owned)] == ["Ann", "Ben"]


async def test_a_deleted_post_is_served_by_no_relay_nor_from_a_gateway_s_window(relay, ray_session, tmp_path):
    """With two relays and a stream open (so each gateway holds the post in its window), a
    deletion reaches both: a stream opened after, from the start, and a history read get
    the deletion but not the post, from either relay."""
    from chatrelay.cluster import up
    from realparts import start_relay

    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        owned = await client.create_group([relay.link, second.link], "Two relays", GroupKind.GROUP)
        ann, ben = await client.join(owned.link, "Ann"), await client.join(owned.link, "Ben")
        before = (await client.post(ben, "regrettable"))[0]  # its seq at the first relay
        await client.post(owned, "kept")
        seen = []
        stream = asyncio.create_task(_drain_into(client.follow(ann, max_reconnects=0), seen))
        for _ in range(200):  # bounded: both gateways' tails hold both posts
            if len(seen) == 2:
                break
            await asyncio.sleep(0.05)
        answers = await moderators.delete_post(owned, before.seq, reason="sorry")
        assert (len(answers), answers.skipped) == (2, [])
        stream.cancel()
        for entry in owned.relays:
            assert await history(entry, owned) == ["kept"]
            fresh = copy_with(ann, entry)
            got, changes = [], []
            task = asyncio.create_task(_drain_into(client.follow(fresh, max_reconnects=0, on_change=changes.append), got))
            for _ in range(200):  # bounded: until the deletion came through this relay's stream
                if changes:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            assert got == ["kept"] and [c.what.split(" ")[-1] for c in changes] == ["deleted"]
    finally:
        await asyncio.to_thread(up.stop, second, ray_shutdown=False)


def copy_with(who, entry):
    import copy

    one = copy.deepcopy(who)
    one.relays = [e for e in one.relays if e.address == entry.address]
    return one


async def _drain_into(stream, into: list) -> None:
    async for p in stream:
        into.append(p.text)


async def test_a_moderators_deletion_of_an_owners_post_hides_nothing_whichever_relay_serves_it(club, hostile):
    """A moderator may delete members' posts only. One that signs a deletion of an owner's
    post, applied by a hostile relay read first, hides nothing: the post comes from
    another relay, and the reader checks the deletion against its author then."""
    owned, people = club
    ann, cat = people["Ann"], people["Cat"]
    await moderators.set_role(owned, "Ann", "moderator")
    [word] = await client.post(owned, "the owners' word")
    await client.read_all(cat)  # Cat holds the version naming Ann a moderator
    deletion = moderation.sign(reader_key(ann), bytes.fromhex(owned.group_id), core_pb2.MODERATION_KIND_DELETE_POST,
                               message_id=word.message_id)
    hostile.deliveries = [relay_pb2.Delivery(seq=1, post=deletion, message_id=members.item_id(deletion), relay_ts=1)]
    read = await client.read_all(hostile.beside(cat))
    assert "the owners' word" in [p.text for p in read], (read.skipped, read.changes)


async def test_a_removed_member_joins_again_as_a_new_one(relay):
    """Removal is no ban: in an open group the member joins again with its keys and reads
    on, its new stream not ended by the removal before; in a group that takes members by
    approval, the approval it had admits it no more (the owners decide anew)."""
    owned = await client.create_group([relay.link], "Again", GroupKind.GROUP)
    ann = await client.join(owned.link, "Ann")
    await client.post(owned, "hello")
    kept, owner_sees = [], asyncio.create_task(_drain_into(client.follow(owned, max_reconnects=0), []))
    ann_sees = asyncio.create_task(_drain_into(client.follow(ann, max_reconnects=0), kept))
    for _ in range(200):  # bounded: the gateway's tail of the group is up, Ann's stream on it
        if kept:
            break
        await asyncio.sleep(0.05)
    await moderators.remove(owned, "Ann")
    assert await refused(asyncio.wait_for(ann_sees, 60)) == (  # a bound on a hang, not a measure
        Reason.NOT_MEMBER, "removed from this group by its owners or moderators")
    assert await refused(client.read_all(ann)) == (Reason.NOT_MEMBER, "reader is not a member of this group")
    again = await client.join(owned.link, "Ann", known=[ann])
    assert (again.sign_seed, again.status) == (ann.sign_seed, "member")
    await client.post(owned, "welcome back")
    seen = []
    stream = asyncio.create_task(_drain_into(client.follow(again, max_reconnects=0), seen))
    for _ in range(200):  # bounded: until the stream delivered both posts
        if len(seen) == 2:
            break
        await asyncio.sleep(0.05)
    assert (seen, stream.done()) == (["hello", "welcome back"], False)  # the tail that ended her first stream
    stream.cancel()
    owner_sees.cancel()

    closed = await client.create_group([relay.link], "Approved", GroupKind.GROUP, JoinPolicy.APPROVAL)
    bob = await client.join(closed.link, "Bob")
    [waiting] = await client.pending(closed)
    await client.decide(closed, waiting.request_id.hex(), approve=True)
    [shown] = await shown_members(reader_key(closed), closed.relays[0], member=key_of(bob))
    await moderators.remove(closed, "Bob")
    identity = MemberIdentity(sign_seed=unb64(bob.sign_seed), box_secret=unb64(bob.box_secret))
    profile = profile_of(closed)
    _, answer = await join_relay(identity, profile, profile.profile.relays[0], "Bob", approval=shown.approval)
    assert answer.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL


async def test_a_moderator_removed_from_the_group_moderates_no_more(club):
    owned, people = club
    ann, ben = people["Ann"], people["Ben"]
    await moderators.set_role(owned, "Ann", "moderator")
    [ack] = await client.post(ben, "a post")
    await client.read_all(ann)
    await moderators.remove(owned, "Ann")  # the owners remove her, without demoting her first
    assert await refused(moderators.remove(ann, "Ben")) == (Reason.NOT_MEMBER, "reader is not a member of this group")
    envelope = moderation.sign(reader_key(ann), bytes.fromhex(owned.group_id), core_pb2.MODERATION_KIND_DELETE_POST,
                               message_id=ack.message_id)
    entry = owned.relays[0]
    async with client.RelayClient(entry.target) as c:
        assert await refused(c.call("Moderate", relay_pb2.ModerateRequest(group_address=entry.address, envelope=envelope))) == (
            Reason.NOT_ALLOWED, "a moderator that is no member of the group moderates no more")


async def test_a_profile_change_a_relay_misses_is_kept_and_said(relay, ray_session, tmp_path):
    """One relay down: the new version is the owner's once another took it, the one down
    is named, and the next version reaches it."""
    from chatrelay.cluster import up
    from realparts import start_relay

    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    owned = await client.create_group([relay.link, second.link], "Partly", GroupKind.CHANNEL)
    await asyncio.to_thread(up.stop, second, ray_shutdown=False)
    published = await client.set_profile(owned, name="Renamed")
    assert published.version == 3 and profile_of(owned).profile.name == "Renamed"
    assert sorted({(s.item, s.reason) for s in published.skipped}) == [
        (f"relay {relay_name(owned.relays[1])}", Reason.UNAVAILABLE)]
