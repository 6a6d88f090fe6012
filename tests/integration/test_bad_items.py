"""One bad item never stops a client (issue 16, first part): a stranger's garbage
connection request, a join whose sealed announcement is random, a boxed value that is
no JSON object, a direct invitation that does not open. Each reader skips exactly the bad
item, says so once with its reason, and goes on with the rest."""

from __future__ import annotations

import asyncio
import json
import os
import time

from nacl.public import Box, PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey

from chatrelay import client, contacts, direct, group, members
from chatrelay import envelope as env
from chatrelay.errors import Reason
from chatrelay.group import GroupKind
from chatrelay.state import unb64
from chatrelay.v1 import core_pb2, relay_pb2

from realparts import cli


async def send_request(relay, address, boxed: bytes, sender: bytes) -> bytes:
    body = relay_pb2.ConnectionRequestBody(queue_address=address.queue, sender_key=sender, boxed=boxed,
                                           nonce=os.urandom(16))
    async with client.RelayClient(relay.target) as c:
        return (await c.call("RequestConnection", relay_pb2.ConnectionRequest(body=body))).request_id


async def test_garbage_connection_requests_are_skipped_once_and_a_good_one_is_accepted(relay, tmp_path):
    from chatrelay import state as state_mod

    address = await contacts.create_address(relay.link, "Alice")
    garbage = await send_request(relay, address, os.urandom(80), os.urandom(32))  # opens with no key
    stranger = PrivateKey.generate()  # boxed properly, but a JSON list, not a request
    boxed = bytes(Box(stranger, PublicKey(bytes(PrivateKey(unb64(address.e2e_secret)).public_key))).encrypt(b"[1, 2]"))
    not_object = await send_request(relay, address, boxed, bytes(stranger.public_key))
    bob = await contacts.connect(address.link, "Bob", "hello")

    found = await contacts.requests(address)
    assert [r["name"] for r in found] == ["Bob"]
    assert [(s.item, s.reason) for s in found.skipped] == [
        (f"request {garbage.hex()}", Reason.BAD_SIGNATURE), (f"request {not_object.hex()}", Reason.MALFORMED)]
    assert found.skipped[1].message == "a connection request is malformed: not a JSON object"

    # The CLI: the good request listed, each bad one said once on stderr, exit 0.
    path = tmp_path / "alice.json"
    st = state_mod.State()
    st.addresses.append(await _fresh(address))
    state_mod.save(path, st)
    first = cli("requests", "--state", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].endswith(" Bob: hello")
    assert first.stderr.splitlines() == [
        f"chatrelay: skipped request {garbage.hex()}: a connection request does not open with the expected keys (bad_signature)",
        f"chatrelay: skipped request {not_object.hex()}: a connection request is malformed: not a JSON object (malformed)",
    ]
    again = cli("requests", "--state", str(path))
    assert again.returncode == 0 and again.stderr == ""  # reported once
    request_id = first.stdout.split()[0]
    accepted = cli("accept", request_id, "--state", str(path))
    assert accepted.returncode == 0, accepted.stderr
    assert await contacts.inbox(bob) == ["Alice accepted the connection"]


async def _fresh(address):
    """The address as a state file holds it before anything was read."""
    from chatrelay.state import Address

    return Address(kind=address.kind, link=address.link, queue=address.queue, target=address.target,
                   owner_seed=address.owner_seed, e2e_secret=address.e2e_secret, display_name=address.display_name)


async def test_a_join_with_a_random_announcement_is_skipped_and_the_others_are_listed(relay):
    owned = await client.create_group([relay.link], "Approved", GroupKind.GROUP, join=group.JoinPolicy.APPROVAL)
    verified = group.verify_profile(env.decode(unb64(owned.profile)))
    mallory = members.MemberIdentity.generate()
    request = members.join_request(mallory, verified.group_id, owned.relays[0].address, verified.profile.intake_key, "M")
    inner = core_pb2.JoinBody.FromString(request.body)  # signed by the joiner, but what it sealed is noise
    inner.sealed_announcement = os.urandom(len(inner.sealed_announcement))
    body = relay_pb2.JoinRequest(envelope=env.sign_message(mallory.signing_key, env.Domain.JOIN, inner))
    async with client.RelayClient(relay.target) as c:
        held = await c.call("Join", body)
    await client.join(owned.link, "Carol")
    waiting = await client.pending(owned)
    assert [p.display_name for p in waiting] == ["Carol"]
    assert [(s.item, s.reason) for s in waiting.skipped] == [(f"join request {held.request_id.hex()}", Reason.BAD_SIGNATURE)]
    await client.decide(owned, held.request_id.hex(), approve=False)  # rejected by its id: gone
    again = await client.pending(owned)
    assert [p.display_name for p in again] == ["Carol"] and again.skipped == []


async def test_a_direct_invitation_that_does_not_open_is_skipped_and_the_next_one_arrives(relay):
    owned = await client.create_group([relay.link], "Direct", GroupKind.GROUP, direct_messages=True)
    victim, mallory = await client.join(owned.link, "Victim"), await client.join(owned.link, "Mallory")
    victim_key = bytes(SigningKey(unb64(victim.sign_seed)).verify_key)
    body = relay_pb2.DirectInvitationBody(group_address=owned.relays[0].address, to_member=victim_key,
                                          sealed=os.urandom(120), nonce=os.urandom(16), timestamp=int(time.time()))
    envelope = env.sign_message(SigningKey(unb64(mallory.sign_seed)), env.Domain.DIRECT_INVITATION, body)
    async with client.RelayClient(relay.target) as c:
        await c.call("SendDirectInvitation", relay_pb2.DirectInvitationRequest(envelope=envelope))
    await direct.send_direct_invitation(mallory, "Victim", "hi, for real")
    got = await direct.direct_invitations(victim)
    assert [i.message for i in got] == ["hi, for real"]
    assert [(s.item, s.reason) for s in got.skipped] == [("direct invitation #1", Reason.BAD_SIGNATURE)]
    assert victim.direct_seq == 2  # past both
    assert await direct.direct_invitations(victim) == []



async def test_a_direct_invitation_to_a_host_of_the_senders_choosing_is_skipped_and_never_dialled(relay):
    """A member's client dials nothing another member names before its user says so, and
    then only the group's relays: a direct invitation whose link points elsewhere (here a
    loopback port that counts who connects) is skipped with its reason."""
    owned = await client.create_group([relay.link], "Direct", GroupKind.GROUP, direct_messages=True)
    victim, mallory = await client.join(owned.link, "Victim"), await client.join(owned.link, "Mallory")
    dialled = []

    async def count(reader, writer):
        dialled.append(writer.get_extra_info("peername"))
        writer.close()
    server = await asyncio.start_server(count, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        real = await contacts.create_address(relay.link, "Mallory", one_time=True)
        relay_host = real.link.split("//", 1)[1].split("/", 1)[0]
        elsewhere = real.link.replace(relay_host, f"127.0.0.1:{port}", 1)
        keys = members.MemberIdentity(sign_seed=unb64(victim.sign_seed), box_secret=unb64(victim.box_secret)).public
        sealed = SealedBox(PublicKey(keys.box_key)).encrypt(json.dumps(
            {"link": elsewhere, "name": "Mallory", "message": "click me", "group": owned.group_id}).encode())
        body = relay_pb2.DirectInvitationBody(group_address=owned.relays[0].address, to_member=keys.sign_key,
                                              sealed=bytes(sealed), nonce=os.urandom(16), timestamp=int(time.time()))
        envelope = env.sign_message(SigningKey(unb64(mallory.sign_seed)), env.Domain.DIRECT_INVITATION, body)
        async with client.RelayClient(relay.target) as c:
            await c.call("SendDirectInvitation", relay_pb2.DirectInvitationRequest(envelope=envelope))
        got = await direct.direct_invitations(victim)
        assert got == [] and victim.invitations == []
        assert [(s.item, s.reason, s.message) for s in got.skipped] == [
            ("direct invitation #1", Reason.NOT_ALLOWED, "a direct invitation names a host that is not one of the group's relays")]
        await asyncio.sleep(0.2)
        assert dialled == []
    finally:
        server.close()
        await server.wait_closed()

# ---- pages sized in bytes: no answer reaches a client's 4 MiB receive limit ----------------

CLIENT_RECEIVE_LIMIT = 4 * 1024 * 1024  # gRPC's default, the SDK's


async def test_a_history_larger_than_a_clients_receive_limit_is_read_page_by_page(relay):
    owned = await client.create_group([relay.link], "Heavy", GroupKind.CHANNEL)
    member = await client.join(owned.link, "m")
    texts = [f"{i:03d}" + "x" * (members.MAX_POST - 3) for i in range(300)]  # 300 posts of 16 KiB
    assert sum(len(t) for t in texts) > CLIENT_RECEIVE_LIMIT
    for start in range(0, len(texts), 100):  # at most 100 waiting for the channel's turn at once
        await asyncio.gather(*(client.post(owned, t) for t in texts[start:start + 100]))
    posts = await client.read_all(member)
    assert sorted(p.text for p in posts) == texts and not posts.skipped
    assert [p.seq for p in posts] == list(range(1, 301))


async def test_a_queue_holding_more_than_a_clients_receive_limit_is_read_page_by_page(relay):
    address = await contacts.create_address(relay.link, "Alice")
    big = [await send_request(relay, address, os.urandom(32 * 1024), os.urandom(32)) for _ in range(140)]
    assert 140 * 32 * 1024 > CLIENT_RECEIVE_LIMIT
    await contacts.connect(address.link, "Bob", "after them")
    found = await contacts.requests(address)
    assert [r["message"] for r in found] == ["after them"]
    assert [s.item for s in found.skipped] == [f"request {r.hex()}" for r in big]  # garbage, each said


async def test_a_post_with_control_sequences_reaches_no_terminal_as_one(relay, tmp_path):
    """A member's post may hold anything; `chatrelay read` writes its control characters
    (here: clear the screen, a bidi override) as escapes, so the reader's terminal acts
    on none of them."""
    from chatrelay.state import load

    from realparts import ok

    owner, ann = tmp_path / "owner.json", tmp_path / "ann.json"
    link = (await asyncio.to_thread(ok, "group", "create", "--relay", relay.link, "--name", "Terminal",
                                    "--state", str(owner))).strip()
    await asyncio.to_thread(ok, "join", link, "--state", str(ann), "--name", "Ann")
    await client.post(load(ann).memberships[0], "\x1b[2Jcleared \u202egnp.exe")
    out = await asyncio.to_thread(ok, "read", "--state", str(owner))
    assert out == "\\x1b[2Jcleared \\u202egnp.exe\n"
    assert "\x1b" not in out and "\u202e" not in out
