"""Waiters (cluster/waiters.py): a notification wakes every waiter there is, in order, one
after another; one that goes away, before or after its turn, costs the others nothing."""

from __future__ import annotations

import asyncio
import random

import pytest

from chatrelay.cluster.waiters import BEHIND_GAP_S, BEHIND_PASS_S, MAX_SPACED, Waiters


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


async def test_wakes_behind_another_notification_are_spaced_and_those_of_a_lone_one_are_not(monkeypatch):
    waiters = Waiters()
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    call_later = loop.call_later

    def spy(delay, callback, *args, **kwargs):
        if callback == waiters._pass_on:
            gaps.append(delay)
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", spy)
    woken: list[tuple[int, int]] = []

    async def thrice(i):
        for n in range(3):
            await waiters.wait()
            woken.append((i, n))

    tasks = [asyncio.create_task(thrice(i)) for i in range(5)]
    for _ in range(1000):  # a lone notification: every waiter woken a turn apart
        await asyncio.sleep(0)
        if len(waiters) == 5:
            break
    waiters.notify_all()
    for _ in range(1000):
        await asyncio.sleep(0)
        if len(woken) == 5:
            break
    assert sorted(woken) == [(i, 0) for i in range(5)] and gaps == []
    waiters.notify_all()  # and one more while its waiters are still being woken
    for _ in range(1000):
        await asyncio.sleep(0)
        if (0, 1) in woken:
            break
    waiters.notify_all()
    assert gaps == [] and waiters.gap == BEHIND_GAP_S
    for _ in range(1000):
        if all(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
        waiters.notify_all()
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert gaps and set(gaps) == {BEHIND_GAP_S}
    assert sorted(woken) == [(i, n) for i in range(5) for n in range(3)]


@pytest.mark.parametrize("count, gap", [(1, BEHIND_GAP_S), (1000, BEHIND_GAP_S), (2000, BEHIND_PASS_S / 2000),
                                        (MAX_SPACED, BEHIND_PASS_S / MAX_SPACED), (MAX_SPACED + 1, 0.0)])
async def test_the_gap_shrinks_with_the_waiters_to_at_most_the_pass_and_then_to_none(count, gap):
    waiters = Waiters()
    assert waiters.gap == 0.0
    tasks = [asyncio.create_task(waiters.wait()) for _ in range(count)]
    await asyncio.sleep(0)
    assert waiters.gap == pytest.approx(gap)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert waiters.gap == 0.0
