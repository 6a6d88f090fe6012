"""The relay's store of link data, as an attacker who captured a store request sees it:
replayed later it can't roll the data back, nor come back once it is old; another key
can't take the link over."""

from __future__ import annotations

import os
import time

import pytest
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import group, links
from chatrelay.cluster.link_store import LinkStore
from chatrelay.cluster.registry_sqlite import SqliteRegistry
from chatrelay.errors import Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import relay_pb2



@pytest.fixture
async def store(tmp_path):
    registry = SqliteRegistry(tmp_path / "registry.db")
    yield LinkStore(registry, freshness_s=300)
    await registry.close()


def stored_request(key: SigningKey, bundle: links.LinkBundle, timestamp: float | None = None, writers=()):
    body = relay_pb2.StoreLinkBody(
        lookup_id=bundle.lookup_id, ciphertext=bundle.ciphertext, nonce=os.urandom(16),
        timestamp=int(time.time() if timestamp is None else timestamp), version=bundle.version, writers=writers,
    )
    return env.sign_message(key, env.Domain.LINK_STORE, body)


def versions():
    """A group's link data at profile versions 1, 2 and 3 (one link key)."""
    secrets, signed = group.create_group(GroupKind.CHANNEL, "Weather")
    current = group.verify_profile(signed)
    out = [links.group_link(secrets, signed, ["relay.example"])]
    for _ in range(2):
        signed = group.next_version(secrets.owner_key, current)
        current = group.verify_profile(signed)
        out.append(links.group_link(secrets, signed, ["relay.example"]))
    return secrets.owner_key, out


async def test_a_captured_store_replayed_after_a_newer_one_cannot_roll_the_data_back(store):
    key, (v1, v2, v3) = versions()
    assert {b.link.link_key for b in (v1, v2, v3)} == {v1.link.link_key} and (v2.version, v3.version) == (2, 3)
    captured = stored_request(key, v2)
    assert await store.store(stored_request(key, v1)) is True
    assert await store.store(captured) is False
    assert await store.store(stored_request(key, v3)) is False
    err = await _refused(store.store(captured))
    assert (err.reason, err.message) == (Reason.STALE, "link data version 2 is older than the stored version 3")
    assert links.decrypt(v3.link.link_key, await store.resolve(v3.lookup_id)).mutable == v3.data.mutable
    assert await store.store(stored_request(key, v3)) is False  # the same version again: harmless


async def test_a_store_signed_outside_the_freshness_window_is_stale(store):
    key, (v1, _, _) = versions()
    for skew in (-301, 301):
        err = await _refused(store.store(stored_request(key, v1, time.time() + skew)))
        assert (err.reason, err.message) == (
            Reason.STALE, "link store request was signed more than 300 s from now; check the clock")


async def test_another_key_cannot_replace_the_data(store):
    key, (v1, v2, _) = versions()
    await store.store(stored_request(key, v1))
    err = await _refused(store.store(stored_request(SigningKey.generate(), v2)))
    assert (err.reason, err.message) == (Reason.NOT_ALLOWED, "this link's data belongs to another key")


async def test_a_writer_the_last_store_named_may_replace_the_data_until_a_store_names_it_no_more(store):
    key, (v1, v2, v3) = versions()
    other, stranger = SigningKey.generate(), SigningKey.generate()
    await store.store(stored_request(key, v1, writers=[bytes(other.verify_key)]))  # a second owner
    assert await store.store(stored_request(other, v2, writers=[bytes(other.verify_key)])) is False
    assert links.decrypt(v2.link.link_key, await store.resolve(v2.lookup_id)).mutable == v2.data.mutable
    err = await _refused(store.store(stored_request(stranger, v3)))
    assert (err.reason, err.message) == (Reason.NOT_ALLOWED, "this link's data belongs to another key")
    await store.store(stored_request(key, v3))  # the first key stays; this store names no writer
    err = await _refused(store.store(stored_request(other, v3)))
    assert (err.reason, err.message) == (Reason.NOT_ALLOWED, "this link's data belongs to another key")


@pytest.mark.parametrize("writers", [[b"short"], [bytes(32)] * 33])
async def test_malformed_writers_are_refused(store, writers):
    key, (v1, _, _) = versions()
    err = await _refused(store.store(stored_request(key, v1, writers=writers)))
    assert (err.reason, err.message) == (Reason.MALFORMED, (
        "link store request is malformed: at most 32 writers, each a 32-byte key"))


async def _refused(coro):
    from chatrelay.errors import ChatRelayError

    with pytest.raises(ChatRelayError) as caught:
        await coro
    return caught.value


async def test_a_store_whose_body_is_not_a_store_request_is_malformed(store):
    garbage = env.sign(SigningKey.generate(), env.Domain.LINK_STORE, b"\xff\xff not a body")
    err = await _refused(store.store(garbage))
    assert (err.reason, err.message) == (Reason.MALFORMED, (
        "link store request is malformed: Error parsing message with type 'chatrelay.v1.StoreLinkBody': "
        "Wire format was corrupt"))
