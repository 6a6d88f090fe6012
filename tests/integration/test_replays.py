"""Capture and replay, for every call that changes something on a relay (issue 15): each
request is taken once; the same bytes again are refused as `replayed`, and one signed
outside the freshness window as `stale`. Posts are checked in the group relay's tests
(a post again is the same post: its old seq, nothing appended; an old one is stale)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from nacl.signing import SigningKey

from chatrelay import admin_client, client, contacts, group, members
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, create_group
from chatrelay.members import MemberIdentity
from chatrelay.state import unb64
from chatrelay.v1 import core_pb2, relay_pb2
from realparts import start_relay

LONG_AGO = 1_000_000  # 1970: far outside any freshness window
FORGETS_S = 10  # the shortest --freshness


async def replayed(relay, method: str, request) -> None:
    """Send `request`, then the very same bytes again: the second is refused."""
    async with client.RelayClient(relay.target) as c:
        await c.call(method, request)
        with pytest.raises(ChatRelayError) as caught:
            await c.call(method, request)
    assert caught.value.reason is Reason.REPLAYED
    assert caught.value.message.endswith(" was taken already; a new one needs a new nonce and signature")


async def stale(relay, method: str, request, what: str) -> None:
    async with client.RelayClient(relay.target) as c:
        with pytest.raises(ChatRelayError) as caught:
            await c.call(method, request)
    assert caught.value.reason is Reason.STALE
    assert caught.value.message.startswith(f"{what} was signed ")


def registration(timestamp: int) -> relay_pb2.RegisterGroupRequest:
    _, signed = create_group(GroupKind.CHANNEL, "Captured")
    key = SigningKey.generate()
    body = relay_pb2.RegisterGroupBody(profile=signed, registration_key=bytes(key.verify_key),
                                       nonce=os.urandom(16), timestamp=timestamp)
    return relay_pb2.RegisterGroupRequest(envelope=env.sign_message(key, env.Domain.REGISTER, body))


async def test_a_registration(relay):
    await replayed(relay, "RegisterGroup", registration(int(time.time())))
    await stale(relay, "RegisterGroup", registration(LONG_AGO), "registration")


def owner_command(owned, timestamp: int) -> relay_pb2.OwnerCommandRequest:
    body = relay_pb2.OwnerCommandBody(
        group_address=owned.relays[0].address, command_id=os.urandom(16), kind=relay_pb2.OWNER_COMMAND_KIND_SUSPEND,
        nonce=os.urandom(16), timestamp=timestamp)
    envelope = env.sign_message(SigningKey(unb64(owned.owner_seed)), env.Domain.OWNER_COMMAND, body)
    return relay_pb2.OwnerCommandRequest(envelope=envelope)


def join(owned, timestamp: int) -> relay_pb2.JoinRequest:
    member = MemberIdentity.generate()
    verified = group.verify_profile(env.decode(unb64(owned.profile)))
    envelope = members.join_request(member, verified.group_id, owned.relays[0].address,
                                    verified.profile.intake_key, "Mallory")
    body = core_pb2.JoinBody.FromString(envelope.body)
    body.timestamp = timestamp
    return relay_pb2.JoinRequest(envelope=env.sign_message(member.signing_key, env.Domain.JOIN, body))


def store_link(owned, timestamp: int) -> relay_pb2.StoreLinkRequest:
    from chatrelay import links

    bundle = links.group_link(owned.secrets(), env.decode(unb64(owned.profile)), ["127.0.0.1:7223"])
    body = relay_pb2.StoreLinkBody(lookup_id=bundle.lookup_id, ciphertext=bundle.ciphertext,
                                   nonce=os.urandom(16), timestamp=timestamp, version=bundle.version)
    envelope = env.sign_message(SigningKey(unb64(owned.owner_seed)), env.Domain.LINK_STORE, body)
    return relay_pb2.StoreLinkRequest(envelope=envelope)


@pytest.mark.parametrize("method, make, what, kind", [
    ("OwnerCommand", owner_command, "owner command", GroupKind.GROUP),
    ("Join", join, "join request", GroupKind.CHANNEL),
    ("StoreLink", store_link, "link store", GroupKind.CHANNEL),
])
async def test_a_call_for_a_group(relay, method, make, what, kind):
    owned = await client.create_group([relay.link], what, kind)
    await replayed(relay, method, make(owned, int(time.time())))
    await stale(relay, method, make(owned, LONG_AGO), what)


def create_queue(timestamp: int) -> relay_pb2.CreateQueueRequest:
    body = relay_pb2.CreateQueueBody(kind=core_pb2.LINK_KIND_CONTACT, queue_id=os.urandom(16),
                                     nonce=os.urandom(16), timestamp=timestamp)
    envelope = env.sign_message(SigningKey.generate(), env.Domain.QUEUE_CREATE, body)
    return relay_pb2.CreateQueueRequest(envelope=envelope)


async def test_a_queue_created(relay):
    await replayed(relay, "CreateQueue", create_queue(int(time.time())))
    await stale(relay, "CreateQueue", create_queue(LONG_AGO), "queue request")


async def test_a_connection_request_and_a_queue_message(relay):
    address = await contacts.create_address(relay.link, "Alice")
    request = relay_pb2.ConnectionRequest(body=relay_pb2.ConnectionRequestBody(
        queue_address=address.queue, sender_key=os.urandom(32), boxed=os.urandom(64), nonce=os.urandom(16)))
    await replayed(relay, "RequestConnection", request)
    body = relay_pb2.QueueSendBody(queue_address=address.queue, boxed=os.urandom(64), nonce=os.urandom(16),
                                   timestamp=int(time.time()))
    message = relay_pb2.SendQueueRequest(envelope=env.sign_message(SigningKey.generate(), env.Domain.QUEUE_SEND, body))
    await replayed(relay, "SendQueue", message)



async def held(address) -> list[relay_pb2.QueueMessage]:
    return await contacts._read(address.target, SigningKey(unb64(address.owner_seed)), address.queue, 0)


async def test_a_connection_request_with_another_nonce_is_the_same_request(relay):
    """A connection request is unsigned, so anyone on the way may change its nonce: it is
    still the one request, refused as replayed and held once."""
    address = await contacts.create_address(relay.link, "Alice")
    body = relay_pb2.ConnectionRequestBody(
        queue_address=address.queue, sender_key=os.urandom(32), boxed=os.urandom(64), nonce=os.urandom(16))
    async with client.RelayClient(relay.target) as c:
        first = await c.call("RequestConnection", relay_pb2.ConnectionRequest(body=body))
        body.nonce = os.urandom(16)
        with pytest.raises(ChatRelayError) as caught:
            await c.call("RequestConnection", relay_pb2.ConnectionRequest(body=body))
    assert caught.value.reason is Reason.REPLAYED
    assert [m.request_id for m in await held(address)] == [first.request_id]


@pytest.fixture
async def forgetful_relay(ray_session, tmp_path):
    """A relay whose gateway remembers requests for the shortest window it takes."""
    from chatrelay.cluster import up

    running = await asyncio.to_thread(start_relay, tmp_path / "relay", shards=1, freshness_s=FORGETS_S)
    yield running
    await asyncio.to_thread(up.stop, running, ray_shutdown=False)


async def test_a_replay_the_gateway_forgot_changes_nothing(forgetful_relay):
    """Past the gateway's memory (another gateway of the relay, a restart, or here its
    window gone by), a connection request sent again is still taken once: the queue holds
    it under its id, and answers with the first. A queue message, signed with its time,
    is stale by then."""
    address = await contacts.create_address(forgetful_relay.link, "Alice")
    request = relay_pb2.ConnectionRequest(body=relay_pb2.ConnectionRequestBody(
        queue_address=address.queue, sender_key=os.urandom(32), boxed=os.urandom(64), nonce=os.urandom(16)))
    body = relay_pb2.QueueSendBody(queue_address=address.queue, boxed=os.urandom(64), nonce=os.urandom(16),
                                   timestamp=int(time.time()))
    message = relay_pb2.SendQueueRequest(envelope=env.sign_message(SigningKey.generate(), env.Domain.QUEUE_SEND, body))
    async with client.RelayClient(forgetful_relay.target) as c:
        acked = await c.call("RequestConnection", request)
        sent = await c.call("SendQueue", message)
        await asyncio.sleep(FORGETS_S + 0.5)  # the window gone by: the gateway no longer knows them
        assert (await c.call("RequestConnection", request)).request_id == acked.request_id
        with pytest.raises(ChatRelayError) as caught:
            await c.call("SendQueue", message)
    assert caught.value.reason is Reason.STALE
    assert [m.seq for m in await held(address)] == [1, sent.seq]


async def test_a_direct_invitation(relay):
    owned = await client.create_group([relay.link], "Direct", GroupKind.GROUP, direct_messages=True)
    sender, recipient = await client.join(owned.link, "Sender"), await client.join(owned.link, "Recipient")
    body = relay_pb2.DirectInvitationBody(
        group_address=owned.relays[0].address, to_member=bytes(SigningKey(unb64(recipient.sign_seed)).verify_key),
        sealed=os.urandom(96), nonce=os.urandom(16), timestamp=int(time.time()))
    envelope = env.sign_message(SigningKey(unb64(sender.sign_seed)), env.Domain.DIRECT_INVITATION, body)
    await replayed(relay, "SendDirectInvitation", relay_pb2.DirectInvitationRequest(envelope=envelope))


async def test_an_admin_move(relay):
    owned = await client.create_group([relay.link], "Moved", GroupKind.CHANNEL)
    key = SigningKey(open(os.path.join(relay.config.data_dir, "operator.key"), "rb").read())
    envelope = admin_client.request(key, "MoveGroup", group_address=owned.relays[0].address, to_shard=1)
    request = relay_pb2.MoveGroupRequest(envelope=envelope)
    async with admin_client.AdminClient(relay.target, key) as admin:
        await admin._call("MoveGroup", request)
        with pytest.raises(ChatRelayError) as caught:
            await admin._call("MoveGroup", request)
    assert (caught.value.reason, caught.value.message) == (
        Reason.REPLAYED, "admin request was taken already; a new one needs a new nonce and signature")


async def test_a_request_that_failed_may_be_sent_again_as_it_was(relay):
    """Only a request the relay took is remembered: one refused (here, for a queue that
    is not there yet) is not a replay when it comes again."""
    body = relay_pb2.QueueSendBody(queue_address="A" * 22, boxed=os.urandom(64), nonce=os.urandom(16),
                                   timestamp=int(time.time()))
    message = relay_pb2.SendQueueRequest(envelope=env.sign_message(SigningKey.generate(), env.Domain.QUEUE_SEND, body))
    async with client.RelayClient(relay.target) as c:
        for _ in range(2):
            with pytest.raises(ChatRelayError) as caught:
                await c.call("SendQueue", message)
            assert caught.value.reason is Reason.UNKNOWN_ADDRESS


async def test_the_sdk_signs_anew_when_it_tries_again(relay):
    """Registration and joins are sent again after a lost answer: each try is a new
    signed request, so none of them is refused as a replay."""
    sent = []
    async with client.RelayClient(relay.target) as c:
        info = await client.relay_info(relay.link)
        secrets, signed = create_group(GroupKind.CHANNEL, "Twice")
        original = c.call

        async def call_twice(method, request, **kwargs):
            first = await original(method, request, **kwargs)  # the answer "lost": asked again
            sent.append(first)
            return await original(method, request, **kwargs)
        c.call = call_twice
        address, _ = await client.register(c, info, signed, secrets.group_id)
    checked, grant = env.verify_message(sent[0].address, env.Domain.ADDRESS, relay_pb2.AddressGrant, "grant")
    assert address == grant.group_address  # the second try got the first one's address
