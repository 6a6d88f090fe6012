"""A subscriber that reads slowly costs its group nothing: once it falls more than the
relay's `subscriber_lag` posts behind, its stream is cut off with its position, and it
catches up from the log by subscribing again from there."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nacl.signing import SigningKey

from chatrelay import client, connection, members
from chatrelay.group import GroupKind
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

from realparts import start_relay

LAG = 50
BIG = 8000  # bytes a post: a few of them fill a stream's flow-control window
POSTS = 1000  # about 8 MB, far more than the transport holds for a reader that waits
SDK_POSTS = 2000  # the SDK's own queue holds 1,000 before its stream stalls
DEADLINE_S = 120


@pytest.fixture(scope="module")
def lagging_relay(ray_session, tmp_path_factory):
    from chatrelay.cluster import up

    running = start_relay(tmp_path_factory.mktemp("lag"), subscriber_lag=LAG)
    yield running
    up.stop(running, ray_shutdown=False)


async def post_many(running, owned, start: int, count: int) -> list[int]:
    """`count` big posts by the owner, 8 at a time; returns their seqs."""
    key = SigningKey(unb64(owned.owner_seed))
    group_id = bytes.fromhex(owned.group_id)
    address = owned.relays[0].address
    seqs: dict[int, int] = {}
    semaphore = asyncio.Semaphore(8)
    async with client.RelayClient(running.target) as rc:
        async def one(i):
            text = f"{i:06d}".encode() + b"x" * (BIG - 6)
            async with semaphore:
                seqs[i] = (await rc.post(address, members.sign_post(key, group_id, text))).seq
        await asyncio.gather(*(one(i) for i in range(start, start + count)))
    return [seqs[i] for i in range(start, start + count)]


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(exc)
    assert status is not None, "the relay sent no rich status"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def test_a_stalled_stream_is_cut_off_with_its_position_and_resumes_from_the_log(lagging_relay):
    owned = await client.create_group([lagging_relay.link], "Slow readers", GroupKind.CHANNEL)
    member = await client.join(owned.link, "slow")
    credential = client.credential(SigningKey(unb64(member.sign_seed)), member.relays[0].address)
    async with await connection.open_channel(lagging_relay.target, options=[]) as channel:
        stub = relay_pb2_grpc.RelayServiceStub(channel)
        call = stub.Subscribe(relay_pb2.SubscribeRequest(credential=credential))
        first = await post_many(lagging_relay, owned, 0, 1)
        batch = await asyncio.wait_for(call.read(), DEADLINE_S)  # live: read from the gateway's window
        seen = [d.seq for d in batch.deliveries]
        assert seen == first

        # The reader stops reading; the owner's posts are all accepted meanwhile.
        acked = first + await asyncio.wait_for(post_many(lagging_relay, owned, 1, POSTS - 1), DEADLINE_S)
        assert sorted(acked) == list(range(1, POSTS + 1))  # 8 at a time: acked in any order

        with pytest.raises(grpc.aio.AioRpcError) as cut:
            for _ in range(POSTS):  # each read brings at least one post, or the end
                batch = await asyncio.wait_for(call.read(), DEADLINE_S)
                if batch is grpc.aio.EOF:
                    pytest.fail("the stream ended without a status")
                seen += [d.seq for d in batch.deliveries]
        assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(cut.value)
        assert (info.domain, info.reason) == ("chatrelay", "behind")
        assert info.metadata["resume_after_seq"] == str(seen[-1])
        assert seen == list(range(1, len(seen) + 1))  # nothing skipped before the cut
        assert len(seen) < POSTS - LAG

        # Subscribing again from that position catches up from the log: the rest, once.
        resumed = stub.Subscribe(relay_pb2.SubscribeRequest(credential=credential, since_seq=seen[-1]))
        async for batch in resumed:
            seen += [d.seq for d in batch.deliveries]
            if seen[-1] >= POSTS:
                break
        resumed.cancel()
    assert seen == list(range(1, POSTS + 1))  # every post once, in order


async def test_the_sdk_follows_through_cut_offs_without_loss_or_repeats(lagging_relay, ray_session):
    owned = await client.create_group([lagging_relay.link], "Slow SDK reader", GroupKind.CHANNEL)
    member = await client.join(owned.link, "slow")
    cut_before = (await asyncio.to_thread(ray_session.get, lagging_relay.gateway.stats.remote())).cut_off
    received: list[str] = []
    all_posted = asyncio.Event()

    async def slow_reader():
        async for p in client.follow(member, max_reconnects=0):
            received.append(p.text[:6])
            if len(received) == 1:
                await all_posted.wait()  # the SDK's own queue fills, then its stream stalls
            if len(received) == SDK_POSTS:
                return

    reader = asyncio.create_task(slow_reader())
    seqs = await post_many(lagging_relay, owned, 0, 1)
    await asyncio.sleep(0.5)  # the first post reaches the reader: its stream is live
    seqs += await asyncio.wait_for(post_many(lagging_relay, owned, 1, SDK_POSTS - 1), DEADLINE_S)
    all_posted.set()
    await asyncio.wait_for(reader, DEADLINE_S)
    in_seq_order = [f"{i:06d}" for i in sorted(range(SDK_POSTS), key=seqs.__getitem__)]
    assert received == in_seq_order  # all, in the relay's order, none twice
    stats = await asyncio.to_thread(ray_session.get, lagging_relay.gateway.stats.remote())
    assert stats.cut_off > cut_before  # the stream was cut off at least once on the way
