"""bench/joins.py's reference: a channel on one bare grpc.aio server that the SDK
joins and follows as it does a relay's, and that refuses what a relay refuses (so that
the reference's figure is of the same checks)."""

from __future__ import annotations

import os
import pathlib
import sys

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import joins  # noqa: E402
from members import join_requests  # noqa: E402
from reference import spawned  # noqa: E402

from chatrelay import client, links  # noqa: E402
from chatrelay.checker import StreamCredential  # noqa: E402
from chatrelay import envelope as env  # noqa: E402
from chatrelay.connection import RelayClient, resolve_link  # noqa: E402
from chatrelay.errors import ChatRelayError, Reason  # noqa: E402
from chatrelay.status import from_rpc_error  # noqa: E402
from chatrelay.links import ShortLink  # noqa: E402
from chatrelay.members import MemberIdentity  # noqa: E402
from chatrelay.v1 import relay_pb2  # noqa: E402

ADDRESS = joins.REFERENCE_ADDRESS


@pytest.fixture(scope="module")
async def reference():
    async with spawned(joins.run_channel_reference) as target:
        yield target, await joins.open_reference_channel(target)


async def refusal(target: str, method: str, request) -> tuple[Reason, str]:
    async with RelayClient(target) as c:
        with pytest.raises(ChatRelayError) as refused:
            await c.call(method, request)
    return refused.value.reason, refused.value.message


async def stream_refusal(target: str, credential) -> tuple[Reason, str]:
    async with RelayClient(target) as c:
        await c.open()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in c.subscribe(credential, 0):
                pass
    found = from_rpc_error(refused.value)
    return found.reason, found.message


async def join_request(link: str, address: str = ADDRESS) -> relay_pb2.JoinRequest:
    profile = (await resolve_link(ShortLink.parse(link))).profile
    [request] = join_requests(profile.group_id, address, profile.profile.intake_key, 1)
    return relay_pb2.JoinRequest(envelope=request)


async def test_a_member_joins_and_reads_the_welcome_post_as_at_a_relay(reference):
    _, link = reference
    member = await client.join(link, "reader")
    assert (member.kind, [r.state for r in member.relays]) == ("channel", ["joined"])
    async for post in client.follow(member, max_reconnects=0):
        assert (post.text, post.seq) == ("welcome", 1)
        break


async def test_a_forged_join_is_refused_for_its_signature(reference):
    target, link = reference
    request = await join_request(link)
    request.envelope.signature = bytes(64)
    assert await refusal(target, "Join", request) == (Reason.BAD_SIGNATURE, "chatrelay/v1/join signature is not valid")


async def test_a_join_signed_for_another_domain_is_refused(reference):
    target, link = reference
    request = await join_request(link)
    request.envelope.domain = env.Domain.POST.value
    assert await refusal(target, "Join", request) == (
        Reason.WRONG_DOMAIN, "join request must be signed for chatrelay/v1/join")


async def test_a_forged_credential_gets_no_stream(reference):
    target, _ = reference
    credential = StreamCredential(MemberIdentity.generate().signing_key, ADDRESS).current()
    credential.signature = bytes(64)
    assert await stream_refusal(target, credential) == (
        Reason.BAD_SIGNATURE, "chatrelay/v1/subscribe signature is not valid")


async def test_a_credential_for_another_group_address_gets_no_stream(reference):
    target, _ = reference
    credential = StreamCredential(MemberIdentity.generate().signing_key, "another-address").current()
    assert await stream_refusal(target, credential) == (
        Reason.GROUP_MISMATCH, "credential is for another group address")


async def test_an_unknown_link_is_refused_as_a_relay_refuses_it(reference):
    target, _ = reference
    request = relay_pb2.ResolveLinkRequest(lookup_id=os.urandom(links.LOOKUP_ID_SIZE))
    assert await refusal(target, "ResolveLink", request) == (
        Reason.UNKNOWN_ADDRESS, "no link data here for this link")


async def test_a_join_for_another_group_address_is_refused(reference):
    target, link = reference
    assert await refusal(target, "Join", await join_request(link, "another-address")) == (
        Reason.GROUP_MISMATCH, "join request is for another group address")
