"""Quotas a stranger meets on a real relay (issue 15): what one queue holds unread, the
follow streams one reader key opens, and registrations of all connections together.
Each refusal is RESOURCE_EXHAUSTED with its reason and a retry hint, and another queue
or reader goes on meanwhile."""

from __future__ import annotations

import asyncio
import os
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nacl.signing import SigningKey

from chatrelay import client, connection, contacts, group
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

from realparts import start_relay


def stranger_request(queue: str, size: int = 64) -> relay_pb2.ConnectionRequest:
    """An unsigned connection request, as anyone holding an address may send."""
    body = relay_pb2.ConnectionRequestBody(
        queue_address=queue, sender_key=os.urandom(32), boxed=os.urandom(size), nonce=os.urandom(16))
    return relay_pb2.ConnectionRequest(body=body)


@pytest.fixture
async def small_relay(ray_session, tmp_path):
    from chatrelay.cluster import up

    running = await asyncio.to_thread(
        start_relay, tmp_path / "relay", shards=1, queue_records=3, queue_bytes=4096, streams_per_reader=2,
        registrations_per_second=2, registrations_per_minute=0,
    )
    yield running
    await asyncio.to_thread(up.stop, running, ray_shutdown=False)


async def test_a_full_queue_refuses_more_while_another_queue_takes_them(small_relay):
    full = await contacts.create_address(small_relay.link, "Full")
    other = await contacts.create_address(small_relay.link, "Other")
    async with client.RelayClient(small_relay.target) as relay:
        first = stranger_request(full.queue)
        for request in (first, stranger_request(full.queue), stranger_request(full.queue)):
            await relay.call("RequestConnection", request)
        with pytest.raises(ChatRelayError) as caught:
            await relay.call("RequestConnection", stranger_request(full.queue))
        assert caught.value.reason is Reason.QUOTA_EXCEEDED
        assert caught.value.message.startswith("this queue holds 3 unread requests and messages (")
        with pytest.raises(ChatRelayError) as again:  # the same bytes again are a replay, full or not
            await relay.call("RequestConnection", first)
        assert again.value.reason is Reason.REPLAYED
        await relay.call("RequestConnection", stranger_request(other.queue))  # another queue goes on
        with pytest.raises(ChatRelayError) as big:  # bytes: two of 2 KiB pass 4096 bytes
            await relay.call("RequestConnection", stranger_request(other.queue, 2048))
            await relay.call("RequestConnection", stranger_request(other.queue, 2048))
        assert big.value.reason is Reason.QUOTA_EXCEEDED


async def test_reading_a_connection_queue_makes_room_in_it(small_relay):
    """The bound counts what the owner has not read: a signed read since seq N moves the
    mark, and the queue takes more."""
    address = await contacts.create_address(small_relay.link, "Alice")
    bob = await contacts.connect(address.link, "Bob", "hello")
    alice = await contacts.accept(address, (await contacts.requests(address))[0]["id"])
    assert await contacts.inbox(bob) == ["Alice accepted the connection"]  # read since 0: no mark yet
    for i in range(2):  # with the acceptance, three unread in Bob's queue: its bound
        await contacts.send(alice, f"message {i}")
    with pytest.raises(ChatRelayError) as caught:
        await contacts.send(alice, "one too many")
    assert caught.value.reason is Reason.QUOTA_EXCEEDED
    assert await contacts.inbox(bob) == ["message 0", "message 1"]  # read since 1: the mark moves
    await contacts.send(alice, "after a read")
    assert await contacts.inbox(bob) == ["after a read"]



async def test_a_queue_deletes_what_its_owner_has_read(small_relay):
    """Requests and messages go from the relay once the owner's next read says it has
    them; the client keeps the requests it has not decided, so nothing is lost, and an
    address takes requests for as long as its owner reads it."""
    address = await contacts.create_address(small_relay.link, "Alice")
    owner = SigningKey(unb64(address.owner_seed))
    for i in range(5):  # past the queue's bound of 3, read by read
        await contacts.connect(address.link, f"Guest {i}", f"hello {i}")
        await contacts.requests(address)
    assert [r["name"] for r in await contacts.requests(address)] == [f"Guest {i}" for i in range(5)]
    assert await contacts._read(address.target, owner, address.queue, 0) == []  # all of it read: gone
    contact = await contacts.accept(address, next(iter(address.waiting)))
    assert contact.name == "Guest 0" and len(address.waiting) == 4

async def test_one_reader_opens_its_streams_up_to_the_bound_and_another_still_opens(small_relay):
    owned = await client.create_group([small_relay.link], "Streams", GroupKind.CHANNEL)
    await client.post(owned, "first")
    greedy, other = await client.join(owned.link, "greedy"), await client.join(owned.link, "other")
    address = owned.relays[0].address

    def subscribe(stub, member):
        return stub.Subscribe(relay_pb2.SubscribeRequest(
            credential=client.credential(SigningKey(unb64(member.sign_seed)), address)))

    async with await connection.open_channel(small_relay.target) as channel:
        stub = relay_pb2_grpc.RelayServiceStub(channel)
        held = [subscribe(stub, greedy), subscribe(stub, greedy)]
        for call in held:
            assert (await call.read()).deliveries[0].seq == 1
        third = subscribe(stub, greedy)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await third.read()
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_details_pb2.ErrorInfo()
        rpc_status.from_call(caught.value).details[0].Unpack(info)
        assert (info.reason, info.metadata["retry_after_ms"]) == ("quota_exceeded", "5000")
        theirs = subscribe(stub, other)  # another reader is not held to the first one's streams
        assert (await theirs.read()).deliveries[0].seq == 1
        held[0].cancel()
        reopened = None
        for _ in range(50):  # the gateway counts the closed stream out as it ends
            reopened = subscribe(stub, greedy)
            try:
                assert (await reopened.read()).deliveries[0].seq == 1
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("a stream closed, and still no new one could open")
        for call in (held[1], theirs, reopened):
            call.cancel()


async def test_registrations_of_everyone_together_are_bound_a_second(small_relay):
    info = await client.relay_info(small_relay.link)

    def registration(i: int) -> relay_pb2.RegisterGroupRequest:
        _, signed = group.create_group(GroupKind.GROUP, f"g{i}")
        key = SigningKey.generate()
        body = relay_pb2.RegisterGroupBody(profile=signed, registration_key=bytes(key.verify_key),
                                           nonce=os.urandom(16), timestamp=int(time.time()))
        return relay_pb2.RegisterGroupRequest(envelope=env.sign_message(key, env.Domain.REGISTER, body))

    async def register_once(request):
        async with client.RelayClient(info.target) as own:  # each from a connection of its own, tried once
            try:
                await own.call("RegisterGroup", request)
                return "registered"
            except ChatRelayError as exc:
                return (exc.reason, exc.message, exc.retry_after_ms > 0)
    results = await asyncio.gather(*(register_once(registration(i)) for i in range(6)))
    refused = [r for r in results if r != "registered"]
    assert results.count("registered") >= 2 and refused
    assert set(refused) == {
        (Reason.RATE_LIMITED, "this relay takes at most 2 registrations a second; retry in a moment", True)}

    async def register(i):  # the SDK waits out a relay-wide rate that frees up within a moment
        secrets, signed = group.create_group(GroupKind.GROUP, f"sdk {i}")
        async with client.RelayClient(info.target) as own:
            return await client.register(own, info, signed, secrets.group_id)
    assert len(await asyncio.gather(*(register(i) for i in range(4)))) == 4
