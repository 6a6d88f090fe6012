"""Waiters (cluster/waiters.py): a notification wakes every waiter there is, in order, and
only those; one that goes away before it leaves the others as they were."""

from __future__ import annotations

import asyncio
import random

import pytest

from chatrelay.cluster.waiters import Waiters


async def test_a_notification_wakes_every_waiter_in_the_order_they_came():
    waiters = Waiters()
    woken = []

    async def waiter(i):
        await waiters.wait()
        woken.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    await asyncio.sleep(0)
    assert len(waiters) == 5
    waiters.notify_all()
    assert len(waiters) == 0
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert woken == [0, 1, 2, 3, 4]


async def test_waiters_that_go_away_leave_and_the_rest_are_woken():
    waiters = Waiters()
    woken = []

    async def waiter(i):
        await waiters.wait()
        woken.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(10_000)]
    await asyncio.sleep(0)
    leaving = random.Random(7).sample(range(10_000), 5_000)
    for i in leaving:
        tasks[i].cancel()
    await asyncio.sleep(0)
    assert len(waiters) == 5_000
    waiters.notify_all()
    staying = sorted(set(range(10_000)) - set(leaving))
    await asyncio.wait_for(asyncio.gather(*(tasks[i] for i in staying)), 10.0)
    assert woken == staying
    for i in leaving[:3]:
        with pytest.raises(asyncio.CancelledError):
            await tasks[i]


async def test_one_cancelled_after_its_notification_is_gone_and_the_others_run():
    waiters = Waiters()
    tasks = [asyncio.create_task(waiters.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters.notify_all()
    tasks[0].cancel()  # woken, not yet run
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    await asyncio.wait_for(asyncio.gather(tasks[1], tasks[2]), 5.0)
    assert len(waiters) == 0


async def test_a_waiter_that_waits_again_is_woken_by_the_next_notification_only():
    waiters = Waiters()
    rounds = []

    async def again():
        for n in range(2):
            await waiters.wait()
            rounds.append(n)

    looping = asyncio.create_task(again())
    await asyncio.sleep(0)
    waiters.notify_all()
    await asyncio.sleep(0.01)
    assert rounds == [0] and len(waiters) == 1
    waiters.notify_all()
    await asyncio.wait_for(looping, 5.0)
    assert rounds == [0, 1]
