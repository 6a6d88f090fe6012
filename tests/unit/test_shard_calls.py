"""The Ray seam as a shard sees it: typed calls in, typed outcomes out; what is not a
call it knows is refused as a value, before anything is loaded or stored."""

from __future__ import annotations

from chatrelay.actors.calls import (
    Done, GroupCall, MoveGroup, Moved, MovedAway, PostBatch, QueueCall, Refused, pack, unpack, unwrap,
)
from chatrelay.actors.config import ClusterConfig
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.shard import RelayShard
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

import pytest


class NoStorage:
    """The calls below never reach storage."""

    def identity(self, config):
        raise AssertionError("read the identity key")

    def registry(self, config):
        raise AssertionError("opened the registry")

    def message_log(self, config):
        raise AssertionError("opened the message log")


def shard() -> RelayShard:
    config = ClusterConfig(
        data_dir="unused", relay_key=bytes(32), shards=1, etcd=None, listen="127.0.0.1:0",
        limits=RelayLimits(), operator_key=None, metrics=None, traces=None,
    )
    return RelayShard(0, config, NoStorage())


async def test_what_is_not_a_shard_call_is_refused():
    assert await shard().serve(("post_many", [b"x"])) == Refused(Reason.MALFORMED, "a relay shard takes no tuple")


async def test_a_group_call_of_a_request_no_group_takes_is_refused():
    call = GroupCall("addr", relay_pb2.StatusRequest())
    assert await shard().serve(call) == Refused(Reason.MALFORMED, "no group request StatusRequest")
    call = QueueCall(relay_pb2.PostRequest())
    assert await shard().serve(call) == Refused(Reason.MALFORMED, "no queue request PostRequest")


async def test_a_post_batch_carries_one_trace_context_a_post_or_none():
    batch = PostBatch("addr", (core_pb2.SignedEnvelope(), core_pb2.SignedEnvelope()), ({},))
    assert await shard().serve(batch) == Refused(
        Reason.MALFORMED, "a post batch carries one trace context a post, or none")


def test_outcomes_unwrap_to_the_value_the_refusal_or_moved():
    assert unwrap(Done([1])) == [1]
    with pytest.raises(ChatRelayError) as caught:
        unwrap(Refused(Reason.BUSY, "later"))
    assert (caught.value.reason, caught.value.message) == (Reason.BUSY, "later")
    with pytest.raises(Moved):
        unwrap(MovedAway())


def test_calls_cross_the_seam_packed_and_come_back_the_same():
    call = PostBatch("addr", (core_pb2.SignedEnvelope(body=b"b", signature=b"s"),), ({"traceparent": "x"},))
    assert unpack(pack(call)) == call
    assert unpack(pack(MoveGroup("addr", 3))) == MoveGroup("addr", 3)


async def test_bytes_that_are_not_a_packed_call_are_refused():
    import pickle

    for data in (b"", b"garbage", pickle.dumps(("post_many", [b"x"])), pickle.dumps(relay_pb2.PostRequest())):
        assert unpack(data) is None
        assert await shard().serve(data) == Refused(Reason.MALFORMED, "a relay shard takes packed shard calls only")
    assert await shard().serve(pack(GroupCall("addr", relay_pb2.StatusRequest()))) == Refused(
        Reason.MALFORMED, "no group request StatusRequest")
