"""Several gateway processes on one relay node (`--gateways`): they share the node's port
(the kernel spreads new connections over them), each holds its own streams, and a post
through one reaches the streams of every other; each serves its own metrics, and the
admin API counts them all (real Ray, real gRPC, a real scrape over HTTP)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import socket

import pytest
from nacl.signing import SigningKey

from chatrelay import admin_client, client, connection, members
from chatrelay.cluster import access_log, identity
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

from realparts import free_port, metric, start_relay

GATEWAYS = 2
CONNECTIONS = 64  # at most, until every gateway holds a stream: all on one is 2**-63 likely
DEADLINE_S = 60


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory):
    from chatrelay.cluster import up

    running = start_relay(tmp_path_factory.mktemp("gateways"), gateways=GATEWAYS, metrics=f"127.0.0.1:{free_port()}",
                          forward="127.0.0.1:0", forward_private=True, access_log=True)
    yield running
    up.stop(running, ray_shutdown=False)


def gateway_stats(ray_session, running) -> list:
    return ray_session.get([g.stats.remote() for g in running.gateways.values()])


def test_a_node_runs_its_gateways_on_one_port(shared, ray_session):
    assert sorted(i for _, i in shared.gateways) == list(range(GATEWAYS))
    assert len({node for node, _ in shared.gateways}) == 1
    pids = {s.process.pid for s in gateway_stats(ray_session, shared)}
    assert len(pids) == GATEWAYS and os.getpid() not in pids
    # The first alone forwards (a second forwarder would share its port unseen).
    forwarding = ray_session.get([shared.gateways[place].forward_address.remote() for place in sorted(shared.gateways)])
    assert forwarding[0] is not None and forwarding[1:] == [None] * (GATEWAYS - 1)


async def test_a_post_through_one_gateway_reaches_the_streams_of_every_other(shared, ray_session):
    owned = await client.create_group([shared.link], "Shared port", GroupKind.CHANNEL)
    member = await client.join(owned.link, "reader")
    credential = client.credential(SigningKey(unb64(member.sign_seed)), member.relays[0].address)
    channels, calls = [], []
    try:
        for _ in range(CONNECTIONS):  # a connection of its own for each stream: the kernel picks its gateway
            channel = await connection.open_channel(shared.target)
            channels.append(channel)
            calls.append(relay_pb2_grpc.RelayServiceStub(channel).Subscribe(
                relay_pb2.SubscribeRequest(credential=credential)))
            for _ in range(DEADLINE_S * 10):  # the stream counted where it landed
                counts = [s.subscribers for s in await asyncio.to_thread(gateway_stats, ray_session, shared)]
                if sum(counts) == len(calls):
                    break
                await asyncio.sleep(0.1)
            assert sum(counts) == len(calls)
            if all(counts):
                break
        assert all(counts), f"{CONNECTIONS} connections all went to one gateway: {counts}"
        # Each gateway's metrics (the Nth on the port N-1 above the first's) count its own streams.
        port = int(shared.config.metrics.rpartition(":")[2])
        assert [await asyncio.to_thread(metric, port + i, "chatrelay_subscribers") for i in range(GATEWAYS)] == counts
        operator = identity.load_or_create(pathlib.Path(shared.config.data_dir), identity.OPERATOR_KEY_FILE)
        async with admin_client.AdminClient(shared.target, operator) as admin:  # any gateway: it asks the others
            status = await admin.status()
        assert sorted(g["subscribers"] for g in status["gateways"]) == sorted(counts)
        assert status["subscribers"] == len(calls)

        key = SigningKey(unb64(owned.owner_seed))
        async with client.RelayClient(shared.target) as rc:
            ack = await rc.post(owned.relays[0].address, members.sign_post(key, bytes.fromhex(owned.group_id), b"hi"))
        for call in calls:  # every stream, whichever gateway holds it
            batch = await asyncio.wait_for(call.read(), DEADLINE_S)
            assert [d.seq for d in batch.deliveries] == [ack.seq]
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close()


async def test_a_gateway_killed_comes_back_on_the_shared_port_and_the_other_serves_meanwhile(shared, ray_session):
    place = max(shared.gateways)  # the node's second gateway
    before = (await asyncio.to_thread(gateway_stats, ray_session, shared))
    killed_pid = before[sorted(shared.gateways).index(place)].process.pid
    ray_session.kill(shared.gateways[place], no_restart=False)
    owned = await client.create_group([shared.link], "Through the other", GroupKind.CHANNEL)  # meanwhile
    assert owned.relays[0].address
    for _ in range(DEADLINE_S * 10):  # Ray restarts it, and the relay's supervisor has it serve again
        try:
            stats = await asyncio.to_thread(ray_session.get, shared.gateways[place].stats.remote(), timeout=5)
        except Exception:  # still restarting
            stats = None
        if stats is not None:
            break
        await asyncio.sleep(0.1)
    assert stats is not None and stats.process.pid != killed_pid
    assert len({s.process.pid for s in await asyncio.to_thread(gateway_stats, ray_session, shared)}) == GATEWAYS


async def test_each_gateway_writes_an_access_log_of_its_own(shared):
    # Both held streams in the test before (cancelled at its end): each logged its own.
    folder = pathlib.Path(shared.config.data_dir)
    for _ in range(DEADLINE_S * 10):
        logs = [(folder / access_log.file_name(i)).read_text() for i in range(GATEWAYS)]
        if all("Subscribe" in text for text in logs):
            break
        await asyncio.sleep(0.1)
    assert [access_log.file_name(i) for i in range(GATEWAYS)] == ["access.log", "access-1.log"]
    assert all("Subscribe" in text for text in logs), logs


async def test_gateways_that_would_share_a_port_taken_are_refused(ray_session, tmp_path):
    with socket.socket() as other:  # another relay's gateways, bound to share their port too
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        listen = f"127.0.0.1:{other.getsockname()[1]}"
        with pytest.raises(ChatRelayError) as caught:
            await asyncio.to_thread(start_relay, tmp_path, gateways=GATEWAYS, listen=listen)
    assert caught.value.reason == Reason.UNAVAILABLE
    assert caught.value.message == f"cannot listen on {listen}: the port is taken"
