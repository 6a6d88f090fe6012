"""Waiters (cluster/waiters.py): a notification wakes every waiter there is, in order, one
after another; one that goes away, before or after its turn, costs the others nothing."""

from __future__ import annotations

import asyncio
import random

import pytest

from chatrelay.cluster.waiters import Waiters


async def test_the_waiters_are_woken_in_order_each_after_the_one_before_it_ran():
    waiters = Waiters()
    resumed: list[tuple[int, int]] = []  # (who, waiters not yet woken when it ran: all after it)

    async def waiter(i):
        await waiters.wait()
        resumed.append((i, len(waiters)))

    tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0)
    assert len(waiters) == 4
    waiters.notify_all()
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert resumed == [(0, 3), (1, 2), (2, 1), (3, 0)]


async def test_waiters_that_go_away_before_their_turn_are_passed_over():
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


async def test_one_woken_and_cancelled_before_it_ran_passes_the_turn_on():
    waiters = Waiters()
    tasks = [asyncio.create_task(waiters.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters.notify_all()
    tasks[0].cancel()  # its turn given, not yet taken
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

    other = asyncio.create_task(waiters.wait())
    looping = asyncio.create_task(again())
    await asyncio.sleep(0)
    waiters.notify_all()
    await asyncio.wait_for(other, 5.0)
    await asyncio.sleep(0.01)
    assert rounds == [0] and len(waiters) == 1
    waiters.notify_all()
    await asyncio.wait_for(looping, 5.0)
    assert rounds == [0, 1]


async def test_a_notification_during_another_wakes_its_waiters_after_the_first_ones():
    waiters = Waiters()
    order = []

    async def waiter(name):
        await waiters.wait()
        order.append(name)

    first = [asyncio.create_task(waiter(f"a{i}")) for i in range(3)]
    await asyncio.sleep(0)
    waiters.notify_all()
    second = [asyncio.create_task(waiter(f"b{i}")) for i in range(2)]
    await asyncio.sleep(0)
    waiters.notify_all()
    waiters.notify_all()  # nothing left to wake: nothing happens
    await asyncio.wait_for(asyncio.gather(*first, *second), 5.0)
    assert order == ["a0", "a1", "a2", "b0", "b1"]
