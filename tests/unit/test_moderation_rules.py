"""Who may sign what in moderation, and the group's rules for members' posts
(chatrelay/moderation.py): the checks relays and members share."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import group, members, moderation
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import core_pb2

DELETE, REMOVE = core_pb2.MODERATION_KIND_DELETE_POST, core_pb2.MODERATION_KIND_REMOVE_MEMBER


@pytest.fixture
def setup():
    """A group whose owner named one moderator, with its rules: 60 s slow mode, 20 bytes, no links."""
    secrets, signed = group.create_group(GroupKind.GROUP, "Rules")
    moderator, other_moderator, member = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    settings = core_pb2.GroupSettings(join=core_pb2.JOIN_POLICY_OPEN, slow_mode_s=60, max_post_bytes=20, no_links=True)
    profile = group.verify_profile(group.next_version(
        secrets.owner_key, group.verify_profile(signed), settings=settings,
        moderators=[bytes(moderator.verify_key), bytes(other_moderator.verify_key)]))
    return secrets, profile, moderator, other_moderator, member


def refusal(call) -> tuple[Reason, str]:
    with pytest.raises(ChatRelayError) as info:
        call()
    return info.value.reason, info.value.message


@pytest.mark.parametrize("text, link", [
    ("at https://a.io", True), ("www.a.io", True), ("see a.io/x", True), ("(example.org/path)", True),
    ("ftp://x", True), ("hello world", False), ("a.b", False), ("e.g. this", False), ("awww.x", False),
    ("1.5/2", False), ("example.org", False), ("", False),
])
def test_what_counts_as_a_link(text, link):
    assert moderation.has_link(text) is link


def test_the_rules_bind_members_and_leave_owners_and_moderators_free(setup):
    secrets, profile, moderator, _, member = setup

    def body(text: str) -> core_pb2.PostBody:
        return core_pb2.PostBody(body=text.encode())
    key = bytes(member.verify_key)
    assert refusal(lambda: moderation.check_rules(profile, key, body("x" * 21))) == (
        Reason.TOO_LARGE, "post is 21 bytes; the group's rules allow at most 20")
    assert refusal(lambda: moderation.check_rules(profile, key, body("www.a.io"))) == (
        Reason.NOT_ALLOWED, "the group's rules allow no links in posts")
    moderation.check_rules(profile, key, body("fine"))
    for free in (bytes(secrets.owner_key.verify_key), bytes(moderator.verify_key)):
        moderation.check_rules(profile, free, body("www.a.io " + "y" * 30))
        assert moderation.slow_mode_refusal(profile, free, 1000, [1000]) is None


def test_the_slow_mode_compares_with_every_earlier_post_either_side(setup):
    _, profile, _, _, member = setup
    key = bytes(member.verify_key)
    assert moderation.slow_mode_refusal(profile, key, 100_000, []) is None
    assert moderation.slow_mode_refusal(profile, key, 160_000, [100_000]) is None
    early = moderation.slow_mode_refusal(profile, key, 130_000, [100_000, 200_000])  # signed between two
    assert (early.reason, early.message) == (Reason.RATE_LIMITED, "the group's slow mode allows one post per 60 s; retry in 30 s")


def test_who_may_sign_a_deletion_or_a_removal(setup):
    secrets, profile, moderator, other_moderator, member = setup
    gid = profile.group_id

    def verify(signer, kind, **fields):
        return lambda: moderation.verify(moderation.sign(signer, gid, kind, **fields), profile)
    owner_key = bytes(secrets.owner_key.verify_key)
    assert refusal(verify(member, DELETE, message_id=b"m" * 32)) == (
        Reason.UNKNOWN_SIGNER, "moderation is not signed by an owner or a moderator of the group")
    assert refusal(verify(moderator, REMOVE, member=bytes(other_moderator.verify_key))) == (
        Reason.NOT_ALLOWED, "a moderator cannot remove an owner or another moderator")
    for signer in (moderator, secrets.owner_key):
        assert refusal(verify(signer, REMOVE, member=owner_key)) == (Reason.NOT_ALLOWED, "an owner is not removed as a member")
    done = verify(moderator, DELETE, message_id=b"m" * 32)()
    assert done.role == moderation.MODERATOR
    moderation.check_deletion(done, profile, bytes(member.verify_key))
    moderation.check_deletion(done, profile, bytes(moderator.verify_key))  # its own post
    for author in (owner_key, bytes(other_moderator.verify_key)):
        assert refusal(lambda: moderation.check_deletion(done, profile, author)) == (
            Reason.NOT_ALLOWED, "a moderator cannot delete an owner's or another moderator's post")
    removal = verify(secrets.owner_key, REMOVE, member=bytes(other_moderator.verify_key), ban=True)()
    assert (removal.role, removal.body.ban) == (moderation.OWNER, True)


def test_a_malformed_forged_or_foreign_moderation_is_refused(setup):
    secrets, profile, moderator, _, member = setup
    gid = profile.group_id
    assert refusal(lambda: moderation.sign(moderator, gid, DELETE, message_id=b"m" * 32, reason="r" * 501)) == (
        Reason.TOO_LARGE, "moderation reason is 501 characters; at most 500 allowed")
    assert refusal(lambda: moderation.sign(moderator, gid, DELETE, message_id=b"short")) == (
        Reason.MALFORMED, "moderation is malformed: a deletion names one post by its 32-byte message id, and nothing else")
    assert refusal(lambda: moderation.sign(moderator, gid, REMOVE, member=b"k" * 31)) == (
        Reason.MALFORMED, "moderation is malformed: a removal names one member by its 32-byte key, and nothing else")
    assert refusal(lambda: moderation.sign(moderator, gid, 7)) == (Reason.MALFORMED, "moderation is malformed: unknown kind 7")
    signed = moderation.sign(moderator, b"g" * 32, DELETE, message_id=b"m" * 32)
    assert refusal(lambda: moderation.verify(signed, profile)) == (Reason.GROUP_MISMATCH, "moderation is for another group")
    forged = moderation.sign(member, gid, DELETE, message_id=b"m" * 32)
    forged.signer = bytes(moderator.verify_key)  # a moderator's name on someone else's signature
    assert refusal(lambda: moderation.verify(forged, profile))[0] is Reason.BAD_SIGNATURE
    as_post = env.sign_message(moderator, env.Domain.POST, core_pb2.PostBody(group_id=gid, body=b"x", nonce=b"n" * 16))
    assert refusal(lambda: moderation.verify(as_post, profile))[0] is Reason.WRONG_DOMAIN
    assert members.item_id(as_post) == members.message_id(as_post) != members.item_id(signed)
