"""Several owners (issue 19): an owner invites another over their own 1:1 connection,
signs them into the chain and hands the group over end to end encrypted; the second owner,
the first offline from then on, posts, approves a join and changes the profile, and members
check each against the chain; the intake key never reaches a group relay's data; a relay
cannot add or remove an owner; an owner is removed only by one before it in the chain."""

from __future__ import annotations

import base64
import copy
import json
import pathlib

import pytest
from nacl.signing import SigningKey

from chatrelay import client, co_owners, group
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.state import load, unb64
from chatrelay.v1 import relay_pb2

from hostile import HostileRelay, delivery
from realparts import cli, start_relay


def ok(*args) -> str:
    done = cli(*args)
    assert done.returncode == 0, f"chatrelay {' '.join(args)}: {done.stderr}"
    return done.stdout


def forms(secret: bytes) -> list[bytes]:
    """The ways a key could sit in a file: raw, base64 (both alphabets, padded or not), hex."""
    b64 = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    return [secret, b64, b64.rstrip(b"="), url, url.rstrip(b"="), secret.hex().encode()]


def test_a_second_owner_runs_the_group_while_the_first_is_offline(ray_session, tmp_path):
    from chatrelay.cluster import up

    running = start_relay(tmp_path / "relay")
    a, b, m = (str(tmp_path / f"{who}.json") for who in ("ann", "bob", "mia"))
    try:
        link = ok("group", "create", "--relay", running.link, "--name", "Club", "--join", "approval",
                  "--state", a).strip()
        invitation = ok("owner", "add", "--name", "Ann", "--state", a).strip()
        assert ok("owner", "accept", invitation, "--name", "Bob", "--state", b) == (
            "asked Ann; you are an owner once they run `chatrelay owners` and you run it after them\n")
        done = cli("owners", "--state", a)  # Ann signs Bob in and hands the group over; then she is offline
        assert done.returncode == 0, done.stderr
        ann_key = load(pathlib.Path(a)).owned[0]
        assert done.stderr.startswith("Bob is an owner of Club (")
        listed = done.stdout.splitlines()
        assert len(listed) == 2 and listed[0].endswith("added by root (you)") and " added by " in listed[1]

        taken = cli("owners", "--state", b)
        assert taken.returncode == 0, taken.stderr
        assert "Ann accepted the connection" in taken.stderr and "Ann made you an owner of 'Club'" in taken.stderr
        mine = [line.replace(" (you)", "") for line in taken.stdout.splitlines()]
        assert mine == [line.replace(" (you)", "") for line in listed]
        assert taken.stdout.splitlines()[1].endswith(" (you)")

        ok("join", link, "--name", "Mia", "--state", m)
        [waiting] = ok("pending", "--state", b).splitlines()
        ok("approve", waiting.split()[0], "--state", b)
        ok("post", "from the second owner", "--state", b)
        ok("profile", "set", "--name", "Club 2", "--state", b)
        read = cli("read", "--json", "--state", m)
        assert read.returncode == 0, read.stderr
        items = [json.loads(line) for line in read.stdout.splitlines()]
        posts = [i for i in items if "text" in i]
        bob_key = load(pathlib.Path(b)).owned[0]
        assert [(p["text"], p["author"]) for p in posts] == [
            ("from the second owner", base64.urlsafe_b64encode(
                bytes(SigningKey(unb64(bob_key.owner_seed)).verify_key)).decode().rstrip("="))]
        assert [i["profile"]["name"] for i in items if "profile" in i] == ["Club 2"]
        assert not [i for i in items if "skipped" in i]
        ok("post", "admitted by Bob", "--state", m)  # her admission, Bob's approval, is checked by readers
        seen = [json.loads(line) for line in ok("read", "--json", "--state", b).splitlines()]
        assert [i["text"] for i in seen if "text" in i] == ["from the second owner", "admitted by Bob"]
        assert not [i for i in seen if "skipped" in i]

        # The owners' exchange went over their 1:1 connection only: the relay holds the
        # intake key's public half (in the profile) and never its secret.
        secret = unb64(ann_key.intake_secret)
        assert unb64(bob_key.intake_secret) == secret
        data = pathlib.Path(running.config.data_dir)
        files = [p for p in data.rglob("*") if p.is_file()]
        assert files
        found = [str(p.relative_to(data)) for p in files for form in forms(secret) if form in p.read_bytes()]
        assert found == []
    finally:
        up.stop(running, ray_shutdown=False)


@pytest.fixture
async def hostile():
    relay = await HostileRelay().start()
    yield relay
    await relay.stop()


async def test_a_relay_that_adds_or_removes_an_owner_is_caught_by_members(relay, hostile):
    owned = await client.create_group([relay.link], "Owned", GroupKind.CHANNEL)
    second, third = SigningKey.generate(), SigningKey.generate()
    second_id, _ = await co_owners.add(owned, bytes(second.verify_key))
    await co_owners.add(owned, bytes(third.verify_key))
    member = await client.join(owned.link, "m")  # it holds the version with three owners
    current = group.verify_profile(env.decode(unb64(owned.profile)))
    relays_key = SigningKey.generate()

    own = copy.deepcopy(current.profile)  # an owner of its own, signed in by itself
    own.version += 1
    own.owners.append(group.make_owner_auth(relays_key, current.group_id, bytes(16), bytes(relays_key.verify_key)))
    added = group.sign_profile(relays_key, own)
    dropped = copy.deepcopy(current.profile)  # the second owner dropped by the third, who did not add it
    dropped.version += 1
    del dropped.owners[1]
    removed = group.sign_profile(third, dropped)
    hostile.deliveries = [delivery(1, added), delivery(2, removed)]
    through = hostile.serving(member)
    read = await client.read_all(through)
    assert read.changes == []
    assert [(s.item.split(" at ")[0], s.reason, s.message) for s in read.skipped] == [
        ("item 1", Reason.BAD_OWNER_CHAIN, "owner 3 is not signed by the root or an earlier owner"),
        ("item 2", Reason.BAD_OWNER_CHAIN,
         f"owner {second_id.hex()} is removed by a key that is neither the root nor an owner before it in the chain"),
    ]


async def test_an_owner_is_removed_only_by_one_before_it_in_the_chain(relay):
    owned = await client.create_group([relay.link], "Chain", GroupKind.GROUP)
    member = await client.join(owned.link, "m")
    bob, carl = SigningKey.generate(), SigningKey.generate()
    bob_id, _ = await co_owners.add(owned, bytes(bob.verify_key))
    # Bob signs Carl in: as Bob, holding the group as Ann handed it over.
    as_bob = copy.deepcopy(owned)
    as_bob.owner_seed, as_bob.owner_id = base64.b64encode(bytes(bob)).decode(), base64.b64encode(bob_id).decode()
    await co_owners.add(as_bob, bytes(carl.verify_key))
    as_carl = copy.deepcopy(as_bob)
    as_carl.owner_seed = base64.b64encode(bytes(carl)).decode()

    for who, which, said in (
        (as_carl, bob_id.hex(), "only the owner who added that owner, or one before it in the chain, may remove it"),
        (as_bob, owned.owner_id and unb64(owned.owner_id).hex(),
         "only the owner who added that owner, or one before it in the chain, may remove it"),
        (as_bob, bob_id.hex(), "you cannot remove yourself: an owner before you in the chain can"),
        (as_bob, "0" * 32, f"no owner {'0' * 32!r} in the group; `chatrelay owners` lists them"),
    ):
        with pytest.raises(ChatRelayError) as info:
            await co_owners.remove(who, which)
        assert info.value.message == said
    # Versions a hostile owner signs are refused by the relay itself: Carl dropping Bob
    # breaks the chain (Bob signed Carl in); Dave, whom Ann added, may not drop Carl.
    dave = SigningKey.generate()
    await co_owners.add(owned, bytes(dave.verify_key))
    current = group.verify_profile(env.decode(unb64(owned.profile)))
    carl_id = current.owners[bytes(carl.verify_key)]
    for signer, gone, said in (
        (carl, bob, "owner 1 is not signed by the root or an earlier owner"),
        (dave, carl, f"owner {carl_id.hex()} is removed by a key that is neither the root nor an owner before it "
                     "in the chain"),
    ):
        dropped = group.next_version(signer, current, owners=[o for o in current.profile.owners
                                                              if o.owner_key != bytes(gone.verify_key)])
        async with client.RelayClient(owned.relays[0].target) as c:
            with pytest.raises(ChatRelayError) as info:
                await client.owner_command(c, signer, owned.relays[0].address,
                                           relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, profile=dropped)
        assert (info.value.reason, info.value.message) == (Reason.BAD_OWNER_CHAIN, said)

    await co_owners.remove(owned, bob_id.hex())  # Ann added Bob: she may; Carl is signed in again by her
    listed = await co_owners.list_owners(owned)
    ann_id = unb64(owned.owner_id).hex()
    assert [(o.key, o.added_by) for o in listed] == [
        (bytes(SigningKey(unb64(owned.owner_seed)).verify_key), "root"),
        (bytes(carl.verify_key), ann_id), (bytes(dave.verify_key), ann_id)]
    read = await client.read_all(member)
    assert read.skipped == [] and [len(c.profile.owners) for c in read.changes][-1] == 3
    with pytest.raises(ChatRelayError) as info:  # Bob is no owner now: the relay refuses what he signs
        await client.set_profile(as_bob, name="Bob's")
    assert info.value.reason is Reason.UNKNOWN_SIGNER


def test_owner_commands_refuse_bad_input_in_one_line(relay, tmp_path):
    a, x = str(tmp_path / "ann.json"), str(tmp_path / "x.json")

    def refused(*args) -> str:
        done = cli(*args)
        assert (done.returncode, done.stdout, len(done.stderr.splitlines())) == (2, "", 1), done
        return done.stderr.strip()

    assert refused("owners", "--state", x) == (
        "chatrelay: this state file owns no group or channel; make one with `chatrelay channel create` (not_a_member)")
    assert refused("owner", "add", "--state", x) == (
        "chatrelay: this state file owns no group or channel; make one with `chatrelay channel create` (not_a_member)")
    link = ok("channel", "create", "--relay", relay.link, "--name", "News", "--state", a).strip()
    assert refused("owner", "accept", link, "--state", x) == (
        "chatrelay: connect takes a contact address (a) or invitation (i) link (link_kind_mismatch)")
    assert refused("owner", "remove", "feed", "--state", a) == (
        "chatrelay: no owner 'feed' in the group; `chatrelay owners` lists them (unknown_address)")
    [me] = ok("owners", "--state", a).splitlines()
    assert refused("owner", "remove", me.split()[0], "--state", a) == (
        "chatrelay: you cannot remove yourself: an owner before you in the chain can (not_allowed)")

    # Someone connects to an owner invitation without an owner key: refused, said, nothing signed.
    invitation = ok("owner", "add", "--state", a).strip()
    ok("connect", invitation, "--name", "Mallory", "--state", x)
    done = cli("owners", "--state", a)
    assert done.returncode == 0 and done.stdout.splitlines() == [me]
    assert done.stderr.startswith("chatrelay: skipped request ") and done.stderr.endswith(
        ": an owner request is malformed: it carries no 32-byte owner key (malformed)\n"), done.stderr

    # An owner's own key offered by someone who does not hold it (the handover would give
    # them the group's secrets with no change to the chain): refused.
    import asyncio

    from chatrelay import contacts
    from chatrelay.state import b64

    invitation = ok("owner", "add", "--state", a).strip()
    ann = load(pathlib.Path(a)).owned[0]
    ann_key = bytes(SigningKey(unb64(ann.owner_seed)).verify_key)
    asyncio.run(contacts.connect(invitation, "Eve", extra={"owner_key": b64(ann_key), "owner_proof": b64(bytes(64))}))
    done = cli("owners", "--state", a)
    assert done.returncode == 0 and done.stdout.splitlines() == [me]
    assert done.stderr.endswith(": an owner request's key is not shown held by the asker (bad_signature)\n"), done.stderr
