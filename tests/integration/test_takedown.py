"""An operator takes a group down on a running relay, and restores it (issue 18): joins,
posts and reads are refused with reason taken_down and the operator's words, an open
stream ends at once with them, the owners read both in their service log, `status`
lists the group while it lasts. Forged, replayed and malformed takedowns are refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from nacl.signing import SigningKey

from chatrelay import admin_client, client, links
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.v1 import relay_pb2

from realparts import cli, ok

REASON = "court order 42"
REFUSED = f"taken down on this relay by its operator: {REASON}"


def operator(relay) -> admin_client.AdminClient:
    from chatrelay.cluster import identity

    key = identity.load_key(identity.pathlib.Path(relay.config.data_dir) / identity.OPERATOR_KEY_FILE)
    return admin_client.AdminClient(client.target_of_link(links.ShortLink.parse(relay.link)), key)


async def refused(coro) -> tuple[Reason, str]:
    with pytest.raises(ChatRelayError) as caught:
        await coro
    return caught.value.reason, caught.value.message


def notices(entries) -> list[tuple[str, str]]:
    return [(e.notice.kind, e.notice.text) for _, e in entries if e.HasField("notice")]


async def test_a_group_taken_down_is_refused_everywhere_until_restored(relay):
    owned = await client.create_group([relay.link], "Taken", GroupKind.GROUP, JoinPolicy.OPEN)
    address, data = owned.relays[0].address, relay.config.data_dir
    ann = await client.join(owned.link, "Ann")
    await client.post(owned, "before")
    seen: list[str] = []

    async def follow():
        async for post in client.follow(ann, max_reconnects=3):
            seen.append(post.text)
    following = asyncio.create_task(follow())
    for _ in range(100):  # until the stream delivers, bounded
        if seen:
            break
        await asyncio.sleep(0.05)
    assert seen == ["before"]

    out = await asyncio.to_thread(ok, "admin", "takedown", address, "--reason", REASON, "--data-dir", data)
    assert out.strip() == f"group {address} is taken down: {REASON}"
    assert await refused(asyncio.wait_for(following, 30)) == (Reason.TAKEN_DOWN, REFUSED)  # ended at once
    assert await refused(client.post(ann, "during")) == (Reason.TAKEN_DOWN, REFUSED)
    assert await refused(client.join(owned.link, "Bob")) == (Reason.TAKEN_DOWN, REFUSED)
    assert await refused(client.read_all(ann)) == (Reason.TAKEN_DOWN, REFUSED)
    status = json.loads(await asyncio.to_thread(ok, "status", "--data-dir", data, "--json", "--window", "0.2"))
    assert {"group_address": address, "reason": REASON} in status["taken_down"]
    assert f"taken down: {address} ({REASON})" in await asyncio.to_thread(ok, "status", "--data-dir", data, "--window", "0.2")
    assert notices(await client.service_log(owned)) == [("taken_down", REASON)]  # owners still read it

    out = await asyncio.to_thread(ok, "admin", "restore", address, "--data-dir", data)
    assert out.strip() == f"group {address} is served again"
    await client.post(ann, "after")
    assert [p.text for p in await client.read_all(ann)] == ["before", "after"]
    assert notices(await client.service_log(owned)) == [("taken_down", REASON), ("restored", "")]
    status = json.loads(await asyncio.to_thread(ok, "status", "--data-dir", data, "--json", "--window", "0.2"))
    assert address not in [t["group_address"] for t in status["taken_down"]]


async def test_forged_replayed_and_malformed_takedowns_are_refused(relay):
    owned = await client.create_group([relay.link], "Kept up", GroupKind.CHANNEL)
    address = owned.relays[0].address
    async with operator(relay) as admin:
        stranger = admin_client.AdminClient(admin.client.target, SigningKey.generate())
        try:
            assert await refused(stranger.take_down(address, REASON)) == (
                Reason.UNKNOWN_SIGNER, "admin request is not signed by this relay's operator key")
        finally:
            await stranger.client.close()
        cases = [
            ({"group_address": address, "reason": "  "}, "TakeDown",
             (Reason.MALFORMED, "a takedown needs a reason, which whoever is refused is shown")),
            ({"group_address": address, "reason": "x" * 501}, "TakeDown",
             (Reason.MALFORMED, "a takedown's reason is at most 500 characters, got 501")),
            ({"reason": REASON}, "TakeDown", (Reason.MALFORMED, "TakeDown needs a group address")),
            ({"group_address": address, "reason": REASON}, "Restore", (Reason.MALFORMED, "Restore takes no reason")),
            ({"group_address": "nowhere", "reason": REASON}, "TakeDown", (Reason.UNKNOWN_ADDRESS, "no group at this address")),
            ({"group_address": address, "reason": REASON}, "MoveGroup",
             (Reason.MALFORMED, "admin request was signed for 'MoveGroup', not 'TakeDown'")),
        ]
        for fields, method, expected in cases:
            envelope = admin_client.request(admin.key, method, **fields)
            rpc = method if method in ("TakeDown", "Restore") else "TakeDown"
            assert await refused(admin.client.call(rpc, relay_pb2.TakeDownRequest(envelope=envelope))) == expected
        signed = admin_client.request(admin.key, "TakeDown", group_address=address, reason=REASON)
        first = await admin.client.call("TakeDown", relay_pb2.TakeDownRequest(envelope=signed))
        assert first.taken_down == REASON
        assert (await refused(admin.client.call("TakeDown", relay_pb2.TakeDownRequest(envelope=signed))))[0] is Reason.REPLAYED
        assert (await admin.restore(address))["taken_down"] == ""
    await client.post(owned, "served")  # restored


async def test_an_owner_command_id_cannot_pass_for_a_relay_notice(relay):
    owned = await client.create_group([relay.link], "Ids", GroupKind.CHANNEL)
    entry = owned.relays[0]
    async with client.RelayClient(entry.target) as c:
        assert await refused(client.owner_command(
            c, client.reader_key(owned), entry.address, relay_pb2.OWNER_COMMAND_KIND_SUSPEND,
            command_id=b"notice/forged")) == (Reason.MALFORMED, "an owner command id may not start with 'notice/'")


def test_the_cli_refuses_a_takedown_without_its_reason(relay):
    done = cli("admin", "takedown", "some-address", "--data-dir", relay.config.data_dir)
    assert done.returncode == 2 and "Missing option '--reason'" in done.stderr
    done = cli("admin", "takedown", "nowhere", "--reason", " ", "--data-dir", relay.config.data_dir)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == "chatrelay: a takedown needs a reason, which whoever is refused is shown (malformed)"
