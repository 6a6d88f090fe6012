"""A stream's next posts from the gateway's window of a group (cluster/tail.py,
GroupTail._window_after): the posts after its seq, in order, at most BATCH, whatever gaps
deleted posts left in the window; found without reading the whole window."""

from __future__ import annotations

import collections
import random
import types

from chatrelay.cluster import tail
from chatrelay.v1 import relay_pb2


def window(seqs) -> collections.deque:
    return collections.deque((relay_pb2.Delivery(seq=s) for s in seqs), maxlen=tail.TAIL_WINDOW)


def after(buffer: collections.deque, seq: int) -> list[int]:
    return [d.seq for d in tail.GroupTail._window_after(types.SimpleNamespace(buffer=buffer), seq)]


def test_the_posts_after_a_seq_in_order_and_at_most_a_batch():
    buffer = window(range(101, 101 + tail.TAIL_WINDOW))  # a full window: 101 .. 4196
    assert after(buffer, 4195) == [4196]
    assert after(buffer, 4196) == []
    assert after(buffer, 5000) == []
    assert after(buffer, 100) == list(range(101, 101 + tail.BATCH))
    assert after(buffer, 0) == list(range(101, 101 + tail.BATCH))
    assert after(buffer, 4000) == list(range(4001, 4197))
    assert after(window([]), 7) == []


def test_gaps_left_by_deleted_posts_are_stepped_over():
    buffer = window([3, 4, 9, 10, 11, 20])
    assert after(buffer, 4) == [9, 10, 11, 20]
    assert after(buffer, 5) == [9, 10, 11, 20]
    assert after(buffer, 11) == [20]
    assert after(buffer, 2) == [3, 4, 9, 10, 11, 20]


def test_it_answers_as_reading_the_whole_window_would():
    rng = random.Random(21)
    for _ in range(200):
        seqs = sorted(rng.sample(range(1, 20_000), rng.randrange(0, tail.TAIL_WINDOW)))
        buffer = window(seqs)
        for seq in (0, *rng.sample(range(0, 20_001), 5), seqs[-1] if seqs else 0):
            assert after(buffer, seq) == [s for s in seqs if s > seq][: tail.BATCH]
