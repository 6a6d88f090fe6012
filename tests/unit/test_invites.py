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


# ---- uses split between relays, and the receipts that carry a member to the others ----

RELAYS = [SigningKey.generate() for _ in range(3)]


@pytest.fixture
def with_relays(setup):
    secrets, profile, link = setup
    refs = [core_pb2.RelayRef(relay_key=bytes(r.verify_key), relay_link=f"https://r{i}/r#x", group_address=f"a{i}")
            for i, r in enumerate(RELAYS)]
    signed = group.next_version(SigningKey(secrets.owner_seed), profile, relays=refs)
    return secrets, group.verify_profile(signed), link


@pytest.mark.parametrize("uses, expected", [(1, [1]), (2, [1, 1]), (3, [1, 1, 1]), (7, [3, 2, 2]), (9, [3, 3, 3])])
def test_uses_are_split_between_relays_and_never_exceed_the_total(with_relays, uses, expected):
    secrets, profile, link = with_relays
    keys = [r.relay_key for r in profile.profile.relays]
    invite = invites.make_invite(secrets, link, uses=uses, relays=keys)
    assert [s.uses for s in invite.grant.shares] == expected
    assert [s.relay_key for s in invite.grant.shares] == keys[: len(expected)]
    assert [invites.share_at(invite.grant, k) for k in keys] == expected + [0] * (3 - len(expected))
    member = bytes(32)
    assert invites.verify_invite(invites.prove(invite, member), profile, member).uses == uses


def test_a_grant_without_shares_is_counted_whole_at_each_relay(with_relays):
    secrets, profile, link = with_relays
    invite = invites.make_invite(secrets, link, uses=4)
    assert (list(invite.grant.shares), invites.share_at(invite.grant, bytes(RELAYS[0].verify_key))) == ([], 4)


def _forged_shares(secrets, link, shares, uses):
    grant = core_pb2.InviteGrant(group_id=secrets.group_id, invite_key=bytes(SigningKey.generate().verify_key),
                                 uses=uses, shares=[core_pb2.InviteShare(relay_key=k, uses=n) for k, n in shares])
    k = SigningKey.generate()
    grant.invite_key = bytes(k.verify_key)
    signed = invites.env.sign_message(SigningKey(secrets.owner_seed), invites.env.Domain.INVITE_GRANT, grant)
    return invites.Invite(seed=bytes(k), grant_envelope=signed, grant=grant, group_link=link)


@pytest.mark.parametrize("shares, uses, said", [
    ([(b"a" * 32, 1), (b"b" * 32, 1)], 3, "invite grant's shares do not add up to its uses"),
    ([(b"a" * 32, 1), (b"a" * 32, 1)], 2, "invite grant's shares are malformed"),  # one relay named twice
    ([(b"a" * 31, 1)], 1, "invite grant's shares are malformed"),
    ([(b"a" * 32, 0), (b"b" * 32, 1)], 1, "invite grant's shares are malformed"),
    ([(bytes([i]) * 32, 1) for i in range(17)], 17, "invite grant's shares are malformed"),
])
def test_malformed_shares_are_refused(with_relays, shares, uses, said):
    secrets, profile, link = with_relays
    invite = _forged_shares(secrets, link, shares, uses)
    err = refused(Reason.BAD_INVITE, invites.verify_invite, invites.prove(invite, bytes(32)), profile, bytes(32))
    assert err.message == said


def test_a_receipt_of_a_relay_of_the_group_admits_the_member_it_names_and_nobody_else(with_relays):
    secrets, profile, link = with_relays
    invite = invites.make_invite(secrets, link, relays=[r.relay_key for r in profile.profile.relays])
    member, other = b"\x01" * 32, b"\x02" * 32
    receipt = invites.receipt(RELAYS[0], invite.grant, member)
    invites.check_receipt(receipt, invite.grant, member, profile)  # passes
    another = invites.make_invite(secrets, link)
    for signed, grant, who, said in (
        (receipt, invite.grant, other, "invite receipt admits another member"),
        (receipt, another.grant, member, "invite receipt is for another invite"),
        (invites.receipt(SigningKey.generate(), invite.grant, member), invite.grant, member,
         "invite receipt is not signed by a relay of the group"),
        (invites.receipt(RELAYS[1], invite.grant, member), invite.grant, member,  # one use: the first relay's
         "invite receipt is signed by a relay that holds no share of the invite"),
    ):
        err = refused(Reason.BAD_INVITE, invites.check_receipt, signed, grant, who, profile)
        assert err.message == said
    forged = core_pb2.SignedEnvelope()
    forged.CopyFrom(receipt)
    forged.domain = invites.env.Domain.INVITE_PROOF.value  # a signature for another purpose
    refused(Reason.WRONG_DOMAIN, invites.check_receipt, forged, invite.grant, member, profile)
    forged.CopyFrom(receipt)
    forged.body = forged.body[:-1] + bytes([forged.body[-1] ^ 1])
    refused(Reason.BAD_SIGNATURE, invites.check_receipt, forged, invite.grant, member, profile)
