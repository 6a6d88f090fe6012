"""The owners' service log says what happened (issue 18): each owner command with its real
outcome, and the relay's own notices: joins refused (also those held while the group was
pending), posts refused for the group's rules or a member's rate, at most one notice a
kind and reason a minute. A rejected member is told the owners' reason."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from chatrelay import client, group, members
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.members import MemberIdentity
from chatrelay.v1 import core_pb2, relay_pb2


def said(entries) -> list[str]:
    """Each entry as the owners read it: a command's kind and outcome, or a notice."""
    out = []
    for _, e in entries:
        if e.HasField("notice"):
            out.append(f"{e.notice.kind}: {e.notice.text}")
        else:
            kind = relay_pb2.OwnerCommandKind.Name(relay_pb2.OwnerCommandBody.FromString(e.command.body).kind)
            out.append(f"{kind.removeprefix('OWNER_COMMAND_KIND_').lower()}: {e.outcome}")
    return out


async def refused(coro) -> tuple[Reason, str]:
    with pytest.raises(ChatRelayError) as info:
        await coro
    return info.value.reason, info.value.message


async def test_a_rejected_member_is_told_why_and_the_log_says_what_each_command_did(relay):
    owned = await client.create_group([relay.link], "Choosy", GroupKind.GROUP, JoinPolicy.APPROVAL)
    bob = await client.join(owned.link, "Bob")
    [waiting] = await client.pending(owned)
    with pytest.raises(ChatRelayError) as info:
        await client.decide(owned, waiting.request_id.hex(), approve=False, reason="x" * 501)
    assert (info.value.reason, info.value.message) == (Reason.MALFORMED, "a reason is at most 500 characters, got 501")
    await client.decide(owned, waiting.request_id.hex(), approve=False, reason="members only")
    assert await refused(client.join(owned.link, "Bob", known=[bob])) == (
        Reason.REFUSED, "the owners refused the join: members only")
    assert await refused(client.read_all(bob)) == (Reason.NOT_MEMBER, "the owners rejected this key's join")
    assert list(await client.pending(owned)) == []
    await client.suspend(owned)
    await client.resume(owned)
    assert said(await client.service_log(owned)) == [
        "update_profile: profile v2, group active", "reject_join: join rejected: members only",
        "suspend: group suspended", "resume: group active"]


async def test_refused_joins_and_posts_reach_the_owners_once_a_minute_each(relay):
    owned = await client.create_group([relay.link], "Closed", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
    for _ in range(3):  # three strangers, one notice
        assert await refused(client.join(owned.link, "stranger")) == (
            Reason.NOT_ALLOWED, "this group takes members by invite only")
    member = await client.join(client.make_invite(owned), "invited")
    await client.set_profile(owned, max_post_bytes=5)
    assert await refused(client.post(member, "too long")) == (
        Reason.TOO_LARGE, "post is 8 bytes; the group's rules allow at most 5")
    assert said(await client.service_log(owned))[1:] == [
        "join_refused: 1 join refused: this group takes members by invite only (not_allowed)",
        "update_profile: profile v3",
        "post_refused: 1 post refused: post is 8 bytes; the group's rules allow at most 5 (too_large)"]


async def test_a_join_held_while_pending_and_refused_at_activation_is_reported(relay):
    """Before, a held join the relay refused once the group was active left no trace the
    owners could read."""
    info = await client.relay_info(relay.link)
    secrets, signed = group.create_group(GroupKind.GROUP, "Early", join=JoinPolicy.INVITE_ONLY)
    async with client.RelayClient(info.target) as c:
        address, state = await client.register(c, info, signed, secrets.group_id)
        assert state == relay_pb2.GROUP_STATE_PENDING
        profile = group.verify_profile(signed)
        request = members.join_request(MemberIdentity.generate(), secrets.group_id, address,
                                       profile.profile.intake_key, "early")
        held = await c.call("Join", relay_pb2.JoinRequest(envelope=request))
        assert held.status == relay_pb2.JOIN_STATUS_HELD
        refs = [core_pb2.RelayRef(relay_key=info.relay_key, relay_link=relay.link, group_address=address)]
        await client.owner_command(c, secrets.owner_key, address, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE,
                                   profile=group.next_version(secrets.owner_key, profile, relays=refs))
        entries = []
        for _ in range(100):  # bounded: the worker drains held joins after activation
            body = relay_pb2.OwnerReadBody(group_address=address, nonce=os.urandom(16), timestamp=int(time.time()))
            read = env.sign_message(secrets.owner_key, env.Domain.OWNER_READ, body)
            entries = (await c.call("ReadServiceLog", relay_pb2.ServiceLogRequest(envelope=read))).entries
            if len(entries) == 2:
                break
            await asyncio.sleep(0.05)
    assert [(e.notice.kind, e.notice.text) for e in entries[1:]] == [
        ("join_refused", "1 join refused: this group takes members by invite only (not_allowed)")]
