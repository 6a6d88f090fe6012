"""Groups move between shards: on a call (as an operator would ask) and by themselves
when they get hot. The handoff loses no post, reorders none, repeats none. One live
instance serves a shard index, fenced by the shard's registry lease."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from nacl.signing import SigningKey

from chatrelay import client, members
from chatrelay.actors.calls import Done, MoveGroup, PostBatch, Refused
from chatrelay.errors import Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64

from realparts import follow_into, start_relay

POSTS = 300
CROWD = 8
CROWD_POSTS = 40
DEADLINE_S = 120


async def stats(ray, shard):
    return await asyncio.to_thread(ray.get, shard.stats.remote())


async def serving(ray, shards, address: str) -> list[int]:
    """Indexes of the shards that have the group loaded."""
    found = []
    for shard in shards:
        s = await stats(ray, shard)
        if any(g.address == address for g in s.groups):
            found.append(s.shard)
    return found


async def flood(owned, count: int, start: int = 0, halfway: asyncio.Event | None = None) -> None:
    """`count` posts one after another (so their order is the texts' order)."""
    for i in range(start, start + count):
        await client.post(owned, f"p{i}")
        if halfway is not None and i == start + count // 3:
            halfway.set()


async def test_a_group_moved_mid_flood_loses_and_repeats_nothing(relay, ray_session):
    owned = await client.create_group([relay.link], "Moving", GroupKind.CHANNEL)
    member = await client.join(owned.link, "reader")
    address = owned.relays[0].address
    received: list[str] = []
    reader = asyncio.create_task(follow_into(member, received, POSTS))
    await client.post(owned, "warm-up")  # loads the group where it is placed
    [source] = await serving(ray_session, relay.shards, address)
    target = 1 - source

    halfway = asyncio.Event()
    posting = asyncio.create_task(flood(owned, POSTS - 1, 0, halfway))
    await asyncio.wait_for(halfway.wait(), DEADLINE_S)
    moved = await asyncio.to_thread(ray_session.get, relay.shards[source].serve.remote(MoveGroup(address, target)))
    assert moved == Done(target)
    await asyncio.wait_for(posting, DEADLINE_S)  # no post was refused on the way
    await asyncio.wait_for(reader, DEADLINE_S)

    expected = ["warm-up"] + [f"p{i}" for i in range(POSTS - 1)]
    assert received == expected  # all, in order, none twice
    assert [p.text for p in await client.read_all(member)] == expected
    assert [p.seq for p in await client.read_all(member)] == list(range(1, POSTS + 1))
    assert await serving(ray_session, relay.shards, address) == [target]
    assert (await stats(ray_session, relay.shards[source])).moved_out >= 1


async def test_concurrent_posts_that_meet_a_move_land_once_each(relay, ray_session):
    """Eight posters at once, so the gateway sends the channel's waiting posts together;
    the group moves in the middle. Posts of a call that meet the move go again to the
    new shard: every post is acked with its own seq and read once."""
    owned = await client.create_group([relay.link], "Moving crowd", GroupKind.CHANNEL)
    member = await client.join(owned.link, "reader")
    address = owned.relays[0].address
    await client.post(owned, "warm-up")
    [source] = await serving(ray_session, relay.shards, address)
    target = 1 - source
    key, group_id = SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id)
    acks: list = []
    started = asyncio.Event()

    async def poster(c, p: int) -> None:
        for i in range(CROWD_POSTS):
            acks.append(await c.post(address, members.sign_post(key, group_id, f"c{p}-{i}".encode())))
            if len(acks) >= CROWD_POSTS:
                started.set()

    async with client.RelayClient(relay.target) as c:
        posting = asyncio.gather(*(poster(c, p) for p in range(CROWD)))
        await asyncio.wait_for(started.wait(), DEADLINE_S)
        moved = await asyncio.to_thread(ray_session.get, relay.shards[source].serve.remote(MoveGroup(address, target)))
        await asyncio.wait_for(posting, DEADLINE_S)
    assert moved == Done(target)
    total = CROWD * CROWD_POSTS
    assert sorted(a.seq for a in acks) == list(range(2, total + 2))
    posts = await client.read_all(member)
    assert [p.seq for p in posts] == list(range(1, total + 2))
    assert sorted(p.text for p in posts[1:]) == sorted(f"c{p}-{i}" for p in range(CROWD) for i in range(CROWD_POSTS))
    assert await serving(ray_session, relay.shards, address) == [target]


async def test_moving_to_a_bad_shard_is_refused(relay, ray_session):
    owned = await client.create_group([relay.link], "Staying", GroupKind.CHANNEL)
    await client.post(owned, "here")
    address = owned.relays[0].address
    [source] = await serving(ray_session, relay.shards, address)
    outcome = await asyncio.to_thread(ray_session.get, relay.shards[source].serve.remote(MoveGroup(address, -1)))
    assert outcome == Refused(Reason.MALFORMED, "no relay shard -1")
    assert await serving(ray_session, relay.shards, address) == [source]
    await client.post(owned, "still here")  # and it still serves


async def test_a_hot_group_moves_to_a_shard_of_its_own(ray_session, tmp_path):
    from chatrelay.actors import factory
    from chatrelay.cluster import up

    running = await asyncio.to_thread(
        start_relay, tmp_path / "relay", shards=1, hot_posts_per_s=20, hot_check_s=1.0
    )
    try:
        quiet = await client.create_group([running.link], "Quiet", GroupKind.CHANNEL)
        hot = await client.create_group([running.link], "Hot", GroupKind.CHANNEL)
        await client.post(quiet, "q0")
        member = await client.join(hot.link, "reader")
        received: list[str] = []
        total = 0
        reader = asyncio.create_task(follow_into(member, received, 10_000))
        address = hot.relays[0].address
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        moved = False
        while not moved and loop.time() < deadline:  # posts at well over 20/s until it moves
            await flood(hot, 50, total)
            total += 50
            shard0 = await stats(ray_session, running.shards[0])
            moved = shard0.moved_out == 1
        assert moved, "the hot group did not move within the deadline"
        await flood(hot, 50, total)  # served by its own shard now
        total += 50
        own = await asyncio.to_thread(factory.own_shards, running.config)
        assert len(own) == 1
        assert await serving(ray_session, own, address) == [(await stats(ray_session, own[0])).shard]
        shard0 = await stats(ray_session, running.shards[0])
        assert [g.address for g in shard0.groups] == [quiet.relays[0].address]
        await client.post(quiet, "q1")  # the quiet group stays and serves

        # Quiet again (no posts for COOL_CHECKS windows): the group goes home, its shard stops.
        deadline = loop.time() + DEADLINE_S
        while loop.time() < deadline and await asyncio.to_thread(factory.own_shards, running.config):
            await asyncio.sleep(0.5)
        assert await asyncio.to_thread(factory.own_shards, running.config) == []
        await flood(hot, 5, total)  # served at home again (too few to be hot again)
        total += 5
        assert await serving(ray_session, running.shards, address) == [0]

        async def all_received():
            while len(received) < total:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(all_received(), DEADLINE_S)
        reader.cancel()
        assert received == [f"p{i}" for i in range(total)]
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)
    assert await asyncio.to_thread(factory.own_shards, running.config) == []  # stopped with the relay


@contextlib.asynccontextmanager
async def one_shard_and_a_twin(tmp_path, name: str, host=None):
    """A relay of one shard, with a channel its owner posted "p0" to, and a second
    instance of that shard in this process (`host`: what it says of itself). Yields
    (relay, twin, owned, request): `request(text)`, a PostBatch of the owner's post."""
    from chatrelay.actors.shard import RelayShard
    from chatrelay.cluster import up
    from chatrelay.cluster.storage import LocalStorage

    running = await asyncio.to_thread(start_relay, tmp_path / "relay", shards=1)
    twin = RelayShard(0, running.config, LocalStorage(), host=host)
    try:
        owned = await client.create_group([running.link], name, GroupKind.CHANNEL)
        await client.post(owned, "p0")
        key, group_id = SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id)

        def request(text: bytes) -> PostBatch:
            return PostBatch(owned.relays[0].address, (members.sign_post(key, group_id, text),))
        yield running, twin, owned, request
    finally:
        await twin.release()
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)


async def test_one_live_instance_serves_a_shard_and_a_dead_ones_lease_runs_out(ray_session, tmp_path):
    """A second instance of a shard (here, in this process) serves nothing while the live
    one holds the shard's registry lease; when the live one dies without letting it go,
    the second serves once the lease has run out, continuing the same sequence."""
    from chatrelay.actors.lease import LEASE_TTL_S

    async with one_shard_and_a_twin(tmp_path, "Leased") as (running, twin, owned, request):
        refused = await twin.serve(request(b"from the twin"))
        assert refused == Refused(Reason.UNAVAILABLE, "this relay shard does not hold its registry lease right now; retry")

        ray_session.kill(running.shards[0], no_restart=True)  # dies holding its lease
        await asyncio.wait_for(twin.ready(), LEASE_TTL_S * 4)
        outcome = await twin.serve(request(b"after the lease ran out"))
        [ack] = outcome.value
        assert isinstance(outcome, Done) and ack.value.seq == 2


class RestartedHost:
    """A ShardHost that says what Ray says of an actor it restarted after its death."""

    def restarted(self) -> bool:
        return True

    def node_id(self) -> str:
        return "twin"

    async def report(self, shard) -> None:
        return None


async def test_an_instance_restarted_after_a_death_takes_the_lease_at_once_and_the_old_one_stops(ray_session, tmp_path):
    """An instance Ray restarted does not wait out the lease of the one before: it revokes
    it. Were the one before alive after all (a node cut off), it is refused from then on:
    it holds no lease, and the twin's claim fences its writes."""
    from chatrelay import envelope as env
    from chatrelay.actors.calls import MovedAway, pack
    from chatrelay.cluster.storage import LocalStorage

    async with one_shard_and_a_twin(tmp_path, "Taken over", RestartedHost()) as (running, twin, owned, request):
        await asyncio.wait_for(twin.ready(), 60)  # the live instance holds the lease: taken over
        outcome = await twin.serve(request(b"from the twin"))
        assert isinstance(outcome, Done) and outcome.value[0].value.seq == 2
        for _ in range(50):  # the one before learns at its next renewal (every second), bounded
            old = await running.shards[0].serve.remote(pack(request(b"from the one before")))
            if old == Refused(Reason.UNAVAILABLE, "this relay shard does not hold its registry lease right now; retry"):
                break
            assert old == MovedAway()  # before it learns: its write is fenced, nothing stored
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the instance before went on serving")
        log = LocalStorage().message_log(running.config)
        try:
            texts = [members.verify_post(env.decode(r.data), bytes.fromhex(owned.group_id)).body
                     for r in await log.read("posts/" + owned.relays[0].address)]
        finally:
            await log.close()
        assert texts == [b"p0", b"from the twin"]
