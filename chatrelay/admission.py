"""Who is a member, as a client checks it (issue 16): a relay may withhold members, but
must not invent one. Every author of a post in a group, and every member key a client
uses, is shown admitted by what the member and the owners signed, never by the relay's
word:

- by its own signed join, for this group, in an OPEN group;
- and an owner's signed approval naming its key, in an APPROVAL group;
- or an owner-signed invite grant with the member's proof of the invite key (in the
  join), which admits in every group and is the only way into an INVITE_ONLY one.

The owners (the profile's root and owner chain) need nothing more. Whatever fails is
`not_a_member`, with what failed. The group's current profile gives the policy: a
member admitted under an earlier, looser policy is refused once the owners tighten it.
"""

from __future__ import annotations

from chatrelay import envelope as env
from chatrelay import invites, members
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import VerifiedProfile
from chatrelay.v1 import core_pb2, relay_pb2


def _refuse(message: str) -> ChatRelayError:
    return ChatRelayError(Reason.NOT_MEMBER, message)


def check(
    profile: VerifiedProfile, author: bytes, admission: relay_pb2.MemberAdmission | None
) -> core_pb2.JoinBody | None:
    """The author's checked join (None for an owner, who has no join); `not_a_member`
    where `admission` does not show that the group's policy let this key in."""
    if author in profile.authorities():
        return None
    if admission is None or not admission.HasField("join"):
        raise _refuse("never joined: no signed join of this key")
    try:
        body = members.verify_join(admission.join, profile.group_id)
    except ChatRelayError as exc:
        raise _refuse(f"its join does not check out: {exc.message}") from None
    if body.keys.sign_key != author:
        raise _refuse("the join shown for it is another member's")
    policy = profile.profile.settings.join
    if body.HasField("invite"):
        try:  # the invite had to be good when the member used it, not now
            invites.verify_invite(body.invite, profile, author, now=body.timestamp)
        except ChatRelayError as exc:
            raise _refuse(f"its invite does not check out: {exc.message}") from None
        return body
    if policy == core_pb2.JOIN_POLICY_INVITE_ONLY:
        raise _refuse("joined without an invite, in a group that takes members by invite only")
    if policy == core_pb2.JOIN_POLICY_APPROVAL:
        _check_approval(profile, author, admission)
    return body


def _check_approval(profile: VerifiedProfile, author: bytes, admission: relay_pb2.MemberAdmission) -> None:
    if not admission.HasField("approval"):
        raise _refuse("joined without an owner's approval, in a group that takes members by approval")
    check_approval(profile, author, admission.approval)


def check_approval(profile: VerifiedProfile, author: bytes, approval: core_pb2.SignedEnvelope) -> None:
    """`not_a_member` unless `approval` is an owner's APPROVE_JOIN naming `author`."""
    try:
        checked, body = env.verify_message(
            approval, env.Domain.OWNER_COMMAND, relay_pb2.OwnerCommandBody, "approval")
    except ChatRelayError as exc:
        raise _refuse(f"its approval does not check out: {exc.message}") from None
    if checked.signer not in profile.authorities():
        raise _refuse("its approval is not signed by an owner of the group")
    if body.kind != relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN or body.member != author:
        raise _refuse("its approval admits another member")
