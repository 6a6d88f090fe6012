"""Members: their keys, key announcements sealed to the owners, join requests and posts.

A member signs with an Ed25519 key and receives sealed invitations on an X25519 key. Its
key announcement is signed, then sealed to the owners' intake key, so a relay can
neither read nor swap what the owners learn of a member's keys.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.v1 import core_pb2

MAX_POST = 16 * 1024
MAX_DISPLAY_NAME = 100
NONCE_SIZE = 16


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    """One member's keys in one group (a new identity per group keeps groups unlinked)."""

    sign_seed: bytes
    box_secret: bytes

    @classmethod
    def generate(cls) -> "MemberIdentity":
        return cls(sign_seed=bytes(SigningKey.generate()), box_secret=bytes(PrivateKey.generate()))

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.sign_seed)

    @property
    def box_key(self) -> PrivateKey:
        return PrivateKey(self.box_secret)

    @property
    def public(self) -> core_pb2.MemberKeys:
        return core_pb2.MemberKeys(
            sign_key=bytes(self.signing_key.verify_key), box_key=bytes(self.box_key.public_key)
        )

    def __repr__(self) -> str:  # never print secrets
        return f"MemberIdentity({self.public.sign_key.hex()[:12]}…)"

    __str__ = __repr__


def _check_display_name(name: str) -> None:
    if len(name) > MAX_DISPLAY_NAME:
        raise ChatRelayError(Reason.MALFORMED, f"display name is over {MAX_DISPLAY_NAME} characters")


def seal_announcement(
    member: MemberIdentity, group_id: bytes, intake_key: bytes, display_name: str
) -> bytes:
    _check_display_name(display_name)
    announcement = core_pb2.KeyAnnouncement(
        group_id=group_id,
        keys=member.public,
        profile=core_pb2.MemberProfile(display_name=display_name),
    )
    signed = env.sign_message(member.signing_key, env.Domain.KEY_ANNOUNCEMENT, announcement)
    return bytes(SealedBox(PublicKey(intake_key)).encrypt(env.encode(signed)))


def open_announcement(
    sealed: bytes, intake_secret: bytes, group_id: bytes
) -> core_pb2.KeyAnnouncement:
    """Owner side: unseal, check the member signed its own keys for this group."""
    try:
        raw = SealedBox(PrivateKey(intake_secret)).decrypt(bytes(sealed))
    except (CryptoError, ValueError, TypeError):
        raise ChatRelayError(Reason.BAD_SIGNATURE, "key announcement is not sealed to this group's owners") from None
    checked, announcement = env.verify_message(
        env.decode(raw), env.Domain.KEY_ANNOUNCEMENT, core_pb2.KeyAnnouncement, "key announcement"
    )
    if announcement.keys.sign_key != checked.signer:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "key announcement is not signed by the announced key")
    if announcement.group_id != group_id:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "key announcement is for another group")
    return announcement


def join_request(
    member: MemberIdentity,
    group_id: bytes,
    group_address: str,
    intake_key: bytes,
    display_name: str,
    invite: core_pb2.InviteProof | None = None,
    approval: core_pb2.SignedEnvelope | None = None,
    receipt: core_pb2.SignedEnvelope | None = None,
) -> core_pb2.SignedEnvelope:
    _check_display_name(display_name)
    body = core_pb2.JoinBody(
        group_id=group_id,
        group_address=group_address,
        keys=member.public,
        profile=core_pb2.MemberProfile(display_name=display_name),
        sealed_announcement=seal_announcement(member, group_id, intake_key, display_name),
        nonce=os.urandom(NONCE_SIZE),
        timestamp=int(time.time()),
    )
    if invite is not None:
        body.invite.CopyFrom(invite)
    if approval is not None:
        body.approval.CopyFrom(approval)
    if receipt is not None:
        body.invite_receipt.CopyFrom(receipt)
    return env.sign_message(member.signing_key, env.Domain.JOIN, body)


def verify_join(envelope: core_pb2.SignedEnvelope, group_id: bytes) -> core_pb2.JoinBody:
    checked, body = env.verify_message(envelope, env.Domain.JOIN, core_pb2.JoinBody, "join request")
    if body.keys.sign_key != checked.signer:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "join request is not signed by the joining key")
    if len(body.keys.box_key) != env.KEY_SIZE:
        raise MalformedError("join request", "box key must be 32 bytes")
    if body.group_id != group_id:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "join request is for another group")
    if len(body.nonce) != NONCE_SIZE:
        raise MalformedError("join request", f"nonce must be {NONCE_SIZE} bytes")
    _check_display_name(body.profile.display_name)
    return body


def sign_post(
    key: SigningKey, group_id: bytes, text: bytes, *, client_ts: int | None = None
) -> core_pb2.SignedEnvelope:
    if len(text) > MAX_POST:
        raise TooLargeError("post", len(text), MAX_POST)
    body = core_pb2.PostBody(
        group_id=group_id,
        body=text,
        client_ts=int(time.time() * 1000) if client_ts is None else client_ts,
        nonce=os.urandom(NONCE_SIZE),
    )
    return env.sign_message(key, env.Domain.POST, body)


def verify_post(
    envelope: core_pb2.SignedEnvelope, group_id: bytes, allowed: set[bytes] | None = None
) -> core_pb2.PostBody:
    """Check a post's signature, group and size; `allowed` limits who may author it."""
    checked, body = env.verify_message(envelope, env.Domain.POST, core_pb2.PostBody, "post")
    if body.group_id != group_id:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "post is for another group")
    if len(body.body) > MAX_POST:
        raise TooLargeError("post", len(body.body), MAX_POST)
    if len(body.nonce) != NONCE_SIZE:
        raise MalformedError("post", f"nonce must be {NONCE_SIZE} bytes")
    if allowed is not None and checked.signer not in allowed:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "post author may not post here")
    return body


def message_id(envelope: core_pb2.SignedEnvelope) -> bytes:
    """Same post, same id, whichever relay delivered it and however it was re-encoded."""
    return hashlib.sha256(
        b"chatrelay/v1/message-id\x00" + envelope.signer + envelope.body
    ).digest()


def item_id(envelope: core_pb2.SignedEnvelope) -> bytes:
    """What a relay keys an item of a group's stream by: a post's message id; for a
    service item (a profile version, a moderation), a hash that names its domain too."""
    if envelope.domain == env.Domain.POST.value:
        return message_id(envelope)
    return hashlib.sha256(
        b"chatrelay/v1/item-id\x00" + envelope.domain.encode() + b"\x00" + envelope.signer + envelope.body
    ).digest()


FINGERPRINT = 12  # base64url characters of a member key that name it where names collide


def fingerprint(sign_key: bytes) -> str:
    """A member key as users tell members apart (`NAME#FINGERPRINT`)."""
    return codec.b64url(sign_key)[:FINGERPRINT]
