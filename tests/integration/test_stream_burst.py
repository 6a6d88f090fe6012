"""A burst of subscribers opening their streams at once (after a gateway restart, every
reader of a channel comes back together) is taken in, not turned away: gRPC's own
bound on calls waiting for the gateway's event loop (1,000, and every one past 3,000)
used to end thousands of such opens at once with CANCELLED."""

from __future__ import annotations

import asyncio
import collections

import grpc
import pytest
import ray
from nacl.signing import SigningKey

from chatrelay import client, connection
from chatrelay.group import GroupKind
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

from realparts import start_relay

STREAMS = 3000
OPEN_BATCH = 200  # opened together, every OPEN_PAUSE_S
OPEN_PAUSE_S = 0.2
PER_CHANNEL = 100  # streams per client connection
DEADLINE_S = 120


@pytest.fixture(scope="module")
def burst_relay(ray_session, tmp_path_factory):
    """A relay without a bound on streams per reader: one reader's key opens them all
    here (thousands of readers would take minutes to join)."""
    from chatrelay.cluster import up

    running = start_relay(tmp_path_factory.mktemp("burst"), streams_per_reader=0)
    yield running
    up.stop(running, ray_shutdown=False)


async def test_thousands_of_streams_opening_at_once_are_all_taken_in(burst_relay):
    relay = burst_relay
    owned = await client.create_group([relay.link], "Burst of readers", GroupKind.CHANNEL)
    member = await client.join(owned.link, "reader")
    credential = client.credential(SigningKey(unb64(member.sign_seed)), member.relays[0].address)
    await client.post(owned, "first")
    channels = [await connection.open_channel(relay.target) for _ in range(STREAMS // PER_CHANNEL)]
    failures: collections.Counter = collections.Counter()
    first_seqs: list[int] = []

    async def stream(i: int) -> None:
        stub = relay_pb2_grpc.RelayServiceStub(channels[i % len(channels)])
        call = stub.Subscribe(relay_pb2.SubscribeRequest(credential=credential))
        try:
            async for batch in call:
                first_seqs.append(batch.deliveries[0].seq)
                return
        except grpc.aio.AioRpcError as exc:
            failures[(exc.code().name, exc.details())] += 1
        finally:
            call.cancel()

    try:
        tasks = []
        for i in range(STREAMS):
            tasks.append(asyncio.create_task(stream(i)))
            if i % OPEN_BATCH == OPEN_BATCH - 1:
                await asyncio.sleep(OPEN_PAUSE_S)
        await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE_S)
    finally:
        for c in channels:
            await c.close()
    assert dict(failures) == {}
    assert first_seqs == [1] * STREAMS  # every stream opened and read the post from the start
    stats = await asyncio.to_thread(ray.get, [s.stats.remote(groups=False) for s in relay.shards])
    # One credential for every stream: the group's shard checked its signature once, and
    # remembered it for the others (actors/verified_readers.py).
    assert (sum(s.readers_verified for s in stats), sum(s.readers_remembered for s in stats)) == (1, STREAMS - 1)
    await client.post(owned, "after")  # the relay serves on
    assert [p.text for p in await client.read_all(member)] == ["first", "after"]
