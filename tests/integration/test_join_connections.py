"""Connections a member opens to a real relay: a join resolves the link and joins over
one connection; inside `one_member`, the stream it reads next rides the same one (a TLS
handshake each was about a third of resolve + join + first delivery). Two members, or
two groups, never share one."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay import client, connection
from chatrelay.group import GroupKind


@pytest.fixture
def opened(monkeypatch) -> list:
    """The target of every channel the SDK opens, in order."""
    targets = []
    real = connection.open_channel

    async def counting(target, *args):
        targets.append(target)
        return await real(target, *args)

    monkeypatch.setattr(connection, "open_channel", counting)
    return targets


async def first_post(member) -> str:
    async for post in client.follow(member, max_reconnects=0):
        return post.text
    raise AssertionError("the stream ended before its first post")


async def test_a_join_resolves_and_joins_over_one_connection(relay, opened):
    owned = await client.create_group([relay.link], "One connection", GroupKind.CHANNEL)
    await client.post(owned, "hello")
    opened.clear()
    member = await client.join(owned.link, "alone")
    assert opened == [relay.target]
    assert await asyncio.wait_for(first_post(member), 30) == "hello"
    assert opened == [relay.target] * 2  # the stream, outside one_member: a connection of its own


async def test_one_member_joins_and_reads_over_one_connection(relay, opened):
    owned = await client.create_group([relay.link], "One connection", GroupKind.CHANNEL)
    await client.post(owned, "hello")
    opened.clear()
    async with client.one_member():
        member = await client.join(owned.link, "reader")
        assert await asyncio.wait_for(first_post(member), 30) == "hello"
        assert [p.text for p in await client.read_all(member)] == ["hello"]
    assert opened == [relay.target]
    async with client.one_member():  # another member: a connection of its own
        other = await client.join(owned.link, "another")
        assert await asyncio.wait_for(first_post(other), 30) == "hello"
    assert opened == [relay.target] * 2
