"""A group's batch is encoded once for every stream at the same place in the gateway's
window (cluster/tail.py, GroupTail.encoded): the bytes decode to the batch, streams at
the same place get the very same bytes, and the tail keeps only a bounded number."""

from __future__ import annotations

import types

from chatrelay.cluster import tail
from chatrelay.v1 import relay_pb2


def deliveries(first: int, last: int) -> list[relay_pb2.Delivery]:
    return [relay_pb2.Delivery(seq=s, message_id=bytes([s % 256]) * 32, relay_ts=s) for s in range(first, last + 1)]


def a_tail():
    return types.SimpleNamespace(_encoded={})


def test_a_batch_is_encoded_once_and_decodes_to_itself():
    group = a_tail()
    batch = deliveries(5, 9)
    data = tail.GroupTail.encoded(group, batch)
    decoded = relay_pb2.DeliveryBatch.FromString(data)
    assert list(decoded.deliveries) == batch and decoded.last_seq == 9
    assert tail.GroupTail.encoded(group, deliveries(5, 9)) is data  # another stream at the same place
    assert tail.GroupTail.encoded(group, deliveries(6, 9)) != data


def test_the_encoded_batches_kept_are_bounded():
    group = a_tail()
    for first in range(1, 3 * tail.ENCODED_KEPT):
        tail.GroupTail.encoded(group, deliveries(first, first + 2))
        assert len(group._encoded) <= tail.ENCODED_KEPT
