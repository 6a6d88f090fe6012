"""Faults, bounded and on loopback: a shard killed mid-stream, the gateway killed, etcd
restarted or down for a while, a group's log at its size limit. In each, no acked post is
lost, a following reader sees nothing twice, and service comes back."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay import client, group, links
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import relay_pb2

from realparts import follow_into, start_relay

RECOVERY_S = 60


async def post_until_served(owned, text: str) -> None:
    """Post, retrying the same signed post while the relay recovers: an ack lost in the
    fault must not turn into a second post."""
    await client.post(owned, text, retry_for_s=RECOVERY_S)


async def run_with_fault(running, fault) -> None:
    owned = await client.create_group([running.link], "Faulty", GroupKind.CHANNEL)
    member = await client.join(owned.link, "reader")
    received: list[str] = []
    task = asyncio.create_task(follow_into(member, received, 20))
    for i in range(10):
        await post_until_served(owned, f"p{i}")
    await fault()
    for i in range(10, 20):
        await post_until_served(owned, f"p{i}")
    await asyncio.wait_for(task, RECOVERY_S)
    assert received == [f"p{i}" for i in range(20)]  # all, in order, none twice
    assert [p.text for p in await client.read_all(member)] == [f"p{i}" for i in range(20)]


async def test_a_shard_killed_mid_stream(relay, ray_session):
    async def kill_shards():
        for shard in relay.shards:
            ray_session.kill(shard, no_restart=False)

    await run_with_fault(relay, kill_shards)


async def test_the_gateway_killed_mid_stream(ray_session, tmp_path):
    from chatrelay.cluster import up

    running = await asyncio.to_thread(start_relay, tmp_path / "relay")
    try:
        async def kill_gateway():
            ray_session.kill(running.gateway, no_restart=False)

        await run_with_fault(running, kill_gateway)
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)


async def test_etcd_restarted(ray_session, etcd_server, tmp_path):
    from chatrelay.cluster import up

    running = await asyncio.to_thread(start_relay, tmp_path / "relay", etcd=etcd_server.url)
    try:
        async def restart_etcd():
            await asyncio.to_thread(etcd_server.restart)

        await run_with_fault(running, restart_etcd)
        # Registration and joining work again too.
        again = await client.create_group([running.link], "After etcd", GroupKind.GROUP)
        assert (await client.join(again.link, "m")).status == "member"
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)




async def test_etcd_down_is_unavailable_and_a_registration_rides_it_out(ray_session, etcd_server, tmp_path):
    """While etcd is down the gateway answers UNAVAILABLE (which clients try again), not
    an internal error; a registration sent meanwhile is answered once etcd is back."""
    from chatrelay.cluster import up

    running = await asyncio.to_thread(start_relay, tmp_path / "relay", etcd=etcd_server.url)
    try:
        info = await client.relay_info(running.link)
        secrets, signed = group.create_group(GroupKind.CHANNEL, "Through an outage")
        async with client.RelayClient(info.target) as relay:
            await asyncio.to_thread(etcd_server.stop, keep=True)
            try:
                with pytest.raises(ChatRelayError) as refused:
                    await relay.call("ResolveLink", relay_pb2.ResolveLinkRequest(lookup_id=bytes(links.LOOKUP_ID_SIZE)))
                assert refused.value.reason is Reason.UNAVAILABLE
                assert refused.value.message.startswith("the relay's registry is unavailable (")
                registering = asyncio.create_task(client.register(relay, info, signed, secrets.group_id))
                await asyncio.sleep(2.0)
                assert not registering.done()  # being sent again, not failed
            finally:
                await asyncio.to_thread(etcd_server.start)
            address, state = await asyncio.wait_for(registering, RECOVERY_S)
            assert state == relay_pb2.GROUP_STATE_PENDING
            assert await client.register(relay, info, signed, secrets.group_id) == (address, state)  # one address
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)


async def test_a_group_log_at_its_size_limit(ray_session, tmp_path):
    """With --retention, the log is trimmed under readers: a follower that keeps up still
    sees every post once; a reader arriving later sees the newest ones, in order."""
    from chatrelay.cluster import up

    keep = 10
    running = await asyncio.to_thread(start_relay, tmp_path / "relay", retention=keep)
    try:
        owned = await client.create_group([running.link], "Trimmed", GroupKind.CHANNEL)
        member = await client.join(owned.link, "reader")
        received: list[str] = []
        task = asyncio.create_task(follow_into(member, received, 40))
        for i in range(40):
            await post_until_served(owned, f"p{i}")
        await asyncio.wait_for(task, RECOVERY_S)
        assert received == [f"p{i}" for i in range(40)]

        kept = [p.text for p in await client.read_all(member)]
        assert keep <= len(kept) < 40 and kept == [f"p{i}" for i in range(40 - len(kept), 40)]
        late = await client.join(owned.link, "late reader")
        late_received: list[str] = []

        async def follow_late():
            async for p in client.follow(late, max_reconnects=20):
                late_received.append(p.text)
                if p.text == "p40":
                    return

        late_task = asyncio.create_task(follow_late())
        await post_until_served(owned, "p40")
        await asyncio.wait_for(late_task, RECOVERY_S)
        # What the log kept when the late reader read it (p40 may trim one more), then p40.
        first = int(late_received[0][1:])
        assert late_received == [f"p{i}" for i in range(first, 41)] and len(late_received) >= keep
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)
