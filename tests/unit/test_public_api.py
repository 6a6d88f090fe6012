"""Pins the public surface: changing it is a decision, not an accident."""

import chatrelay
from chatrelay.envelope import Domain
from chatrelay.errors import Reason


def test_top_level_names():
    assert sorted(chatrelay.__all__) == [
        "ChatRelayError", "LinkKind", "MalformedError", "Reason", "ShortLink", "TooLargeError",
    ]


def test_reasons_are_stable_strings():
    assert {r.value for r in Reason} == {
        "malformed", "too_large", "wrong_domain", "bad_signature", "unknown_signer",
        "bad_owner_chain", "group_mismatch", "stale_profile_version", "bad_profile", "bad_link",
        "unknown_link_kind", "link_hash_mismatch", "link_decrypt_failed", "link_kind_mismatch",
        "bad_invite", "invite_expired", "revoked", "bad_post", "unknown_address", "not_allowed",
        "not_a_member", "not_active", "refused", "busy", "behind", "rate_limited", "stale", "unavailable",
            "relay_identity_mismatch", "tls_mismatch", "quota_exceeded", "replayed", "taken_down", "banned", "not_found",
    }


def test_domains_are_unique_and_versioned():
    values = [d.value for d in Domain]
    assert len(values) == len(set(values))
    assert all(v.startswith("chatrelay/v1/") for v in values)
