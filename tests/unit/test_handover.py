"""What a new owner takes up from the owner who added it (chatrelay/co_owners.py): only a
handover whose profile lists its key, whose intake key and link secret are the group's,
for a group it does not own already; the relays as the profile names them, not as the
handover says. The 1:1 connection's read is replaced here: the checks are pure."""

from __future__ import annotations

import asyncio
import copy

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from chatrelay import co_owners, group, links, tls
from chatrelay import envelope as env
from chatrelay.errors import Reason
from chatrelay.items import Checked
from chatrelay.state import Contact, OwnedGroup, State, b64
from chatrelay.v1 import core_pb2

RELAY = SigningKey.generate()
PIN = bytes(range(32))


def a_group():
    """A group with one relay, and the key of a second owner signed into its chain."""
    secrets, signed = group.create_group(group.GroupKind.GROUP, "Club")
    profile = group.verify_profile(signed)
    ref = core_pb2.RelayRef(relay_key=bytes(RELAY.verify_key), group_address="addr",
                            relay_link=str(links.relay_link(RELAY, "r", ["relay.example:7223"], pin=PIN).link))
    new_owner, owner_id = SigningKey.generate(), bytes(16)
    auth = group.make_owner_auth(secrets.owner_key, secrets.group_id, owner_id, bytes(new_owner.verify_key))
    signed = group.next_version(secrets.owner_key, profile, relays=[ref], owners=[*profile.profile.owners, auth])
    link = links.group_link(secrets, signed, ["relay.example:7223"], pins=[PIN]).link
    handover = {
        "type": "owner", "group_id": secrets.group_id.hex(), "kind": "group", "name": "Club", "link": str(link),
        "owner_id": b64(owner_id), "intake_secret": b64(secrets.intake_secret), "link_secret": b64(secrets.link_secret),
        "profile": b64(env.encode(signed)),
    }
    return handover, new_owner


def take(handover: dict, seed: SigningKey, owned=()) -> tuple[State, Checked]:
    st = State(owned=list(owned), contacts=[Contact(name="Ann", my_queue="q", my_target="t", my_seed="",
                                                    my_box_secret="", owner_seed=b64(bytes(seed)), handover=handover)])
    original = co_owners.contacts.inbox
    co_owners.contacts.inbox = lambda contact: _nothing()
    try:
        return st, asyncio.run(co_owners.take_up(st))
    finally:
        co_owners.contacts.inbox = original


async def _nothing() -> Checked:
    return Checked()


def test_a_handover_that_checks_out_is_kept_with_the_relays_the_profile_names():
    handover, seed = a_group()
    handover_relays = copy.deepcopy(handover) | {"relays": [{"target": "attacker.example:1", "relay_link": "x"}]}
    st, done = take(handover_relays, seed)
    assert done.skipped == []
    [owned] = st.owned
    assert (owned.name, owned.kind, owned.root_seed) == ("Club", "group", None)
    assert [(e.address, e.target) for e in owned.relays] == [("addr", f"{tls.render_pin(PIN)}@relay.example:7223")]
    assert st.contacts[0].owner_seed == "" and st.contacts[0].handover == {}


def _skipped(handover, seed, owned=()) -> tuple[Reason, str]:
    st, done = take(handover, seed, owned)
    [skipped] = done.skipped
    assert st.owned == list(owned)
    return skipped.reason, skipped.message


@pytest.mark.parametrize("change, reason, said", [
    ({"intake_secret": b64(bytes(PrivateKey.generate()))}, Reason.BAD_PROFILE, "the handover's intake key is not the group's"),
    ({"link_secret": b64(bytes(32))}, Reason.LINK_HASH_MISMATCH, "the handover's link is not the group's"),
    ({"owner_id": b64(bytes([1]) * 16)}, Reason.BAD_OWNER_CHAIN, "the handover's profile does not list my owner key"),
    ({"group_id": 5}, Reason.MALFORMED, None),
    ({"profile": ["not", "text"]}, Reason.MALFORMED, None),
])
def test_a_handover_that_does_not_check_out_is_refused_saying_why(change, reason, said):
    handover, seed = a_group()
    got = _skipped(handover | change, seed)
    assert got[0] is reason and (said is None or got[1] == said)


def test_a_handover_for_a_group_owned_already_leaves_its_keys_as_they_are():
    handover, seed = a_group()
    mine = OwnedGroup(group_id=handover["group_id"], kind="group", name="Club", link="l", owner_seed="root's",
                      owner_id="", intake_secret="", root_seed="kept", profile="")
    assert _skipped(handover, seed, [mine]) == (Reason.REFUSED, "you own 'Club' already: its keys stay as they are")


def test_a_key_not_in_the_chain_takes_nothing_up():
    handover, _ = a_group()
    assert _skipped(handover, SigningKey.generate()) == (
        Reason.BAD_OWNER_CHAIN, "the handover's profile does not list my owner key")
