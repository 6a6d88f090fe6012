"""A relay with `--unload-idle 1`, in real Ray: a group nobody calls is let go from its
shard's memory, and its next call loads it again, its posts and members whole; a group
followed by a subscriber stays loaded (its tail keeps a read waiting there)."""

from __future__ import annotations

import asyncio

from chatrelay import client
from chatrelay.cluster import up
from chatrelay.group import GroupKind

from realparts import follow_into, start_relay

DEADLINE_S = 60


async def loaded(ray, relay) -> set[str]:
    """Addresses loaded on any of the relay's shards."""
    stats = await asyncio.to_thread(ray.get, [s.stats.remote() for s in relay.shards])
    return {g.address for s in stats for g in s.groups}


async def until(condition, what: str) -> None:
    for _ in range(DEADLINE_S * 10):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE_S} s: {what}")


async def test_an_idle_group_is_let_go_and_answers_again_and_a_followed_one_stays(ray_session, tmp_path):
    relay = await asyncio.to_thread(start_relay, tmp_path / "relay", unload_idle_s=1.0)
    try:
        idle = await client.create_group([relay.link], "Idle", GroupKind.CHANNEL)
        followed = await client.create_group([relay.link], "Followed", GroupKind.CHANNEL)
        reader = await client.join(idle.link, "reader")
        follower = await client.join(followed.link, "follower")
        await client.post(idle, "one")
        received: list[str] = []
        following = asyncio.create_task(follow_into(follower, received, 2))
        await client.post(followed, "first")
        idle_address, followed_address = idle.relays[0].address, followed.relays[0].address
        assert {idle_address, followed_address} <= await loaded(ray_session, relay)

        async def let_go():
            return idle_address not in await loaded(ray_session, relay)
        await until(let_go, "the idle group let go")
        assert followed_address in await loaded(ray_session, relay)

        [ack] = await client.post(idle, "two")  # loaded again on this call
        assert ack.seq == 2
        assert [p.text for p in await client.read_all(reader)] == ["one", "two"]
        assert idle_address in await loaded(ray_session, relay)
        await client.post(followed, "second")
        await asyncio.wait_for(following, DEADLINE_S)
        assert received == ["first", "second"]
    finally:
        await asyncio.to_thread(up.stop, relay, ray_shutdown=False)
