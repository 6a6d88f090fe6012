"""Moderation (issue 18): owners and the moderators they name in the profile delete posts
and remove members. What they sign is checked the same way by relays (before they apply
it) and by members (before they hide anything), so a relay can neither forge a deletion
nor apply one nobody with the right signed. The group's rules for members' posts (slow
mode, size, links) are checked here too, by both."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.group import VerifiedProfile
from chatrelay.members import MAX_POST, NONCE_SIZE
from chatrelay.v1 import core_pb2

MAX_REASON = 500
ID_SIZE = 32
OWNER, MODERATOR = "owner", "moderator"
# What counts as a link in a post (`has_link`): a URL scheme ("https://…"), "www.…", or a
# domain name followed by a path ("example.org/…"). Each check takes time in proportion to
# the text, whatever it holds.
SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}://\S", re.IGNORECASE)
WWW = re.compile(r"(?<![a-z0-9])www\.\S", re.IGNORECASE)
LABEL = re.compile(r"[a-z0-9-]{1,63}", re.IGNORECASE)
TOP_LABEL = re.compile(r"[a-z]{2,63}", re.IGNORECASE)
OPENING = "([{<'\"«“‘"


def has_link(text: str) -> bool:
    if SCHEME.search(text) or WWW.search(text):
        return True
    for token in text.split():
        host, slash, _ = token.lstrip(OPENING).partition("/")
        labels = host.split(".")
        if slash and len(labels) >= 2 and all(LABEL.fullmatch(label) for label in labels[:-1]) \
                and TOP_LABEL.fullmatch(labels[-1]):
            return True
    return False


def role_of(profile: VerifiedProfile, key: bytes) -> str | None:
    """"owner", "moderator", or None for a member (or a stranger)."""
    if key in profile.authorities():
        return OWNER
    if key in profile.profile.moderators:
        return MODERATOR
    return None


def sign(key: SigningKey, group_id: bytes, kind: int, *, message_id: bytes = b"", member: bytes = b"",
         ban: bool = False, delete_posts: bool = False, reason: str = "") -> core_pb2.SignedEnvelope:
    body = core_pb2.ModerationBody(
        group_id=group_id, kind=kind, message_id=message_id, member=member, ban=ban, delete_posts=delete_posts,
        reason=reason, nonce=os.urandom(NONCE_SIZE), timestamp=int(time.time()))
    check_fields(body)
    return env.sign_message(key, env.Domain.MODERATION, body)


def check_fields(body: core_pb2.ModerationBody) -> None:
    if len(body.reason) > MAX_REASON:
        raise TooLargeError("moderation reason", len(body.reason), MAX_REASON, "characters")
    if len(body.nonce) not in (0, NONCE_SIZE) or not body.timestamp:
        raise MalformedError("moderation", f"it needs a nonce of {NONCE_SIZE} bytes and a time")
    if body.kind == core_pb2.MODERATION_KIND_DELETE_POST:
        if len(body.message_id) != ID_SIZE or body.member or body.ban or body.delete_posts:
            raise MalformedError("moderation", "a deletion names one post by its 32-byte message id, and nothing else")
    elif body.kind == core_pb2.MODERATION_KIND_REMOVE_MEMBER:
        if len(body.member) != env.KEY_SIZE or body.message_id:
            raise MalformedError("moderation", "a removal names one member by its 32-byte key, and nothing else")
    else:
        raise MalformedError("moderation", f"unknown kind {body.kind}")


@dataclass(frozen=True, slots=True)
class Moderation:
    """A moderation that checked out: what it does, who signed it and in which role."""

    body: core_pb2.ModerationBody
    signer: bytes
    role: str


def verify(envelope: core_pb2.SignedEnvelope, profile: VerifiedProfile) -> Moderation:
    """Signature, group, fields, and the signer's right under `profile`: an owner, or a
    moderator who removes no other moderator (nor an owner)."""
    checked, body = env.verify_message(envelope, env.Domain.MODERATION, core_pb2.ModerationBody, "moderation")
    if body.group_id != profile.group_id:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "moderation is for another group")
    check_fields(body)
    role = role_of(profile, checked.signer)
    if role is None:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "moderation is not signed by an owner or a moderator of the group")
    if body.kind == core_pb2.MODERATION_KIND_REMOVE_MEMBER:
        if role_of(profile, body.member) == OWNER:
            raise ChatRelayError(Reason.NOT_ALLOWED, "an owner is not removed as a member")
        if role == MODERATOR and role_of(profile, body.member):
            raise ChatRelayError(Reason.NOT_ALLOWED, "a moderator cannot remove an owner or another moderator")
    return Moderation(body=body, signer=checked.signer, role=role)


def check_deletion(moderation: Moderation, profile: VerifiedProfile, author: bytes) -> None:
    """A moderator deletes members' posts (and its own) only."""
    if moderation.role == MODERATOR and author != moderation.signer and role_of(profile, author):
        raise ChatRelayError(Reason.NOT_ALLOWED, "a moderator cannot delete an owner's or another moderator's post")


def describe(moderation: Moderation, fingerprint) -> str:
    """Who did it, as members are told, e.g. "moderator AbC…: spam"."""
    said = f"{moderation.role} {fingerprint(moderation.signer)}"
    return f"{said}: {moderation.body.reason}" if moderation.body.reason else said


# ---- the group's rules for members' posts ----------------------------------------------

def check_rules(profile: VerifiedProfile, author: bytes, body: core_pb2.PostBody) -> None:
    """A member's post within the group's size and link rules (owners and moderators are
    free); refused with the rule it breaks."""
    if role_of(profile, author):
        return
    settings = profile.profile.settings
    most = settings.max_post_bytes or MAX_POST
    if len(body.body) > most:
        raise ChatRelayError(Reason.TOO_LARGE, f"post is {len(body.body)} bytes; the group's rules allow at most {most}")
    if settings.no_links and has_link(body.body.decode("utf-8", "replace")):
        raise ChatRelayError(Reason.NOT_ALLOWED, "the group's rules allow no links in posts")


def slow_mode_refusal(profile: VerifiedProfile, author: bytes, client_ts_ms: int,
                      earlier_ms: list[int]) -> ChatRelayError | None:
    """The slow mode's refusal of a member's post signed at `client_ts_ms`, given the
    signed times of that member's posts taken before; None if it may go on."""
    gap_s = profile.profile.settings.slow_mode_s
    if not gap_s or role_of(profile, author):
        return None
    near = [t for t in earlier_ms if abs(client_ts_ms - t) < gap_s * 1000]
    if not near:
        return None
    wait_s = max(1, (max(near) + gap_s * 1000 - client_ts_ms + 999) // 1000)
    return ChatRelayError(Reason.RATE_LIMITED,
                          f"the group's slow mode allows one post per {gap_s} s; retry in {wait_s} s")
