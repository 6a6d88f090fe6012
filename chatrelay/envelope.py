"""Signed envelopes: a body, the signer's Ed25519 key and a signature over a domain tag
followed by the body bytes.

Verify the bytes, then parse: the body is never re-serialized to check a signature.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from chatrelay import codec
from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.v1 import core_pb2

KEY_SIZE = 32
SIGNATURE_SIZE = 64


class Domain(enum.StrEnum):
    """What a signature is for; a signature for one domain is void in every other."""

    PROFILE = "chatrelay/v1/profile"
    OWNER = "chatrelay/v1/owner"
    LINK = "chatrelay/v1/link"
    LINK_STORE = "chatrelay/v1/link-store"
    INVITE_GRANT = "chatrelay/v1/invite-grant"
    INVITE_PROOF = "chatrelay/v1/invite-proof"
    INVITE_RECEIPT = "chatrelay/v1/invite-receipt"
    OWNER_REQUEST = "chatrelay/v1/owner-request"  # over the owner invitation's link key: the key is the asker's
    KEY_ANNOUNCEMENT = "chatrelay/v1/key-announcement"
    JOIN = "chatrelay/v1/join"
    POST = "chatrelay/v1/post"
    REGISTER = "chatrelay/v1/register"
    ADDRESS = "chatrelay/v1/address"
    OWNER_COMMAND = "chatrelay/v1/owner-command"
    OWNER_READ = "chatrelay/v1/owner-read"
    SUBSCRIBE = "chatrelay/v1/subscribe"
    DIRECT_INVITATION = "chatrelay/v1/direct-invitation"
    QUEUE_CREATE = "chatrelay/v1/queue-create"
    QUEUE_READ = "chatrelay/v1/queue-read"
    QUEUE_SEND = "chatrelay/v1/queue-send"
    ADMIN = "chatrelay/v1/admin"
    MODERATION = "chatrelay/v1/moderation"
    REPORT = "chatrelay/v1/report"
    LEAVE = "chatrelay/v1/leave"


# Bounds on a body per domain (DESIGN.md section 10); envelopes add a fixed overhead.
BODY_LIMITS: dict[Domain, int] = {
    Domain.POST: 16 * 1024 + 256,  # the post text itself is at most 16 KiB
    Domain.PROFILE: 8 * 1024,
    Domain.REPORT: 21 * 1024,  # a sealed report holds the post reported
}
DEFAULT_BODY_LIMIT = 8 * 1024
ENVELOPE_OVERHEAD = 256
MAX_ENVELOPE = max(BODY_LIMITS.values()) + 4 * 1024 + ENVELOPE_OVERHEAD


def body_limit(domain: Domain) -> int:
    return BODY_LIMITS.get(domain, DEFAULT_BODY_LIMIT)


def signed_message(domain: str, body: bytes) -> bytes:
    return domain.encode("utf-8") + b"\x00" + body


def sign(key: SigningKey, domain: Domain, body: bytes) -> core_pb2.SignedEnvelope:
    limit = body_limit(domain)
    if len(body) > limit:
        raise TooLargeError(f"{domain.value} body", len(body), limit)
    signature = key.sign(signed_message(domain.value, body)).signature
    return core_pb2.SignedEnvelope(
        domain=domain.value,
        body=body,
        signer=bytes(key.verify_key),
        signature=signature,
    )


def sign_message(key: SigningKey, domain: Domain, message) -> core_pb2.SignedEnvelope:
    return sign(key, domain, message.SerializeToString(deterministic=True))


@dataclass(frozen=True, slots=True)
class Verified:
    """A body whose signature checked out, with the key that made it."""

    domain: Domain
    body: bytes
    signer: bytes

    def __str__(self) -> str:
        return f"{self.domain.value} by {codec.b64url(self.signer)[:8]}"


def verify(envelope: core_pb2.SignedEnvelope, domain: Domain) -> Verified:
    """Check an envelope's shape, domain and signature; the signer is checked by callers."""
    if len(envelope.signer) != KEY_SIZE:
        raise MalformedError("envelope", f"signer must be {KEY_SIZE} bytes")
    if len(envelope.signature) != SIGNATURE_SIZE:
        raise MalformedError("envelope", f"signature must be {SIGNATURE_SIZE} bytes")
    if envelope.domain != domain.value:
        raise ChatRelayError(
            Reason.WRONG_DOMAIN,
            f"envelope is signed for {envelope.domain!r}, expected {domain.value!r}",
        )
    limit = body_limit(domain)
    if len(envelope.body) > limit:
        raise TooLargeError(f"{domain.value} body", len(envelope.body), limit)
    try:
        VerifyKey(envelope.signer).verify(
            signed_message(envelope.domain, envelope.body), envelope.signature
        )
    except (BadSignatureError, ValueError):
        raise ChatRelayError(Reason.BAD_SIGNATURE, f"{domain.value} signature is not valid") from None
    return Verified(domain=domain, body=envelope.body, signer=envelope.signer)


def verify_message(envelope: core_pb2.SignedEnvelope, domain: Domain, cls, what: str):
    """Verify, then parse the body as `cls`; returns (Verified, message)."""
    checked = verify(envelope, domain)
    return checked, codec.parse(cls, checked.body, what, body_limit(domain))


def encode(envelope: core_pb2.SignedEnvelope) -> bytes:
    return envelope.SerializeToString(deterministic=True)


def decode(data: bytes) -> core_pb2.SignedEnvelope:
    """Parse a serialized envelope, bounded; signatures are checked by `verify`."""
    return codec.parse(core_pb2.SignedEnvelope, data, "envelope", MAX_ENVELOPE)
