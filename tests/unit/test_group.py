import os

import pytest
from nacl.signing import SigningKey

from chatrelay import group
from chatrelay.errors import Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.v1 import core_pb2

from helpers import refused


@pytest.fixture
def channel():
    return group.create_group(GroupKind.CHANNEL, "News", join=JoinPolicy.OPEN)


def test_new_group_profile_verifies(channel):
    secrets, signed = channel
    verified = group.verify_profile(signed)
    assert verified.group_id == secrets.group_id == group.group_id_of(verified.profile.root_key)
    assert verified.version == 1
    assert verified.signer == bytes(secrets.owner_key.verify_key)
    assert verified.owners == {bytes(secrets.owner_key.verify_key): secrets.owner_id}


def test_owner_chain_may_extend_through_an_earlier_owner(channel):
    secrets, signed = channel
    current = group.verify_profile(signed)
    second = SigningKey.generate()
    auth = group.make_owner_auth(
        secrets.owner_key, secrets.group_id, os.urandom(16), bytes(second.verify_key)
    )
    update = group.next_version(secrets.owner_key, current, owners=[*current.profile.owners, auth])
    newer = group.verify_profile(update)
    group.check_update(current, newer)
    # The new owner can now sign the next version.
    third = group.verify_profile(group.next_version(second, newer, name="News 2"))
    assert third.signer == bytes(second.verify_key) and third.version == 3


def test_owner_without_valid_chain_signature_is_refused(channel):
    secrets, signed = channel
    current = group.verify_profile(signed)
    intruder = SigningKey.generate()
    forged = group.make_owner_auth(intruder, secrets.group_id, os.urandom(16), bytes(intruder.verify_key))
    update = group.next_version(secrets.owner_key, current, owners=[*current.profile.owners, forged])
    err = refused(Reason.BAD_OWNER_CHAIN, group.verify_profile, update)
    assert "owner 1 is not signed" in err.message


def test_owner_signed_for_another_group_is_refused(channel):
    secrets, signed = channel
    other_secrets, _ = group.create_group(GroupKind.GROUP, "Other")
    current = group.verify_profile(signed)
    newcomer = SigningKey.generate()
    auth = group.make_owner_auth(  # signed by a real owner, but of another group
        other_secrets.owner_key, other_secrets.group_id, os.urandom(16), bytes(newcomer.verify_key)
    )
    update = group.next_version(secrets.owner_key, current, owners=[*current.profile.owners, auth])
    refused(Reason.BAD_OWNER_CHAIN, group.verify_profile, update)


def test_profile_signed_by_a_stranger_is_refused(channel):
    _, signed = channel
    current = group.verify_profile(signed)
    err = refused(Reason.UNKNOWN_SIGNER, group.verify_profile, group.next_version(SigningKey.generate(), current))
    assert "neither root nor owner" in err.message


def test_substituted_profile_of_another_group_is_refused(channel):
    secrets, _ = channel
    _, other = group.create_group(GroupKind.CHANNEL, "News")  # same name, other group
    refused(Reason.GROUP_MISMATCH, group.verify_profile, other, group_id=secrets.group_id)


def test_group_id_must_hash_the_root_key(channel):
    secrets, signed = channel
    profile = core_pb2.Profile.FromString(signed.body)
    profile.group_id = os.urandom(32)
    refused(Reason.GROUP_MISMATCH, group.verify_profile, group.sign_profile(secrets.owner_key, profile))


def test_replayed_and_reordered_versions_are_refused(channel):
    secrets, signed = channel
    v1 = group.verify_profile(signed)
    v2 = group.verify_profile(group.next_version(secrets.owner_key, v1, name="v2"))
    v3 = group.verify_profile(group.next_version(secrets.owner_key, v2, name="v3"))
    group.check_update(v1, v2)
    group.check_update(v2, v3)
    err = refused(Reason.STALE_PROFILE_VERSION, group.check_update, v3, v2)  # re-ordered
    assert err.message == "profile version 2 is not newer than 3"
    refused(Reason.STALE_PROFILE_VERSION, group.check_update, v3, v3)  # replayed


def test_update_for_another_group_is_refused(channel):
    _, signed = channel
    _, other = group.create_group(GroupKind.CHANNEL, "X")
    refused(Reason.GROUP_MISMATCH, group.check_update, group.verify_profile(signed), group.verify_profile(other))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": ""}, "profile name must be 1 to 100 characters"),
        ({"name": "n" * 101}, "profile name must be 1 to 100 characters"),
        ({"description": "d" * 1001}, "profile description must be at most 1000 characters"),
        ({"kind": 0}, "profile kind must be group or channel"),
        ({"intake_key": b"short"}, "profile intake key must be 32 bytes"),
    ],
)
def test_bad_profile_fields_are_refused(channel, change, message):
    secrets, signed = channel
    profile = core_pb2.Profile.FromString(signed.body)
    for name, value in change.items():
        setattr(profile, name, value)
    err = refused(Reason.BAD_PROFILE, group.verify_profile, group.sign_profile(secrets.owner_key, profile))
    assert err.message == message


def test_create_group_refuses_what_nobody_would_accept():
    refused(Reason.BAD_PROFILE, group.create_group, GroupKind.GROUP, "n" * 101)


def _all_keys(secrets, signed):
    profile = core_pb2.Profile.FromString(signed.body)
    keys = {
        secrets.group_id, secrets.owner_id, secrets.owner_seed, secrets.intake_secret,
        secrets.root_seed, profile.root_key, profile.intake_key,
    }
    for auth in profile.owners:
        keys |= {auth.owner_id, auth.owner_key}
    return keys


def test_two_groups_of_one_owner_share_no_key():
    a = group.create_group(GroupKind.CHANNEL, "Same name")
    b = group.create_group(GroupKind.CHANNEL, "Same name")
    assert _all_keys(*a).isdisjoint(_all_keys(*b))
    assert a[1].signer != b[1].signer


_KEYS: list[SigningKey] = []  # the signing keys of the last chain made


def _chain():
    """Root signs Ann in; Ann signs Bob and Dan; Bob signs Carl."""
    secrets, signed = group.create_group(group.GroupKind.GROUP, "Chain")
    profile = group.verify_profile(signed).profile
    ann = SigningKey(secrets.owner_seed)
    keys = {"ann": ann, **{n: SigningKey.generate() for n in ("bob", "carl", "dan")}}
    _KEYS[:] = keys.values()
    for name, by in (("bob", "ann"), ("carl", "bob"), ("dan", "ann")):
        profile.owners.append(group.make_owner_auth(keys[by], profile.group_id, bytes([len(profile.owners)]) * 16,
                                                    bytes(keys[name].verify_key)))
    return profile, {n: bytes(k.verify_key) for n, k in keys.items()}


@pytest.mark.parametrize("signer, owner, allowed", [
    ("ann", "bob", True), ("ann", "carl", True), ("bob", "carl", True),  # who added it, or one before that
    ("bob", "ann", False), ("carl", "bob", False), ("dan", "carl", False), ("dan", "bob", False),
    ("bob", "bob", False),  # nobody removes itself: the version would be signed by no owner
])
def test_an_owner_is_removed_only_by_one_it_descends_from(signer, owner, allowed):
    profile, keys = _chain()
    assert group.may_remove(profile, keys[signer], keys[owner]) is allowed
    assert group.may_remove(profile, profile.root_key, keys[owner]) is True
    assert group.owner_parents(profile)[keys["carl"]] == keys["bob"]


def _verified(profile, signer: bytes):
    signed = group.sign_profile(SigningKey(bytes(32)), profile)  # only the chain matters here
    return group.VerifiedProfile(profile=profile, envelope=signed, signer=signer,
                                 owners={a.owner_key: a.owner_id for a in profile.owners})


@pytest.mark.parametrize("by, owner, allowed", [("bob", "dan", False), ("ann", "carl", True), ("carl", "dan", False)])
def test_an_owner_signed_in_anew_by_another_is_refused_as_its_removal_would_be(by, owner, allowed):
    """Bob re-signing Dan (whom Ann added) would make himself Dan's parent, free to
    remove him next: refused, as removing Dan would be; Ann re-signing Carl is hers to do."""
    profile, keys = _chain()
    signers = {bytes(k.verify_key): k for k in _KEYS}
    changed = core_pb2.Profile()
    changed.CopyFrom(profile)
    for auth in changed.owners:
        if auth.owner_key == keys[owner]:
            auth.signature = group.make_owner_auth(signers[keys[by]], profile.group_id, auth.owner_id,
                                                   auth.owner_key).signature
    assert group.verify_owner_chain(changed)  # the chain itself holds
    current, new = _verified(profile, keys["ann"]), _verified(changed, keys[by])
    if allowed:
        group.check_removals(current, new)
        return
    err = refused(Reason.BAD_OWNER_CHAIN, group.check_removals, current, new)
    assert err.message == (f"owner {current.owners[keys[owner]].hex()} is signed in anew by a key that is neither "
                           "the root nor an owner before it in the chain")
