"""The cluster end to end through the client SDK: real Ray, real gRPC on loopback."""

from __future__ import annotations

import asyncio
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatrelay import client, connection, group, members
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64
from chatrelay.status import from_rpc_error
from chatrelay.v1 import relay_pb2, relay_pb2_grpc
from nacl.signing import SigningKey

from realparts import follow_into


async def test_health_and_reflection_are_served(relay):
    async with await connection.open_channel(relay.target, options=[]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("chatrelay.v1.RelayService", "chatrelay.v1.AdminService"):  # each the relay serves
            response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        async for reply in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert "chatrelay.v1.RelayService" in names


async def test_members_before_and_after_100_posts_read_all_in_order(relay):
    owned = await client.create_group([relay.link], "Hundred", GroupKind.CHANNEL)
    assert [e.state for e in owned.relays] == ["active"]
    early = await client.join(owned.link, "early")
    acks = []
    for i in range(100):
        acks.extend(await client.post(owned, f"post {i}"))
    assert [a.seq for a in acks] == list(range(1, 101))
    late = await client.join(owned.link, "late")
    expected = [f"post {i}" for i in range(100)]
    for member in (early, late):
        posts = await client.read_all(member)
        assert [p.text for p in posts] == expected
        assert [p.seq for p in posts] == list(range(1, 101))
        assert {p.author for p in posts} == {bytes(SigningKey(unb64(owned.owner_seed)).verify_key)}


async def test_follow_streams_new_posts_without_gaps(relay):
    owned = await client.create_group([relay.link], "Live", GroupKind.CHANNEL)
    member = await client.join(owned.link, "bob")
    await client.post(owned, "before")
    received = []
    task = asyncio.create_task(follow_into(member, received, 21, max_reconnects=3))
    for i in range(20):
        await client.post(owned, f"live {i}")
    await asyncio.wait_for(task, timeout=30)
    assert received == ["before"] + [f"live {i}" for i in range(20)]


async def _raw_post(relay, address, envelope):
    async with client.RelayClient(relay.target) as c:
        return await c.post(address, envelope)


async def test_only_owners_post_to_a_channel(relay):
    owned = await client.create_group([relay.link], "Owners only", GroupKind.CHANNEL)
    member = await client.join(owned.link, "mallory")
    signed = members.sign_post(SigningKey(unb64(member.sign_seed)), bytes.fromhex(owned.group_id), b"hi")
    with pytest.raises(ChatRelayError) as info:
        await _raw_post(relay, owned.relays[0].address, signed)
    assert info.value.reason is Reason.NOT_ALLOWED
    assert info.value.message == "only owners post in a channel"
    assert await client.read_all(member) == []


async def test_bad_posts_are_refused_with_a_clear_reason(relay):
    owned = await client.create_group([relay.link], "Strict", GroupKind.CHANNEL)
    address = owned.relays[0].address
    owner = SigningKey(unb64(owned.owner_seed))
    group_id = bytes.fromhex(owned.group_id)

    unsigned = members.sign_post(owner, group_id, b"hi")
    unsigned.signature = b""
    with pytest.raises(ChatRelayError) as info:
        await _raw_post(relay, address, unsigned)
    assert (info.value.reason, info.value.message) == (Reason.BAD_SIGNATURE, "post is not signed")

    forged = members.sign_post(owner, group_id, b"hi")
    forged.body = forged.body + b"\x00"
    with pytest.raises(ChatRelayError) as info:
        await _raw_post(relay, address, forged)
    assert info.value.reason is Reason.BAD_SIGNATURE

    from chatrelay.v1 import core_pb2

    body = core_pb2.PostBody(group_id=group_id, body=b"x" * (16 * 1024 + 1), client_ts=1, nonce=os.urandom(16))
    big = env.sign(owner, env.Domain.POST, body.SerializeToString())  # under the envelope bound
    with pytest.raises(ChatRelayError) as info:
        await _raw_post(relay, address, big)
    assert info.value.reason is Reason.TOO_LARGE
    assert info.value.message == "post is 16385 bytes; at most 16384 allowed"

    with pytest.raises(ChatRelayError) as info:
        await _raw_post(relay, "no-such-address", members.sign_post(owner, group_id, b"hi"))
    assert (info.value.reason, info.value.message) == (Reason.UNKNOWN_ADDRESS, "no group at this address")


async def test_refusals_carry_grpc_codes(relay):
    async with await connection.open_channel(relay.target, options=[]) as channel:
        stub = relay_pb2_grpc.RelayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Post(relay_pb2.PostRequest(group_address="nowhere", envelope=members.sign_post(
                SigningKey.generate(), bytes(32), b"x")), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert from_rpc_error(info.value).reason is Reason.UNKNOWN_ADDRESS


async def test_an_acked_post_survives_killing_its_shard(relay, ray_session):
    ray = ray_session
    owned = await client.create_group([relay.link], "Durable", GroupKind.CHANNEL)
    member = await client.join(owned.link, "m")
    before = await client.post(owned, "acked before the kill")
    assert before[0].seq == 1
    for shard in relay.shards:  # whichever owns the group: kill right after the ack
        ray.kill(shard, no_restart=False)
    after = await client.post(owned, "after the restart")  # the gateway rides out the restart
    assert after[0].seq == 2
    posts = await client.read_all(member)
    assert [p.text for p in posts] == ["acked before the kill", "after the restart"]


async def test_retention_keeps_the_newest_posts(ray_session, tmp_path):
    from realparts import start_relay

    from chatrelay.cluster import up

    small = await asyncio.to_thread(start_relay, tmp_path / "small", retention=10)
    try:
        owned = await client.create_group([small.link], "Short memory", GroupKind.CHANNEL)
        member = await client.join(owned.link, "m")
        for i in range(30):
            await client.post(owned, f"p{i}")
        texts = [p.text for p in await client.read_all(member)]
        assert texts[-10:] == [f"p{i}" for i in range(20, 30)]
        assert "p0" not in texts and len(texts) < 30
    finally:
        await asyncio.to_thread(up.stop, small, ray_shutdown=False)


@pytest.mark.parametrize("service, method, streaming, message", [
    ("RelayService", "Post", False, "PostRequest"),
    ("RelayService", "RegisterGroup", False, "RegisterGroupRequest"),
    ("RelayService", "Subscribe", True, "SubscribeRequest"),
    ("RelayService", "ReadQueue", True, "ReadQueueRequest"),
    ("AdminService", "Status", False, "StatusRequest"),
])
async def test_an_undecodable_request_is_malformed_and_names_no_internals(relay, service, method, streaming, message):
    garbage = b"\xff\xff\xff\xff not a message"
    async with await connection.open_channel(relay.target, options=[]) as channel:
        make = channel.unary_stream if streaming else channel.unary_unary
        call = make(f"/chatrelay.v1.{service}/{method}", request_serializer=bytes, response_deserializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if streaming:
                async for _ in call(garbage, timeout=10):
                    pass
            else:
                await call(garbage, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == f"request is malformed: it is not a chatrelay.v1.{message}"
    assert from_rpc_error(caught.value).reason is Reason.MALFORMED


async def test_silent_and_idle_connections_are_closed(ray_session, tmp_path):
    """500 connections that never speak are closed after the handshake timeout, and an
    HTTP/2 connection with no call going on after the idle timeout; a client's channel
    then simply connects again."""
    import socket
    import time

    from chatrelay.cluster import up
    from realparts import start_relay

    running = await asyncio.to_thread(
        start_relay, tmp_path / "relay", shards=1, handshake_timeout_s=1.0, idle_timeout_s=2.0)
    host, port = running.address.rsplit(":", 1)
    silent = []
    try:
        for _ in range(500):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.settimeout(0.0)
            silent.append(s)

        def closed(s: socket.socket) -> bool:
            """Read what the server sent (its HTTP/2 settings) up to the end, if it came."""
            try:
                while True:
                    if s.recv(65536) == b"":
                        return True
            except BlockingIOError:
                return False
            except OSError:  # reset by the server
                return True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(closed(s) for s in silent):
            await asyncio.sleep(0.25)
        assert sum(closed(s) for s in silent) == 500

        async with await connection.open_channel(running.target, options=[]) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert channel.get_state() is grpc.ChannelConnectivity.READY
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and channel.get_state() is grpc.ChannelConnectivity.READY:
                await asyncio.sleep(0.25)
            assert channel.get_state() is grpc.ChannelConnectivity.IDLE  # the server closed it
            response = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for s in silent:
            s.close()
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)


async def test_a_connection_past_its_registration_quota_is_refused_while_another_registers(ray_session, tmp_path):
    from chatrelay.cluster import up
    from realparts import start_relay

    running = await asyncio.to_thread(start_relay, tmp_path / "relay", shards=1, registrations_per_minute=3)
    try:
        info = await client.relay_info(running.link)
        async with client.RelayClient(info.target) as flooding:
            made = [group.create_group(GroupKind.GROUP, f"g{i}") for i in range(4)]
            for secrets, signed in made[:3]:
                await client.register(flooding, info, signed, secrets.group_id)
            with pytest.raises(ChatRelayError) as caught:
                await client.register(flooding, info, made[3][1], made[3][0].group_id)
            assert caught.value.reason is Reason.RATE_LIMITED
            assert caught.value.message.startswith("at most 3 registrations a minute on one connection; retry in ")
        owned = await client.create_group([running.link], "Another connection", GroupKind.CHANNEL)
        assert [e.state for e in owned.relays] == ["active"]
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)
