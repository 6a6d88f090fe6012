"""One reader of several groups gives a relay nothing to tie its groups together by
(issue 16): never one TCP connection for two groups, whatever the SDK runs at once."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay import client, connection
from chatrelay.group import GroupKind

from hostile import HostileRelay


@pytest.mark.parametrize("insecure", [False, True], ids=["tls", "plaintext"])
async def test_two_groups_read_at_once_never_share_a_connection(relay, insecure):
    """Plaintext too, where gRPC's global pool of subchannels would otherwise put both on
    one connection (the SDK gives each channel its own)."""
    hostile = await HostileRelay().start(insecure)
    try:
        readers = []
        for name in ("First", "Second"):
            owned = await client.create_group([relay.link], name, GroupKind.CHANNEL)
            readers.append(hostile.serving(await client.join(owned.link, "m")))
        connection.set_insecure(insecure)  # the readers talk to the hostile relay only
        await asyncio.gather(*(client.read_all(r) for r in readers for _ in range(3)))
        peers = {address: {p for a, p in hostile.seen if a == address} for address, _ in hostile.seen}
        assert set(peers) == {r.relays[0].address for r in readers}
        first, second = peers.values()
        assert first and second and not first & second
    finally:
        connection.set_insecure(False)
        await hostile.stop()
