import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from chatrelay import codec, group, invites, links
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.v1 import core_pb2

from helpers import refused

NOW = 1_800_000_000


@pytest.fixture
def setup():
    secrets, signed = group.create_group(GroupKind.GROUP, "Club", join=JoinPolicy.INVITE_ONLY)
    bundle = links.group_link(secrets, signed, ["relay.example:7223"])
    return secrets, group.verify_profile(signed), bundle.link


def test_invite_code_round_trips_and_verifies(setup):
    secrets, profile, link = setup
    invite = invites.make_invite(secrets, link, uses=3, expires_at=NOW + 60)
    code = invite.render()
    assert code.startswith("chatrelay-invite:")
    parsed = invites.parse_invite(code)
    assert parsed.group_link == link and parsed.seed == invite.seed
    member = SigningKey.generate().verify_key.encode()
    grant = invites.verify_invite(invites.prove(parsed, member), profile, member, now=NOW)
    assert grant.uses == 3 and grant.invite_key == invite.invite_key


def test_expired_invite_is_refused(setup):
    secrets, profile, link = setup
    invite = invites.make_invite(secrets, link, expires_at=NOW)
    member = bytes(32)
    err = refused(Reason.INVITE_EXPIRED, invites.verify_invite, invites.prove(invite, member), profile, member, now=NOW)
    assert err.message == "invite has expired"


def test_forged_grant_is_refused(setup):
    secrets, profile, link = setup
    stranger = group.OwnerSecrets(
        group_id=secrets.group_id, owner_id=bytes(16), owner_seed=bytes(SigningKey.generate()),
        intake_secret=secrets.intake_secret,
    )
    invite = invites.make_invite(stranger, link)
    err = refused(Reason.BAD_INVITE, invites.verify_invite, invites.prove(invite, bytes(32)), profile, bytes(32))
    assert err.message == "invite grant is not signed by an owner of the group"


def test_grant_for_another_group_is_refused(setup):
    secrets, profile, link = setup
    other_secrets, other_signed = group.create_group(GroupKind.GROUP, "Other")
    invite = invites.make_invite(other_secrets, link)
    # Signed by an owner of the other group: not an owner here.
    refused(Reason.BAD_INVITE, invites.verify_invite, invites.prove(invite, bytes(32)), profile, bytes(32))


def test_proof_for_another_member_is_refused(setup):
    secrets, profile, link = setup
    invite = invites.make_invite(secrets, link)
    proof = invites.prove(invite, b"\x01" * 32)  # observed in someone else's join
    err = refused(Reason.BAD_INVITE, invites.verify_invite, proof, profile, b"\x02" * 32)
    assert err.message == "joiner does not hold the invite key"


def test_tampered_grant_uses_are_refused(setup):
    secrets, profile, link = setup
    invite = invites.make_invite(secrets, link, uses=1)
    proof = invites.prove(invite, bytes(32))
    grant = core_pb2.InviteGrant.FromString(proof.grant.body)
    grant.uses = 1000
    proof.grant.body = grant.SerializeToString()
    refused(Reason.BAD_SIGNATURE, invites.verify_invite, proof, profile, bytes(32))


@pytest.mark.parametrize("uses", [0, invites.MAX_USES + 1])
def test_invite_uses_are_bounded(setup, uses):
    secrets, _, link = setup
    refused(Reason.BAD_INVITE, invites.make_invite, secrets, link, uses=uses)


def test_code_whose_key_does_not_match_its_grant_is_refused(setup):
    secrets, _, link = setup
    invite = invites.make_invite(secrets, link)
    code = core_pb2.InviteCode(invite_seed=bytes(SigningKey.generate()), grant=invite.grant_envelope, group_link=str(link))
    text = invites.PREFIX + codec.b64url(code.SerializeToString())
    err = refused(Reason.BAD_INVITE, invites.parse_invite, text)
    assert err.message == "invite code key does not match its grant"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", Reason.BAD_INVITE),
        ("https://h/g#" + "A" * 43, Reason.BAD_INVITE),
        ("chatrelay-invite:***", Reason.BAD_INVITE),
        ("chatrelay-invite:" + "A" * 5000, Reason.TOO_LARGE),
    ],
)
def test_bad_codes_are_refused(text, reason):
    refused(reason, invites.parse_invite, text)


@given(st.binary(max_size=500))
def test_no_random_code_crashes_the_parser(raw):
    try:
        invites.parse_invite(invites.PREFIX + codec.b64url(raw))
    except ChatRelayError:
        pass
