"""The one exception root of chatrelay and its machine-readable reasons.

Every refusal in the protocol core, the relay and the client raises ChatRelayError with a
`reason` from Reason; the gateway maps it to a gRPC status, the CLI prints one line.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    WRONG_DOMAIN = "wrong_domain"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_SIGNER = "unknown_signer"
    BAD_OWNER_CHAIN = "bad_owner_chain"
    GROUP_MISMATCH = "group_mismatch"
    STALE_PROFILE_VERSION = "stale_profile_version"
    BAD_PROFILE = "bad_profile"
    BAD_LINK = "bad_link"
    UNKNOWN_LINK_KIND = "unknown_link_kind"
    LINK_HASH_MISMATCH = "link_hash_mismatch"
    LINK_DECRYPT_FAILED = "link_decrypt_failed"
    LINK_KIND_MISMATCH = "link_kind_mismatch"
    BAD_INVITE = "bad_invite"
    INVITE_EXPIRED = "invite_expired"
    REVOKED = "revoked"  # the owners revoked the invite code
    BAD_POST = "bad_post"
    UNKNOWN_ADDRESS = "unknown_address"
    NOT_ALLOWED = "not_allowed"
    NOT_MEMBER = "not_a_member"
    NOT_ACTIVE = "not_active"
    REFUSED = "refused"
    BUSY = "busy"
    BEHIND = "behind"  # a subscriber that fell too far behind: resume from its position
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"  # a bound on what one queue holds or one reader opens
    REPLAYED = "replayed"  # the same signed request again, within the freshness window
    STALE = "stale"  # signed too long ago (or for a time to come): a replay, or a clock that is off
    UNAVAILABLE = "unavailable"
    RELAY_IDENTITY_MISMATCH = "relay_identity_mismatch"  # a server without the key the link pins
    TLS_MISMATCH = "tls_mismatch"  # one side plaintext (--insecure), the other TLS
    TAKEN_DOWN = "taken_down"  # the relay's operator suspended the group here; the message says why
    BANNED = "banned"  # the group's owners or moderators removed this key and refuse it for good
    NOT_FOUND = "not_found"  # no such post (deleted, or never in the group)


class ChatRelayError(Exception):
    """Root of every chatrelay error: `reason` for machines, the message for people."""

    reason: Reason

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = Reason(reason)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({self.reason})"

    def __reduce__(self):
        # Cross process boundaries (Ray) as the root class with both fields intact.
        return (ChatRelayError, (self.reason.value, self.message))


class TooLargeError(ChatRelayError):
    """Input over a bound: `size` of `what` against `limit`, in `unit`."""

    def __init__(self, what: str, size: int, limit: int, unit: str = "bytes") -> None:
        super().__init__(Reason.TOO_LARGE, f"{what} is {size} {unit}; at most {limit} allowed")
        self.what = what
        self.size = size
        self.limit = limit


class MalformedError(ChatRelayError):
    def __init__(self, what: str, detail: str) -> None:
        super().__init__(Reason.MALFORMED, f"{what} is malformed: {detail}")
        self.what = what
