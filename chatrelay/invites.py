"""Asynchronous invite codes (DESIGN.md section 6, seed: asynchronous user invites).

An owner makes a keypair K offline and signs a grant {K.public, uses, expires, shares};
the code hands K's private half, the grant and the group link to the invitee, who proves
holding K in its join. The relay checks the grant against the profile's owners and counts
uses, at most its share of them: the uses are split between the group's relays, so the
total is never exceeded though no relay asks another. The relay that counted a member's
use signs it a receipt; the group's other relays admit that member with it, counting
nothing, and only that member (the receipt names its key).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.group import MAX_RELAYS, OwnerSecrets, VerifiedProfile
from chatrelay.links import ShortLink
from chatrelay.v1 import core_pb2

PREFIX = "chatrelay-invite:"
MAX_CODE = 4096
MAX_USES = 1_000_000
MAX_SHARES = MAX_RELAYS


@dataclass(frozen=True, slots=True)
class Invite:
    """A parsed invite code. `seed` is K's private half: whoever holds it may join."""

    seed: bytes = field(repr=False)
    grant_envelope: core_pb2.SignedEnvelope = field(compare=False, repr=False)
    grant: core_pb2.InviteGrant = field(compare=False, repr=False)
    group_link: ShortLink

    @property
    def invite_key(self) -> bytes:
        return self.grant.invite_key

    def __str__(self) -> str:
        return f"invite for {self.group_link} ({self.grant.uses} uses)"

    def render(self) -> str:
        code = core_pb2.InviteCode(
            invite_seed=self.seed, grant=self.grant_envelope, group_link=str(self.group_link)
        )
        return PREFIX + codec.b64url(code.SerializeToString(deterministic=True))


def make_invite(
    owner: OwnerSecrets,
    group_link: ShortLink,
    *,
    uses: int = 1,
    expires_at: int = 0,
    relays: list[bytes] = (),
) -> Invite:
    """Made offline: nothing is sent anywhere until the invitee joins. `relays`: the
    group's relays by key, in the profile's order, between which the uses are split."""
    if not 1 <= uses <= MAX_USES:
        raise ChatRelayError(Reason.BAD_INVITE, f"an invite has 1 to {MAX_USES} uses")
    if expires_at < 0:
        raise ChatRelayError(Reason.BAD_INVITE, "invite expiry must be a unix time")
    k = SigningKey.generate()
    grant = core_pb2.InviteGrant(
        group_id=owner.group_id, invite_key=bytes(k.verify_key), uses=uses, expires_at=expires_at,
        shares=[core_pb2.InviteShare(relay_key=key, uses=n) for key, n in split(uses, relays)],
    )
    signed = env.sign_message(owner.owner_key, env.Domain.INVITE_GRANT, grant)
    return Invite(seed=bytes(k), grant_envelope=signed, grant=grant, group_link=group_link)


def split(uses: int, relays: list[bytes]) -> list[tuple[bytes, int]]:
    """`uses` spread over the relays as evenly as it goes, the first ones taking the odd
    ones; a relay left with none is not named (a single use sits with the first relay)."""
    relays = list(dict.fromkeys(relays))[:MAX_SHARES]
    if not relays:
        return []
    base, odd = divmod(uses, len(relays))
    shares = [(key, base + (i < odd)) for i, key in enumerate(relays)]
    return [(key, n) for key, n in shares if n]


def share_at(grant: core_pb2.InviteGrant, relay_key: bytes) -> int:
    """How many uses of the grant the relay with this key may count."""
    if not grant.shares:
        return grant.uses  # made before shares: each relay counts them all
    return next((s.uses for s in grant.shares if s.relay_key == relay_key), 0)


def parse_invite(text: str) -> Invite:
    if not isinstance(text, str):
        raise ChatRelayError(Reason.BAD_INVITE, "invite code must be text")
    text = text.strip()
    if len(text) > MAX_CODE:
        raise TooLargeError("invite code", len(text), MAX_CODE, unit="characters")
    if not text.startswith(PREFIX):
        raise ChatRelayError(Reason.BAD_INVITE, f"invite code must start with {PREFIX}")
    try:
        raw = codec.unb64url(text[len(PREFIX) :], "invite code")
    except MalformedError:
        raise ChatRelayError(Reason.BAD_INVITE, "invite code is not base64url") from None
    code = codec.parse(core_pb2.InviteCode, raw, "invite code", MAX_CODE)
    if len(code.invite_seed) != 32:
        raise ChatRelayError(Reason.BAD_INVITE, "invite code key must be 32 bytes")
    grant = codec.parse(
        core_pb2.InviteGrant, code.grant.body, "invite grant", env.body_limit(env.Domain.INVITE_GRANT)
    )
    if bytes(SigningKey(code.invite_seed).verify_key) != grant.invite_key:
        raise ChatRelayError(Reason.BAD_INVITE, "invite code key does not match its grant")
    link = ShortLink.parse(code.group_link)
    return Invite(seed=code.invite_seed, grant_envelope=code.grant, grant=grant, group_link=link)


def proof_message(group_id: bytes, member_sign_key: bytes) -> bytes:
    return env.signed_message(env.Domain.INVITE_PROOF.value, group_id + member_sign_key)


def prove(invite: Invite, member_sign_key: bytes) -> core_pb2.InviteProof:
    """Bind the invite to this member's key, so an observer cannot reuse the proof."""
    signature = SigningKey(invite.seed).sign(proof_message(invite.grant.group_id, member_sign_key))
    return core_pb2.InviteProof(grant=invite.grant_envelope, signature=signature.signature)


def verify_invite(
    proof: core_pb2.InviteProof,
    profile: VerifiedProfile,
    member_sign_key: bytes,
    *,
    now: float | None = None,
) -> core_pb2.InviteGrant:
    """The relay's check; the use count is consumed by the caller in a registry
    transaction keyed by the returned grant's invite_key."""
    checked, grant = env.verify_message(
        proof.grant, env.Domain.INVITE_GRANT, core_pb2.InviteGrant, "invite grant"
    )
    if checked.signer not in profile.authorities():
        raise ChatRelayError(Reason.BAD_INVITE, "invite grant is not signed by an owner of the group")
    if grant.group_id != profile.group_id:
        raise ChatRelayError(Reason.BAD_INVITE, "invite grant is for another group")
    if len(grant.invite_key) != env.KEY_SIZE or not 1 <= grant.uses <= MAX_USES:
        raise ChatRelayError(Reason.BAD_INVITE, "invite grant is malformed")
    _check_shares(grant)
    now = time.time() if now is None else now
    if grant.expires_at and now >= grant.expires_at:
        raise ChatRelayError(Reason.INVITE_EXPIRED, "invite has expired")
    try:
        VerifyKey(grant.invite_key).verify(
            proof_message(grant.group_id, member_sign_key), proof.signature
        )
    except (BadSignatureError, ValueError):
        raise ChatRelayError(Reason.BAD_INVITE, "joiner does not hold the invite key") from None
    return grant


def _check_shares(grant: core_pb2.InviteGrant) -> None:
    if not grant.shares:
        return
    keys = [s.relay_key for s in grant.shares]
    if (len(keys) > MAX_SHARES or len(set(keys)) != len(keys) or any(len(k) != env.KEY_SIZE for k in keys)
            or any(s.uses < 1 for s in grant.shares)):
        raise ChatRelayError(Reason.BAD_INVITE, "invite grant's shares are malformed")
    if sum(s.uses for s in grant.shares) != grant.uses:
        raise ChatRelayError(Reason.BAD_INVITE, "invite grant's shares do not add up to its uses")


def receipt(relay_identity: SigningKey, grant: core_pb2.InviteGrant, member_key: bytes) -> core_pb2.SignedEnvelope:
    """What a relay that admitted a member by an invite gives it for the group's others."""
    body = core_pb2.InviteReceipt(group_id=grant.group_id, invite_key=grant.invite_key, member_key=member_key)
    return env.sign_message(relay_identity, env.Domain.INVITE_RECEIPT, body)


def check_receipt(signed: core_pb2.SignedEnvelope, grant: core_pb2.InviteGrant, member_key: bytes,
                  profile: VerifiedProfile) -> None:
    """A relay's check of a receipt another relay of the group signed for this member."""
    checked, body = env.verify_message(signed, env.Domain.INVITE_RECEIPT, core_pb2.InviteReceipt, "invite receipt")
    if checked.signer not in {r.relay_key for r in profile.profile.relays}:
        raise ChatRelayError(Reason.BAD_INVITE, "invite receipt is not signed by a relay of the group")
    if grant.shares and share_at(grant, checked.signer) == 0:  # it counted nothing: its word admits nobody
        raise ChatRelayError(Reason.BAD_INVITE, "invite receipt is signed by a relay that holds no share of the invite")
    if (body.group_id, body.invite_key) != (grant.group_id, grant.invite_key):
        raise ChatRelayError(Reason.BAD_INVITE, "invite receipt is for another invite")
    if body.member_key != member_key:
        raise ChatRelayError(Reason.BAD_INVITE, "invite receipt admits another member")
