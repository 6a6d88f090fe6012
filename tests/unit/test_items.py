"""Readers take items one by one (chatrelay/items.py): any sequence of good and bad items
gives back exactly the good ones, in order, and each bad one once, with its reason."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from chatrelay.errors import MalformedError, Reason
from chatrelay.items import Skipped, take, take_async

items = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["good", "bad", "nothing"])), max_size=50)


def check(item):
    seq, kind = item
    if kind == "bad":
        raise MalformedError("item", f"#{seq} is garbage")
    return None if kind == "nothing" else seq


@given(items)
def test_the_good_items_in_order_and_each_bad_one_once(sequence):
    cursor = []

    def checked(item):
        cursor.append(item[0])  # a reader's cursor moves past every item, good or bad
        return check(item)
    out = take(sequence, checked, lambda item: f"#{item[0]}")
    assert list(out) == [seq for seq, kind in sequence if kind == "good"]
    assert out.skipped == [Skipped(f"#{seq}", Reason.MALFORMED, f"item is malformed: #{seq} is garbage")
                           for seq, kind in sequence if kind == "bad"]
    assert cursor == [seq for seq, _ in sequence]


@given(items)
def test_the_same_with_checks_that_wait(sequence):
    async def checked(item):
        await asyncio.sleep(0)
        return check(item)
    out = asyncio.run(take_async(sequence, checked, lambda item: f"#{item[0]}"))
    assert list(out) == [seq for seq, kind in sequence if kind == "good"]
    assert [s.item for s in out.skipped] == [f"#{seq}" for seq, kind in sequence if kind == "bad"]


def test_a_skipped_item_says_what_and_why():
    skipped = Skipped("request 00ff", Reason.BAD_SIGNATURE, "a message does not open with the expected keys")
    assert str(skipped) == "skipped request 00ff: a message does not open with the expected keys (bad_signature)"
    assert skipped.to_json() == {"item": "request 00ff", "reason": "bad_signature",
                                 "message": "a message does not open with the expected keys"}


def test_what_is_not_a_refusal_is_not_swallowed():
    """A bug in a check is no bad item: it is raised, not skipped."""
    import pytest

    def broken(item):
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        take([1], broken, str)
