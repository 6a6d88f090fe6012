import pytest

from chatrelay import envelope as env
from chatrelay import group, members
from chatrelay.errors import Reason
from chatrelay.group import GroupKind
from chatrelay.members import MemberIdentity
from chatrelay.v1 import core_pb2

from helpers import refused


@pytest.fixture
def grp():
    secrets, signed = group.create_group(GroupKind.GROUP, "Club")
    return secrets, group.verify_profile(signed)


def test_key_announcement_reaches_owners_unchanged(grp):
    secrets, profile = grp
    member = MemberIdentity.generate()
    sealed = members.seal_announcement(member, secrets.group_id, profile.profile.intake_key, "Bob")
    announcement = members.open_announcement(sealed, secrets.intake_secret, secrets.group_id)
    assert announcement.keys == member.public
    assert announcement.profile.display_name == "Bob"
    assert b"Bob" not in sealed and member.public.sign_key not in sealed


def test_relay_cannot_swap_the_member_keys_in_an_announcement(grp):
    secrets, profile = grp
    member, relay_made = MemberIdentity.generate(), MemberIdentity.generate()
    # The relay can seal to the public intake key, but cannot sign for the member's key:
    # it signs a body naming the member's key with its own.
    announcement = core_pb2.KeyAnnouncement(group_id=secrets.group_id, keys=member.public)
    forged = env.sign_message(relay_made.signing_key, env.Domain.KEY_ANNOUNCEMENT, announcement)
    from nacl.public import PublicKey, SealedBox

    sealed = bytes(SealedBox(PublicKey(profile.profile.intake_key)).encrypt(env.encode(forged)))
    err = refused(Reason.UNKNOWN_SIGNER, members.open_announcement, sealed, secrets.intake_secret, secrets.group_id)
    assert err.message == "key announcement is not signed by the announced key"


def test_join_request_verifies_and_binds_the_group(grp):
    secrets, profile = grp
    member = MemberIdentity.generate()
    signed = members.join_request(member, secrets.group_id, "addr", profile.profile.intake_key, "Bob")
    body = members.verify_join(signed, secrets.group_id)
    assert body.keys == member.public and body.group_address == "addr"
    refused(Reason.GROUP_MISMATCH, members.verify_join, signed, bytes(32))


def test_post_round_trip_and_authors(grp):
    secrets, _ = grp
    owner = secrets.owner_key
    post = members.sign_post(owner, secrets.group_id, b"hello")
    body = members.verify_post(post, secrets.group_id, allowed={bytes(owner.verify_key)})
    assert body.body == b"hello"
    err = refused(Reason.UNKNOWN_SIGNER, members.verify_post, post, secrets.group_id, allowed={bytes(32)})
    assert err.message == "post author may not post here"


def test_post_over_16_kib_is_refused(grp):
    secrets, _ = grp
    members.sign_post(secrets.owner_key, secrets.group_id, b"x" * members.MAX_POST)
    err = refused(Reason.TOO_LARGE, members.sign_post, secrets.owner_key, secrets.group_id, b"x" * (members.MAX_POST + 1))
    assert err.size == members.MAX_POST + 1


def test_message_id_is_the_same_however_the_post_travels(grp):
    secrets, _ = grp
    post = members.sign_post(secrets.owner_key, secrets.group_id, b"hello")
    copy = env.decode(env.encode(post))
    assert members.message_id(copy) == members.message_id(post)
    other = members.sign_post(secrets.owner_key, secrets.group_id, b"hello")
    assert members.message_id(other) != members.message_id(post)  # nonce differs
