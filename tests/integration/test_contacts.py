"""Contact addresses, one-time invitations and 1:1 connections through the relay."""

from __future__ import annotations

import asyncio
import os
import pathlib
import time

import pytest
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from chatrelay import client as sdk
from chatrelay import contacts, direct, group
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import ShortLink
from chatrelay.state import b64, unb64
from chatrelay.v1 import relay_pb2


async def test_a_contact_address_connects_two_people_end_to_end(relay):
    alice_address = await contacts.create_address(relay.link, "Alice")
    assert "/a#" in alice_address.link
    bob = await contacts.connect(alice_address.link, "Bob", "hi, it's Bob")
    assert bob.status == "waiting"
    [request] = await contacts.requests(alice_address)
    assert (request["name"], request["message"]) == ("Bob", "hi, it's Bob")
    alice = await contacts.accept(alice_address, request["id"])
    assert await contacts.inbox(bob) == ["Alice accepted the connection"]
    assert bob.status == "connected"
    await contacts.send(bob, "how are you?")
    await contacts.send(alice, "fine, thanks")
    assert await contacts.inbox(alice) == ["how are you?"]
    assert await contacts.inbox(bob) == ["fine, thanks"]
    assert await contacts.inbox(bob) == []  # read positions move
    with pytest.raises(ChatRelayError) as info:
        await contacts.accept(alice_address, request["id"])
    assert info.value.reason is Reason.REFUSED


async def test_a_one_time_invitation_locks_on_first_use_even_when_racing(relay):
    invitation = await contacts.create_address(relay.link, "Carol", one_time=True)
    short = ShortLink.parse(invitation.link)
    assert "/i#" in invitation.link and len(short.render(pinned=False)) <= 110
    assert len(invitation.link) == len(short.render(pinned=False)) + len("?f=") + 43  # the relay's TLS pin
    results = await asyncio.gather(
        *(contacts.connect(invitation.link, f"racer {i}") for i in range(2)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    [loser] = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert (loser.reason, loser.message) == (Reason.REFUSED, "this one-time invitation has already been used")
    with pytest.raises(ChatRelayError) as info:
        await contacts.connect(invitation.link, "late")
    assert info.value.reason is Reason.REFUSED
    assert len(await contacts.requests(invitation)) == 1


async def test_a_thousand_requests_wait_for_an_offline_owner_across_a_restart(ray_session, tmp_path):
    from realparts import free_port, start_relay

    from chatrelay.cluster import up

    data, listen = tmp_path / "relay", f"127.0.0.1:{free_port()}"
    running = await asyncio.to_thread(start_relay, data, listen=listen)
    try:
        address = await contacts.create_address(running.link, "Popular")  # then the owner goes offline
        semaphore = asyncio.Semaphore(32)

        async def one(i):
            async with semaphore:
                await contacts.connect(address.link, f"fan {i}", f"message {i}")

        await asyncio.gather(*(one(i) for i in range(1000)))
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)
    running = await asyncio.to_thread(start_relay, data, listen=listen)  # the relay restarts
    try:
        waiting = await contacts.requests(address)  # the owner comes back
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)
    assert len(waiting) == 1000
    assert {(r["name"], r["message"]) for r in waiting} == {(f"fan {i}", f"message {i}") for i in range(1000)}


async def test_the_relay_stores_no_plaintext(relay):
    marker = "MARKER-" + os.urandom(8).hex()
    address = await contacts.create_address(relay.link, "Dora")
    eve = await contacts.connect(address.link, "Eve", f"first {marker}")
    [request] = await contacts.requests(address)
    dora = await contacts.accept(address, request["id"])
    await contacts.inbox(eve)
    await contacts.send(eve, f"second {marker}")
    await contacts.send(dora, f"third {marker}")
    assert await contacts.inbox(dora) == [f"second {marker}"]
    data = pathlib.Path(relay.config.data_dir)
    await asyncio.sleep(0.5)
    for path in data.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), f"plaintext in {path.name}"


async def _group_with_two_members(relay, direct_messages: bool):
    owned = await sdk.create_group([relay.link], "Neighbours", group.GroupKind.GROUP, direct_messages=direct_messages)
    ann = await sdk.join(owned.link, "Ann (incognito)")
    ben = await sdk.join(owned.link, "Ben")
    return owned, ann, ben


async def test_direct_connection_on_demand_through_the_group(relay):
    owned, ann, ben = await _group_with_two_members(relay, direct_messages=True)
    invitation = await direct.send_direct_invitation(ann, "Ben", "hi Ben, Ann here")
    [waiting] = await direct.direct_invitations(ben)
    assert (waiting.name, waiting.message) == ("Ann (incognito)", "hi Ben, Ann here")
    assert ben.invitations == [waiting]
    assert await direct.accept_direct(invitation) == []  # nothing dialled before Ben says so
    ben_side = await direct.accept_invitation(ben, waiting.id)
    assert ben_side.name == "Ann (incognito)"  # the name Ann uses in the group, not another
    assert ben.invitations == []
    [ann_side] = await direct.accept_direct(invitation)
    assert ann_side.name == "Ben"
    assert await contacts.inbox(ben_side) == ["Ann (incognito) accepted the connection"]
    await contacts.send(ben_side, "hello Ann")
    assert await contacts.inbox(ann_side) == ["hello Ann"]
    assert await direct.direct_invitations(ben) == []  # read once


async def test_direct_invitations_are_refused_where_the_group_says_no(relay):
    owned, ann, ben = await _group_with_two_members(relay, direct_messages=False)
    with pytest.raises(ChatRelayError) as info:
        await direct.send_direct_invitation(ann, "Ben", "psst")  # the client refuses first
    assert info.value.reason is Reason.NOT_ALLOWED

    # A client that ignores the setting is refused by the relay.
    keys = await direct.member_keys(ann, "Ben")
    body = relay_pb2.DirectInvitationBody(
        group_address=ann.relays[0].address, to_member=keys.sign_key,
        sealed=bytes(SealedBox(PrivateKey.generate().public_key).encrypt(b"x")),
        nonce=os.urandom(16), timestamp=int(time.time()),
    )
    envelope = env.sign_message(sdk.reader_key(ann), env.Domain.DIRECT_INVITATION, body)
    async with sdk.RelayClient(relay.target) as c:
        with pytest.raises(ChatRelayError) as info:
            await c.call("SendDirectInvitation", relay_pb2.DirectInvitationRequest(envelope=envelope))
    assert (info.value.reason, info.value.message) == (Reason.NOT_ALLOWED, "direct messages are off in this group")


async def test_a_client_refuses_a_direct_invitation_its_profile_forbids(relay):
    """The relay forwarded one anyway (here: the group allowed it when sent, and Ben's
    profile says no): Ben's client refuses it."""
    owned, ann, ben = await _group_with_two_members(relay, direct_messages=True)
    await direct.send_direct_invitation(ann, "Ben", "hello")
    profile = group.verify_profile(env.decode(unb64(ben.profile)))
    settings = type(profile.profile.settings)()
    settings.CopyFrom(profile.profile.settings)
    settings.direct_messages = False
    forbidding = group.next_version(SigningKey(unb64(owned.owner_seed)), profile, settings=settings)
    ben.profile = b64(env.encode(forbidding))  # what Ben's client knows of the group
    refused = await direct.direct_invitations(ben)  # refused, said, and gone past (issue 16)
    assert refused == [] and [(s.reason, s.message) for s in refused.skipped] == [
        (Reason.NOT_ALLOWED, "refused a direct invitation: direct messages are off in this group")]


async def test_direct_invitations_store_no_plaintext(relay):
    marker = "DM-MARKER-" + os.urandom(8).hex()
    owned, ann, ben = await _group_with_two_members(relay, direct_messages=True)
    await direct.send_direct_invitation(ann, "Ben", marker)
    await asyncio.sleep(0.3)
    for path in pathlib.Path(relay.config.data_dir).rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), f"plaintext in {path.name}"
    [waiting] = await direct.direct_invitations(ben)
    assert waiting.message == marker
