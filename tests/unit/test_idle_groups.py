"""Idle groups cost no memory: a shard lets go of a group loaded but unused for
--unload-idle seconds (`ShardGroups.unload_idle`), and loads it again, from the registry
and the store, on its next call. Only what a new load would read the same is let go: a
group in use, with a reader waiting, with work in its mailbox, or with members' rates,
reports or slow mode still in force stays."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatrelay import members
from chatrelay.actors import records
from chatrelay.actors.calls import Moved
from chatrelay.actors.placement import ShardGroups
from chatrelay.actors.rate_window import RateWindow
from chatrelay.settings import load
from chatrelay.errors import Reason
from helpers import refused
from test_group_relay import active_group

IDLE_S = 60.0


async def placed(ctx, name: str = "g"):
    """A group registered and placed on shard 0, and the shard's groups, with it loaded."""
    secrets, relay = await active_group(ctx, name)
    await ctx.registry.put(records.address_key(relay.address), secrets.group_id.hex().encode())
    await ctx.registry.put(records.placement_key(relay.address), b"0")

    async def ready():
        return ctx
    groups = ShardGroups(0, ready)
    loaded = await groups.get(relay.address)
    await asyncio.sleep(0.05)  # its start's work in its mailbox done
    return secrets, groups, loaded


async def age(relay, seconds: float) -> None:
    """As if the shard's last call for the group was `seconds` ago (once the mailbox's
    worker, which ends a loop turn after its last item, is done)."""
    await asyncio.sleep(0.05)
    relay.used = time.monotonic() - seconds


async def test_a_group_unused_for_the_idle_time_is_let_go_and_loads_again_with_its_posts(ctx):
    secrets, groups, relay = await placed(ctx)
    first = members.sign_post(secrets.owner_key, secrets.group_id, b"before")
    assert (await relay.post(first)).seq == 1
    assert groups.unload_idle(IDLE_S) == 0  # just used
    await age(relay, IDLE_S + 1)
    assert groups.unload_idle(IDLE_S) == 1
    assert len(groups) == 0 and groups.unloaded == 1
    with pytest.raises(Moved):  # a request still holding the old load is sent again
        await relay.post(members.sign_post(secrets.owner_key, secrets.group_id, b"late"))
    again = await groups.get(relay.address)
    assert again is not relay and again.last_seq == 1
    assert (await again.post(members.sign_post(secrets.owner_key, secrets.group_id, b"after"))).seq == 2
    assert (await again.post(first)).seq == 1  # the same post sent again: its seq, not a new one
    assert [d.seq for d in await again.read(0)] == [1, 2]
    await again.stop()


async def test_a_group_with_a_reader_waiting_or_work_in_its_mailbox_stays(ctx):
    secrets, groups, relay = await placed(ctx)
    reading = asyncio.create_task(relay.read(0, wait_s=30))
    await asyncio.sleep(0.05)
    await age(relay, IDLE_S + 1)
    assert groups.unload_idle(IDLE_S) == 0
    await relay.post(members.sign_post(secrets.owner_key, secrets.group_id, b"wakes the reader"))
    assert [d.seq for d in await asyncio.wait_for(reading, 10)] == [1]

    gate = asyncio.Event()
    busy = asyncio.create_task(relay.call(gate.wait))
    await asyncio.sleep(0.05)
    await age(relay, IDLE_S + 1)
    assert groups.unload_idle(IDLE_S) == 0
    gate.set()
    await busy
    await asyncio.sleep(0.05)
    assert groups.unload_idle(IDLE_S) == 1
    await relay.stop()


async def test_a_group_whose_members_rates_or_slow_mode_are_in_force_stays(ctx):
    _, groups, relay = await placed(ctx)
    clock = time.monotonic()
    await age(relay, IDLE_S + 1)
    relay.recent_posts.add(b"m" * 32, clock - 1)  # a member's post within the rate window
    assert not relay.idle(clock, IDLE_S) and groups.unload_idle(IDLE_S) == 0
    relay.recent_posts = RateWindow(relay.recent_posts.span_s)
    relay.recent_reports.add(b"r" * 32, clock - 1)
    assert not relay.idle(clock, IDLE_S)
    relay.recent_reports = RateWindow(relay.recent_reports.span_s)
    relay.slow_mode_last[b"s" * 32] = ([1], clock - 1)  # a post the freshness window still covers
    assert not relay.idle(clock, IDLE_S)
    relay.slow_mode_last[b"s" * 32] = ([1], clock - relay.ctx.limits.freshness_s - 1)
    assert relay.idle(clock, IDLE_S) and groups.unload_idle(IDLE_S) == 1
    await relay.stop()


def test_a_rate_window_is_active_while_any_key_has_an_event_in_it():
    window = RateWindow(10.0)
    assert not window.active(100.0)
    window.add(b"a", 95.0)
    window.add(b"b", 80.0)
    assert window.active(100.0) and window.active(104.9)
    assert not window.active(105.0)


def test_the_idle_time_is_bounded_and_zero_means_never():
    assert load({"unload_idle_s": "0"}, environ={}).unload_idle_s == 0
    assert load({}, environ={}).unload_idle_s == 300.0
    err = refused(Reason.MALFORMED, load, {"unload_idle_s": -1}, environ={})
    assert err.message == "--unload-idle must be 0 (never) to 86400 seconds, got -1"
    err = refused(Reason.MALFORMED, load, {"unload_idle_s": "later"}, environ={})
    assert err.message == "--unload-idle must be seconds, got 'later'"
