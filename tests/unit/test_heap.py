"""The gateway's collector policy (cluster/heap.py), on this process's real collector:
what is frozen is not walked by collections, the full collection frees the cycles among
frozen objects, and everything is unfrozen when the keeper stops."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from chatrelay.cluster.heap import HeapKeeper


class Node:
    def __init__(self) -> None:
        self.other: "Node | None" = None


def cycle() -> tuple[list, weakref.ref]:
    """A cycle of two nodes that only the collector can free once the list holding it is
    cleared: that list, and a weak reference to one node."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return [a], weakref.ref(a)


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # whatever a test froze is walked again by the other tests' collections


def test_frozen_cycles_wait_for_the_full_collection(unfrozen):
    keeper = HeapKeeper(freeze_s=0.5, full_s=60.0)
    kept, held = cycle()
    keeper.freeze()
    assert gc.get_freeze_count() >= 2
    kept.clear()  # the cycle, frozen, is garbage now
    gc.collect()
    assert held() is not None  # frozen: no collection walks it
    found = keeper.collect_full()
    assert held() is None
    assert found >= 2 and keeper.freed == found and keeper.full_collections == 1
    assert gc.get_freeze_count() > 0  # the survivors frozen again


def test_cycles_made_after_a_freeze_are_collected_as_before(unfrozen):
    keeper = HeapKeeper()
    keeper.freeze()
    held, young = cycle()
    held.clear()
    gc.collect()
    assert young() is None


def test_full_collection_due_after_full_s():
    keeper = HeapKeeper(freeze_s=1.0, full_s=300.0)
    keeper.last_full = 1000.0
    assert not keeper.due(1299.9)
    assert keeper.due(1300.0)


@pytest.mark.parametrize("freeze_s, full_s", [(0.0, 10.0), (-1.0, 10.0), (20.0, 10.0)])
def test_bad_periods_refused(freeze_s, full_s):
    with pytest.raises(ValueError) as exc:
        HeapKeeper(freeze_s=freeze_s, full_s=full_s)
    assert str(exc.value) == "freeze_s above 0 and at most full_s"


def test_running_keeper_freezes_collects_and_unfreezes_when_stopped(unfrozen):
    async def run():
        keeper = HeapKeeper(freeze_s=0.01, full_s=0.05)
        keeper.start()
        held, ref = cycle()
        for _ in range(100):  # bounded: at most about a second
            await asyncio.sleep(0.01)
            if gc.get_freeze_count() and keeper.full_collections:
                break
        assert gc.get_freeze_count() > 0 and keeper.full_collections >= 1
        held.clear()
        before = keeper.full_collections
        for _ in range(100):
            await asyncio.sleep(0.01)
            if keeper.full_collections > before + 1:
                break
        assert ref() is None  # freed by a full collection of the running keeper
        keeper.stop()
        await asyncio.sleep(0.01)  # the task ends
        assert gc.get_freeze_count() == 0
    asyncio.run(run())
