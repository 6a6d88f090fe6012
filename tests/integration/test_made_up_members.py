"""A relay that invents members (issue 16): in a group, every author of a post is shown
admitted by what it and the owners signed. A hostile relay, built in the test, serves
genuine posts taken from a real relay among posts of members it made up; every reader
(`read_all`, `follow`, `chatrelay read`) shows the genuine ones and skips exactly the
forged ones, with `not_a_member` and what failed."""

from __future__ import annotations

import asyncio

import pytest
from nacl.signing import SigningKey

from chatrelay import client, direct, group, members, state
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.members import MemberIdentity
from chatrelay.state import unb64
from chatrelay.v1 import core_pb2, relay_pb2

from hostile import HostileRelay
from realparts import cli

NEVER_JOINED = "never joined: no signed join of this key"
NOT_APPROVED = "joined without an owner's approval, in a group that takes members by approval"
OTHERS_APPROVAL = "its approval admits another member"
OTHERS_INVITE = "its invite does not check out: joiner does not hold the invite key"


@pytest.fixture
async def hostile():
    relay = await HostileRelay().start()
    yield relay
    await relay.stop()


async def shown(relay, reader, member) -> relay_pb2.MemberAdmission:
    """What the real relay shows of `member` to `reader`."""
    key = client.reader_key(reader)
    request = relay_pb2.MemberKeysRequest(credential=client.credential(key, reader.relays[0].address),
                                          member=bytes(client.reader_key(member).verify_key))
    async with client.RelayClient(relay.target) as c:
        [admission] = (await c.call("MemberKeys", request)).members
    return admission


def intake_key(owned) -> bytes:
    return group.verify_profile(env.decode(unb64(owned.profile))).profile.intake_key


def forged_join(owned, name: str) -> tuple[MemberIdentity, relay_pb2.MemberAdmission]:
    """A member the relay makes up: a key of its own, and a join it signs with it."""
    forged = MemberIdentity.generate()
    profile = members.join_request(forged, bytes.fromhex(owned.group_id), owned.relays[0].address,
                                   intake_key(owned), name)
    return forged, relay_pb2.MemberAdmission(join=profile)


def forged_post(owned, forged: MemberIdentity, text: str):
    return members.sign_post(forged.signing_key, bytes.fromhex(owned.group_id), text.encode())


async def test_members_made_up_by_a_relay_are_skipped_by_every_reader(relay, hostile, tmp_path):
    owned = await client.create_group([relay.link], "Club", GroupKind.GROUP, JoinPolicy.APPROVAL)
    ann, ben = await client.join(owned.link, "Ann"), await client.join(owned.link, "Ben")
    for waiting in await client.pending(owned):
        await client.decide(owned, waiting.request_id.hex(), approve=True)
    await client.post(owned, "welcome")
    await client.post(ann, "hi from Ann")
    await client.post(owned, "last")
    genuine = {p.text: p for p in await client.read_all(ben)}
    assert list(genuine) == ["welcome", "hi from Ann", "last"]  # the real relay shows Ann admitted
    anns = await shown(relay, ben, ann)
    assert anns.HasField("approval")

    never, _ = forged_join(owned, "Ann")
    unapproved, unapproved_join = forged_join(owned, "Ann")
    borrowed, borrowed_join = forged_join(owned, "Ann")
    borrowed_join.approval.CopyFrom(anns.approval)  # an owner's real approval, of Ann
    hostile.admissions = [anns, unapproved_join, borrowed_join]
    delivered = [
        genuine["welcome"], forged_post(owned, never, "made up 1"), genuine["hi from Ann"],
        forged_post(owned, unapproved, "made up 2"), forged_post(owned, borrowed, "made up 3"), genuine["last"],
    ]
    for seq, item in enumerate(delivered, 1):
        post = item if not isinstance(item, client.ReceivedPost) else await _envelope(relay, ben, item.seq)
        hostile.post(seq, post)
    victim = hostile.serving(ben)
    where = hostile.target.split("@")[1]
    expected = [(f"post 2 at {where}", NEVER_JOINED), (f"post 4 at {where}", NOT_APPROVED),
                (f"post 5 at {where}", OTHERS_APPROVAL)]

    posts = await client.read_all(victim)
    assert [p.text for p in posts] == ["welcome", "hi from Ann", "last"]
    assert [(s.item, s.message) for s in posts.skipped] == expected
    assert {s.reason for s in posts.skipped} == {Reason.NOT_MEMBER}

    followed, skipped = [], []
    async for p in client.follow(victim, max_reconnects=0, on_skip=skipped.append):
        followed.append(p.text)
        if p.text == "last":
            break
    assert followed == ["welcome", "hi from Ann", "last"]
    assert [(s.item, s.message) for s in skipped] == expected

    path = tmp_path / "ben.json"
    state.save(path, state.State(memberships=[victim]))
    read = await asyncio.to_thread(cli, "read", "--state", str(path))
    assert read.returncode == 0 and read.stdout.splitlines() == ["welcome", "hi from Ann", "last"]
    assert read.stderr.splitlines() == [f"chatrelay: skipped {item}: {message} (not_a_member)" for item, message in expected]


async def test_a_member_made_up_with_another_members_invite_is_skipped(relay, hostile):
    owned = await client.create_group([relay.link], "Inner", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
    ann = await client.join(client.make_invite(owned), "Ann")
    await client.post(ann, "hi from Ann")
    anns = await shown(relay, ann, ann)
    forged, forged_admission = forged_join(owned, "Ann")
    body = core_pb2.JoinBody.FromString(anns.join.body)  # Ann's proof, copied into a join of its own
    forged_admission.join.CopyFrom(members.join_request(
        forged, bytes.fromhex(owned.group_id), owned.relays[0].address,
        intake_key(owned), "Ann", invite=body.invite))
    hostile.admissions = [anns, forged_admission]
    hostile.post(1, await _envelope(relay, ann, 1))
    hostile.post(2, forged_post(owned, forged, "made up"))
    posts = await client.read_all(hostile.serving(ann))
    assert [p.text for p in posts] == ["hi from Ann"]
    assert [(s.reason, s.message) for s in posts.skipped] == [(Reason.NOT_MEMBER, OTHERS_INVITE)]


async def _envelope(relay, reader, seq: int):
    """The signed post at `seq` as the real relay keeps it."""
    request = relay_pb2.HistoryRequest(
        credential=client.credential(SigningKey(unb64(reader.sign_seed)), reader.relays[0].address),
        before_seq=seq + 1, limit=1)
    async with client.RelayClient(relay.target) as c:
        [delivery] = (await c.call("History", request)).deliveries
    assert delivery.seq == seq
    return delivery.post


async def test_a_display_name_collision_never_sends_a_direct_invitation_to_the_wrong_key(relay, hostile, tmp_path):
    owned = await client.create_group([relay.link], "Street", GroupKind.GROUP, direct_messages=True)
    ann = await client.join(owned.link, "Ann")
    ben, impostor = await client.join(owned.link, "Ben"), await client.join(owned.link, "Ben")
    bens = sorted(f"Ben#{direct.fingerprint(bytes(client.reader_key(m).verify_key))}" for m in (ben, impostor))

    path = tmp_path / "ann.json"
    state.save(path, state.State(memberships=[ann]))
    refused = await asyncio.to_thread(cli, "dm", "Ben", "hi Ben", "--state", str(path))
    assert refused.returncode == 2
    assert refused.stderr == f"chatrelay: several members are named 'Ben' ({', '.join(bens)}): name one of them so (refused)\n"
    assert await direct.direct_invitations(ben) == [] and await direct.direct_invitations(impostor) == []

    real = f"Ben#{direct.fingerprint(bytes(client.reader_key(ben).verify_key))}"
    sent = await asyncio.to_thread(cli, "dm", real, "hi Ben", "--state", str(path))
    assert sent.returncode == 0, sent.stderr
    assert await direct.direct_invitations(impostor) == []
    [invitation] = await direct.direct_invitations(ben)
    assert (invitation.name, invitation.message) == ("Ann", "hi Ben")

    # A relay that hides the real Ben and shows one of its own has nobody to send to.
    approval_group = await client.create_group([relay.link], "Club", GroupKind.GROUP, JoinPolicy.APPROVAL,
                                               direct_messages=True)
    eve = await client.join(approval_group.link, "Eve")
    for waiting in await client.pending(approval_group):
        await client.decide(approval_group, waiting.request_id.hex(), approve=True)
    _, made_up = forged_join(approval_group, "Ben")  # joined, but no owner approved it
    hostile.admissions = [made_up]
    with pytest.raises(ChatRelayError) as info:
        await direct.send_direct_invitation(hostile.serving(eve), "Ben", "hi")
    assert (info.value.reason, info.value.message) == (Reason.NOT_MEMBER, "no member 'Ben' in this group that checks out")



async def test_a_bad_or_refusing_relay_never_stops_the_others(relay, hostile):
    """Several relays: `read` merges and dedupes, skipping what one relay forged; `post`
    goes to every relay, reports the one that refused, and succeeds where one took it."""
    owned = await client.create_group([relay.link], "Pair", GroupKind.GROUP)
    ann = await client.join(owned.link, "Ann")
    await client.post(ann, "one")
    await client.post(owned, "two")
    tampered = relay_pb2.Delivery()
    tampered.CopyFrom(relay_pb2.Delivery(seq=3, post=await _envelope(relay, ann, 2)))
    body = core_pb2.PostBody.FromString(tampered.post.body)
    body.body = b"swapped"
    tampered.post.body = body.SerializeToString()
    for seq in (1, 2):
        hostile.post(seq, await _envelope(relay, ann, seq))
    hostile.deliveries.append(tampered)
    hostile.admissions = [await shown(relay, ann, ann)]
    both = hostile.beside(ann)
    where = hostile.target.split("@")[1]

    posts = await client.read_all(both)
    assert [p.text for p in posts] == ["one", "two"]  # each once, from either relay
    assert [(s.item, s.reason) for s in posts.skipped] == [(f"post 3 at {where}", Reason.BAD_SIGNATURE)]

    hostile.refusal = ChatRelayError(Reason.NOT_ALLOWED, "no posts from you")
    acks = await client.post(both, "three")
    assert len(acks) == 1 and [(s.item, s.reason, s.message) for s in acks.skipped] == [
        (f"relay {where}", Reason.NOT_ALLOWED, "no posts from you")]
    assert [p.text for p in await client.read_all(ann)] == ["one", "two", "three"]
    with pytest.raises(ChatRelayError) as info:  # no relay took it: the refusal
        await client.post(hostile.serving(ann), "four")
    assert (info.value.reason, info.value.message) == (Reason.NOT_ALLOWED, "no posts from you")
