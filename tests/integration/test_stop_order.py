"""Stopping a relay: its gateways are dead before its shards are killed (`up._gone`), so a
gateway's calls in flight to a shard (a group tail's long poll) go with it instead of
failing and being retried, which Ray logs for each."""

from __future__ import annotations

import pytest

from chatrelay.cluster import up


def _actor(ray):
    @ray.remote(num_cpus=0)
    class Idle:
        def ping(self) -> str:
            return "here"
    return Idle.remote()


def test_a_killed_actor_is_dead_once_gone_returns(ray_session):
    ray = ray_session
    actors = [_actor(ray) for _ in range(2)]
    assert ray.get([a.ping.remote() for a in actors], timeout=60) == ["here", "here"]
    up._kill(actors)
    up._gone(actors, within_s=30)
    for actor in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.ping.remote(), timeout=30)


def test_gone_only_waits_a_live_actor_out(ray_session):
    ray = ray_session
    actor = _actor(ray)
    assert ray.get(actor.ping.remote(), timeout=60) == "here"
    up._gone([actor], within_s=0.3)  # not killed: it returns once its time is up
    assert ray.get(actor.ping.remote(), timeout=30) == "here"
    up._kill([actor])
